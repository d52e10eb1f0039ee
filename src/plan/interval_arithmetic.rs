//! `interval * number`, `number * interval` and `interval / number`, which DataFusion refuses
//! and PostgreSQL computes field by field, carrying fractions down (a fraction of a month
//! becomes days at 30 a month, a fraction of a day becomes time at 24 hours a day), as its
//! `interval_mul` and `interval_div` do. An expression planner, consulted as DataFusion turns
//! SQL operators into expressions (where it would fail), plans such operations as
//! `interval_mul(i, f)` and `interval_div(i, f)`, functions of an interval and a DOUBLE
//! PRECISION.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, IntervalMonthDayNanoArray};
use arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit};
use datafusion::common::{DFSchema, Result, exec_err};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, cast,
};
use datafusion::scalar::ScalarValue;
use sqlparser::ast::BinaryOperator;

const MONTH_DAY_NANO: DataType = DataType::Interval(IntervalUnit::MonthDayNano);
const DAYS_PER_MONTH: f64 = 30.0;
const SECS_PER_DAY: f64 = 86_400.0;

/// The expression planner; see the module's doc.
#[derive(Debug)]
pub struct IntervalArithmetic {
    mul: Arc<ScalarUDF>,
    div: Arc<ScalarUDF>,
}

impl IntervalArithmetic {
    pub fn new() -> Self {
        Self {
            mul: Arc::new(ScalarUDF::new_from_impl(Scale::new(false))),
            div: Arc::new(ScalarUDF::new_from_impl(Scale::new(true))),
        }
    }
}

impl ExprPlanner for IntervalArithmetic {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        let kind = |e: &Expr| match e.get_type(schema) {
            Ok(DataType::Interval(_)) => Some(true),
            Ok(t) if t.is_numeric() => Some(false),
            _ => None,
        };
        let factor = |e: Expr| cast(e, DataType::Float64);
        let interval = |e: Expr| cast(e, MONTH_DAY_NANO);
        let RawBinaryExpr { op, left, right } = expr;
        Ok(match (kind(&left), &op, kind(&right)) {
            (Some(true), BinaryOperator::Multiply, Some(false)) => {
                PlannerResult::Planned(self.mul.call(vec![interval(left), factor(right)]))
            }
            (Some(false), BinaryOperator::Multiply, Some(true)) => {
                PlannerResult::Planned(self.mul.call(vec![interval(right), factor(left)]))
            }
            (Some(true), BinaryOperator::Divide, Some(false)) => {
                PlannerResult::Planned(self.div.call(vec![interval(left), factor(right)]))
            }
            _ => PlannerResult::Original(RawBinaryExpr { op, left, right }),
        })
    }
}

/// Rounds to whole microseconds of a second count, as PostgreSQL's TSROUND.
fn ts_round(seconds: f64) -> f64 {
    (seconds * 1e6).round_ties_even() / 1e6
}

/// PostgreSQL's `interval_mul` (`interval_div` is the same with `1 / factor`'s arithmetic
/// done as division); None where the result does not fit, which is 22008 there.
fn scale(span: IntervalMonthDayNano, factor: f64, divide: bool) -> Option<IntervalMonthDayNano> {
    let apply = |x: f64| if divide { x / factor } else { x * factor };
    let months_f = apply(span.months as f64);
    let days_f = apply(span.days as f64);
    if !months_f.is_finite()
        || !days_f.is_finite()
        || months_f.abs() >= i32::MAX as f64
        || days_f.abs() >= i32::MAX as f64
    {
        return None;
    }
    let months = months_f.trunc() as i32;
    let mut days = days_f.trunc() as i32;
    let month_remainder_days = ts_round((months_f - months as f64) * DAYS_PER_MONTH);
    let mut sec_remainder =
        ts_round((days_f - days as f64 + month_remainder_days - month_remainder_days.trunc()) * SECS_PER_DAY);
    if sec_remainder.abs() >= SECS_PER_DAY {
        let whole = (sec_remainder / SECS_PER_DAY).trunc();
        days = days.checked_add(whole as i32)?;
        sec_remainder -= whole * SECS_PER_DAY;
    }
    days = days.checked_add(month_remainder_days.trunc() as i32)?;
    let micros = (apply(span.nanoseconds as f64 / 1000.0) + sec_remainder * 1e6).round_ties_even();
    if !micros.is_finite() || micros.abs() >= i64::MAX as f64 / 1000.0 {
        return None;
    }
    Some(IntervalMonthDayNano::new(months, days, micros as i64 * 1000))
}

/// `interval_mul(interval, double)` or `interval_div(interval, double)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Scale {
    divide: bool,
    signature: Signature,
}

impl Scale {
    fn new(divide: bool) -> Self {
        Self { divide, signature: Signature::exact(vec![MONTH_DAY_NANO, DataType::Float64], Volatility::Immutable) }
    }

    fn one(&self, span: Option<IntervalMonthDayNano>, factor: Option<f64>) -> Result<Option<IntervalMonthDayNano>> {
        let (Some(span), Some(factor)) = (span, factor) else { return Ok(None) };
        if self.divide && factor == 0.0 {
            return exec_err!("Divide by zero");
        }
        match scale(span, factor, self.divide) {
            Some(result) => Ok(Some(result)),
            None => exec_err!("interval out of range (overflow)"),
        }
    }
}

impl ScalarUDFImpl for Scale {
    fn name(&self) -> &str {
        if self.divide { "interval_div" } else { "interval_mul" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(MONTH_DAY_NANO)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let spans = args.args[0].to_array(rows)?;
        let factors = args.args[1].to_array(rows)?;
        let (Some(spans), Some(factors)) = (
            spans.as_any().downcast_ref::<IntervalMonthDayNanoArray>(),
            factors.as_any().downcast_ref::<Float64Array>(),
        ) else {
            return exec_err!("{} of {} and {}", self.name(), spans.data_type(), factors.data_type());
        };
        let out: IntervalMonthDayNanoArray =
            spans.iter().zip(factors.iter()).map(|(s, f)| self.one(s, f)).collect::<Result<_>>()?;
        if matches!(args.args[0], ColumnarValue::Scalar(_)) && matches!(args.args[1], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::IntervalMonthDayNano;

    use super::scale;

    const HOUR: i64 = 3_600_000_000_000;

    #[test]
    fn fractions_carry_down_as_postgres_does() {
        // SELECT INTERVAL '1 month' * 1.5 = 1 mon 15 days; INTERVAL '1 day' * 1.5 = 1 day 12:00.
        assert_eq!(scale(IntervalMonthDayNano::new(1, 0, 0), 1.5, false), Some(IntervalMonthDayNano::new(1, 15, 0)));
        assert_eq!(
            scale(IntervalMonthDayNano::new(0, 1, 0), 1.5, false),
            Some(IntervalMonthDayNano::new(0, 1, 12 * HOUR))
        );
        assert_eq!(
            scale(IntervalMonthDayNano::new(0, 0, HOUR), 3.0, false),
            Some(IntervalMonthDayNano::new(0, 0, 3 * HOUR))
        );
        // INTERVAL '1 hour' / 2 = 00:30; INTERVAL '1 day' / 2 = 12:00.
        assert_eq!(
            scale(IntervalMonthDayNano::new(0, 0, HOUR), 2.0, true),
            Some(IntervalMonthDayNano::new(0, 0, HOUR / 2))
        );
        assert_eq!(
            scale(IntervalMonthDayNano::new(0, 1, 0), 2.0, true),
            Some(IntervalMonthDayNano::new(0, 0, 12 * HOUR))
        );
        assert_eq!(scale(IntervalMonthDayNano::new(i32::MAX, 0, 0), 2.0, false), None);
    }
}
