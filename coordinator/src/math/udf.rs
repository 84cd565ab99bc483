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
    PrimitiveArray,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type,
    UInt64Type,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    create_udf, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, Expr,
    GroupsAccumulator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
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
    ctx.register_udf(ScalarUDF::from(FbAt::default()));
    ctx.register_udaf(fb_fx_sum());
    ctx.register_udaf(super::dense::fb_fx_sum_by());
    ctx.register_udaf(super::dense::fb_max_by());
    ctx.register_udaf(crate::fisher::fb_sum());
}

fn fx_array(v: impl IntoIterator<Item = i128>) -> DfResult<ArrayRef> {
    fx_vec(v.into_iter().collect())
}

/// One argument of a scalar function: a column, or a literal (a parameter
/// such as `$shift`) used for every row as it is, never spread into a
/// column of copies.
struct Arg<T: ArrowPrimitiveType> {
    values: PrimitiveArray<T>,
    /// Row i reads element `i & mask`: all ones for a column, 0 for a
    /// literal, so a kernel's loop has no branch on which it is.
    mask: usize,
}

impl<T: ArrowPrimitiveType> Arg<T> {
    fn of(v: &ColumnarValue) -> DfResult<Self> {
        Ok(match v {
            ColumnarValue::Array(a) => Self {
                values: a.as_primitive::<T>().clone(),
                mask: usize::MAX,
            },
            ColumnarValue::Scalar(s) => Self {
                values: s.to_array_of_size(1)?.as_primitive::<T>().clone(),
                mask: 0,
            },
        })
    }

    fn literal(&self) -> bool {
        self.mask == 0
    }

    #[inline(always)]
    fn at(&self, i: usize) -> T::Native {
        self.values.values()[i & self.mask]
    }

    #[inline]
    fn is_null(&self, i: usize) -> bool {
        self.values.is_null(i & self.mask)
    }

    fn has_nulls(&self) -> bool {
        self.values.null_count() > 0
    }
}

/// `f(i)` for rows `0..n`, into a `Vec` that becomes the Arrow buffer as it
/// is ([`fx_vec`], [`f64_vec`]).
#[inline(always)]
fn fill<O>(n: usize, mut f: impl FnMut(usize) -> O) -> Vec<O> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(f(i));
    }
    out
}

/// Fixed-point values as an `FX` column, without copying them.
fn fx_vec(v: Vec<i128>) -> DfResult<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::new(v.into(), None).with_precision_and_scale(38, 0)?,
    ))
}

/// Doubles as a column without NULLs, without copying them.
fn f64_vec(v: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::new(v.into(), None))
}

/// `fb_at(list List<T>, index UInt32) → T`, T one of UInt64, Int64 and
/// Float64: element `index` of a list literal, a per-peer value looked up by
/// peer index (`@stake`, `@column_shift`): a pass over 25.6 M edges or
/// bond entries reads its peer's value without a join and without a
/// 25.6 M-entry column built for it. An index past the list is an error.
///
/// Its name in a plan's schema shows the list's length, not its elements:
/// DataFusion's optimizer names every expression it rewrites, and printing
/// a 100,000-entry list each time cost most of a second an epoch.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FbAt {
    signature: Signature,
}

/// A list argument's name: its length, not its elements, also under a CAST
/// that types a `$parameter` bound to a list (`CAST($1 AS DOUBLE[])`),
/// which the optimizer names before it folds the cast away. (The epoch's
/// plans pass variables, named by their names; a plan whose lists
/// `math::plans::inline_lists` wrote in carries literals.)
fn list_name(e: &Expr) -> String {
    match e {
        Expr::Literal(datafusion::common::ScalarValue::List(l), _) => {
            format!("<list of {}>", l.values().len())
        }
        Expr::Cast(c) => format!("CAST({} AS {})", list_name(&c.expr), c.field.data_type()),
        Expr::TryCast(c) => format!(
            "TRY_CAST({} AS {})",
            list_name(&c.expr),
            c.field.data_type()
        ),
        e => e.schema_name().to_string(),
    }
}

/// The element types `fb_at` looks up.
const AT_TYPES: [DataType; 3] = [DataType::UInt64, DataType::Int64, DataType::Float64];

impl Default for FbAt {
    fn default() -> Self {
        Self {
            signature: Signature::one_of(
                AT_TYPES
                    .iter()
                    .map(|t| {
                        datafusion::logical_expr::TypeSignature::Exact(vec![
                            index_list(t.clone()),
                            DataType::UInt32,
                        ])
                    })
                    .collect(),
                Volatility::Immutable,
            ),
        }
    }
}

/// Element `at` of `values` for every row (0 where the index is NULL).
fn look_up<T: ArrowPrimitiveType>(
    values: &ArrayRef,
    at: &ColumnarValue,
    n: usize,
) -> DfResult<ArrayRef> {
    let values = values.as_primitive::<T>().values();
    let at = Arg::<arrow::datatypes::UInt32Type>::of(at)?;
    let past = |k: usize| {
        DataFusionError::Execution(format!(
            "fb_at: index {k} is past the list's {} entries",
            values.len()
        ))
    };
    if !at.literal() && !at.has_nulls() {
        // The common case, a column of indices: one check of the largest,
        // then a plain gather.
        let idx = at.values.values();
        if let Some(&top) = idx.iter().max() {
            if top as usize >= values.len() {
                return Err(past(top as usize));
            }
        }
        let got: Vec<T::Native> = idx.iter().map(|k| values[*k as usize]).collect();
        return Ok(Arc::new(PrimitiveArray::<T>::new(got.into(), None)));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if at.is_null(i) {
            out.push(T::Native::default());
            continue;
        }
        let k = at.at(i) as usize;
        out.push(*values.get(k).ok_or_else(|| past(k))?);
    }
    Ok(Arc::new(PrimitiveArray::<T>::from_iter_values(out)))
}

impl ScalarUDFImpl for FbAt {
    fn name(&self) -> &str {
        "fb_at"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args.first() {
            Some(DataType::List(f)) if AT_TYPES.contains(f.data_type()) => {
                Ok(f.data_type().clone())
            }
            other => Err(DataFusionError::Plan(format!(
                "fb_at(list, index) takes a list of UInt64, Int64 or Float64, not {other:?}"
            ))),
        }
    }
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        let list = args.first().map(list_name).unwrap_or_default();
        let index = args
            .get(1)
            .map(|e| e.schema_name().to_string())
            .unwrap_or_default();
        Ok(format!("fb_at({list},{index})"))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = &args.args;
        let (n, scalar) = rows(a);
        let values =
            match &a[0] {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::List(l))
                    if l.len() == 1 && l.is_valid(0) =>
                {
                    l.value(0)
                }
                _ => return Err(DataFusionError::Execution(
                    "fb_at(list, index) takes the list as a literal or variable (such as @stake)"
                        .into(),
                )),
            };
        let out = match values.data_type() {
            DataType::UInt64 => look_up::<UInt64Type>(&values, &a[1], n)?,
            DataType::Int64 => look_up::<Int64Type>(&values, &a[1], n)?,
            DataType::Float64 => look_up::<Float64Type>(&values, &a[1], n)?,
            t => {
                return Err(DataFusionError::Execution(format!(
                    "fb_at: a list of {t} has no lookup; use UInt64, Int64 or Float64"
                )))
            }
        };
        answer(out, scalar)
    }
}

/// The type of `fb_at`'s list: per-peer values of type `t`, by peer index.
pub fn index_list(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(t, true)))
}

/// A per-peer list as `fb_at` takes it (the value of a parameter such as
/// `@stake` through `math::plans::Lists`): `values[k]` is peer k's.
pub fn index_list_value<T: ArrowPrimitiveType>(
    values: &[T::Native],
) -> datafusion::common::ScalarValue {
    let list = arrow::array::ListArray::new(
        Arc::new(Field::new_list_field(T::DATA_TYPE, true)),
        arrow::buffer::OffsetBuffer::from_lengths([values.len()]),
        Arc::new(PrimitiveArray::<T>::from_iter_values(
            values.iter().copied(),
        )),
        None,
    );
    datafusion::common::ScalarValue::List(Arc::new(list))
}

/// How many rows a call covers: a column's length, 1 when all are literals.
fn rows(args: &[ColumnarValue]) -> (usize, bool) {
    args.iter()
        .find_map(|a| match a {
            ColumnarValue::Array(a) => Some((a.len(), false)),
            ColumnarValue::Scalar(_) => None,
        })
        .unwrap_or((1, true))
}

/// A kernel's output as the call's answer: one value when every argument
/// was a literal.
fn answer(out: ArrayRef, scalar: bool) -> DfResult<ColumnarValue> {
    Ok(if scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
    } else {
        ColumnarValue::Array(out)
    })
}

type Kernel = fn(&[ColumnarValue], usize) -> DfResult<ArrayRef>;

fn udf(name: &str, input: Vec<DataType>, output: DataType, kernel: Kernel) -> ScalarUDF {
    create_udf(
        name,
        input,
        output,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let (n, scalar) = rows(args);
            answer(kernel(args, n)?, scalar)
        }),
    )
}

/// `sign(x)·⌊|x|·2^shift⌋`.
#[inline]
fn signed_fx(x: f64, shift: i64) -> i128 {
    let q = fixed::scale_fx(x.abs(), shift as i32) as i128;
    if x < 0.0 {
        -q
    } else {
        q
    }
}

/// The scalar functions:
/// - `fb_mul_fx(stake UInt64, w Float64, shift Int64) → FX`: ⌊S·w·2^shift⌋ exactly;
/// - `fb_fx(x Float64, shift Int64) → FX`: sign(x)·⌊|x|·2^shift⌋;
/// - `fb_unscale(v FX, shift Int64) → Float64`: v·2^-shift;
/// - `fb_shift_for(max Float64) → Int64`: the scale for a sum whose largest |term| is max;
/// - `fb_share(bond Float64, shift Int64, total Float64) → Float64`: β, the
///   bond's share of its column, from the same truncated term as the
///   column's exact total (`total`: that integer rounded once to DOUBLE;
///   `math::bonds::share`; 0 when the total is 0);
/// - `fb_closed_form(bond Float64, weight Float64, stake UInt64) → Float64`:
///   B' = bond + weight · stake, the closed form of a bond segment
///   (`math::bonds::closed_form`, the loops' own);
/// - `fb_exp(x Float64) → Float64`: libm's portable exp.
///
/// A NULL argument gives 0 (`fb_unscale`, `fb_closed_form`, `fb_exp`: NULL).
pub fn scalars() -> Vec<ScalarUDF> {
    use DataType::{Float64, Int64, UInt64};
    vec![
        udf("fb_mul_fx", vec![UInt64, Float64, Int64], FX, |a, n| {
            let s = Arg::<UInt64Type>::of(&a[0])?;
            let w = Arg::<Float64Type>::of(&a[1])?;
            let sh = Arg::<Int64Type>::of(&a[2])?;
            let f = |i| fixed::mul_fx(s.at(i), w.at(i), sh.at(i) as i32) as i128;
            if !(s.has_nulls() || w.has_nulls() || sh.has_nulls()) {
                return fx_vec(fill(n, f));
            }
            fx_vec(fill(n, |i| {
                if s.is_null(i) || w.is_null(i) || sh.is_null(i) {
                    0
                } else {
                    f(i)
                }
            }))
        }),
        udf("fb_fx", vec![Float64, Int64], FX, |a, n| {
            let x = Arg::<Float64Type>::of(&a[0])?;
            let sh = Arg::<Int64Type>::of(&a[1])?;
            let f = |i| signed_fx(x.at(i), sh.at(i));
            if !(x.has_nulls() || sh.has_nulls()) {
                return fx_vec(fill(n, f));
            }
            fx_vec(fill(n, |i| {
                if x.is_null(i) || sh.is_null(i) {
                    0
                } else {
                    f(i)
                }
            }))
        }),
        udf("fb_unscale", vec![FX, Int64], Float64, |a, n| {
            let v = Arg::<Decimal128Type>::of(&a[0])?;
            let sh = Arg::<Int64Type>::of(&a[1])?;
            Ok(Arc::new(Float64Array::from_iter((0..n).map(|i| {
                (!v.is_null(i) && !sh.is_null(i)).then(|| {
                    let x = v.at(i);
                    let t = fixed::unscale(x.unsigned_abs(), sh.at(i) as i32);
                    if x < 0 {
                        -t
                    } else {
                        t
                    }
                })
            }))))
        }),
        udf("fb_shift_for", vec![Float64], Int64, |a, n| {
            let m = Arg::<Float64Type>::of(&a[0])?;
            Ok(Arc::new(Int64Array::from_iter_values((0..n).map(|i| {
                if m.is_null(i) {
                    0
                } else {
                    fixed::shift_for_max(m.at(i).abs()) as i64
                }
            }))))
        }),
        udf(
            "fb_share",
            vec![Float64, Int64, Float64],
            Float64,
            |a, n| {
                let b = Arg::<Float64Type>::of(&a[0])?;
                let sh = Arg::<Int64Type>::of(&a[1])?;
                let t = Arg::<Float64Type>::of(&a[2])?;
                let f = |i| super::bonds::share(b.at(i), sh.at(i) as i32, t.at(i).max(0.0));
                if !(b.has_nulls() || sh.has_nulls() || t.has_nulls()) {
                    return Ok(f64_vec(fill(n, f)));
                }
                Ok(f64_vec(fill(n, |i| {
                    if b.is_null(i) || sh.is_null(i) || t.is_null(i) {
                        0.0
                    } else {
                        f(i)
                    }
                })))
            },
        ),
        udf(
            "fb_closed_form",
            vec![Float64, Float64, UInt64],
            Float64,
            |a, n| {
                let b = Arg::<Float64Type>::of(&a[0])?;
                let w = Arg::<Float64Type>::of(&a[1])?;
                let s = Arg::<UInt64Type>::of(&a[2])?;
                let f = |i| super::bonds::closed_form(b.at(i), w.at(i), s.at(i));
                if !(b.has_nulls() || w.has_nulls() || s.has_nulls()) {
                    // Without NULLs no validity bitmap is built, bit by bit:
                    // B' is read three times an epoch, 25.6 M entries each.
                    return Ok(f64_vec(fill(n, f)));
                }
                Ok(Arc::new(Float64Array::from_iter((0..n).map(|i| {
                    (!(b.is_null(i) || w.is_null(i) || s.is_null(i))).then(|| f(i))
                }))))
            },
        ),
        udf("fb_exp", vec![Float64], Float64, |a, n| {
            let x = Arg::<Float64Type>::of(&a[0])?;
            Ok(Arc::new(Float64Array::from_iter(
                (0..n).map(|i| (!x.is_null(i)).then(|| libm::exp(x.at(i)))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, RecordBatch, UInt64Array};
    use arrow::datatypes::Schema;

    async fn column(ctx: &SessionContext, sql: &str) -> Vec<String> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = vec![];
        for b in batches {
            let a = b.column(0);
            for i in 0..a.len() {
                out.push(arrow::util::display::array_value_to_string(a, i).unwrap());
            }
        }
        out
    }

    /// A literal argument (a parameter) gives, row by row, what the same
    /// value in a column gives; a NULL gives 0; all-literal calls fold.
    #[tokio::test]
    async fn literals_act_as_columns() {
        let ctx = SessionContext::new();
        register(&ctx);
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, true),
            Field::new("sh", DataType::Int64, false),
            Field::new("s", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(-0.75),
                    Some(3.0),
                ])),
                Arc::new(Int64Array::from(vec![3; 4])),
                Arc::new(UInt64Array::from(vec![10, 20, 30, 40])),
            ],
        )
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        for (lit, col) in [
            ("fb_fx(x, 3)", "fb_fx(x, sh)"),
            ("fb_mul_fx(s, 0.5, 3)", "fb_mul_fx(s, 0.5, sh)"),
            ("fb_share(x, 3, 24.0)", "fb_share(x, sh, 24.0 + 0 * s)"),
            ("fb_unscale(fb_fx(x, 3), 3)", "fb_unscale(fb_fx(x, sh), sh)"),
        ] {
            let a = column(&ctx, &format!("SELECT {lit} FROM t")).await;
            let b = column(&ctx, &format!("SELECT {col} FROM t")).await;
            assert_eq!(a, b, "{lit} against {col}");
        }
        assert_eq!(
            column(&ctx, "SELECT fb_fx(x, 3) FROM t").await,
            ["12", "0", "-6", "24"]
        );
        assert_eq!(
            column(&ctx, "SELECT fb_share(x, 3, 24.0) FROM t").await,
            ["0.5", "0.0", "0.0", "1.0"]
        );
        assert_eq!(column(&ctx, "SELECT fb_fx(1.5, 3)").await, ["12"]);

        // fb_at: element `index` of a list parameter; past its end, an error.
        let at = |sql: &'static str, list: &[u64]| {
            let ctx = ctx.clone();
            let list = index_list_value::<UInt64Type>(list);
            async move {
                let df = ctx.sql(sql).await?.with_param_values(vec![list])?;
                df.collect().await
            }
        };
        let got = at(
            "SELECT fb_at($1, CAST(sh - 3 + (s / 10 - 1) AS INT UNSIGNED)) FROM t",
            &[5, 6, 7, 8],
        )
        .await
        .unwrap();
        let got: Vec<u64> = got
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
            .collect();
        assert_eq!(got, [5, 6, 7, 8]);
        let err = at("SELECT fb_at($1, CAST(s AS INT UNSIGNED)) FROM t", &[1, 2])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("past the list"), "{err}");

        // The optimizer names expressions by their schema name: fb_at's
        // shows the list's length, never its elements.
        use datafusion::execution::FunctionRegistry;
        use datafusion::prelude::{cast, col, lit};
        let call = ctx.udf("fb_at").unwrap().call(vec![
            lit(index_list_value::<UInt64Type>(&[987654321; 4])),
            cast(col("sh"), DataType::UInt32),
        ]);
        let df = ctx.table("t").await.unwrap().select(vec![call]).unwrap();
        let names: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert!(names[0].contains("fb_at(<list of 4>,"), "{names:?}");
        // Also under the CAST that types a parameter before it is bound.
        let call = ctx.udf("fb_at").unwrap().call(vec![
            cast(
                lit(index_list_value::<Float64Type>(&[0.123456789; 4])),
                index_list(DataType::Float64),
            ),
            cast(col("sh"), DataType::UInt32),
        ]);
        let df = ctx.table("t").await.unwrap().select(vec![call]).unwrap();
        let name = df.schema().field(0).name().clone();
        assert!(name.contains("fb_at(CAST(<list of 4> AS "), "{name}");
        assert!(!name.contains("0.123"), "{name}");

        // Lists of Int64 and Float64, typed by a CAST as the bond plans do.
        let got = ctx
            .sql(
                "SELECT fb_at(CAST($1 AS DOUBLE[]), CAST(s / 10 - 1 AS INT UNSIGNED)) AS f, \
                         fb_at(CAST($2 AS BIGINT[]), CAST(s / 10 - 1 AS INT UNSIGNED)) AS i FROM t",
            )
            .await
            .unwrap()
            .with_param_values(vec![
                index_list_value::<Float64Type>(&[0.5, -1.25, 3.0, 4.0]),
                index_list_value::<Int64Type>(&[-7, 8, 9, 10]),
            ])
            .unwrap()
            .collect()
            .await
            .unwrap();
        let f: Vec<f64> = got
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
            .collect();
        let i: Vec<i64> = got
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(f, [0.5, -1.25, 3.0, 4.0]);
        assert_eq!(i, [-7, 8, 9, 10]);
        assert_eq!(
            column(&ctx, "SELECT fb_mul_fx(CAST(7 AS BIGINT UNSIGNED), 1.0, 0)").await,
            ["7"]
        );
    }
}
