//! `current_user` and `session_user` as the session's role: the SQL parser spells both
//! `session_user()`, which `datafusion-pg-catalog` answers with a fixed name; each session's
//! plan gets its own role's name instead.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan, lit};

use super::expr_rules::rewrite_keeping_names;

/// The functions that name the session's role (no arguments).
const ROLE_FUNCTIONS: [&str; 4] = ["session_user", "current_user", "current_role", "user"];

/// True if `plan` calls one of the functions that answer from the session's role: a
/// [`ROLE_FUNCTIONS`] one or `has_table_privilege`. A read-only walk, so that the rewrites
/// of these (which rebuild the plan) run only for the queries that need them.
pub fn calls_role_functions(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(call) = e
                    && (ROLE_FUNCTIONS.contains(&call.func.name()) || call.func.name() == "has_table_privilege")
                {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// `plan` with every call of a [`ROLE_FUNCTIONS`] function replaced by `role`.
pub fn with_session_user(plan: LogicalPlan, role: &str) -> Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        rewrite_keeping_names(node, |expr| match &expr {
            Expr::ScalarFunction(call) if call.args.is_empty() && ROLE_FUNCTIONS.contains(&call.func.name()) => {
                Ok(Transformed::yes(lit(role)))
            }
            _ => Ok(Transformed::no(expr)),
        })
    })?;
    Ok(rewritten.data)
}
