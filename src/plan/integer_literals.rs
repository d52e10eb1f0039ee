//! Integer literals are `integer` (int4) when they fit, as in PostgreSQL, not `bigint`:
//! `int_column + 1` is then `integer` arithmetic, which overflows (22003) where PostgreSQL's
//! does, and `SELECT 1` is described as `int4`. Runs before type coercion.
//!
//! Feature definitions skip this rule (`feature::def`): their integer arithmetic stays
//! `bigint`, because an overflow error there would come after the rows were committed.

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use super::expr_rules::rewrite_keeping_names;

/// The name feature definitions leave this rule out by (`feature::def` spells it too).
pub const NAME: &str = "integer_literals";

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // LIMIT and OFFSET take bigint values only; a VALUES list keeps the column types
            // its schema was built with.
            if matches!(node, LogicalPlan::Limit(_) | LogicalPlan::Values(_)) {
                return Ok(Transformed::no(node));
            }
            rewrite_keeping_names(node, |e| {
                Ok(match e {
                    Expr::Literal(ScalarValue::Int64(Some(v)), metadata) => match i32::try_from(v) {
                        Ok(small) => Transformed::yes(Expr::Literal(ScalarValue::Int32(Some(small)), metadata)),
                        Err(_) => Transformed::no(Expr::Literal(ScalarValue::Int64(Some(v)), metadata)),
                    },
                    other => Transformed::no(other),
                })
            })?
            .map_data(|n| n.recompute_schema())
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        NAME
    }
}
