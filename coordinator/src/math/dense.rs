//! Aggregates by dense peer index: `fb_fx_sum_by(peer, term)` and
//! `fb_max_by(peer, x)` fold every row into slot `peer` of one array, the
//! way the loops scatter, instead of a `GROUP BY peer` that hashes every row
//! to find its group.
//!
//! Every key of the epoch's plans is a peer index in `0..n`, so the groups
//! are known before the plan runs and a hash table buys nothing: on 25.6 M
//! edges, interning the keys was most of each plan's time. These are plain
//! aggregates without grouping (one accumulator per partition, merged once),
//! so they run unchanged on a cluster: the partial state is one Arrow list
//! per partition.
//!
//! The result is one row, a list whose element k is peer k's value; the list
//! is as long as the largest peer seen plus one (the reader pads it to n).
//! A slot no row reached holds the fold's identity: 0 for a sum, −∞ for a
//! maximum. The sum is exact in i128, so it is the same at any partition
//! count, and an overflow is an error, never a wrapped value.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array, ListArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Float64Type, UInt32Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::udf::FX;

/// One fold into a slot: its element type, identity and step.
pub trait Fold: Debug + Send + Sync + 'static {
    /// What a slot holds.
    type Native: Copy + Send + Sync + Debug;
    /// The SQL name.
    const NAME: &'static str;
    /// The Arrow type of a value and of a slot.
    fn data_type() -> DataType;
    /// A slot no row reached.
    fn identity() -> Self::Native;
    /// Folds `v` into `slot`; true when that overflowed (the caller fails
    /// with [`Fold::overflow`] after its loop, which stays branch-free).
    fn step(slot: &mut Self::Native, v: Self::Native) -> bool;
    /// The error an overflowing step gives.
    fn overflow() -> DataFusionError;
    /// The values of an array of [`Fold::data_type`], and its nulls.
    fn values(a: &dyn Array) -> (&[Self::Native], Option<&NullBuffer>);
    /// Slots as an array of [`Fold::data_type`].
    fn array(slots: Vec<Self::Native>) -> DfResult<ArrayRef>;
}

/// Exact sum of fixed-point terms (`FX`).
#[derive(Debug)]
pub struct Sum;

impl Fold for Sum {
    type Native = i128;
    const NAME: &'static str = "fb_fx_sum_by";
    fn data_type() -> DataType {
        FX
    }
    fn identity() -> i128 {
        0
    }
    #[inline(always)]
    fn step(slot: &mut i128, v: i128) -> bool {
        let (sum, over) = slot.overflowing_add(v);
        *slot = sum;
        over
    }
    fn overflow() -> DataFusionError {
        DataFusionError::Execution(
            "fb_fx_sum_by overflowed i128: a fixed-point scale is too fine for these values".into(),
        )
    }
    fn values(a: &dyn Array) -> (&[i128], Option<&NullBuffer>) {
        let a = a.as_primitive::<Decimal128Type>();
        (a.values(), a.nulls())
    }
    fn array(slots: Vec<i128>) -> DfResult<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from(slots).with_precision_and_scale(38, 0)?,
        ))
    }
}

/// Largest value (NaN never wins).
#[derive(Debug)]
pub struct Max;

impl Fold for Max {
    type Native = f64;
    const NAME: &'static str = "fb_max_by";
    fn data_type() -> DataType {
        DataType::Float64
    }
    fn identity() -> f64 {
        f64::NEG_INFINITY
    }
    #[inline(always)]
    fn step(slot: &mut f64, v: f64) -> bool {
        if v > *slot {
            *slot = v;
        }
        false
    }
    fn overflow() -> DataFusionError {
        DataFusionError::Internal("fb_max_by cannot overflow".into())
    }
    fn values(a: &dyn Array) -> (&[f64], Option<&NullBuffer>) {
        let a = a.as_primitive::<Float64Type>();
        (a.values(), a.nulls())
    }
    fn array(slots: Vec<f64>) -> DfResult<ArrayRef> {
        Ok(Arc::new(Float64Array::from(slots)))
    }
}

/// `fb_fx_sum_by(peer UInt32, term FX) → List<FX>`.
pub fn fb_fx_sum_by() -> AggregateUDF {
    AggregateUDF::from(ByPeer::<Sum>::default())
}

/// `fb_max_by(peer UInt32, x Float64) → List<Float64>`.
pub fn fb_max_by() -> AggregateUDF {
    AggregateUDF::from(ByPeer::<Max>::default())
}

/// The list type of a result and of the partial state.
fn list_type<F: Fold>() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(F::data_type(), false)))
}

/// An aggregate whose slots are addressed by peer index.
#[derive(Debug)]
pub struct ByPeer<F: Fold> {
    signature: Signature,
    fold: PhantomData<F>,
}

impl<F: Fold> Default for ByPeer<F> {
    fn default() -> Self {
        Self {
            signature: Signature::exact(
                vec![DataType::UInt32, F::data_type()],
                Volatility::Immutable,
            ),
            fold: PhantomData,
        }
    }
}

impl<F: Fold> PartialEq for ByPeer<F> {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl<F: Fold> Eq for ByPeer<F> {}

impl<F: Fold> std::hash::Hash for ByPeer<F> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        F::NAME.hash(state);
    }
}

impl<F: Fold> AggregateUDFImpl for ByPeer<F> {
    fn name(&self) -> &str {
        F::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(list_type::<F>())
    }
    fn state_fields(&self, _: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new("slots", list_type::<F>(), true))])
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(Slots::<F> { slots: Vec::new() }))
    }
}

/// One accumulator's slots.
#[derive(Debug)]
struct Slots<F: Fold> {
    slots: Vec<F::Native>,
}

impl<F: Fold> Slots<F> {
    fn grow(&mut self, len: usize) {
        if len > self.slots.len() {
            self.slots.resize(len, F::identity());
        }
    }
}

impl<F: Fold> Accumulator for Slots<F> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let peer = values[0].as_primitive::<UInt32Type>();
        let (vals, nulls) = F::values(values[1].as_ref());
        let top = if peer.null_count() == 0 {
            peer.values().iter().max().copied()
        } else {
            peer.iter().flatten().max()
        };
        if let Some(top) = top {
            self.grow(top as usize + 1);
        }
        let slots = &mut self.slots;
        let mut over = false;
        if peer.null_count() == 0 && nulls.is_none() {
            for (p, v) in peer.values().iter().zip(vals) {
                over |= F::step(&mut slots[*p as usize], *v);
            }
        } else {
            for (i, v) in vals.iter().enumerate() {
                if peer.is_valid(i) && nulls.is_none_or(|n| n.is_valid(i)) {
                    over |= F::step(&mut slots[peer.value(i) as usize], *v);
                }
            }
        }
        if over {
            return Err(F::overflow());
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                continue;
            }
            let part = lists.value(i);
            self.grow(part.len());
            let (vals, nulls) = F::values(part.as_ref());
            let mut over = false;
            for (k, v) in vals.iter().enumerate() {
                if nulls.is_none_or(|n| n.is_valid(k)) {
                    over |= F::step(&mut self.slots[k], *v);
                }
            }
            if over {
                return Err(F::overflow());
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let values = F::array(self.slots.clone())?;
        let field = Arc::new(Field::new_list_field(F::data_type(), false));
        let list = ListArray::try_new(
            field,
            OffsetBuffer::from_lengths([values.len()]),
            values,
            None,
        )?;
        Ok(ScalarValue::List(Arc::new(list)))
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.slots.capacity() * std::mem::size_of::<F::Native>()
    }
}

/// The slots of a one-row result (`batches` of one list column), padded to
/// `n` with the fold's identity.
pub fn slots<F: Fold>(
    batches: &[arrow::array::RecordBatch],
    n: usize,
) -> crate::Result<Vec<F::Native>> {
    let mut out = vec![F::identity(); n];
    for b in batches {
        let lists = b.column(0).as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_null(i) {
                continue;
            }
            let part = lists.value(i);
            let (vals, _) = F::values(part.as_ref());
            if vals.len() > n {
                return Err(crate::Error::Epoch(format!(
                    "{} returned {} slots for {n} peers: a peer index is past the registry",
                    F::NAME,
                    vals.len()
                )));
            }
            out[..vals.len()].copy_from_slice(vals);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{RecordBatch, UInt32Array};
    use arrow::datatypes::Schema;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    fn ctx(parts: Vec<Vec<(u32, Option<i128>, f64)>>) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![
            Field::new("peer", DataType::UInt32, false),
            Field::new("v", FX, true),
            Field::new("x", DataType::Float64, false),
        ]));
        let parts = parts
            .into_iter()
            .map(|rows| {
                let peer = UInt32Array::from_iter_values(rows.iter().map(|r| r.0));
                let v = Decimal128Array::from_iter(rows.iter().map(|r| r.1))
                    .with_precision_and_scale(38, 0)
                    .unwrap();
                let x = Float64Array::from_iter_values(rows.iter().map(|r| r.2));
                vec![RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(peer), Arc::new(v), Arc::new(x)],
                )
                .unwrap()]
            })
            .collect();
        let ctx = SessionContext::new();
        super::super::udf::register(&ctx);
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap()))
            .unwrap();
        ctx
    }

    async fn run<F: Fold>(
        ctx: &SessionContext,
        sql: &str,
        n: usize,
    ) -> crate::Result<Vec<F::Native>> {
        let batches = ctx.sql(sql).await?.collect().await?;
        slots::<F>(&batches, n)
    }

    #[tokio::test]
    async fn partitions_merge_to_the_same_slots() {
        let rows = vec![
            (3, Some(5), 0.5),
            (0, Some(-2), 2.0),
            (3, None, 7.0),
            (1, Some(i128::MAX / 4), 1.0),
            (3, Some(1), -1.0),
        ];
        let one = ctx(vec![rows.clone()]);
        let split = ctx(vec![rows[..2].to_vec(), vec![], rows[2..].to_vec()]);
        for c in [&one, &split] {
            let sums = run::<Sum>(c, "SELECT fb_fx_sum_by(peer, v) FROM t", 6)
                .await
                .unwrap();
            // NULL skipped; peers 2, 4 and 5 never seen: 0.
            assert_eq!(sums, vec![-2, i128::MAX / 4, 0, 6, 0, 0]);
            let max = run::<Max>(c, "SELECT fb_max_by(peer, x) FROM t", 5)
                .await
                .unwrap();
            assert_eq!(
                max,
                vec![2.0, 1.0, f64::NEG_INFINITY, 7.0, f64::NEG_INFINITY]
            );
        }
    }

    #[tokio::test]
    async fn no_rows_is_all_identity() {
        let c = ctx(vec![vec![(1, Some(1), 1.0)]]);
        let sums = run::<Sum>(&c, "SELECT fb_fx_sum_by(peer, v) FROM t WHERE x > 5", 3)
            .await
            .unwrap();
        assert_eq!(sums, vec![0, 0, 0]);
    }

    #[tokio::test]
    async fn overflow_and_a_peer_past_n_are_errors() {
        let c = ctx(vec![
            vec![(0, Some(i128::MAX), 0.0)],
            vec![(0, Some(1), 0.0)],
        ]);
        let e = run::<Sum>(&c, "SELECT fb_fx_sum_by(peer, v) FROM t", 1)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("overflowed"), "{e}");
        let c = ctx(vec![vec![(4, Some(1), 0.0)]]);
        let e = run::<Sum>(&c, "SELECT fb_fx_sum_by(peer, v) FROM t", 3)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("past the registry"), "{e}");
    }
}
