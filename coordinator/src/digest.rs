//! Tamper-evident digests (SPEC 6): SHA-256 over a canonical encoding of every
//! value an epoch wrote, never over Parquet bytes.
//!
//! Tables are built in canonical row order and cut into fixed chunks of
//! [`CHUNK_ROWS`] rows; each chunk is hashed (in parallel) and the table digest
//! is the hash of its chunk digests, so the result depends only on the values.

use arrow::array::RecordBatch;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Rows per hashed chunk (and per ledger batch).
pub const CHUNK_ROWS: usize = 1 << 16;

/// Digest of one table's batches, which must be cut at [`CHUNK_ROWS`].
pub fn table_digest(name: &str, batches: &[RecordBatch]) -> [u8; 32] {
    let chunks: Vec<[u8; 32]> = batches
        .par_iter()
        .map(|b| {
            let mut h = Sha256::new();
            faceblock_schemas::signing::hash_batch(&mut h, b);
            h.finalize().into()
        })
        .collect();
    let mut h = Sha256::new();
    h.update(b"faceblock/table/v1\0");
    h.update((name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update((chunks.len() as u64).to_le_bytes());
    for c in chunks {
        h.update(c);
    }
    h.finalize().into()
}

/// Chains the table digests of one epoch onto the previous epoch's digest.
pub fn epoch_digest(prev_digest: &str, tables: &[([u8; 32], &str)]) -> String {
    let mut h = Sha256::new();
    h.update(b"faceblock/epoch/v1\0");
    h.update(prev_digest.as_bytes());
    for (d, name) in tables {
        h.update(name.as_bytes());
        h.update(d);
    }
    hex::encode(h.finalize())
}
