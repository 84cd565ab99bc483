//! Turns an epoch's results into ledger batches in canonical order, cut at
//! [`CHUNK_ROWS`], and computes the digests: one builder per ledger table,
//! each naming its columns (checked against the table's schema).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};

use crate::digest::{self, CHUNK_ROWS};
use crate::fisher::Score;
use crate::ingest::{InputObject, Rejection};
use crate::ledger::tables;
use crate::math::{Column, Edges, Entries, Output, Segments};
use crate::registry::Peer;
use crate::Result;
use faceblock_schemas::exchange::Metrics;

use super::rows::InForce;

/// Named columns → batches, in the schema's column order; a name the schema
/// lacks, or a column left out, is a bug caught by every test.
pub fn named(table: &str, columns: Vec<(&str, ArrayRef)>) -> Result<Vec<RecordBatch>> {
    let schema = tables::schema(table).expect("known table");
    let ordered = in_order(table, &schema, columns, None);
    chunked(
        table,
        ordered.into_iter().map(|c| c.expect("given")).collect(),
    )
}

/// [`named`] for a table whose `epoch` column holds `epoch` on every row:
/// every batch shares one filled chunk instead of a column as long as the
/// table (200 MB for 25.6 M weights).
pub fn named_in(
    table: &str,
    epoch: u64,
    columns: Vec<(&str, ArrayRef)>,
) -> Result<Vec<RecordBatch>> {
    let schema = tables::schema(table).expect("known table");
    let ordered = in_order(table, &schema, columns, Some("epoch"));
    let n = ordered
        .iter()
        .flatten()
        .map(|c| c.len())
        .next()
        .unwrap_or(0);
    let filled: ArrayRef = Arc::new(Int64Array::from(vec![epoch as i64; n.min(CHUNK_ROWS)]));
    (0..n)
        .step_by(CHUNK_ROWS)
        .map(|o| {
            let len = CHUNK_ROWS.min(n - o);
            let cols = ordered
                .iter()
                .map(|c| match c {
                    Some(c) => c.slice(o, len),
                    None => filled.slice(0, len),
                })
                .collect();
            Ok(RecordBatch::try_new(schema.clone(), cols)?)
        })
        .collect()
}

/// Columns in the schema's order; `None` at the one named `skip`.
fn in_order(
    table: &str,
    schema: &arrow::datatypes::Schema,
    mut columns: Vec<(&str, ArrayRef)>,
    skip: Option<&str>,
) -> Vec<Option<ArrayRef>> {
    assert_eq!(
        columns.len() + usize::from(skip.is_some()),
        schema.fields().len(),
        "{table}: one column per field"
    );
    schema
        .fields()
        .iter()
        .map(|f| {
            if Some(f.name().as_str()) == skip {
                return None;
            }
            let i = columns
                .iter()
                .position(|c| c.0 == f.name())
                .unwrap_or_else(|| panic!("{table}: no column {}", f.name()));
            Some(columns.swap_remove(i).1)
        })
        .collect()
}

/// `registry`: the peers that joined this epoch.
pub fn registry(epoch: u64, joined: &[Peer]) -> Result<Vec<RecordBatch>> {
    named_in(
        "registry",
        epoch,
        vec![
            ("uid", i64s(joined.iter().map(|p| p.uid as i64))),
            (
                "public_key",
                strs(joined.iter().map(|p| p.public_key.to_hex())),
            ),
            ("modality", strs(joined.iter().map(|p| p.modality.clone()))),
            (
                "registered_epoch",
                i64s(joined.iter().map(|p| p.registered_epoch as i64)),
            ),
        ],
    )
}

/// Everything `state` records of one epoch, by index.
#[derive(Debug)]
pub struct State<'a> {
    /// Uid of each index.
    pub uids: &'a [i64],
    /// Stake before the epoch.
    pub stake: &'a [u64],
    /// The arithmetic's results.
    pub out: &'a Output,
    /// Fisher rank.
    pub fisher_rank: Vec<f64>,
    /// Fisher divergence, where defined.
    pub fisher_divergence: Vec<Option<f64>>,
    /// Rows in force.
    pub force: &'a InForce,
    /// Bond segments.
    pub segments: &'a Segments,
}

/// `state`: one row per registered peer.
pub fn state(epoch: u64, s: State<'_>) -> Result<Vec<RecordBatch>> {
    let o = s.out;
    named_in(
        "state",
        epoch,
        vec![
            ("uid", i64s(s.uids.iter().copied())),
            ("stake_before", i64s(s.stake.iter().map(|v| *v as i64))),
            ("emission", i64s(o.emission.iter().map(|v| *v as i64))),
            ("stake", i64s(o.stake_after.iter().map(|v| *v as i64))),
            ("stake_share", f64s(o.stake_share.clone())),
            ("rank", f64s(o.rank.clone())),
            ("trust", f64s(o.trust.clone())),
            ("consensus", f64s(o.consensus.clone())),
            ("incentive", f64s(o.incentive.clone())),
            ("dividends", f64s(o.dividends.clone())),
            ("fisher_rank", f64s(s.fisher_rank)),
            ("fisher_divergence", opt_f64s(s.fisher_divergence)),
            (
                "weights_epoch",
                opt_i64s(s.force.weights_epoch.iter().map(|e| e.map(|e| e as i64))),
            ),
            (
                "bonds_epoch",
                i64s(s.segments.start.iter().map(|e| *e as i64)),
            ),
            (
                "bond_stake",
                i64s(s.segments.stake.iter().map(|v| *v as i64)),
            ),
        ],
    )
}

/// `weights`: the entries of the rows accepted this epoch, and no others.
pub fn weights(epoch: u64, uids: &[i64], force: &InForce) -> Result<Vec<RecordBatch>> {
    let new = |e: &Edges, x: usize| force.weights_epoch[e.src[x] as usize] == Some(epoch);
    let columns = match force.edges.parts.as_slice() {
        [e] => {
            let keep = Keep::new(e.len(), |x| new(e, x));
            vec![
                ("src", keep.i64s(|x| uids[e.src[x] as usize])),
                ("dst", keep.i64s(|x| uids[e.dst[x] as usize])),
                ("weight", keep.f64s(&e.weight)),
            ]
        }
        parts => {
            let (mut s, mut d, mut w) = (vec![], vec![], vec![]);
            for e in parts {
                for x in (0..e.len()).filter(|x| new(e, *x)) {
                    s.push(uids[e.src[x] as usize]);
                    d.push(uids[e.dst[x] as usize]);
                    w.push(e.weight[x]);
                }
            }
            vec![("src", i64s(s)), ("dst", i64s(d)), ("weight", f64s(w))]
        }
    };
    named_in("weights", epoch, columns)
}

/// `bonds`: the entries of the segments that start this epoch, and no others.
pub fn bonds(epoch: u64, uids: &[i64], seg: &Segments) -> Result<Vec<RecordBatch>> {
    let starts = |p: &Entries, x: usize| seg.start[p.holder[x] as usize] == epoch;
    let columns = match seg.parts.as_slice() {
        [p] => {
            let keep = Keep::new(p.len(), |x| starts(p, x));
            vec![
                ("holder", keep.i64s(|x| uids[p.holder[x] as usize])),
                ("peer", keep.i64s(|x| uids[p.peer[x] as usize])),
                ("bond", keep.f64s(&p.bond)),
                ("weight", keep.f64s(&p.weight)),
            ]
        }
        parts => {
            let (mut h, mut q, mut b, mut w) = (vec![], vec![], vec![], vec![]);
            for p in parts {
                for x in (0..p.len()).filter(|x| starts(p, *x)) {
                    h.push(uids[p.holder[x] as usize]);
                    q.push(uids[p.peer[x] as usize]);
                    b.push(p.bond[x]);
                    w.push(p.weight[x]);
                }
            }
            vec![
                ("holder", i64s(h)),
                ("peer", i64s(q)),
                ("bond", f64s(b)),
                ("weight", f64s(w)),
            ]
        }
    };
    named_in("bonds", epoch, columns)
}

/// Which entries of a table's source go in: all of them (an epoch in which
/// every row changed, where no index list is built and float columns are
/// shared), or those listed.
enum Keep {
    All(usize),
    Some(Vec<usize>),
}

impl Keep {
    fn new(n: usize, kept: impl Fn(usize) -> bool) -> Self {
        if (0..n).all(&kept) {
            Self::All(n)
        } else {
            Self::Some((0..n).filter(|x| kept(*x)).collect())
        }
    }

    fn i64s(&self, f: impl Fn(usize) -> i64) -> ArrayRef {
        match self {
            Self::All(n) => i64s((0..*n).map(f)),
            Self::Some(keep) => i64s(keep.iter().map(|x| f(*x))),
        }
    }

    /// The kept entries of a shared column; the column itself when all are.
    fn f64s(&self, col: &Column<f64>) -> ArrayRef {
        match self {
            Self::All(_) => Arc::new(Float64Array::new(col.clone(), None)),
            Self::Some(keep) => f64s(keep.iter().map(|x| col[*x]).collect()),
        }
    }
}

/// `fisher`: φ per queried pair.
pub fn fisher(epoch: u64, scores: &[Score]) -> Result<Vec<RecordBatch>> {
    named_in(
        "fisher",
        epoch,
        vec![
            ("src", i64s(scores.iter().map(|s| s.src as i64))),
            ("dst", i64s(scores.iter().map(|s| s.dst as i64))),
            ("score", f64s(scores.iter().map(|s| s.score).collect())),
            ("examples", i64s(scores.iter().map(|s| s.examples as i64))),
        ],
    )
}

/// `rejections`: one row per rejected object.
pub fn rejections(epoch: u64, r: &[Rejection]) -> Result<Vec<RecordBatch>> {
    named_in(
        "rejections",
        epoch,
        vec![
            ("uid", opt_i64s(r.iter().map(|r| r.uid.map(|u| u as i64)))),
            ("object", strs(r.iter().map(|r| r.object.clone()))),
            ("reason", strs(r.iter().map(|r| r.reason.code()))),
            ("detail", strs(r.iter().map(|r| r.detail.clone()))),
        ],
    )
}

/// `metrics`: what peers reported of themselves.
pub fn metrics(epoch: u64, m: &[(u32, Metrics)]) -> Result<Vec<RecordBatch>> {
    named_in(
        "metrics",
        epoch,
        vec![
            ("uid", i64s(m.iter().map(|m| m.0 as i64))),
            ("loss", opt_f64s(m.iter().map(|m| Some(m.1.loss)))),
            (
                "distill_loss",
                opt_f64s(m.iter().map(|m| Some(m.1.distill_loss))),
            ),
            (
                "examples",
                opt_i64s(
                    m.iter()
                        .map(|m| Some(i64::try_from(m.1.examples).unwrap_or(i64::MAX))),
                ),
            ),
        ],
    )
}

/// `inputs`: every object the epoch read.
pub fn inputs(epoch: u64, inputs: &[InputObject]) -> Result<Vec<RecordBatch>> {
    named_in(
        "inputs",
        epoch,
        vec![
            ("object", strs(inputs.iter().map(|r| r.object.clone()))),
            (
                "uid",
                opt_i64s(inputs.iter().map(|r| r.uid.map(|u| u as i64))),
            ),
            ("kind", strs(inputs.iter().map(|r| r.kind))),
            ("bytes", i64s(inputs.iter().map(|r| r.bytes as i64))),
            ("sha256", strs(inputs.iter().map(|r| r.sha256.clone()))),
        ],
    )
}

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
        named(
            "epochs",
            vec![
                ("epoch", i(self.epoch)),
                ("n_peers", i(self.n_peers)),
                ("total_stake_before", i(self.total_stake_before)),
                ("emission", i(self.emission)),
                ("loss", f64s(vec![self.loss])),
                ("k", i(self.k as u64)),
                ("k_next", i(self.k_next as u64)),
                ("rows_in_force", i(self.rows_in_force)),
                ("rows_accepted", i(self.rows_accepted)),
                ("rows_rejected", i(self.rows_rejected)),
                ("inputs_digest", strs([&self.inputs_digest])),
                ("digest", strs([digest])),
                ("prev_digest", strs([&self.prev_digest])),
                ("version", strs([version])),
                ("committed_at", Arc::new(ts)),
            ],
        )
    }
}
