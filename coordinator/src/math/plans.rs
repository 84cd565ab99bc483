//! SPEC 5.2 as DataFusion plans: one SQL file per quantity under
//! `pipelines/sql/epoch/`, run over the edges, stakes and bonds in index space.
//!
//! The plans use the same fixed-point scales as the loops in this module's
//! siblings ([`super::compute`]), which stay as their test oracle: the two
//! give the same bits. Emission's largest remainder and the peg's k run here,
//! on the coordinator, over the n-row results.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, UInt32Array};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float64Type, Int64Type, Schema, UInt32Type, UInt64Type,
};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use faceblock_schemas::Consensus;

use super::dense::{self, Max, Sum};
use super::udf::index_list_value;
use super::{clip, fixed, rank, trust, Bonds, Column, Edges, Input, Output};
use crate::Result;
use datafusion::logical_expr::LogicalPlan;
use datafusion::variable::{VarProvider, VarType};

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

/// A MemTable of pieces laid end to end (each a set of columns), in
/// `partitions` partitions of about as many rows each, batches of at most
/// 64 k rows, nothing copied.
fn table_of(
    schema: Arc<Schema>,
    pieces: Vec<Vec<ArrayRef>>,
    partitions: usize,
) -> Result<MemTable> {
    let mut batches = vec![];
    for columns in pieces {
        let all = RecordBatch::try_new(schema.clone(), columns)?;
        let n = all.num_rows();
        batches.extend(
            (0..n)
                .step_by(65_536)
                .map(|o| all.slice(o, 65_536usize.min(n - o))),
        );
    }
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let p = partitions.max(1);
    let mut parts: Vec<Vec<RecordBatch>> = vec![vec![]; p];
    let mut seen = 0;
    for b in batches {
        // The partition this batch's first row falls in.
        let at = (seen * p).checked_div(total).unwrap_or(0).min(p - 1);
        seen += b.num_rows();
        parts[at].push(b);
    }
    Ok(MemTable::try_new(schema, parts)?)
}

/// Cuts columns into `partitions` MemTable partitions of contiguous rows.
fn table(schema: Arc<Schema>, columns: Vec<ArrayRef>, partitions: usize) -> Result<MemTable> {
    table_of(schema, vec![columns], partitions)
}

/// The per-peer lists the plans read by index (`fb_at(@stake, src)`): SQL
/// variables whose values the session holds.
///
/// A list bound as a `$parameter` becomes a literal in the logical plan, and
/// DataFusion formats a literal in full whenever it names an expression: the
/// analyzer and optimizer did that dozens of times per plan, 100,000 numbers
/// each time, which was 1.2 s of a 3 s epoch's plans. A variable is named by
/// its name; the physical planner turns it into the same literal once. For a
/// plan that leaves this process (a cluster's scheduler has no such
/// variables), [`inline_lists`] writes the values into the logical plan.
#[derive(Debug, Default)]
pub struct Lists(std::sync::RwLock<HashMap<String, ScalarValue>>);

impl Lists {
    /// Sets `@name` to the per-peer `values`.
    pub fn set<T: ArrowPrimitiveType>(&self, name: &str, values: &[T::Native]) {
        let v = index_list_value::<T>(values);
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("@{name}"), v);
    }

    fn get(&self, names: &[String]) -> Option<ScalarValue> {
        let [name] = names else { return None };
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

impl VarProvider for Lists {
    fn get_value(&self, names: Vec<String>) -> datafusion::common::Result<ScalarValue> {
        self.get(&names).ok_or_else(|| {
            datafusion::common::DataFusionError::Plan(format!(
                "no per-peer list {} is set for this plan",
                names.join(".")
            ))
        })
    }

    fn get_type(&self, names: &[String]) -> Option<DataType> {
        self.get(names).map(|v| v.data_type())
    }
}

/// A fresh set of lists, registered as `ctx`'s variables.
fn lists(ctx: &SessionContext) -> Arc<Lists> {
    let lists = Arc::new(Lists::default());
    ctx.register_variable(VarType::UserDefined, lists.clone());
    lists
}

/// `df`'s optimized plan (views such as `new_bonds` expanded) with every
/// `@list` replaced by its value from `lists`: a plan that carries its
/// data, for a scheduler that plans it in another session.
pub fn inline_lists(df: datafusion::dataframe::DataFrame, lists: &Lists) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    use datafusion::logical_expr::Expr;
    let plan = df.into_optimized_plan()?;
    let plan = plan.transform_up_with_subqueries(|node| {
        // Columns above refer to this node's outputs by name: keep them.
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let saved = names.save(&e);
            let e = e.transform_up(|e| match &e {
                Expr::ScalarVariable(_, names) => match lists.get(names) {
                    Some(v) => Ok(Transformed::yes(Expr::Literal(v, None))),
                    None => Ok(Transformed::no(e)),
                },
                _ => Ok(Transformed::no(e)),
            })?;
            Ok(e.update_data(|e| saved.restore(e)))
        })
    })?;
    Ok(plan.data)
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
fn edges_table(parts: &[Edges], partitions: usize) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("src", DataType::UInt32, false),
        Field::new("dst", DataType::UInt32, false),
        Field::new("weight", DataType::Float64, false),
    ]));
    let pieces = parts
        .iter()
        .map(|e| vec![u32s(&e.src), u32s(&e.dst), f64c(&e.weight)])
        .collect();
    table_of(schema, pieces, partitions)
}

/// Registers the epoch's inputs: `edges`, `segments` (the bond segments'
/// entries), the view `new_bonds` (`bonds.sql`) over them, and the lists
/// `@stake` and `@bond_stake` (each holder's stake sum). Nothing is copied.
/// Returns the lists, for the plans to add theirs.
pub async fn register_inputs(
    ctx: &SessionContext,
    input: &Input<'_>,
    partitions: usize,
) -> Result<Arc<Lists>> {
    let lists = lists(ctx);
    lists.set::<UInt64Type>("stake", input.stake);
    lists.set::<UInt64Type>("bond_stake", &input.segments.stake);
    register(ctx, "edges", edges_table(&input.edges.parts, partitions)?)?;
    let seg = input.segments;
    let segments = Arc::new(Schema::new(vec![
        Field::new("holder", DataType::UInt32, false),
        Field::new("peer", DataType::UInt32, false),
        Field::new("bond", DataType::Float64, false),
        Field::new("weight", DataType::Float64, false),
    ]));
    let pieces = seg
        .parts
        .iter()
        .map(|p| {
            vec![
                u32s(&p.holder),
                u32s(&p.peer),
                f64c(&p.bond),
                f64c(&p.weight),
            ]
        })
        .collect();
    register(ctx, "segments", table_of(segments, pieces, partitions)?)?;
    ctx.deregister_table("new_bonds")?;
    let view = ctx.sql(plan("bonds")).await?.into_view();
    ctx.register_table("new_bonds", view)?;
    Ok(lists)
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
    let t = std::time::Instant::now();
    let df = bind(ctx.sql(plan(name)).await?, params)?;
    let plan = df.create_physical_plan().await?;
    let planned = t.elapsed();
    let out = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx()).await?;
    tracing::debug!(
        plan = name,
        planning_ms = planned.as_secs_f64() * 1e3,
        running_ms = (t.elapsed() - planned).as_secs_f64() * 1e3,
        "plan run"
    );
    if tracing::enabled!(tracing::Level::TRACE) {
        let shown = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
            plan.as_ref(),
        )
        .indent(true);
        tracing::trace!(plan = name, "plan with its metrics:\n{shown}");
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
    let lists = register_inputs(ctx, input, partitions).await?;
    times.push(("inputs", t.elapsed()));
    let total = rank::total_stake(input.stake);
    let shift = ScalarValue::Int64(Some(fixed::stake_shift(total) as i64));

    // Median clipping: the clipped rows replace `edges` for every later plan.
    let clipped = match p.consensus {
        Consensus::Sigmoid => None,
        Consensus::MedianClip => {
            let need = clip::support_needed(total, p.kappa);
            let need = ScalarValue::Decimal128(Some(need.min(i128::MAX as u128) as i128), 38, 0);
            let batches = run(ctx, &mut times, "clip", vec![("need", need)]).await?;
            let (edges, levels) = collect_clipped(n, &batches);
            register(
                ctx,
                "edges",
                edges_table(std::slice::from_ref(&edges), partitions)?,
            )?;
            Some((edges, levels))
        }
    };

    let rank_fx = dense::slots::<Sum>(
        &run(ctx, &mut times, "rank", vec![("shift", shift)]).await?,
        n,
    )?;
    let rank: Vec<f64> = rank_fx
        .iter()
        .map(|v| rank::share((*v).max(0) as u128, total))
        .collect();
    let trust_stake = dense::slots::<Sum>(&run(ctx, &mut times, "trust", vec![]).await?, n)?;
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
    // total at that scale, then one pass that looks up both and the
    // incentive by the bond's column (lists by peer index, no join).
    let shifts: Vec<i64> =
        dense::slots::<Max>(&run(ctx, &mut times, "bond_scales", vec![]).await?, n)?
            .into_iter()
            .map(|m| fixed::shift_for_max(m.abs()) as i64)
            .collect();
    lists.set::<Int64Type>("column_shift", &shifts);
    let totals = dense::slots::<Sum>(&run(ctx, &mut times, "bond_totals", vec![]).await?, n)?;
    // β divides by the exact total rounded once to DOUBLE: rounded here,
    // once per column, not once per bond.
    let totals: Vec<f64> = totals
        .into_iter()
        .map(|t| fixed::to_f64(t.max(0) as u128))
        .collect();
    lists.set::<Float64Type>("column_total", &totals);
    lists.set::<Float64Type>("incentive", &incentive);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::Segments;
    use faceblock_schemas::Params;

    /// A session with `edges` as epoch 1's rows, epoch 0's the same.
    async fn registered(stake: &[u64], edges: &Edges) -> (SessionContext, Arc<Lists>) {
        let edges = &crate::math::Rows::from(edges.clone());
        let none = vec![false; stake.len()];
        let s0 = Segments::default().advance(0, stake, edges, &none);
        let segments = s0.advance(1, stake, edges, &none);
        let params = Params::default();
        let input = Input {
            params: &params,
            k: 1,
            stake,
            edges,
            segments: &segments,
        };
        let ctx = session(2);
        let lists = register_inputs(&ctx, &input, 2).await.unwrap();
        (ctx, lists)
    }

    /// A plan whose lists are written into it runs in a session that has
    /// none (a cluster's scheduler), with the same result; the plan as
    /// written cannot be planned there.
    #[tokio::test]
    async fn inlined_lists_travel_with_the_plan() {
        let stake = [5u64, 7, 9, 11];
        let edges = Edges::new(
            vec![0, 0, 1, 2, 3],
            vec![1, 2, 0, 3, 0],
            vec![0.25, 0.75, 1.0, 1.0, 1.0],
        );
        let (ctx, lists) = registered(&stake, &edges).await;
        lists.set::<Int64Type>("column_shift", &[40, 41, 42, 43]);
        lists.set::<Float64Type>("column_total", &[1e12, 2e12, 3e12, 4e12]);
        lists.set::<Float64Type>("incentive", &[0.1, 0.2, 0.3, 0.4]);
        let elsewhere = session(2);
        for (name, params) in [
            ("rank", vec![("shift", ScalarValue::Int64(Some(60)))]),
            ("dividends", vec![]),
        ] {
            let df = bind(ctx.sql(plan(name)).await.unwrap(), params).unwrap();
            let here = df.clone().collect().await.unwrap();
            let slots = dense::slots::<Sum>(&here, 4).unwrap();
            assert!(slots.iter().any(|v| *v > 0), "{name}: {slots:?}");
            let written = df.logical_plan().clone();
            let unplanned = elsewhere.execute_logical_plan(written).await;
            let err = match unplanned {
                Ok(df) => df.collect().await.unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains("variable"), "{name}: {err}");
            let shipped = inline_lists(df, &lists).unwrap();
            let there = elsewhere
                .execute_logical_plan(shipped)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert_eq!(here, there, "{name}");
        }
    }

    /// Wherever a list is in reach, every expression is a column, a
    /// literal, a cast or a function call: DataFusion names any other (an
    /// operator) by printing it, as a projection is planned and, as a
    /// function's argument, on every batch: with a 100,000-entry list that
    /// took 30 s.
    #[tokio::test]
    async fn no_plan_prints_a_list_per_batch() {
        use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
        use datafusion::physical_expr::ScalarFunctionExpr;
        use datafusion::physical_plan::aggregates::AggregateExec;
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::projection::ProjectionExec;
        use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};

        fn exprs(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn PhysicalExpr>>) {
            let node: &dyn ExecutionPlan = plan.as_ref();
            if let Some(p) = node.downcast_ref::<ProjectionExec>() {
                out.extend(p.expr().iter().map(|e| e.expr.clone()));
            }
            if let Some(a) = node.downcast_ref::<AggregateExec>() {
                for f in a.aggr_expr() {
                    out.extend(f.expressions());
                }
            }
            if let Some(f) = node.downcast_ref::<FilterExec>() {
                out.push(f.predicate().clone());
            }
            for c in plan.children() {
                exprs(c, out);
            }
        }
        fn check(e: &Arc<dyn PhysicalExpr>, plan: &str) {
            let node: &dyn PhysicalExpr = e.as_ref();
            let named_cheaply = node.is::<ScalarFunctionExpr>()
                || node.is::<Column>()
                || node.is::<Literal>()
                || node.is::<CastExpr>();
            let shown = node.to_string();
            assert!(
                named_cheaply || shown.len() < 2_000,
                "{plan}: {}... prints a list when it is named",
                &shown[..80]
            );
            for c in node.children() {
                check(c, plan);
            }
        }

        let n = 3_000u32;
        let stake: Vec<u64> = (0..n as u64).map(|i| 1_000_000 + i).collect();
        let src: Vec<u32> = (0..n).collect();
        let dst: Vec<u32> = (0..n).map(|i| (i + 1) % n).collect();
        let edges = Edges::new(src, dst, vec![1.0; n as usize]);
        let (ctx, lists) = registered(&stake, &edges).await;
        let i64s: Vec<i64> = (0..n as i64).map(|i| 40 + i % 7).collect();
        let f64s: Vec<f64> = (0..n).map(|i| 1.0 / (1.0 + i as f64)).collect();
        lists.set::<Int64Type>("column_shift", &i64s);
        lists.set::<Float64Type>("column_total", &f64s);
        lists.set::<Float64Type>("incentive", &f64s);
        for (name, _) in PLANS {
            let params = vec![
                ("shift", ScalarValue::Int64(Some(60))),
                ("need", ScalarValue::Decimal128(Some(1), 38, 0)),
                ("rho", ScalarValue::Float64(Some(10.0))),
                ("kappa", ScalarValue::Float64(Some(0.5))),
            ];
            let used: Vec<_> = params
                .into_iter()
                .filter(|(p, _)| plan(name).contains(&format!("${p}")))
                .collect();
            if ["consensus", "incentive", "loss"].contains(&name) {
                continue; // over the n-row `ranked`, no list
            }
            let df = bind(ctx.sql(plan(name)).await.unwrap(), used).unwrap();
            let physical = df.create_physical_plan().await.unwrap();
            let mut found = vec![];
            exprs(&physical, &mut found);
            assert!(!found.is_empty(), "{name}");
            for e in &found {
                check(e, name);
            }
        }
    }
}
