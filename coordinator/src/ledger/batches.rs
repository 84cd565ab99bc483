//! One epoch's rows of a ledger table, cut at [`CHUNK_ROWS`]: batches
//! already built, or chunks built when they are read.
//!
//! In an epoch in which every row changed, `weights` and `bonds` hold 25.6 M
//! rows each at 100,000 × 256. Built whole, their Int64 uid columns alone
//! were 800 MB of fresh memory, and its first touch cost more than the
//! hashing and encoding that read it. Built on demand, a chunk lives only
//! while it is hashed or encoded, and the next one reuses its memory. The
//! digest and the staged files see the same batches either way.

use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::digest::CHUNK_ROWS;
use crate::Result;

/// A table whose chunks are built when read: chunk `i` holds rows
/// `i · CHUNK_ROWS ..` of [`Chunks::rows`], and every chunk but the last is
/// full, as [`crate::epoch::build::chunked`] would have cut them.
pub trait Chunks: Send + Sync + std::fmt::Debug {
    /// Rows in the whole table.
    fn rows(&self) -> usize;
    /// Builds chunk `i`.
    fn chunk(&self, i: usize) -> Result<RecordBatch>;
}

/// One epoch's rows of a ledger table.
#[derive(Debug, Clone)]
pub enum Batches {
    /// Built in memory.
    Built(Vec<RecordBatch>),
    /// Built chunk by chunk when read.
    OnDemand(Arc<dyn Chunks>),
}

impl From<Vec<RecordBatch>> for Batches {
    fn from(b: Vec<RecordBatch>) -> Self {
        Self::Built(b)
    }
}

impl Batches {
    /// Number of batches (chunks).
    pub fn len(&self) -> usize {
        match self {
            Self::Built(b) => b.len(),
            Self::OnDemand(c) => c.rows().div_ceil(CHUNK_ROWS),
        }
    }

    /// No batches at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in batch `i`, without building it.
    pub fn rows_of(&self, i: usize) -> usize {
        match self {
            Self::Built(b) => b[i].num_rows(),
            Self::OnDemand(c) => CHUNK_ROWS.min(c.rows() - i * CHUNK_ROWS),
        }
    }

    /// Batch `i` (built now when on demand).
    pub fn get(&self, i: usize) -> Result<RecordBatch> {
        match self {
            Self::Built(b) => Ok(b[i].clone()),
            Self::OnDemand(c) => c.chunk(i),
        }
    }

    /// Every batch, built (for tests and small tables).
    pub fn collect(&self) -> Result<Vec<RecordBatch>> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}
