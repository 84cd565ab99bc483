//! SPEC 5.2 as DataFusion plans: one SQL file per quantity under
//! `pipelines/sql/epoch/`, run over the edges, stakes and bonds in index space.
//!
//! The plans use the same fixed-point scales as the loops in this module's
//! siblings ([`super::compute`]), which stay as their test oracle: the two
//! give the same bits. Emission's largest remainder and the peg's k run here,
//! on the coordinator, over the n-row results.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Decimal128Type, Field, Float64Type, Schema, UInt32Type};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use faceblock_schemas::Consensus;

use super::{clip, fixed, rank, trust, Bonds, Edges, Input, Output};
use crate::Result;

/// The plans, by name, in the order [`compute`] runs them.
pub const PLANS: [(&str, &str); 8] = [
    (
        "clip",
        include_str!("../../../pipelines/sql/epoch/clip.sql"),
    ),
    (
        "rank",
        include_str!("../../../pipelines/sql/epoch/rank.sql"),
    ),
    (
        "trust",
        include_str!("../../../pipelines/sql/epoch/trust.sql"),
    ),
    (
        "consensus",
        include_str!("../../../pipelines/sql/epoch/consensus.sql"),
    ),
    (
        "incentive",
        include_str!("../../../pipelines/sql/epoch/incentive.sql"),
    ),
    (
        "bonds",
        include_str!("../../../pipelines/sql/epoch/bonds.sql"),
    ),
    (
        "dividends",
        include_str!("../../../pipelines/sql/epoch/dividends.sql"),
    ),
    (
        "loss",
        include_str!("../../../pipelines/sql/epoch/loss.sql"),
    ),
];

fn plan(name: &str) -> &'static str {
    PLANS
        .iter()
        .find(|p| p.0 == name)
        .map(|p| p.1)
        .expect("known plan")
}

/// A session with `partitions` target partitions and every function registered.
pub fn session(partitions: usize) -> SessionContext {
    let cfg = SessionConfig::new().with_target_partitions(partitions.max(1));
    let ctx = SessionContext::new_with_config(cfg);
    super::udf::register(&ctx);
    ctx
}

/// Cuts columns into `partitions` MemTable partitions of contiguous rows.
fn table(schema: Arc<Schema>, columns: Vec<ArrayRef>, partitions: usize) -> Result<MemTable> {
    let all = RecordBatch::try_new(schema.clone(), columns)?;
    let n = all.num_rows();
    let p = partitions.max(1);
    let per = n.div_ceil(p).max(1);
    let parts: Vec<Vec<RecordBatch>> = (0..p)
        .map(|i| {
            let lo = (i * per).min(n);
            let hi = ((i + 1) * per).min(n);
            // Batches of at most 64 k rows, as a scan would hand them out.
            (lo..hi)
                .step_by(65_536)
                .map(|o| all.slice(o, 65_536usize.min(hi - o)))
                .collect()
        })
        .collect();
    Ok(MemTable::try_new(schema, parts)?)
}

fn u32s(v: &[u32]) -> ArrayRef {
    Arc::new(UInt32Array::from(v.to_vec()))
}

fn f64s(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn register(ctx: &SessionContext, name: &str, t: MemTable) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(t))?;
    Ok(())
}

fn triple_schema(a: &str, b: &str, c: &str) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(a, DataType::UInt32, false),
        Field::new(b, DataType::UInt32, false),
        Field::new(c, DataType::Float64, false),
    ]))
}

/// Registers the epoch's inputs: `edges`, `peers` (stake and bond stake sum
/// by index), `segments` (the bond segments' entries).
pub fn register_inputs(ctx: &SessionContext, input: &Input<'_>, partitions: usize) -> Result<()> {
    let e = input.edges;
    register(
        ctx,
        "edges",
        table(
            triple_schema("src", "dst", "weight"),
            vec![u32s(&e.src), u32s(&e.dst), f64s(&e.weight)],
            partitions,
        )?,
    )?;
    let n = input.stake.len();
    let seg = input.segments;
    let peers = Arc::new(Schema::new(vec![
        Field::new("peer", DataType::UInt32, false),
        Field::new("stake", DataType::UInt64, false),
        Field::new("bond_stake", DataType::UInt64, false),
    ]));
    let mut bond_stake = seg.stake.clone();
    bond_stake.resize(n, 0);
    register(
        ctx,
        "peers",
        table(
            peers,
            vec![
                Arc::new(UInt32Array::from_iter_values(0..n as u32)),
                Arc::new(UInt64Array::from(input.stake.to_vec())),
                Arc::new(UInt64Array::from(bond_stake)),
            ],
            partitions,
        )?,
    )?;
    let segments = Arc::new(Schema::new(vec![
        Field::new("holder", DataType::UInt32, false),
        Field::new("peer", DataType::UInt32, false),
        Field::new("bond", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]));
    register(
        ctx,
        "segments",
        table(
            segments,
            vec![
                u32s(&seg.holder),
                u32s(&seg.peer),
                f64s(&seg.bond),
                f64s(&seg.weight),
            ],
            partitions,
        )?,
    )
}

async fn run(
    ctx: &SessionContext,
    name: &str,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Vec<RecordBatch>> {
    let df = ctx.sql(plan(name)).await?;
    let df = if params.is_empty() {
        df
    } else {
        let map: HashMap<String, ScalarAndMetadata> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), ScalarAndMetadata::new(v, None)))
            .collect();
        df.with_param_values(ParamValues::Map(map))?
    };
    Ok(df.collect().await?)
}

/// Scatters a `(peer, value)` result into a vector by index (absent: default).
fn by_peer<T: Copy>(
    n: usize,
    batches: &[RecordBatch],
    zero: T,
    value: impl Fn(&ArrayRef, usize) -> T,
) -> Vec<T> {
    let mut out = vec![zero; n];
    for b in batches {
        let peer = b.column(0).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            out[peer.value(i) as usize] = value(b.column(1), i);
        }
    }
    out
}

fn fx(c: &ArrayRef, i: usize) -> u128 {
    c.as_primitive::<Decimal128Type>().value(i).max(0) as u128
}

fn float(c: &ArrayRef, i: usize) -> f64 {
    let a = c.as_primitive::<Float64Type>();
    if a.is_null(i) {
        0.0
    } else {
        a.value(i)
    }
}

fn ranked(columns: &[(&str, &[f64])], partitions: usize) -> Result<MemTable> {
    let n = columns.first().map(|c| c.1.len()).unwrap_or(0);
    let mut fields = vec![Field::new("peer", DataType::UInt32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(0..n as u32))];
    for (name, v) in columns {
        fields.push(Field::new(*name, DataType::Float64, false));
        arrays.push(f64s(v));
    }
    table(Arc::new(Schema::new(fields)), arrays, partitions)
}

/// Runs SPEC 5.2 as DataFusion plans over `partitions` partitions (results do
/// not depend on it).
pub async fn compute(input: &Input<'_>, partitions: usize) -> Result<Output> {
    let ctx = session(partitions);
    compute_in(&ctx, input, partitions).await
}

/// [`compute`] in a given session (functions registered by [`super::udf::register`]).
pub async fn compute_in(
    ctx: &SessionContext,
    input: &Input<'_>,
    partitions: usize,
) -> Result<Output> {
    let n = input.stake.len();
    let p = input.params;
    register_inputs(ctx, input, partitions)?;
    let total = rank::total_stake(input.stake);
    let shift = ScalarValue::Int64(Some(fixed::stake_shift(total) as i64));

    // Median clipping: the clipped rows replace `edges` for every later plan.
    let clipped = match p.consensus {
        Consensus::Sigmoid => None,
        Consensus::MedianClip => {
            let need = clip::support_needed(total, p.kappa);
            let need = ScalarValue::Decimal128(Some(need.min(i128::MAX as u128) as i128), 38, 0);
            let batches = run(ctx, "clip", vec![("need", need)]).await?;
            let (edges, levels) = collect_clipped(n, &batches);
            register(
                ctx,
                "edges",
                table(
                    triple_schema("src", "dst", "weight"),
                    vec![u32s(&edges.src), u32s(&edges.dst), f64s(&edges.weight)],
                    partitions,
                )?,
            )?;
            Some((edges, levels))
        }
    };

    let rank_fx = by_peer(n, &run(ctx, "rank", vec![("shift", shift)]).await?, 0, fx);
    let rank: Vec<f64> = rank_fx.iter().map(|v| rank::share(*v, total)).collect();
    let trust_stake = by_peer(n, &run(ctx, "trust", vec![]).await?, 0, fx);
    let trust: Vec<f64> = trust_stake
        .iter()
        .map(|v| trust::share(*v, total))
        .collect();

    let (consensus, factor) = match &clipped {
        Some((_, levels)) => (levels.clone(), clip::factor(levels)),
        None => {
            register(
                ctx,
                "ranked",
                ranked(&[("rank", &rank[..]), ("trust", &trust[..])], partitions)?,
            )?;
            let c = by_peer(
                n,
                &run(
                    ctx,
                    "consensus",
                    vec![
                        ("rho", ScalarValue::Float64(Some(p.rho))),
                        ("kappa", ScalarValue::Float64(Some(p.kappa))),
                    ],
                )
                .await?,
                0.0,
                float,
            );
            (c.clone(), c)
        }
    };
    register(
        ctx,
        "ranked",
        ranked(
            &[
                ("rank", &rank[..]),
                ("trust", &trust[..]),
                ("consensus", &consensus[..]),
                ("factor", &factor[..]),
            ],
            partitions,
        )?,
    )?;
    let incentive = by_peer(n, &run(ctx, "incentive", vec![]).await?, 0.0, float);
    let loss = run(ctx, "loss", vec![]).await?;
    let loss = loss
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| float(b.column(0), 0))
        .unwrap_or(0.0);

    let bonds = collect_bonds(&run(ctx, "bonds", vec![]).await?);
    register(
        ctx,
        "new_bonds",
        table(
            triple_schema("holder", "peer", "bond"),
            vec![u32s(&bonds.holder), u32s(&bonds.peer), f64s(&bonds.bond)],
            partitions,
        )?,
    )?;
    register(
        ctx,
        "ranked",
        ranked(
            &[
                ("rank", &rank[..]),
                ("trust", &trust[..]),
                ("consensus", &consensus[..]),
                ("factor", &factor[..]),
                ("incentive", &incentive[..]),
            ],
            partitions,
        )?,
    )?;
    let dividends: Vec<f64> = by_peer(n, &run(ctx, "dividends", vec![]).await?, 0.0, float);

    Ok(Output::settle(
        input, rank, trust, consensus, incentive, dividends, bonds, loss,
    ))
}

/// `clip.sql`'s `(src, dst, weight, clip)` batches → the clipped rows, sorted
/// by `(src, dst)`, and the clip level of every column (0 where none).
fn collect_clipped(n: usize, batches: &[RecordBatch]) -> (Edges, Vec<f64>) {
    let mut levels = vec![0.0; n];
    let (mut s, mut d, mut w) = (vec![], vec![], vec![]);
    for b in batches {
        let dst = b.column(1).as_primitive::<UInt32Type>();
        let clip = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            levels[dst.value(i) as usize] = clip.value(i);
        }
        s.extend_from_slice(b.column(0).as_primitive::<UInt32Type>().values());
        d.extend_from_slice(dst.values());
        w.extend_from_slice(b.column(2).as_primitive::<Float64Type>().values());
    }
    let (src, dst, weight) = super::sort_triples(s, d, w);
    (Edges { src, dst, weight }, levels)
}

/// `(holder, peer, bond)` batches → [`Bonds`] sorted by `(holder, peer)`.
fn collect_bonds(batches: &[RecordBatch]) -> Bonds {
    let m: usize = batches.iter().map(|b| b.num_rows()).sum();
    let (mut h, mut p, mut v) = (
        Vec::with_capacity(m),
        Vec::with_capacity(m),
        Vec::with_capacity(m),
    );
    for b in batches {
        h.extend_from_slice(b.column(0).as_primitive::<UInt32Type>().values());
        p.extend_from_slice(b.column(1).as_primitive::<UInt32Type>().values());
        v.extend_from_slice(b.column(2).as_primitive::<Float64Type>().values());
    }
    let (holder, peer, bond) = super::sort_triples(h, p, v);
    Bonds { holder, peer, bond }
}
