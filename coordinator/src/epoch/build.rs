//! Turns an epoch's results into ledger batches in canonical order, cut at
//! [`CHUNK_ROWS`], and computes the digests.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

use crate::digest::{self, CHUNK_ROWS};
use crate::ledger::tables;
use crate::Result;

/// Columns → batches of at most [`CHUNK_ROWS`] rows (zero-copy slices).
pub fn chunked(table: &str, columns: Vec<ArrayRef>) -> Result<Vec<RecordBatch>> {
    let schema = tables::schema(table).expect("known table");
    let all = RecordBatch::try_new(schema, columns)?;
    let n = all.num_rows();
    if n == 0 {
        return Ok(vec![]);
    }
    Ok((0..n)
        .step_by(CHUNK_ROWS)
        .map(|o| all.slice(o, CHUNK_ROWS.min(n - o)))
        .collect())
}

/// An Int64 column filled with `epoch`.
pub fn epoch_col(epoch: u64, n: usize) -> ArrayRef {
    Arc::new(Int64Array::from(vec![epoch as i64; n]))
}

/// i64 column from anything convertible.
pub fn i64s(v: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(v))
}

/// Nullable i64 column.
pub fn opt_i64s(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(v))
}

/// f64 column.
pub fn f64s(v: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

/// Nullable f64 column.
pub fn opt_f64s(v: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(v))
}

/// String column.
pub fn strs<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

/// The scalar fields of an `epochs` row, hashed without `digest` and `committed_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// Epoch.
    pub epoch: u64,
    /// Registered peers.
    pub n_peers: u64,
    /// Σ stake before.
    pub total_stake_before: u64,
    /// Σ emission.
    pub emission: u64,
    /// L.
    pub loss: f64,
    /// k in force.
    pub k: u32,
    /// k next.
    pub k_next: u32,
    /// Rows in force.
    pub rows_in_force: u64,
    /// Rows accepted this epoch.
    pub rows_accepted: u64,
    /// Weight submissions rejected this epoch.
    pub rows_rejected: u64,
    /// Digest of the inputs.
    pub inputs_digest: String,
    /// Digest of epoch e−1.
    pub prev_digest: String,
}

impl EpochRow {
    fn scalars(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [
            self.epoch,
            self.n_peers,
            self.total_stake_before,
            self.emission,
            self.k as u64,
            self.k_next as u64,
            self.rows_in_force,
            self.rows_accepted,
            self.rows_rejected,
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&self.loss.to_bits().to_le_bytes());
        v.extend_from_slice(self.inputs_digest.as_bytes());
        v.extend_from_slice(self.prev_digest.as_bytes());
        v
    }

    /// The epoch digest over this row and every other table.
    pub fn digest(&self, tables: &[(&str, Vec<RecordBatch>)]) -> String {
        let mut parts: Vec<([u8; 32], &str)> = tables
            .iter()
            .map(|(name, b)| (digest::table_digest(name, b), *name))
            .collect();
        use sha2::{Digest, Sha256};
        parts.push((Sha256::digest(self.scalars()).into(), "epochs"));
        digest::epoch_digest(&self.prev_digest, &parts)
    }

    /// The `epochs` batch, with its digest and commit time.
    pub fn batch(
        &self,
        digest: &str,
        version: &str,
        committed_at_us: i64,
    ) -> Result<Vec<RecordBatch>> {
        let i = |x: u64| i64s([x as i64]);
        let ts = TimestampMicrosecondArray::from(vec![committed_at_us]).with_timezone("UTC");
        chunked(
            "epochs",
            vec![
                i(self.epoch),
                i(self.n_peers),
                i(self.total_stake_before),
                i(self.emission),
                f64s(vec![self.loss]),
                i(self.k as u64),
                i(self.k_next as u64),
                i(self.rows_in_force),
                i(self.rows_accepted),
                i(self.rows_rejected),
                strs([&self.inputs_digest]),
                strs([digest]),
                strs([&self.prev_digest]),
                strs([version]),
                Arc::new(ts),
            ],
        )
    }
}
