//! PostgreSQL's rules for converting and dividing numbers, where Arrow's differ: a fractional
//! value becomes an integer by rounding (Arrow truncates), and NUMERIC division keeps at least
//! 16 significant digits (Arrow keeps a scale fixed by the operand types, often 6).
//!
//! PostgreSQL rounds `float8` to an integer half to even (`rint`: `2.5::float8::int` is 2) and
//! `numeric` half away from zero (`2.5::int` is 3, `-2.5::int` is -3). The analyzer rule
//! [`PgNumeric`] puts [`round_for_integer`] under every cast of a float or NUMERIC to an
//! integer type, and INSERT and COPY use the same function (`execute::conform`), so a value
//! becomes the same integer however it arrives.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, PrimitiveArray};
use arrow::datatypes::{DataType, Decimal128Type, Float32Type, Float64Type, i256};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TryCast, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use super::expr_rules::{input_schema, rewrite_retyping};

/// Fewest significant digits a NUMERIC quotient has (PostgreSQL's NUMERIC_MIN_SIG_DIGITS).
const MIN_SIG_DIGITS: i32 = 16;
/// Largest scale given a quotient of columns (see [`quotient_scale`]).
const MAX_TYPED_SCALE: i32 = 20;
/// Largest scale Arrow's Decimal128 holds; PostgreSQL allows up to 1000.
const MAX_SCALE: i32 = 38;

/// The analyzer rule; see the module's doc. Runs before type coercion, so that what
/// compares or combines with its results is coerced to their types.
#[derive(Debug)]
pub struct PgNumeric;

impl AnalyzerRule for PgNumeric {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let round = Arc::new(ScalarUDF::new_from_impl(RoundForInteger::new()));
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_retyping(node, |e| rewrite(e, &schema, &round))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_numeric"
    }
}

fn rewrite(expr: Expr, schema: &DFSchema, round: &Arc<ScalarUDF>) -> Result<Transformed<Expr>> {
    // Casts to an integer type that can round or overflow: from a float, a NUMERIC, or a
    // wider integer type.
    let needs_care = |e: &Expr, to: &DataType| {
        e.get_type(schema).is_ok_and(|t| match t {
            DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => true,
            t if t.is_integer() => t.primitive_width() > to.primitive_width(),
            _ => false,
        })
    };
    let fractional = |e: &Expr| {
        e.get_type(schema).is_ok_and(|t| {
            matches!(t, DataType::Float32 | DataType::Float64) || matches!(t, DataType::Decimal128(_, s) if s > 0)
        })
    };
    let float = |e: &Expr| e.get_type(schema).is_ok_and(|t| matches!(t, DataType::Float32 | DataType::Float64));
    match expr {
        Expr::Cast(Cast { expr, field }) if field.data_type().is_integer() && needs_care(&expr, field.data_type()) => {
            let convert = ScalarUDF::new_from_impl(ToInteger::new(field.data_type().clone()));
            Ok(Transformed::yes(convert.call(vec![*expr])))
        }
        // A float to NUMERIC through its 15 significant digits (`plan::float_numeric`).
        Expr::Cast(Cast { expr, field }) if matches!(field.data_type(), DataType::Decimal128(..)) && float(&expr) => {
            let digits = super::float_numeric::float_digits(*expr, field.data_type());
            Ok(Transformed::yes(Expr::Cast(Cast { expr: Box::new(digits), field })))
        }
        Expr::TryCast(TryCast { expr, field })
            if matches!(field.data_type(), DataType::Decimal128(..)) && float(&expr) =>
        {
            let digits = super::float_numeric::float_digits(*expr, field.data_type());
            Ok(Transformed::yes(Expr::TryCast(TryCast { expr: Box::new(digits), field })))
        }
        // `1e2` parses as 1 with scale -2, which PostgreSQL clients never see: it is 100.
        Expr::Literal(ScalarValue::Decimal128(Some(v), p, s), metadata) if s < 0 => {
            let whole = 10i128.checked_pow(s.unsigned_abs().into()).and_then(|unit| v.checked_mul(unit));
            match whole {
                Some(whole) if u32::from(p) + u32::from(s.unsigned_abs()) <= 38 => Ok(Transformed::yes(Expr::Literal(
                    ScalarValue::Decimal128(Some(whole), p + s.unsigned_abs(), 0),
                    metadata,
                ))),
                _ => Ok(Transformed::no(Expr::Literal(ScalarValue::Decimal128(Some(v), p, s), metadata))),
            }
        }
        Expr::TryCast(TryCast { expr, field }) if field.data_type().is_integer() && fractional(&expr) => {
            Ok(Transformed::yes(Expr::TryCast(TryCast { expr: Box::new(round.call(vec![*expr])), field })))
        }
        // sum(bigint) is NUMERIC in PostgreSQL: exact past 2^63, where Arrow's sum wraps.
        Expr::AggregateFunction(mut aggregate)
            if aggregate.func.name() == "sum"
                && aggregate.params.args.len() == 1
                && aggregate.params.args[0]
                    .get_type(schema)
                    .is_ok_and(|t| matches!(t, DataType::Int64 | DataType::UInt64)) =>
        {
            let argument = aggregate.params.args.remove(0);
            aggregate.params.args.push(datafusion::logical_expr::cast(argument, DataType::Decimal128(38, 0)));
            Ok(Transformed::yes(Expr::AggregateFunction(aggregate)))
        }
        // The same for sum(bigint) OVER (...).
        Expr::WindowFunction(mut window)
            if matches!(&window.fun, datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(f) if f.name() == "sum")
                && window.params.args.len() == 1
                && window.params.args[0]
                    .get_type(schema)
                    .is_ok_and(|t| matches!(t, DataType::Int64 | DataType::UInt64)) =>
        {
            let argument = window.params.args.remove(0);
            window.params.args.push(datafusion::logical_expr::cast(argument, DataType::Decimal128(38, 0)));
            Ok(Transformed::yes(Expr::WindowFunction(window)))
        }
        // avg(integer) is NUMERIC in PostgreSQL, and avg(numeric) keeps 16 decimals
        // (`plan::exact_avg`).
        Expr::AggregateFunction(mut aggregate)
            if aggregate.func.name() == "avg"
                && aggregate.params.args.len() == 1
                && aggregate.params.args[0].get_type(schema).is_ok_and(|t| super::exact_avg::applies_to(&t)) =>
        {
            let argument = aggregate.params.args.remove(0);
            aggregate.params.args.push(datafusion::logical_expr::cast(argument, super::exact_avg::ARGUMENT));
            aggregate.func = super::exact_avg::ExactAvg::udaf();
            Ok(Transformed::yes(Expr::AggregateFunction(aggregate)))
        }
        Expr::WindowFunction(mut window)
            if matches!(&window.fun, datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(f) if f.name() == "avg")
                && window.params.args.len() == 1
                && window.params.args[0].get_type(schema).is_ok_and(|t| super::exact_avg::applies_to(&t)) =>
        {
            let argument = window.params.args.remove(0);
            window.params.args.push(datafusion::logical_expr::cast(argument, super::exact_avg::ARGUMENT));
            window.fun =
                datafusion::logical_expr::WindowFunctionDefinition::AggregateUDF(super::exact_avg::ExactAvg::udaf());
            Ok(Transformed::yes(Expr::WindowFunction(window)))
        }
        // round(integer) is round(double precision) in PostgreSQL (there is no integer form).
        Expr::ScalarFunction(mut call)
            if call.func.name() == "round"
                && call.args.len() == 1
                && call.args[0].get_type(schema).is_ok_and(|t| t.is_integer()) =>
        {
            let argument = call.args.remove(0);
            call.args.push(datafusion::logical_expr::cast(argument, DataType::Float64));
            Ok(Transformed::yes(Expr::ScalarFunction(call)))
        }
        // floor, ceil and trunc of a NUMERIC are whole NUMERICs, as in PostgreSQL (`ceil(2.5)`
        // is 3, not 3.0), and floor and ceil may need a digit more than their argument
        // (`ceil(0.99)` is 1): DataFusion keeps the argument's type, printing `3.0` and
        // failing with "Decimal overflow" there.
        Expr::ScalarFunction(mut call)
            if matches!(call.func.name(), "floor" | "ceil" | "trunc")
                && call.args.len() == 1
                && matches!(call.args[0].get_type(schema), Ok(DataType::Decimal128(_, scale)) if scale > 0) =>
        {
            let Ok(DataType::Decimal128(precision, scale)) = call.args[0].get_type(schema) else {
                return Ok(Transformed::no(Expr::ScalarFunction(call)));
            };
            let grows = u8::from(call.func.name() != "trunc");
            let whole = (precision - scale as u8 + grows).clamp(1, 38);
            let argument = call.args.remove(0);
            call.args.push(datafusion::logical_expr::cast(
                argument,
                DataType::Decimal128((precision + grows).min(38), scale),
            ));
            Ok(Transformed::yes(datafusion::logical_expr::cast(
                Expr::ScalarFunction(call),
                DataType::Decimal128(whole, 0),
            )))
        }
        // trunc(numeric, n) has n decimals (`trunc(2.5678, 2)` is 2.56, `trunc(1234.5, -2)` is
        // 1200), as in PostgreSQL; DataFusion keeps the argument's scale (2.5600).
        Expr::ScalarFunction(call)
            if call.func.name() == "trunc"
                && call.args.len() == 2
                && let Ok(DataType::Decimal128(precision, scale)) = call.args[0].get_type(schema)
                && let Some(places) = literal_integer(&call.args[1]) =>
        {
            let places = places.clamp(0, 38) as i8;
            let whole = i16::from(precision) - i16::from(scale);
            let digits = (whole + i16::from(places)).clamp(1, 38) as u8;
            Ok(Transformed::yes(datafusion::logical_expr::cast(
                Expr::ScalarFunction(call),
                DataType::Decimal128(digits, places),
            )))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Divide, right }) => {
            // Before type coercion: an integer operand of a NUMERIC division is a NUMERIC.
            let numeric_type = |t: &DataType| match t {
                DataType::Decimal128(p, s) => Some((*p, *s)),
                DataType::Int8 | DataType::UInt8 => Some((3, 0)),
                DataType::Int16 | DataType::UInt16 => Some((5, 0)),
                DataType::Int32 | DataType::UInt32 => Some((10, 0)),
                DataType::Int64 => Some((19, 0)),
                DataType::UInt64 => Some((20, 0)),
                _ => None,
            };
            let (lt, rt) = (left.get_type(schema)?, right.get_type(schema)?);
            let either_decimal = matches!(lt, DataType::Decimal128(..)) || matches!(rt, DataType::Decimal128(..));
            match (numeric_type(&lt), numeric_type(&rt)) {
                (Some(n1), Some(n2)) if either_decimal => {
                    let scale = quotient_scale(&left, &right, n1, n2);
                    let divide = ScalarUDF::new_from_impl(NumericDivide::new(scale));
                    Ok(Transformed::yes(divide.call(vec![*left, *right])))
                }
                _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op: Operator::Divide, right }))),
            }
        }
        other => Ok(Transformed::no(other)),
    }
}

/// The value of an integer literal (`2`, `-2`).
fn literal_integer(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) if value.data_type().is_integer() => match value.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => n,
            _ => None,
        },
        Expr::Negative(inner) => literal_integer(inner)?.checked_neg(),
        _ => None,
    }
}

/// The scale of a NUMERIC quotient. PostgreSQL picks it per value (`select_div_scale`): 16
/// significant digits, or the operands' scales if larger. A column holds one scale: for two
/// literals the values decide exactly as in PostgreSQL; otherwise the scale keeps 16
/// significant digits of the smallest quotient the operand types allow (a dividend of one
/// unit in its last place over the largest divisor), as far as 38 digits leave room beside
/// the largest quotient's whole digits, and at most 20. Its text may have more decimals than
/// PostgreSQL's, and a quotient below 10^-20 rounds to 0 where PostgreSQL keeps digits.
fn quotient_scale(left: &Expr, right: &Expr, (p1, s1): (u8, i8), (p2, s2): (u8, i8)) -> i8 {
    let (p1, s1, p2, s2) = (i32::from(p1), i32::from(s1), i32::from(p2), i32::from(s2));
    // A literal divisor is only as large as it is (`n / 3`: one digit, not bigint's 19).
    let p2 = match literal_value(right) {
        Some((v, s)) if v != 0 => (v.unsigned_abs().ilog10() as i32 + 1).max(i32::from(s) + 1),
        _ => p2,
    };
    let whole_digits = (p1 - s1).max(0) + s2;
    let room = 38 - whole_digits;
    let wanted = MIN_SIG_DIGITS + s1 + (p2 - s2).max(0);
    // At most 20 decimals (PostgreSQL's scale for quotients of like magnitude is 16 to 20):
    // more would leave too few whole digits for what the quotient is compared with.
    let by_types = wanted.min(room).min(MAX_TYPED_SCALE).max(MIN_SIG_DIGITS.min(room)).max(s1).max(s2).max(0);
    let literal = literal_value;
    let scale = match (literal(left), literal(right)) {
        (Some((a, sa)), Some((b, sb))) if b != 0 => {
            let (w1, d1) = base_10000_lead(a, sa);
            let (w2, d2) = base_10000_lead(b, sb);
            let mut qweight = w1 - w2;
            if d1 <= d2 {
                qweight -= 1;
            }
            (MIN_SIG_DIGITS - qweight * 4).max(s1).max(s2).max(0)
        }
        _ => by_types,
    };
    scale.min(MAX_SCALE) as i8
}

/// A literal, or a cast of one (`3::numeric`), as a NUMERIC value: unscaled and scale.
fn literal_value(e: &Expr) -> Option<(i128, i8)> {
    let value = match e {
        Expr::Literal(v, _) => v.clone(),
        Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
            Expr::Literal(v, _) => v.cast_to(field.data_type()).ok()?,
            _ => return None,
        },
        _ => return None,
    };
    match value {
        ScalarValue::Decimal128(Some(v), _, s) => Some((v, s)),
        ScalarValue::Int16(Some(v)) => Some((v.into(), 0)),
        ScalarValue::Int32(Some(v)) => Some((v.into(), 0)),
        ScalarValue::Int64(Some(v)) => Some((v.into(), 0)),
        _ => None,
    }
}

/// PostgreSQL's weight and first digit of a NUMERIC in base 10000 (0, 0 for zero).
fn base_10000_lead(unscaled: i128, scale: i8) -> (i32, i128) {
    if unscaled == 0 {
        return (0, 0);
    }
    let magnitude = unscaled.unsigned_abs();
    let digits = magnitude.ilog10() as i32 + 1;
    let exponent = digits - 1 - i32::from(scale); // decimal exponent of the first digit
    let weight = exponent.div_euclid(4);
    // The first base-10000 group: the decimal digits from 10^(4*weight+3) down to 10^(4*weight).
    let shift = i32::from(scale) + 4 * weight; // digits below that group
    let group = if shift >= 0 { magnitude / 10u128.pow(shift as u32) } else { magnitude * 10u128.pow((-shift) as u32) };
    (weight, group as i128)
}

/// Rounds floats half to even and NUMERIC half away from zero, to a whole value of the same
/// type; other arrays pass unchanged. Used before any conversion to an integer type.
pub fn round_for_integer(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Float64 => {
            Arc::new(array.as_primitive::<Float64Type>().unary::<_, Float64Type>(|v| v.round_ties_even()))
        }
        DataType::Float32 => {
            Arc::new(array.as_primitive::<Float32Type>().unary::<_, Float32Type>(|v| v.round_ties_even()))
        }
        DataType::Decimal128(p, s) if *s > 0 => {
            let unit = 10i128.pow(*s as u32);
            let rounded: Decimal128Array = array
                .as_primitive::<Decimal128Type>()
                .unary::<_, Decimal128Type>(|v| {
                    let whole = v / unit;
                    let rest = v % unit;
                    let away = if rest.unsigned_abs() * 2 >= unit.unsigned_abs() { v.signum() } else { 0 };
                    (whole + away) * unit
                })
                .with_precision_and_scale(*p, *s)?;
            Arc::new(rounded)
        }
        _ => array.clone(),
    })
}

/// [`round_for_integer`] as a function in plans.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundForInteger {
    signature: Signature,
}

impl RoundForInteger {
    fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for RoundForInteger {
    fn name(&self) -> &str {
        "round_for_integer"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(round_for_integer(a)?)),
            ColumnarValue::Scalar(s) => {
                let rounded = round_for_integer(&s.to_array_of_size(1)?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&rounded, 0)?))
            }
        }
    }
}

/// `expr` converted to the integer type `target` as [`ToInteger`] does: 22003 out of range.
pub(super) fn to_integer(expr: Expr, target: DataType) -> Expr {
    ScalarUDF::new_from_impl(ToInteger::new(target)).call(vec![expr])
}

/// A cast of a float, NUMERIC or wider integer to an integer type as PostgreSQL makes it:
/// rounded (see [`round_for_integer`]), and 22003 `integer out of range` where Arrow's cast
/// gives NULL or a message naming neither the SQLSTATE nor PostgreSQL's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToInteger {
    target: DataType,
    signature: Signature,
}

impl ToInteger {
    fn new(target: DataType) -> Self {
        Self { target, signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ToInteger {
    fn name(&self) -> &str {
        "to_integer"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = ColumnarValue::values_to_arrays(&args.args[..1])?.remove(0);
        let rounded = round_for_integer(&input)?;
        let options = arrow::compute::CastOptions { safe: true, ..Default::default() };
        let converted = arrow::compute::cast_with_options(&rounded, &self.target, &options)?;
        if converted.null_count() > rounded.null_count() {
            let name = match self.target {
                DataType::Int8 | DataType::Int16 => "smallint",
                DataType::Int32 => "integer",
                _ => "bigint",
            };
            return exec_err!("{name} out of range");
        }
        super::expr_rules::columnar(converted, scalar)
    }
}

/// NUMERIC division to a fixed scale, rounded half away from zero, with PostgreSQL's errors.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDivide {
    scale: i8,
    signature: Signature,
}

impl NumericDivide {
    fn new(scale: i8) -> Self {
        Self { scale, signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for NumericDivide {
    fn name(&self) -> &str {
        "numeric_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        // Integers become NUMERIC of scale 0, decimals keep their scale, all 38 digits wide.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?
            .iter()
            .map(|a| {
                let scale = match a.data_type() {
                    DataType::Decimal128(_, s) => *s,
                    _ => 0,
                };
                Ok(arrow::compute::cast(a, &DataType::Decimal128(38, scale))?)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let (left, right) = (arrays[0].as_primitive::<Decimal128Type>(), arrays[1].as_primitive::<Decimal128Type>());
        let (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) = (left.data_type(), right.data_type()) else {
            return exec_err!("numeric_divide of non-NUMERIC operands");
        };
        // q = (a / 10^s1) / (b / 10^s2), kept as q * 10^scale = a * 10^(scale - s1 + s2) / b.
        let shift = i32::from(self.scale) - i32::from(*s1) + i32::from(*s2);
        let limit = i256::from_i128(10i128.pow(38));
        let mut values = Vec::with_capacity(left.len());
        for i in 0..left.len() {
            if left.is_null(i) || right.is_null(i) {
                values.push(None);
                continue;
            }
            let (a, b) = (i256::from_i128(left.value(i)), i256::from_i128(right.value(i)));
            if b == i256::ZERO {
                return exec_err!("division by zero");
            }
            let (mut numerator, mut denominator) = (a, b);
            let unit = i256::from_i128(10).checked_pow(shift.unsigned_abs());
            let scaled = match unit {
                Some(unit) if shift >= 0 => numerator.checked_mul(unit).map(|n| numerator = n),
                Some(unit) => denominator.checked_mul(unit).map(|d| denominator = d),
                None => None,
            };
            if scaled.is_none() {
                return exec_err!("value overflows numeric format: numeric out of range");
            }
            let quotient = numerator.wrapping_div(denominator);
            let remainder = numerator.wrapping_rem(denominator);
            let twice = remainder.wrapping_abs().wrapping_mul(i256::from_i128(2));
            let away = if twice >= denominator.wrapping_abs() {
                if (numerator < i256::ZERO) != (denominator < i256::ZERO) { i256::MINUS_ONE } else { i256::ONE }
            } else {
                i256::ZERO
            };
            let rounded = quotient.wrapping_add(away);
            if rounded >= limit || rounded <= limit.wrapping_neg() {
                return exec_err!("value overflows numeric format: numeric out of range");
            }
            values.push(rounded.as_i128().into());
        }
        let result: Decimal128Array = PrimitiveArray::from(values).with_precision_and_scale(38, self.scale)?;
        let result: ArrayRef = Arc::new(result);
        super::expr_rules::columnar(result, scalars && rows <= 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_group_in_base_10000() {
        assert_eq!(base_10000_lead(70, 1), (0, 7)); // 7.0
        assert_eq!(base_10000_lead(123456, 0), (1, 12)); // 12|3456
        assert_eq!(base_10000_lead(5, 3), (-1, 50)); // 0.005 = 0.0050 → group 0050
        assert_eq!(base_10000_lead(-9999, 0), (0, 9999));
    }

    #[test]
    fn literal_quotients_take_postgres_scale() {
        let dec = |v: i128, s: i8| Expr::Literal(ScalarValue::Decimal128(Some(v), 38, s), None);
        assert_eq!(quotient_scale(&dec(70, 1), &dec(20, 1), (2, 1), (2, 1)), 16); // 7.0 / 2.0
        assert_eq!(quotient_scale(&dec(1, 0), &dec(3, 0), (1, 0), (1, 0)), 20); // 1 / 3
        assert_eq!(quotient_scale(&dec(1000, 0), &dec(3, 0), (4, 0), (1, 0)), 16); // 1000 / 3
        let column = Expr::Column("n".into());
        // NUMERIC(12,3) / bigint: 16 digits of 0.001 / 9.2e18 would need 38; at most 20.
        assert_eq!(quotient_scale(&column, &column, (12, 3), (19, 0)), 20);
        // NUMERIC(12,3) / 3: 16 + 3 + 1.
        assert_eq!(quotient_scale(&column, &dec(3, 0), (12, 3), (19, 0)), 20);
    }

    #[test]
    fn numeric_rounds_half_away_from_zero() {
        let a: ArrayRef =
            Arc::new(Decimal128Array::from(vec![25, -25, 24, 35]).with_precision_and_scale(3, 1).unwrap());
        let r = round_for_integer(&a).unwrap();
        let r = r.as_primitive::<Decimal128Type>();
        assert_eq!(r.values().to_vec(), vec![30, -30, 20, 40]);
        let f: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![2.5, 3.5, -2.5]));
        let r = round_for_integer(&f).unwrap();
        assert_eq!(r.as_primitive::<Float64Type>().values().to_vec(), vec![2.0, 4.0, -2.0]);
    }
}
