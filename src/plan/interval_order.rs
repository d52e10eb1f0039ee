//! PostgreSQL's order of intervals. Arrow compares `INTERVAL` values field by field (months,
//! then days, then nanoseconds), so `INTERVAL '48 hours' > INTERVAL '1 day'` would be false
//! and a 363-day gap would be "less than" 10 days. PostgreSQL compares an interval by its
//! length with a month taken as 30 days and a day as 24 hours. This analyzer rule, run after
//! DataFusion's type coercion, compares and sorts intervals by that length instead: each
//! interval operand of a comparison, BETWEEN, IN list or ORDER BY key (of a query or a
//! window) becomes
//! `interval_length(x)`, a DECIMAL(38,0) of nanoseconds; `min` and `max` of intervals become
//! `first_value(x ORDER BY interval_length(x))`, ascending or descending.

use std::sync::Arc;

use arrow::array::{Array, Decimal128Array, IntervalMonthDayNanoArray};
use arrow::datatypes::{DataType, IntervalUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ExprSchema, Result};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{
    Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility, WindowFunctionDefinition, cast,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{input_schema, rewrite_keeping_names};
use datafusion::scalar::ScalarValue;

const NANOS_PER_DAY: i128 = 86_400_000_000_000;
const LENGTH_TYPE: DataType = DataType::Decimal128(38, 0);

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct IntervalOrder;

impl AnalyzerRule for IntervalOrder {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let length = length_udf();
        plan.transform_up_with_subqueries(|node| rewrite_node(node, &length)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "interval_order"
    }
}

fn rewrite_node(node: LogicalPlan, length: &Arc<ScalarUDF>) -> Result<Transformed<LogicalPlan>> {
    // The columns a node's expressions can name: its inputs' (all of a join's sides).
    let schema = input_schema(&node);
    if let LogicalPlan::Sort(mut sort) = node {
        let mut changed = false;
        for key in &mut sort.expr {
            if is_interval(&key.expr, &schema) {
                key.expr = by_length(key.expr.clone(), &schema, length);
                changed = true;
            }
        }
        return Ok(Transformed::new_transformed(LogicalPlan::Sort(sort), changed));
    }
    rewrite_keeping_names(node, |e| rewrite_expr(e, &schema, length))
}

fn rewrite_expr(expr: Expr, schema: &DFSchema, length: &Arc<ScalarUDF>) -> Result<Transformed<Expr>> {
    let intervals = |exprs: &[&Expr]| exprs.iter().all(|e| is_interval(e, schema));
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if is_comparison(op) && intervals(&[&left, &right]) => {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                left: Box::new(by_length(*left, schema, length)),
                op,
                right: Box::new(by_length(*right, schema, length)),
            }))
        }
        Expr::Between(Between { expr, negated, low, high }) if intervals(&[&expr, &low, &high]) => {
            Transformed::yes(Expr::Between(Between {
                expr: Box::new(by_length(*expr, schema, length)),
                negated,
                low: Box::new(by_length(*low, schema, length)),
                high: Box::new(by_length(*high, schema, length)),
            }))
        }
        Expr::InList(InList { expr, list, negated })
            if is_interval(&expr, schema) && list.iter().all(|e| is_interval(e, schema)) =>
        {
            Transformed::yes(Expr::InList(InList {
                expr: Box::new(by_length(*expr, schema, length)),
                list: list.into_iter().map(|e| by_length(e, schema, length)).collect(),
                negated,
            }))
        }
        // min and max by length: the first value in that order (NULLs last, so only an
        // all-NULL group gives NULL).
        Expr::AggregateFunction(mut aggregate)
            if matches!(aggregate.func.name(), "min" | "max")
                && aggregate.params.args.len() == 1
                && aggregate.params.order_by.is_empty()
                && is_interval(&aggregate.params.args[0], schema) =>
        {
            let ascending = aggregate.func.name() == "min";
            let key = by_length(aggregate.params.args[0].clone(), schema, length);
            aggregate.func = datafusion::functions_aggregate::first_last::first_value_udaf();
            aggregate.params.order_by = vec![datafusion::logical_expr::SortExpr::new(key, ascending, false)];
            aggregate.params.distinct = false;
            Transformed::yes(Expr::AggregateFunction(aggregate))
        }
        // Over a window the first_value form would change the window's sort keys after
        // DataFusion grouped window expressions by them: refused rather than wrong.
        Expr::WindowFunction(window)
            if matches!(&window.fun, WindowFunctionDefinition::AggregateUDF(f) if matches!(f.name(), "min" | "max"))
                && window.params.args.len() == 1
                && is_interval(&window.params.args[0], schema) =>
        {
            return Err(datafusion::error::DataFusionError::NotImplemented(
                "min and max of intervals over a window are not supported (they would compare fields, not lengths)"
                    .into(),
            ));
        }
        Expr::WindowFunction(mut window) => {
            let mut changed = false;
            for key in &mut window.params.order_by {
                if is_interval(&key.expr, schema) {
                    key.expr = by_length(key.expr.clone(), schema, length);
                    changed = true;
                }
            }
            Transformed::new_transformed(Expr::WindowFunction(window), changed)
        }
        other => Transformed::no(other),
    })
}

fn is_comparison(op: Operator) -> bool {
    use Operator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom)
}

pub(super) fn is_interval(expr: &Expr, schema: &dyn ExprSchema) -> bool {
    matches!(expr.get_type(schema), Ok(DataType::Interval(_)))
}

/// `interval_length(x)`, with `x` widened to months-days-nanoseconds first if it is not.
pub(super) fn by_length(expr: Expr, schema: &DFSchema, length: &Arc<ScalarUDF>) -> Expr {
    let month_day_nano = DataType::Interval(IntervalUnit::MonthDayNano);
    let widened = match expr.get_type(schema) {
        Ok(t) if t == month_day_nano => expr,
        _ => cast(expr, month_day_nano),
    };
    length.call(vec![widened])
}

/// The `interval_length` function.
pub(super) fn length_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(IntervalLength::new()))
}

/// `interval_length(interval) -> DECIMAL(38,0)`: nanoseconds, a month as 30 days.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalLength {
    signature: Signature,
}

impl IntervalLength {
    fn new() -> Self {
        let arg = DataType::Interval(IntervalUnit::MonthDayNano);
        Self { signature: Signature::exact(vec![arg], Volatility::Immutable) }
    }
}

fn length_of(v: arrow::datatypes::IntervalMonthDayNano) -> i128 {
    (v.months as i128 * 30 + v.days as i128) * NANOS_PER_DAY + v.nanoseconds as i128
}

impl ScalarUDFImpl for IntervalLength {
    fn name(&self) -> &str {
        "interval_length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(LENGTH_TYPE)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(v)) => {
                ColumnarValue::Scalar(ScalarValue::Decimal128(v.map(length_of), 38, 0))
            }
            ColumnarValue::Scalar(other) => {
                return datafusion::common::exec_err!("interval_length of {}", other.data_type());
            }
            ColumnarValue::Array(array) => {
                let intervals = array.as_any().downcast_ref::<IntervalMonthDayNanoArray>().ok_or_else(|| {
                    datafusion::error::DataFusionError::Execution("interval_length of a non-interval".into())
                })?;
                let lengths: Decimal128Array = intervals.iter().map(|v| v.map(length_of)).collect();
                ColumnarValue::Array(Arc::new(lengths.with_precision_and_scale(38, 0)?))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::IntervalMonthDayNano;

    use super::length_of;

    #[test]
    fn a_month_is_30_days_and_a_day_24_hours() {
        let day = length_of(IntervalMonthDayNano::new(0, 1, 0));
        assert_eq!(length_of(IntervalMonthDayNano::new(0, 0, 24 * 3_600_000_000_000)), day);
        assert_eq!(length_of(IntervalMonthDayNano::new(1, 0, 0)), 30 * day);
        assert!(length_of(IntervalMonthDayNano::new(0, 0, 48 * 3_600_000_000_000)) > day);
        assert!(
            length_of(IntervalMonthDayNano::new(0, 10, 0))
                < length_of(IntervalMonthDayNano::new(0, 0, 363 * 86_400_000_000_000))
        );
    }
}
