//! SPEC 5.2 as DataFusion plans: one SQL file per quantity under
//! `pipelines/sql/epoch/`, run over the edges, stakes and bonds in index space.
//!
//! The plans use the same fixed-point scales as the loops in this module's
//! siblings ([`super::compute`]), which stay as their test oracle: the two
//! give the same bits. Emission's largest remainder and the peg's k run here,
//! on the coordinator, over the n-row results.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, UInt32Type};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use faceblock_schemas::Consensus;

use super::dense::{self, Max, Sum};
use super::{clip, fixed, rank, trust, Bonds, Column, Edges, Input, Output};
use crate::Result;

/// The plans, by name, in the order [`compute`] runs them.
pub const PLANS: [(&str, &str); 10] = [
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
        "bond_scales",
        include_str!("../../../pipelines/sql/epoch/bond_scales.sql"),
    ),
    (
        "bond_totals",
        include_str!("../../../pipelines/sql/epoch/bond_totals.sql"),
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
///
/// Every join of the plans has an n-row table by peer index on one side:
/// collected whole on each partition (`CollectLeft`, a direct array lookup
/// as the keys are dense) it saves hash-repartitioning the 25.6 M-row side,
/// which the default thresholds (1 MiB, 128 k rows) ask for beyond ~30,000
/// peers.
pub fn session(partitions: usize) -> SessionContext {
    let mut cfg = SessionConfig::new().with_target_partitions(partitions.max(1));
    let opt = &mut cfg.options_mut().optimizer;
    opt.hash_join_single_partition_threshold = 1 << 30;
    opt.hash_join_single_partition_threshold_rows = 1 << 26;
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

/// A shared column as an array (no copy).
fn u32s(v: &Column<u32>) -> ArrayRef {
    Arc::new(UInt32Array::new(v.clone(), None))
}

/// A shared column as an array (no copy).
fn f64c(v: &Column<f64>) -> ArrayRef {
    Arc::new(Float64Array::new(v.clone(), None))
}

fn f64s(v: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

fn register(ctx: &SessionContext, name: &str, t: MemTable) -> Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(t))?;
    Ok(())
}

/// `edges`: the rows in force, as they are (no copy).
fn edges_table(edges: &Edges, partitions: usize) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("src", DataType::UInt32, false),
        Field::new("dst", DataType::UInt32, false),
        Field::new("weight", DataType::Float64, false),
    ]));
    table(
        schema,
        vec![u32s(&edges.src), u32s(&edges.dst), f64c(&edges.weight)],
        partitions,
    )
}

/// Registers the epoch's inputs: `edges`, `segments` (the bond segments'
/// entries), and the view `new_bonds` (`bonds.sql`) over them, with each
/// holder's stake sum bound as `$bond_stake`. Nothing is copied.
pub async fn register_inputs(
    ctx: &SessionContext,
    input: &Input<'_>,
    partitions: usize,
) -> Result<()> {
    register(ctx, "edges", edges_table(input.edges, partitions)?)?;
    let seg = input.segments;
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
                f64c(&seg.bond),
                f64c(&seg.weight),
            ],
            partitions,
        )?,
    )?;
    ctx.deregister_table("new_bonds")?;
    let view = bind(
        ctx.sql(plan("bonds")).await?,
        vec![("bond_stake", super::udf::index_list_value(&seg.stake))],
    )?
    .into_view();
    ctx.register_table("new_bonds", view)?;
    Ok(())
}

/// B' as the plans see it (the view `new_bonds`), sorted by `(holder, peer)`:
/// for tests that hold it against [`super::Segments::bonds`].
pub async fn bonds(ctx: &SessionContext) -> Result<Bonds> {
    let batches = ctx
        .sql("SELECT holder, peer, bond FROM new_bonds WHERE bond > 0")
        .await?
        .collect()
        .await?;
    Ok(collect_bonds(&batches))
}

async fn run(
    ctx: &SessionContext,
    times: &mut PlanTimes,
    name: &'static str,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Vec<RecordBatch>> {
    let t = std::time::Instant::now();
    let out = run_plan(ctx, name, params).await;
    times.push((name, t.elapsed()));
    out
}

async fn run_plan(
    ctx: &SessionContext,
    name: &str,
    params: Vec<(&str, ScalarValue)>,
) -> Result<Vec<RecordBatch>> {
    let df = bind(ctx.sql(plan(name)).await?, params)?;
    let plan = df.create_physical_plan().await?;
    let out = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        let shown = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
            plan.as_ref(),
        )
        .indent(true);
        tracing::debug!(plan = name, "plan with its metrics:\n{shown}");
    }
    Ok(out)
}

/// Binds named parameters (`$shift`, ...) to values.
fn bind(
    df: datafusion::dataframe::DataFrame,
    params: Vec<(&str, ScalarValue)>,
) -> Result<datafusion::dataframe::DataFrame> {
    if params.is_empty() {
        return Ok(df);
    }
    let map: HashMap<String, ScalarAndMetadata> = params
        .into_iter()
        .map(|(k, v)| (k.to_string(), ScalarAndMetadata::new(v, None)))
        .collect();
    Ok(df.with_param_values(ParamValues::Map(map))?)
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

fn i64s(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

/// An n-row table by peer index from named columns.
fn per_peer(columns: &[(&str, ArrayRef)], partitions: usize) -> Result<MemTable> {
    let n = columns.first().map(|c| c.1.len()).unwrap_or(0);
    let mut fields = vec![Field::new("peer", DataType::UInt32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(0..n as u32))];
    for (name, a) in columns {
        fields.push(Field::new(*name, a.data_type().clone(), false));
        arrays.push(a.clone());
    }
    table(Arc::new(Schema::new(fields)), arrays, partitions)
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
    let columns: Vec<(&str, ArrayRef)> = columns.iter().map(|(n, v)| (*n, f64s(v))).collect();
    per_peer(&columns, partitions)
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
    Ok(compute_timed(ctx, input, partitions).await?.0)
}

/// Time spent per plan, in the order they ran.
pub type PlanTimes = Vec<(&'static str, std::time::Duration)>;

/// [`compute_in`], with the time each plan took (for the benchmark).
pub async fn compute_timed(
    ctx: &SessionContext,
    input: &Input<'_>,
    partitions: usize,
) -> Result<(Output, PlanTimes)> {
    let n = input.stake.len();
    let p = input.params;
    let mut times = PlanTimes::new();
    let t = std::time::Instant::now();
    register_inputs(ctx, input, partitions).await?;
    times.push(("inputs", t.elapsed()));
    let total = rank::total_stake(input.stake);
    let shift = ScalarValue::Int64(Some(fixed::stake_shift(total) as i64));
    let stake = super::udf::index_list_value(input.stake);

    // Median clipping: the clipped rows replace `edges` for every later plan.
    let clipped = match p.consensus {
        Consensus::Sigmoid => None,
        Consensus::MedianClip => {
            let need = clip::support_needed(total, p.kappa);
            let need = ScalarValue::Decimal128(Some(need.min(i128::MAX as u128) as i128), 38, 0);
            let batches = run(
                ctx,
                &mut times,
                "clip",
                vec![("need", need), ("stake", stake.clone())],
            )
            .await?;
            let (edges, levels) = collect_clipped(n, &batches);
            register(ctx, "edges", edges_table(&edges, partitions)?)?;
            Some((edges, levels))
        }
    };

    let rank_fx = dense::slots::<Sum>(
        &run(
            ctx,
            &mut times,
            "rank",
            vec![("shift", shift), ("stake", stake.clone())],
        )
        .await?,
        n,
    )?;
    let rank: Vec<f64> = rank_fx
        .iter()
        .map(|v| rank::share((*v).max(0) as u128, total))
        .collect();
    let trust_stake = dense::slots::<Sum>(
        &run(ctx, &mut times, "trust", vec![("stake", stake)]).await?,
        n,
    )?;
    let trust: Vec<f64> = trust_stake
        .iter()
        .map(|v| trust::share((*v).max(0) as u128, total))
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
                    &mut times,
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
    let incentive = by_peer(
        n,
        &run(ctx, &mut times, "incentive", vec![]).await?,
        0.0,
        float,
    );
    let loss = run(ctx, &mut times, "loss", vec![]).await?;
    let loss = loss
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| float(b.column(0), 0))
        .unwrap_or(0.0);

    // Dividends over the view `new_bonds`: each column's scale, then its
    // total at that scale, then one pass that joins both and the incentive.
    let shifts: Vec<i64> =
        dense::slots::<Max>(&run(ctx, &mut times, "bond_scales", vec![]).await?, n)?
            .into_iter()
            .map(|m| fixed::shift_for_max(m.abs()) as i64)
            .collect();
    let shifts = i64s(&shifts);
    register(
        ctx,
        "scales",
        per_peer(&[("shift", shifts.clone())], partitions)?,
    )?;
    let totals = dense::slots::<Sum>(&run(ctx, &mut times, "bond_totals", vec![]).await?, n)?;
    // β divides by the exact total rounded once to DOUBLE: rounded here,
    // once per column, not once per bond.
    let totals: Vec<f64> = totals
        .into_iter()
        .map(|t| fixed::to_f64(t.max(0) as u128))
        .collect();
    let totals = f64s(&totals);
    register(
        ctx,
        "columns",
        per_peer(
            &[
                ("shift", shifts),
                ("total", totals),
                ("incentive", f64s(&incentive)),
            ],
            partitions,
        )?,
    )?;
    let dividends: Vec<f64> =
        dense::slots::<Sum>(&run(ctx, &mut times, "dividends", vec![]).await?, n)?
            .into_iter()
            .map(|v| fixed::unscale(v.max(0) as u128, fixed::UNIT_FRAC).min(1.0))
            .collect();

    Ok((
        Output::settle(input, rank, trust, consensus, incentive, dividends, loss),
        times,
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
    (Edges::new(src, dst, weight), levels)
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
