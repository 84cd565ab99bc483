//! Tamper-evident digests (SPEC 6): SHA-256 over a canonical encoding of every
//! value an epoch wrote, never over Parquet bytes.
//!
//! Tables are built in canonical row order and cut into fixed chunks of
//! [`CHUNK_ROWS`] rows; each chunk is hashed (in parallel) and the table digest
//! is the hash of its chunk digests, so the result depends only on the values.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::ledger::batches::Batches;
use crate::Result;

/// Rows per hashed chunk (and per ledger batch).
pub const CHUNK_ROWS: usize = 1 << 16;

/// Digest of one table's batches, which must be cut at [`CHUNK_ROWS`].
/// Chunks built on demand are built, hashed and dropped one at a time.
pub fn table_digest(name: &str, batches: &Batches) -> Result<[u8; 32]> {
    let chunks: Vec<[u8; 32]> = (0..batches.len())
        .into_par_iter()
        .map(|i| {
            let mut h = Sha256::new();
            faceblock_schemas::signing::hash_batch(&mut h, &batches.get(i)?);
            Ok(h.finalize().into())
        })
        .collect::<Result<_>>()?;
    let mut h = Sha256::new();
    h.update(b"faceblock/table/v1\0");
    h.update((name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update((chunks.len() as u64).to_le_bytes());
    for c in chunks {
        h.update(c);
    }
    Ok(h.finalize().into())
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
