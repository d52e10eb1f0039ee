//! Floats, intervals, timestamps and dates as text the way PostgreSQL writes them (`1`,
//! `1e+20`, `-0`; `1 day`, `01:30:00`; `2024-03-01 12:34:56.5`), not the way Arrow's cast
//! does (`1.0`, `1e20`, `-0.0`; `1 days`, `1 hours 30 mins`; `2024-03-01T12:34:56.500`):
//! explicit casts to text, the casts type coercion adds
//! (`amount || ' EUR'`, the arguments of `concat`), after type coercion ([`PgTextCasts`]);
//! and booleans in `concat` and `concat_ws` as `t`, before it ([`PgConcatBooleans`]).
//!
//! A float's text is the shortest that reads back exactly, as PostgreSQL's with its default
//! `extra_float_digits` (1); a session that lowers it still gets these digits in casts (the
//! wire's own output follows the setting).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Date32Type, Float32Type, Float64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, ScalarUDF, Signature, Volatility, cast};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{TextFunction, input_schema, rewrite_keeping_names};
use crate::value::float_text::write_float;
use crate::value::interval_text::interval_at;
use crate::value::{date_text, time_zone, timestamp_text};

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct PgTextCasts;

impl AnalyzerRule for PgTextCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let text = Arc::new(pg_text());
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| match e {
                Expr::Cast(Cast { expr, field }) if is_text(field.data_type()) && printed(&expr, &schema) => {
                    let as_text = text.call(vec![*expr]);
                    Ok(Transformed::yes(if field.data_type() == &DataType::Utf8 {
                        as_text
                    } else {
                        cast(as_text, field.data_type().clone())
                    }))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_text_casts"
    }
}

fn is_text(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

/// Whether `e` is a float, an interval, a timestamp or a date, whose text this rule writes.
fn printed(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| {
        matches!(
            t,
            DataType::Float32 | DataType::Float64 | DataType::Interval(_) | DataType::Timestamp(..) | DataType::Date32
        )
    })
}

/// Booleans among the arguments of `concat` and `concat_ws` as PostgreSQL's output writes
/// them (`t`, where a cast to text gives `true`). Runs before type coercion, so only the
/// booleans themselves are seen, not a cast the query wrote (`concat(flag::text)` is `true`).
#[derive(Debug)]
pub struct PgConcatBooleans;

impl AnalyzerRule for PgConcatBooleans {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let text = Arc::new(pg_text());
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            let is_boolean = |e: &Expr| e.get_type(&schema).is_ok_and(|t| t == DataType::Boolean);
            rewrite_keeping_names(node, |e| match e {
                Expr::ScalarFunction(ScalarFunction { func, args })
                    if matches!(func.name(), "concat" | "concat_ws") && args.iter().any(is_boolean) =>
                {
                    let args = args.into_iter().map(|a| if is_boolean(&a) { text.call(vec![a]) } else { a }).collect();
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_concat_booleans"
    }
}

/// `pg_text(x)`: `x` as PostgreSQL writes it. Of any type: the rules call it only on the
/// types [`pg_texts`] writes.
fn pg_text() -> ScalarUDF {
    TextFunction::udf("pg_text", Signature::any(1, Volatility::Immutable), pg_texts)
}

fn pg_texts(input: &ArrayRef) -> Result<ArrayRef> {
    if matches!(input.data_type(), DataType::Timestamp(..) | DataType::Date32) {
        return time_texts(input);
    }
    let mut texts = StringBuilder::with_capacity(input.len(), input.len() * 8);
    let mut digits = Vec::with_capacity(32);
    for row in 0..input.len() {
        if input.is_null(row) {
            texts.append_null();
            continue;
        }
        let (value, single) = match input.data_type() {
            DataType::Interval(unit) => {
                texts.append_value(interval_at(input, *unit, row).text());
                continue;
            }
            DataType::Boolean => {
                texts.append_value(if input.as_boolean().value(row) { "t" } else { "f" });
                continue;
            }
            DataType::Float32 => (f64::from(input.as_primitive::<Float32Type>().value(row)), true),
            DataType::Float64 => (input.as_primitive::<Float64Type>().value(row), false),
            other => return Err(DataFusionError::Internal(format!("pg_text of {other}"))),
        };
        digits.clear();
        write_float(&mut digits, value, single);
        // write_float writes ASCII only.
        texts.append_value(std::str::from_utf8(&digits).unwrap_or_default());
    }
    Ok(Arc::new(texts.finish()))
}

/// Timestamps and dates as PostgreSQL writes them, to the microsecond; a TIMESTAMPTZ in the
/// zone it is tagged with, the session's (`session_time_zone` retags it).
fn time_texts(input: &ArrayRef) -> Result<ArrayRef> {
    if input.data_type() == &DataType::Date32 {
        let days = input.as_primitive::<Date32Type>();
        return Ok(Arc::new(days.iter().map(|d| Some(date_text(d?))).collect::<StringArray>()));
    }
    let zone = match input.data_type() {
        DataType::Timestamp(_, Some(tag)) => time_zone::parse_tz(tag),
        _ => None,
    };
    let micros = arrow::compute::cast(input, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    let texts: StringArray = micros
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .map(|v| match &zone {
            Some(zone) => time_zone::zoned_text(v?, zone),
            None => Some(timestamp_text(v?, false)),
        })
        .collect();
    Ok(Arc::new(texts))
}
