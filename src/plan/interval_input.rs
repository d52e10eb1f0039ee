//! Text cast to an interval read in PostgreSQL's own output form as well (`01:30:00`,
//! `1 day -02:00`, `+3 days`), which Arrow's parser does not read: a column, a parameter or
//! a literal (`s::interval`, `'01:30:00'::interval`) goes through
//! `value::interval_text::arrow_readable` first. `INTERVAL '...'` literals, which DataFusion
//! reads while planning, are `sql::interval_literals`'s.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, Signature, TryCast, Volatility};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use super::expr_rules::{TextFunction, input_schema, rewrite_keeping_names};
use crate::value::interval_text::arrow_readable;

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct PgIntervalInput;

impl AnalyzerRule for PgIntervalInput {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let readable = Arc::new(TextFunction::udf(
            "pg_interval_readable",
            Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
            readable_texts,
        ));
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            let is_text = |e: &Expr| e.get_type(&schema).is_ok_and(|t| t == DataType::Utf8);
            let to_interval = |ty: &DataType| matches!(ty, DataType::Interval(_));
            let read = |expr: Box<Expr>| -> Box<Expr> {
                Box::new(match *expr {
                    Expr::Literal(ScalarValue::Utf8(Some(text)), meta) => {
                        let text = arrow_readable(&text).unwrap_or(text);
                        Expr::Literal(ScalarValue::Utf8(Some(text)), meta)
                    }
                    other => readable.call(vec![other]),
                })
            };
            rewrite_keeping_names(node, |e| match e {
                Expr::Cast(Cast { expr, field })
                    if to_interval(field.data_type()) && is_text(&expr) && !is_read(&expr) =>
                {
                    Ok(Transformed::yes(Expr::Cast(Cast { expr: read(expr), field })))
                }
                Expr::TryCast(TryCast { expr, field })
                    if to_interval(field.data_type()) && is_text(&expr) && !is_read(&expr) =>
                {
                    Ok(Transformed::yes(Expr::TryCast(TryCast { expr: read(expr), field })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_interval_input"
    }
}

/// Whether `expr` is already this rule's work (analyzer rules can run again over a plan).
fn is_read(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == "pg_interval_readable")
}

/// Each text in PostgreSQL's interval output form rewritten into the form Arrow reads.
fn readable_texts(input: &ArrayRef) -> Result<ArrayRef> {
    let texts: StringArray = input
        .as_string::<i32>()
        .iter()
        .map(|t| t.map(|t| arrow_readable(t).unwrap_or_else(|| t.to_string())))
        .collect();
    Ok(Arc::new(texts))
}
