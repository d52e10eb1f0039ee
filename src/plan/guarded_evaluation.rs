//! `y <> 0 AND x / y > 1` never divides by zero in PostgreSQL: it evaluates `AND` and `OR`
//! left to right, row by row, and skips the right side once the left decides. DataFusion
//! evaluates both sides over whole batches (unless the left side is almost all false), so
//! the guarded division would fail with 22012. This analyzer rule, run after type coercion,
//! makes every `a AND b` whose `b` can fail (a division, a modulo, arithmetic that can
//! overflow, a cast) evaluate `b` only
//! on the rows `a` leaves undecided:
//!
//! `a AND b` → `a AND (CASE WHEN NOT a THEN 0 ELSE b::int8 END) = 1`
//! `a OR b`  → `a OR (CASE WHEN a THEN 1 ELSE b::int8 END) = 1`
//!
//! DataFusion's CASE evaluates each branch only on its own rows (the branches are numbers
//! because the simplifier rewrites a boolean CASE into AND/OR, undoing the guard). `a` stays a conjunct of its
//! own, so filters on it are still pushed down and prune as before.

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, cast, lit, not, when};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{input_schema, rewrite_keeping_names};

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct GuardedEvaluation;

impl AnalyzerRule for GuardedEvaluation {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| guard(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "guarded_evaluation"
    }
}

fn guard(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return Ok(Transformed::no(expr)) };
    // A volatile left side (`random() < 0.5`) must not be evaluated twice.
    if !matches!(op, Operator::And | Operator::Or) || !can_fail(&right, schema) || left.is_volatile() {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
    }
    // The condition repeats the left side's own conjuncts (disjuncts), not the guards made
    // for them: `p AND d1 AND d2` guards d2 by p alone, so the expression grows with the
    // square of the chain, not exponentially.
    let parts = |e: &Expr| -> Vec<Expr> {
        let mut parts = Vec::new();
        split(e, op, &mut parts);
        parts.into_iter().filter(|p| !is_guard(p)).cloned().collect()
    };
    let combine = |parts: Vec<Expr>, op: Operator| {
        parts.into_iter().reduce(|a, b| Expr::BinaryExpr(BinaryExpr::new(Box::new(a), op, Box::new(b))))
    };
    let Some(condition) = combine(parts(&left), op) else {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })));
    };
    // Typed as a number: DataFusion's simplifier turns a boolean CASE back into AND/OR.
    let as_number = |e: Expr| cast(e, DataType::Int64);
    let guarded = if op == Operator::And {
        when(not(condition), lit(0i64)).otherwise(as_number(*right))?
    } else {
        when(condition, lit(1i64)).otherwise(as_number(*right))?
    };
    let guarded = guarded.eq(lit(1i64));
    Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, op, Box::new(guarded)))))
}

/// The operands of a chain of `op` (AND or OR), left to right.
fn split<'a>(expr: &'a Expr, op: Operator, parts: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: o, right }) if *o == op => {
            split(left, op, parts);
            split(right, op, parts);
        }
        other => parts.push(other),
    }
}

/// `expr` is a guard this rule made: `(CASE ... END) = 1`.
fn is_guard(expr: &Expr) -> bool {
    matches!(expr, Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right })
        if matches!(left.as_ref(), Expr::Case(_))
            && matches!(right.as_ref(), Expr::Literal(datafusion::scalar::ScalarValue::Int64(Some(1)), _)))
}

/// `expr` may raise an error for some row: it divides, takes a modulo, computes with integers
/// or floats (overflow), or casts text or to a narrower integer type (not the widening casts
/// type coercion adds everywhere).
fn can_fail(expr: &Expr, schema: &DFSchema) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found = match e {
            Expr::BinaryExpr(BinaryExpr { op: Operator::Divide | Operator::Modulo, .. }) => true,
            // What `plan::pg_numeric` made of divisions and casts to integers; abs overflows.
            Expr::ScalarFunction(f) => matches!(f.func.name(), "numeric_divide" | "to_integer" | "abs"),
            // Integer and float arithmetic overflows (`plan::checked_arithmetic`).
            Expr::BinaryExpr(BinaryExpr { op: Operator::Plus | Operator::Minus | Operator::Multiply, .. }) => {
                e.get_type(schema).is_ok_and(|t| t.is_integer() || t.is_floating())
            }
            Expr::Cast(cast) if !matches!(cast.expr.as_ref(), Expr::Literal(..)) => {
                let to = cast.field.data_type();
                match cast.expr.get_type(schema) {
                    Ok(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => true,
                    Ok(from) if to.is_integer() => !from.is_integer() || from.primitive_width() > to.primitive_width(),
                    _ => false,
                }
            }
            _ => false,
        };
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}
