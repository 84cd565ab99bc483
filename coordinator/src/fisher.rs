//! The Fisher job (SPEC 5.3): read what peers exchanged in an epoch, check
//! every file with the checks peers run themselves (`faceblock_schemas::exchange`),
//! and measure φ_{j,i} = Σ_x ⟨g_{j,i}(x), f_i(x)⟩² for every answered pair.
//!
//! Answers and gradients are paired per example and their inner products
//! taken in Rust (f64, index order); DataFusion then runs
//! `pipelines/sql/fisher.sql`, whose per-pair sum `fb_sum` is order-free
//! (sorts before adding), so scores are the same to the last bit at any
//! partition count (SPEC 8).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{create_udaf, Accumulator, AggregateUDF, Volatility};
use datafusion::prelude::{SessionConfig, SessionContext};
use faceblock_schemas::exchange::Tensor;
use faceblock_schemas::Params;
use rayon::prelude::*;

use crate::math::Rows;
use crate::reason::Reason;
use crate::registry::Registry;
use crate::{Error, Result};

/// The query that turns checked tensors into scores.
pub const SQL: &str = include_str!("../../pipelines/sql/fisher.sql");

/// φ for one queried pair, in uids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The querier j.
    pub src: u32,
    /// The answerer i.
    pub dst: u32,
    /// φ_{j,i}.
    pub score: f64,
    /// Examples with both an answer and a gradient.
    pub examples: u64,
}

/// Checked tensors of one kind: ((querier, answerer), values).
pub type Pairs = Vec<((u32, u32), Tensor)>;

/// `answered` as DataFusion sees it: one row per example with both an
/// answer and a gradient, and the inner product of the two.
pub fn answered_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("src", DataType::UInt32, false),
        Field::new("dst", DataType::UInt32, false),
        Field::new("example", DataType::UInt32, false),
        Field::new("d", DataType::Float64, false),
    ]))
}

/// ⟨g, f⟩ for every example of every graded pair, in parallel over pairs.
/// Pairing happens here rather than in a SQL join: a join moves both
/// 2,048-value lists per row and cost 30× the arithmetic in release builds.
fn inner_products(activations: Pairs, gradients: &Pairs) -> Vec<(u32, u32, Vec<u32>, Vec<f64>)> {
    let acts: HashMap<(u32, u32), Tensor> = activations.into_iter().collect();
    gradients
        .par_iter()
        .filter_map(|((j, i), g)| {
            let a = acts.get(&(*j, *i))?;
            let mut ex = Vec::with_capacity(g.example.len());
            let mut d = Vec::with_capacity(g.example.len());
            for (r, x) in g.example.iter().enumerate() {
                // The checks made gradient examples a subset of the answer's.
                let k = a.example.binary_search(x).ok()?;
                ex.push(*x);
                d.push(dot(g.row(r), a.row(k)));
            }
            Some((*j, *i, ex, d))
        })
        .collect()
}

/// φ per pair from checked tensors: inner products here, then [`SQL`] on
/// DataFusion for the per-pair sums of squares.
pub async fn scores(activations: Pairs, gradients: Pairs, partitions: usize) -> Result<Vec<Score>> {
    if gradients.is_empty() {
        return Ok(vec![]);
    }
    let pairs = inner_products(activations, &gradients);
    let schema = answered_schema();
    let mut parts: Vec<Vec<RecordBatch>> = vec![vec![]; partitions.max(1)];
    let n_parts = parts.len();
    for (k, (j, i, ex, d)) in pairs.into_iter().enumerate() {
        let rows = ex.len();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt32Array::from(vec![j; rows])) as ArrayRef,
                Arc::new(UInt32Array::from(vec![i; rows])),
                Arc::new(UInt32Array::from(ex)),
                Arc::new(Float64Array::from(d)),
            ],
        )?;
        parts[k % n_parts].push(b);
    }
    let ctx = session(partitions);
    ctx.register_table("answered", Arc::new(MemTable::try_new(schema, parts)?))?;
    let batches = ctx.sql(SQL).await?.collect().await?;
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize, t: &DataType| arrow::compute::cast(b.column(i), t);
        let src = col(0, &DataType::UInt32)?;
        let dst = col(1, &DataType::UInt32)?;
        let score = col(2, &DataType::Float64)?;
        let examples = col(3, &DataType::Int64)?;
        let (src, dst) = (
            src.as_primitive::<arrow::datatypes::UInt32Type>(),
            dst.as_primitive::<arrow::datatypes::UInt32Type>(),
        );
        let (score, examples) = (
            score.as_primitive::<Float64Type>(),
            examples.as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            if score.is_null(r) {
                return Err(Error::Epoch(format!(
                    "the Fisher query gave no score for pair ({}, {})",
                    src.value(r),
                    dst.value(r)
                )));
            }
            out.push(Score {
                src: src.value(r),
                dst: dst.value(r),
                score: score.value(r),
                examples: examples.value(r) as u64,
            });
        }
    }
    out.sort_by_key(|s| (s.src, s.dst));
    Ok(out)
}

/// A DataFusion session with `fb_sum` registered.
pub fn session(partitions: usize) -> SessionContext {
    let ctx = SessionContext::new_with_config(
        SessionConfig::new().with_target_partitions(partitions.max(1)),
    );
    ctx.register_udaf(fb_sum());
    ctx
}

/// ⟨x, y⟩ accumulated in f64 in index order. A product of two f32 is exact in
/// f64, so only the additions round, always in the same order.
pub fn dot(x: &[f32], y: &[f32]) -> f64 {
    let mut acc = 0.0f64;
    for (a, b) in x.iter().zip(y) {
        acc += *a as f64 * *b as f64;
    }
    acc
}

/// Sums in an order fixed by the values alone (ascending by `total_cmp`), so
/// the result does not depend on how the values arrived.
pub fn order_free_sum(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v.iter().fold(0.0, |a, b| a + b)
}

/// `fb_sum(float64) -> float64`: [`order_free_sum`] of the non-NULL values.
pub fn fb_sum() -> AggregateUDF {
    create_udaf(
        "fb_sum",
        vec![DataType::Float64],
        Arc::new(DataType::Float64),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(OrderFreeSum::default()))),
        Arc::new(vec![DataType::List(Arc::new(Field::new_list_field(
            DataType::Float64,
            true,
        )))]),
    )
}

/// Keeps every value; partial states merge by concatenation.
#[derive(Debug, Default)]
struct OrderFreeSum {
    values: Vec<f64>,
}

impl Accumulator for OrderFreeSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        self.values
            .extend(values[0].as_primitive::<Float64Type>().iter().flatten());
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.values.is_empty() {
            return Ok(ScalarValue::Float64(None));
        }
        Ok(ScalarValue::Float64(Some(order_free_sum(&mut self.values))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            self.values.iter().map(|v| Some(*v)),
        )]);
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let l = states[0].as_list::<i32>();
        for r in 0..l.len() {
            if l.is_valid(r) {
                let v = l.value(r);
                self.values
                    .extend(v.as_primitive::<Float64Type>().iter().flatten());
            }
        }
        Ok(())
    }
}

/// φ rows by querier index: (answerer index, φ), ascending by answerer.
pub fn phi_rows(scores: &[Score], registry: &Registry) -> Vec<Vec<(u32, f64)>> {
    let mut rows = vec![vec![]; registry.len()];
    for s in scores {
        if let (Some(j), Some(i)) = (registry.index(s.src), registry.index(s.dst)) {
            rows[j as usize].push((i, s.score));
        }
    }
    for r in &mut rows {
        r.sort_by_key(|e| e.0);
    }
    rows
}

/// fisher_rank_i = (1/n) Σ_j φ_{j,i}, summed over j ascending, by index.
pub fn fisher_rank(phi: &[Vec<(u32, f64)>]) -> Vec<f64> {
    let n = phi.len();
    let mut sum = vec![0.0f64; n];
    for row in phi {
        for (i, s) in row {
            sum[*i as usize] += s;
        }
    }
    sum.into_iter().map(|s| s / n as f64).collect()
}

/// A `fisher`-sourced row (SPEC 5.3): φ_{j,·} without zero (and self) entries,
/// its `max_weights` largest kept (ties: lower uid first), normalised.
/// Returns destination indices ascending and weights.
pub fn fisher_row(
    phi: &[(u32, f64)],
    src: u32,
    params: &Params,
    k: u32,
) -> std::result::Result<(Vec<u32>, Vec<f64>), (Reason, String)> {
    if phi.is_empty() {
        return Err((
            Reason::NoFisherScores,
            "no Fisher scores were measured for this peer's queries in this epoch".into(),
        ));
    }
    let mut e: Vec<(u32, f64)> = phi
        .iter()
        .filter(|(d, s)| *s > 0.0 && (params.allow_self_weight || *d != src))
        .copied()
        .collect();
    e.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    e.truncate(params.max_weights as usize);
    if e.len() < k as usize {
        return Err((
            Reason::TooFewWeights,
            format!(
                "{} nonzero Fisher scores besides the peer itself; this epoch needs at least k = {k}",
                e.len()
            ),
        ));
    }
    e.sort_by_key(|x| x.0);
    let total = e.iter().fold(0.0, |a, x| a + x.1);
    if e.is_empty() || total <= 0.0 || !total.is_finite() {
        return Ok((vec![], vec![]));
    }
    Ok((
        e.iter().map(|x| x.0).collect(),
        e.iter().map(|x| x.1 / total).collect(),
    ))
}

/// Total variation distance between each peer's row in force (`edges`, sorted
/// by (src, dst)) and its normalised φ row; `None` without both.
pub fn divergence(edges: &Rows, phi: &[Vec<(u32, f64)>]) -> Vec<Option<f64>> {
    let mut out = vec![None; phi.len()];
    let rows = edges.locate(phi.len());
    for (j, row) in phi.iter().enumerate() {
        let (dst, w) = edges.row(rows[j]);
        let total = row.iter().fold(0.0, |a, x| a + x.1);
        if dst.is_empty() || total <= 0.0 || !total.is_finite() {
            continue;
        }
        let (mut a, mut b, mut acc) = (0usize, 0usize, 0.0f64);
        while a < dst.len() || b < row.len() {
            let da = dst.get(a).copied().unwrap_or(u32::MAX);
            let db = row.get(b).map(|x| x.0).unwrap_or(u32::MAX);
            let (x, y) = if da == db {
                a += 1;
                b += 1;
                (w[a - 1], row[b - 1].1 / total)
            } else if da < db {
                a += 1;
                (w[a - 1], 0.0)
            } else {
                b += 1;
                (0.0, row[b - 1].1 / total)
            };
            acc += (x - y).abs();
        }
        out[j] = Some(0.5 * acc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn params(max_weights: u32, allow_self_weight: bool) -> Params {
        Params {
            max_weights,
            allow_self_weight,
            ..Params::default()
        }
    }

    #[test]
    fn fisher_row_keeps_the_largest_drops_zeros_and_self() {
        let phi = [(0, 5.0), (1, 0.0), (2, 3.0), (3, 3.0), (4, 1.0), (5, 9.0)];
        // Self (5) dropped, zero dropped; two largest: 0 (5.0) then a tie 2/3 → 2.
        let (d, w) = fisher_row(&phi, 5, &params(2, false), 1).unwrap();
        assert_eq!(d, vec![0, 2]);
        assert_eq!(w, vec![5.0 / 8.0, 3.0 / 8.0]);
        let (d, _) = fisher_row(&phi, 5, &params(1, true), 1).unwrap();
        assert_eq!(d, vec![5]);
        let e = fisher_row(&phi, 5, &params(10, false), 5).unwrap_err();
        assert_eq!(e.0, Reason::TooFewWeights);
        let e = fisher_row(&[], 5, &params(10, false), 1).unwrap_err();
        assert_eq!(e.0, Reason::NoFisherScores);
        let e = fisher_row(&[(1, 0.0)], 5, &params(10, false), 1).unwrap_err();
        assert_eq!(e.0, Reason::TooFewWeights);
    }

    #[test]
    fn divergence_is_total_variation() {
        let edges = crate::math::Edges::new(vec![0, 0, 2], vec![1, 3, 0], vec![0.5, 0.5, 1.0]);
        let phi = vec![
            vec![(1, 12.0), (2, 4.0), (3, 0.0)],
            vec![(0, 1.0)],
            vec![(0, 2.0)],
            vec![],
        ];
        let d = divergence(&edges.clone().into(), &phi);
        assert_eq!(d, vec![Some(0.5), None, Some(0.0), None]);
        // The same rows in two pieces.
        let pieces = Rows {
            parts: vec![edges.slice(0, 2), edges.slice(2, 3)],
        };
        assert_eq!(divergence(&pieces, &phi), d);
        assert_eq!(fisher_rank(&phi), vec![0.75, 3.0, 1.0, 0.0]);
    }

    fn random_pairs(seed: u64, pairs: &[(u32, u32)], rows: u32, width: usize) -> (Pairs, Pairs) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut t = |examples: Vec<u32>| {
            let values = (0..examples.len() * width)
                .map(|_| rng.gen_range(-1e3f32..1e3) * rng.gen_range(1e-6f32..1.0))
                .collect();
            Tensor {
                example: examples,
                values,
                width,
            }
        };
        let mut a = vec![];
        let mut g = vec![];
        for p in pairs {
            a.push((*p, t((0..rows).collect())));
            g.push((*p, t((0..rows).filter(|x| x % 3 != 1).collect())));
        }
        (a, g)
    }

    fn direct(a: &Pairs, g: &Pairs) -> Vec<Score> {
        g.iter()
            .map(|(p, gt)| {
                let at = &a.iter().find(|x| x.0 == *p).unwrap().1;
                let mut v: Vec<f64> = gt
                    .example
                    .iter()
                    .enumerate()
                    .map(|(r, e)| {
                        let ar = at.example.iter().position(|x| x == e).unwrap();
                        let d = dot(gt.row(r), at.row(ar));
                        d * d
                    })
                    .collect();
                Score {
                    src: p.0,
                    dst: p.1,
                    score: order_free_sum(&mut v),
                    examples: v.len() as u64,
                }
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scores_are_bit_identical_at_any_partition_count() {
        let pairs = [(0, 1), (0, 2), (1, 0), (2, 1), (3, 0)];
        let (a, g) = random_pairs(3, &pairs, 3000, 6);
        let want = direct(&a, &g);
        for p in [1, 2, 3, 8] {
            let got = scores(a.clone(), g.clone(), p).await.unwrap();
            assert_eq!(got.len(), want.len());
            for (x, y) in got.iter().zip(&want) {
                assert_eq!((x.src, x.dst, x.examples), (y.src, y.dst, y.examples));
                assert_eq!(x.score.to_bits(), y.score.to_bits(), "partitions {p}");
            }
        }
    }
}
