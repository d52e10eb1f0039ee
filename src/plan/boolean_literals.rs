//! A quoted literal compared with a boolean is a boolean, as PostgreSQL's untyped literals are:
//! `indisprimary = 't'` (psqlODBC's primary-key query), `flag <> 'false'`. DataFusion refuses
//! to compare Boolean with Utf8. PostgreSQL's spellings are accepted (`t`, `true`, `yes`, `on`,
//! `1` and their negations, any case, surrounding spaces); another text is 22P02.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, lit};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use super::expr_rules::{input_schema, rewrite_keeping_names};
use crate::error::{Error, SqlState};

#[derive(Debug)]
pub struct BooleanLiterals;

impl AnalyzerRule for BooleanLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| typed(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "boolean_literals"
    }
}

fn typed(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else { return Ok(Transformed::no(expr)) };
    use datafusion::logical_expr::Operator::*;
    if !matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom) {
        return Ok(Transformed::no(expr));
    }
    let boolean = |e: &Expr| e.get_type(schema).is_ok_and(|t| t == arrow::datatypes::DataType::Boolean);
    let (left, right) = match (text_literal(left), text_literal(right)) {
        (None, Some(text)) if boolean(left) && !matches!(**left, Expr::Literal(..)) => (*left.clone(), parse(text)?),
        (Some(text), None) if boolean(right) && !matches!(**right, Expr::Literal(..)) => (parse(text)?, *right.clone()),
        _ => return Ok(Transformed::no(expr)),
    };
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), *op, Box::new(right)))))
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s),
        _ => None,
    }
}

/// PostgreSQL's `boolin`.
fn parse(text: &str) -> Result<Expr> {
    let value = match text.trim().to_ascii_lowercase().as_str() {
        "t" | "tr" | "tru" | "true" | "y" | "ye" | "yes" | "on" | "1" => true,
        "f" | "fa" | "fal" | "fals" | "false" | "n" | "no" | "of" | "off" | "0" => false,
        _ => {
            return Err(Error::in_datafusion(
                SqlState::InvalidTextRepresentation,
                format!("invalid input syntax for type boolean: \"{text}\""),
            ));
        }
    };
    Ok(lit(value))
}
