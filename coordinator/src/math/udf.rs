//! The functions SPEC 5.2's plans call (`pipelines/sql/epoch/*.sql`), found by
//! name: [`register`] adds every one to a session, so a scheduler or executor
//! that plans or runs the same SQL registers them the same way.
//!
//! Fixed point travels as `Decimal128(38, 0)`: an i128 integer that Arrow
//! carries across shuffles as is. Every sum of it ([`fb_fx_sum`]) is an integer
//! sum, so it is the same to the last bit at any partition count; the scales
//! come from [`super::fixed`], shared with the loops that check the plans.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array,
};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type, UInt64Type,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    create_udf, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo,
    GroupsAccumulator, ScalarUDF, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::fixed;

/// The fixed-point type of every plan: i128 integers, scale 0.
pub const FX: DataType = DataType::Decimal128(38, 0);

/// Registers every FaceBlock function in `ctx`: the scalar helpers below,
/// [`fb_fx_sum`], the aggregates by peer index ([`super::dense`]), and the
/// Fisher job's `fb_sum`.
pub fn register(ctx: &SessionContext) {
    for f in scalars() {
        ctx.register_udf(f);
    }
    ctx.register_udaf(fb_fx_sum());
    ctx.register_udaf(super::dense::fb_fx_sum_by());
    ctx.register_udaf(super::dense::fb_max_by());
    ctx.register_udaf(crate::fisher::fb_sum());
}

fn fx_array(v: impl IntoIterator<Item = i128>) -> DfResult<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from_iter_values(v).with_precision_and_scale(38, 0)?,
    ))
}

type Kernel = fn(&[ArrayRef]) -> DfResult<ArrayRef>;

fn udf(name: &str, input: Vec<DataType>, output: DataType, kernel: Kernel) -> ScalarUDF {
    create_udf(
        name,
        input,
        output,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let out = kernel(&arrays)?;
            if scalar {
                Ok(ColumnarValue::Scalar(
                    datafusion::common::ScalarValue::try_from_array(&out, 0)?,
                ))
            } else {
                Ok(ColumnarValue::Array(out))
            }
        }),
    )
}

/// The scalar functions:
/// - `fb_mul_fx(stake UInt64, w Float64, shift Int64) → FX`: ⌊S·w·2^shift⌋ exactly;
/// - `fb_fx(x Float64, shift Int64) → FX`: sign(x)·⌊|x|·2^shift⌋;
/// - `fb_unscale(v FX, shift Int64) → Float64`: v·2^-shift;
/// - `fb_shift_for(max Float64) → Int64`: the scale for a sum whose largest |term| is max;
/// - `fb_share(bond Float64, shift Int64, total FX) → Float64`: β, the bond's
///   share of its column, from the same truncated term as the column's total
///   (`math::bonds::share`; 0 when the total is 0);
/// - `fb_exp(x Float64) → Float64`: libm's portable exp.
pub fn scalars() -> Vec<ScalarUDF> {
    use DataType::{Float64, Int64, UInt64};
    vec![
        udf("fb_mul_fx", vec![UInt64, Float64, Int64], FX, |a| {
            let s = a[0].as_primitive::<UInt64Type>();
            let w = a[1].as_primitive::<Float64Type>();
            let sh = a[2].as_primitive::<Int64Type>();
            if s.null_count() + w.null_count() + sh.null_count() == 0 {
                // The plans' case: one pass over the value slices.
                return fx_array(
                    s.values()
                        .iter()
                        .zip(w.values().iter())
                        .zip(sh.values().iter())
                        .map(|((s, w), sh)| fixed::mul_fx(*s, *w, *sh as i32) as i128),
                );
            }
            fx_array((0..s.len()).map(|i| {
                if s.is_null(i) || w.is_null(i) || sh.is_null(i) {
                    0
                } else {
                    fixed::mul_fx(s.value(i), w.value(i), sh.value(i) as i32) as i128
                }
            }))
        }),
        udf("fb_fx", vec![Float64, Int64], FX, |a| {
            let x = a[0].as_primitive::<Float64Type>();
            let sh = a[1].as_primitive::<Int64Type>();
            let signed = |v: f64, sh: i64| {
                let q = fixed::scale_fx(v.abs(), sh as i32) as i128;
                if v < 0.0 {
                    -q
                } else {
                    q
                }
            };
            if x.null_count() + sh.null_count() == 0 {
                return fx_array(
                    x.values()
                        .iter()
                        .zip(sh.values().iter())
                        .map(|(v, sh)| signed(*v, *sh)),
                );
            }
            fx_array((0..x.len()).map(|i| {
                if x.is_null(i) || sh.is_null(i) {
                    0
                } else {
                    signed(x.value(i), sh.value(i))
                }
            }))
        }),
        udf("fb_unscale", vec![FX, Int64], Float64, |a| {
            let v = a[0].as_primitive::<Decimal128Type>();
            let sh = a[1].as_primitive::<Int64Type>();
            Ok(Arc::new(Float64Array::from_iter((0..v.len()).map(|i| {
                (v.is_valid(i) && sh.is_valid(i)).then(|| {
                    let x = v.value(i);
                    let t = libm::scalbn(x.unsigned_abs() as f64, -(sh.value(i) as i32));
                    if x < 0 {
                        -t
                    } else {
                        t
                    }
                })
            }))))
        }),
        udf("fb_shift_for", vec![Float64], Int64, |a| {
            let m = a[0].as_primitive::<Float64Type>();
            Ok(Arc::new(Int64Array::from_iter_values(
                (0..m.len()).map(|i| fixed::shift_for_max(m.value(i).abs()) as i64),
            )))
        }),
        udf("fb_share", vec![Float64, Int64, FX], Float64, |a| {
            let b = a[0].as_primitive::<Float64Type>();
            let sh = a[1].as_primitive::<Int64Type>();
            let t = a[2].as_primitive::<Decimal128Type>();
            let share =
                |b: f64, sh: i64, t: i128| super::bonds::share(b, sh as i32, t.max(0) as u128);
            if b.null_count() + sh.null_count() + t.null_count() == 0 {
                return Ok(Arc::new(Float64Array::from_iter_values(
                    b.values()
                        .iter()
                        .zip(sh.values().iter())
                        .zip(t.values().iter())
                        .map(|((b, sh), t)| share(*b, *sh, *t)),
                )));
            }
            Ok(Arc::new(Float64Array::from_iter_values((0..b.len()).map(
                |i| {
                    if b.is_null(i) || sh.is_null(i) || t.is_null(i) {
                        0.0
                    } else {
                        share(b.value(i), sh.value(i), t.value(i))
                    }
                },
            ))))
        }),
        udf("fb_exp", vec![Float64], Float64, |a| {
            let x = a[0].as_primitive::<Float64Type>();
            Ok(Arc::new(Float64Array::from_iter(
                x.iter().map(|v| v.map(libm::exp)),
            )))
        }),
    ]
}

/// `fb_fx_sum(FX) → FX`: the exact integer sum of fixed-point terms, with a
/// [`GroupsAccumulator`] (one i128 per group) and its partial state as `FX`.
/// NULLs are skipped; a group with none sums to 0; an overflow is an error,
/// never a wrapped value.
pub fn fb_fx_sum() -> AggregateUDF {
    AggregateUDF::from(FxSum::default())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FxSum {
    signature: Signature,
}

impl Default for FxSum {
    fn default() -> Self {
        Self {
            signature: Signature::exact(vec![FX], Volatility::Immutable),
        }
    }
}

fn overflow() -> DataFusionError {
    DataFusionError::Execution(
        "fb_fx_sum overflowed i128: a fixed-point scale is too fine for these values".into(),
    )
}

impl AggregateUDFImpl for FxSum {
    fn name(&self) -> &str {
        "fb_fx_sum"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(FX)
    }
    fn state_fields(&self, _: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new("sum", FX, true))])
    }
    fn accumulator(&self, _: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(FxAcc(0)))
    }
    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(FxGroups(Vec::new())))
    }
}

fn add_all(
    sums: &mut [i128],
    values: &Decimal128Array,
    groups: &[usize],
    filter: Option<&BooleanArray>,
) -> DfResult<()> {
    let raw = values.values();
    if values.null_count() == 0 && filter.is_none() {
        for (g, v) in groups.iter().zip(raw.iter()) {
            sums[*g] = sums[*g].checked_add(*v).ok_or_else(overflow)?;
        }
        return Ok(());
    }
    for (i, g) in groups.iter().enumerate() {
        if values.is_null(i) || filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) {
            continue;
        }
        sums[*g] = sums[*g].checked_add(raw[i]).ok_or_else(overflow)?;
    }
    Ok(())
}

/// One exact sum per group.
struct FxGroups(Vec<i128>);

impl GroupsAccumulator for FxGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.0.resize(total_num_groups, 0);
        add_all(
            &mut self.0,
            values[0].as_primitive::<Decimal128Type>(),
            group_indices,
            opt_filter,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        fx_array(emit_to.take_needed(&mut self.0))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let v = values[0].as_primitive::<Decimal128Type>();
        fx_array((0..v.len()).map(|i| {
            let keep = v.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
            if keep {
                v.value(i)
            } else {
                0
            }
        }))
        .map(|a| vec![a])
    }

    fn size(&self) -> usize {
        self.0.capacity() * 16
    }
}

/// The same sum for plans without grouping.
#[derive(Debug)]
struct FxAcc(i128);

impl Accumulator for FxAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let mut s = [self.0];
        let v = values[0].as_primitive::<Decimal128Type>();
        add_all(&mut s, v, &vec![0; v.len()], None)?;
        self.0 = s[0];
        Ok(())
    }
    fn evaluate(&mut self) -> DfResult<datafusion::common::ScalarValue> {
        Ok(datafusion::common::ScalarValue::Decimal128(
            Some(self.0),
            38,
            0,
        ))
    }
    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
    fn state(&mut self) -> DfResult<Vec<datafusion::common::ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.update_batch(states)
    }
}
