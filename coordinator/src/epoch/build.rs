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
use crate::ledger::batches::{Batches, Chunks};
use crate::ledger::tables;
use crate::math::{Column, Edges, Entries, Loc, Output, Segments};
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

/// `weights`: the entries of the rows accepted this epoch, and no others,
/// built chunk by chunk when read ([`Batches::OnDemand`]).
pub fn weights(epoch: u64, uids: &[i64], force: &InForce) -> Batches {
    let parts = force.edges.parts.clone();
    let at = force.edges.locate(uids.len());
    let runs = Runs::of_owners(&at, |i| force.weights_epoch[i] == Some(epoch));
    let uids: Arc<[i64]> = uids.into();
    on_demand("weights", epoch, runs, move |runs| {
        let uid = |c: fn(&Edges) -> &Column<u32>| uids_of(runs, &uids, |p| c(&parts[p]));
        vec![
            ("src", uid(|e| &e.src)),
            ("dst", uid(|e| &e.dst)),
            ("weight", floats(runs, |p| &parts[p].weight)),
        ]
    })
}

/// `bonds`: the entries of the segments that start this epoch, and no
/// others, built chunk by chunk when read ([`Batches::OnDemand`]).
pub fn bonds(epoch: u64, uids: &[i64], seg: &Segments) -> Batches {
    let parts = seg.parts.clone();
    let at = seg.locate(uids.len());
    let runs = Runs::of_owners(&at, |i| seg.start[i] == epoch);
    let uids: Arc<[i64]> = uids.into();
    on_demand("bonds", epoch, runs, move |runs| {
        let uid = |c: fn(&Entries) -> &Column<u32>| uids_of(runs, &uids, |p| c(&parts[p]));
        vec![
            ("holder", uid(|p| &p.holder)),
            ("peer", uid(|p| &p.peer)),
            ("bond", floats(runs, |p| &parts[p].bond)),
            ("weight", floats(runs, |p| &parts[p].weight)),
        ]
    })
}

/// The entries of a table's pieces that go in, as runs in table order.
#[derive(Debug, Default)]
struct Runs {
    runs: Vec<Loc>,
    /// The table row each run starts at.
    starts: Vec<usize>,
    rows: usize,
}

impl Runs {
    /// The entries of every owner for which `kept` holds, owners in order
    /// (`at`: each owner's place in the pieces); neighbours in one piece
    /// make one run.
    fn of_owners(at: &[Loc], kept: impl Fn(usize) -> bool) -> Self {
        let mut r = Runs::default();
        for (i, l) in at.iter().enumerate() {
            if l.hi == l.lo || !kept(i) {
                continue;
            }
            match r.runs.last_mut() {
                Some(last) if last.part == l.part && last.hi == l.lo => last.hi = l.hi,
                _ => {
                    r.starts.push(r.rows);
                    r.runs.push(*l);
                }
            }
            r.rows += l.hi - l.lo;
        }
        r
    }

    /// Table rows `a..b` as runs.
    fn within(&self, a: usize, b: usize) -> Vec<Loc> {
        let first = self.starts.partition_point(|s| *s <= a) - 1;
        let mut out = vec![];
        for (r, start) in self.runs[first..].iter().zip(&self.starts[first..]) {
            if *start >= b {
                break;
            }
            let lo = r.lo + a.saturating_sub(*start);
            let hi = r.hi.min(r.lo + (b - start));
            out.push(Loc { lo, hi, ..*r });
        }
        out
    }
}

/// The uids of an index column's entries in `runs` (a slice at a time: a
/// flattened iterator of runs was twice as slow).
fn uids_of<'a>(runs: &[Loc], uids: &[i64], col: impl Fn(usize) -> &'a Column<u32>) -> ArrayRef {
    let mut v = Vec::with_capacity(runs.iter().map(|r| r.hi - r.lo).sum());
    for r in runs {
        v.extend(col(r.part)[r.lo..r.hi].iter().map(|x| uids[*x as usize]));
    }
    Arc::new(Int64Array::from(v))
}

/// A Float64 column of `runs`: a slice of the piece's own column when the
/// chunk lies in one run, a copy otherwise.
fn floats<'a>(runs: &[Loc], col: impl Fn(usize) -> &'a Column<f64>) -> ArrayRef {
    match runs {
        [r] => Arc::new(Float64Array::new(
            col(r.part).slice(r.lo, r.hi - r.lo),
            None,
        )),
        _ => {
            let mut v = Vec::with_capacity(runs.iter().map(|r| r.hi - r.lo).sum());
            for r in runs {
                v.extend_from_slice(&col(r.part)[r.lo..r.hi]);
            }
            f64s(v)
        }
    }
}

/// A table of `runs`' rows, its chunks built by `columns` (every column
/// but `epoch`) when read.
fn on_demand(
    table: &'static str,
    epoch: u64,
    runs: Runs,
    columns: impl Fn(&[Loc]) -> Vec<(&'static str, ArrayRef)> + Send + Sync + 'static,
) -> Batches {
    Batches::OnDemand(Arc::new(OnDemand {
        table,
        filled: Arc::new(Int64Array::from(vec![
            epoch as i64;
            CHUNK_ROWS.min(runs.rows)
        ])),
        runs,
        columns: Box::new(columns),
    }))
}

/// See [`on_demand`].
struct OnDemand {
    table: &'static str,
    filled: ArrayRef,
    runs: Runs,
    #[allow(clippy::type_complexity)]
    columns: Box<dyn Fn(&[Loc]) -> Vec<(&'static str, ArrayRef)> + Send + Sync>,
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("table", &self.table)
            .field("rows", &self.runs.rows)
            .finish_non_exhaustive()
    }
}

impl Chunks for OnDemand {
    fn rows(&self) -> usize {
        self.runs.rows
    }

    fn chunk(&self, i: usize) -> Result<RecordBatch> {
        let a = i * CHUNK_ROWS;
        let b = (a + CHUNK_ROWS).min(self.runs.rows);
        let schema = tables::schema(self.table).expect("known table");
        let cols = in_order(
            self.table,
            &schema,
            (self.columns)(&self.runs.within(a, b)),
            Some("epoch"),
        );
        let cols = cols
            .into_iter()
            .map(|c| c.unwrap_or_else(|| self.filled.slice(0, b - a)))
            .collect();
        Ok(RecordBatch::try_new(schema, cols)?)
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
    pub fn digest(&self, tables: &[(&str, Batches)]) -> Result<String> {
        let mut parts: Vec<([u8; 32], &str)> = tables
            .iter()
            .map(|(name, b)| Ok((digest::table_digest(name, b)?, *name)))
            .collect::<Result<_>>()?;
        use sha2::{Digest, Sha256};
        parts.push((Sha256::digest(self.scalars()).into(), "epochs"));
        Ok(digest::epoch_digest(&self.prev_digest, &parts))
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

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type};

    use super::*;
    use crate::math::Rows;

    /// Rows of peers `lo..hi`, `per` entries each, in one piece.
    fn piece(lo: u32, hi: u32, per: u32) -> Edges {
        let (mut s, mut d, mut w) = (vec![], vec![], vec![]);
        for i in lo..hi {
            for j in 0..per {
                s.push(i);
                d.push(j);
                w.push(f64::from(i * 1000 + j));
            }
        }
        Edges::new(s, d, w)
    }

    /// `weights` built chunk by chunk holds exactly the new rows' entries,
    /// in order, cut at CHUNK_ROWS, across pieces and chunk borders; a
    /// chunk inside one run shares that run's float column.
    #[test]
    fn weights_on_demand_are_the_new_rows_in_order() {
        let (n, per) = (600u32, 400u32);
        let new = |i: u32| i < 251 || i.is_multiple_of(3);
        let force = InForce {
            edges: Rows {
                parts: vec![piece(0, 250, per), piece(250, 251, per), piece(251, n, per)],
            },
            // Peers below 251 and every third after resubmitted this epoch
            // (5); the rest carry rows of epoch 4.
            weights_epoch: (0..n).map(|i| Some(if new(i) { 5 } else { 4 })).collect(),
            rows: n as usize,
            below_k: vec![],
        };
        let uids: Vec<i64> = (0..n as i64).map(|i| 10 * i + 7).collect();
        let got = weights(5, &uids, &force);
        let mut want = vec![];
        for i in (0..n).filter(|i| new(*i)) {
            for j in 0..per {
                let uid = |x: u32| 10 * i64::from(x) + 7;
                want.push((uid(i), uid(j), f64::from(i * 1000 + j)));
            }
        }
        assert!(want.len() > 2 * CHUNK_ROWS);
        assert_eq!(got.len(), want.len().div_ceil(CHUNK_ROWS));
        let mut seen = vec![];
        for (c, b) in got.collect().unwrap().iter().enumerate() {
            assert_eq!(b.num_rows(), got.rows_of(c));
            assert!(c + 1 == got.len() || b.num_rows() == CHUNK_ROWS);
            let col = |name: &str| b.column_by_name(name).unwrap().clone();
            assert!(col("epoch")
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .all(|e| *e == 5));
            let (s, d) = (col("src"), col("dst"));
            let w = col("weight");
            for x in 0..b.num_rows() {
                seen.push((
                    s.as_primitive::<Int64Type>().value(x),
                    d.as_primitive::<Int64Type>().value(x),
                    w.as_primitive::<Float64Type>().value(x),
                ));
            }
        }
        assert_eq!(seen.len(), want.len());
        assert!(seen == want, "the new rows' entries, in order");
        // The first chunk lies in peers 0..250's run of the first piece:
        // its weights are that piece's; the second spans three pieces.
        let weight = |c: usize| {
            got.get(c)
                .unwrap()
                .column_by_name("weight")
                .unwrap()
                .to_data()
        };
        assert_eq!(
            weight(0).buffers()[0].as_ptr(),
            force.edges.parts[0].weight.inner().as_ptr(),
        );
        assert_ne!(
            weight(1).buffers()[0].as_ptr(),
            force.edges.parts[0].weight.inner()[CHUNK_ROWS * 8..].as_ptr(),
        );
    }
}
