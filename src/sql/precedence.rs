//! Mends sqlparser 0.62's precedence of `IS [NOT] DISTINCT FROM`: it parses the right operand
//! as a whole expression, so `a IS NOT DISTINCT FROM b AND c` comes out as
//! `a IS NOT DISTINCT FROM (b AND c)`. PostgreSQL binds `IS` tighter than `AND`/`OR` and
//! left-to-right with other `IS` tests: `(a IS NOT DISTINCT FROM b) AND c`. (Fixed upstream in
//! datafusion-sqlparser-rs PR #2436; drop this module when a release with it is taken.)
//!
//! The parser keeps parentheses as `Expr::Nested`, so an operand the user parenthesised is
//! told apart from one the parser swallowed, and the tree can be rotated after parsing. The
//! rotated test is itself parenthesised, so the statement prints as it now reads (features
//! store their text and parse it again). Lifting an `OR` out of the test can leave it under
//! an `AND` or a `NOT` that bind tighter, which the parser itself never produces unless
//! parenthesised; those are re-associated too.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, visit_expressions_mut};

/// Rotates every mis-parsed `IS [NOT] DISTINCT FROM` in `node` (a statement or query).
pub fn fix_is_distinct<V: sqlparser::ast::VisitMut>(node: &mut V) {
    // Children are visited first, so each right operand is already in its final shape.
    let _ = visit_expressions_mut(node, |expr| {
        let taken = std::mem::replace(expr, Expr::value(sqlparser::ast::Value::Null));
        *expr = match taken {
            e @ (Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..)) => rotate(e),
            e => reassociate(e),
        };
        ControlFlow::<()>::Continue(())
    });
}

/// `x AND (p OR q)` and `NOT (p AND|OR q)` with the inner operator unparenthesised (which
/// only a rotation makes) as the parser would have read them: `(x AND p) OR q`,
/// `(NOT p) AND|OR q`.
fn reassociate(expr: Expr) -> Expr {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => match *right {
            Expr::BinaryOp { left: p, op: BinaryOperator::Or, right: q } => Expr::BinaryOp {
                left: Box::new(reassociate(Expr::BinaryOp { left, op: BinaryOperator::And, right: p })),
                op: BinaryOperator::Or,
                right: q,
            },
            right => Expr::BinaryOp { left, op: BinaryOperator::And, right: Box::new(right) },
        },
        Expr::UnaryOp { op: UnaryOperator::Not, expr: inner } => match *inner {
            Expr::BinaryOp { left: p, op: op @ (BinaryOperator::And | BinaryOperator::Or), right: q } => {
                let negated = reassociate(Expr::UnaryOp { op: UnaryOperator::Not, expr: p });
                Expr::BinaryOp { left: Box::new(negated), op, right: q }
            }
            inner => Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(inner) },
        },
        other => other,
    }
}

/// `a IS [NOT] DISTINCT FROM r`, with the parts of `r` that bind looser than `IS` lifted
/// above the test.
fn rotate(expr: Expr) -> Expr {
    let (left, right, negated) = match expr {
        Expr::IsDistinctFrom(l, r) => (l, r, false),
        Expr::IsNotDistinctFrom(l, r) => (l, r, true),
        other => return other,
    };
    let test = |l: Box<Expr>, r: Box<Expr>| {
        let rotated = rotate(if negated { Expr::IsNotDistinctFrom(l, r) } else { Expr::IsDistinctFrom(l, r) });
        Box::new(match rotated {
            e @ (Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..)) => Expr::Nested(Box::new(e)),
            e => e,
        })
    };
    match *right {
        Expr::BinaryOp { left: inner, op: op @ (BinaryOperator::And | BinaryOperator::Or), right: rest } => {
            Expr::BinaryOp { left: test(left, inner), op, right: rest }
        }
        Expr::IsDistinctFrom(inner, rest) => Expr::IsDistinctFrom(test(left, inner), rest),
        Expr::IsNotDistinctFrom(inner, rest) => Expr::IsNotDistinctFrom(test(left, inner), rest),
        Expr::IsNull(inner) => Expr::IsNull(test(left, inner)),
        Expr::IsNotNull(inner) => Expr::IsNotNull(test(left, inner)),
        Expr::IsTrue(inner) => Expr::IsTrue(test(left, inner)),
        Expr::IsNotTrue(inner) => Expr::IsNotTrue(test(left, inner)),
        Expr::IsFalse(inner) => Expr::IsFalse(test(left, inner)),
        Expr::IsNotFalse(inner) => Expr::IsNotFalse(test(left, inner)),
        Expr::IsUnknown(inner) => Expr::IsUnknown(test(left, inner)),
        Expr::IsNotUnknown(inner) => Expr::IsNotUnknown(test(left, inner)),
        right => {
            let right = Box::new(right);
            if negated { Expr::IsNotDistinctFrom(left, right) } else { Expr::IsDistinctFrom(left, right) }
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn fixed(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        super::fix_is_distinct(&mut statements);
        statements[0].to_string()
    }

    #[test]
    fn is_distinct_binds_tighter_than_and_and_or() {
        // Printed as it now reads, so a stored definition parses back the same.
        assert_eq!(
            fixed("SELECT false IS NOT DISTINCT FROM true AND false"),
            "SELECT (false IS NOT DISTINCT FROM true) AND false"
        );
        assert_eq!(fixed("SELECT x AND a IS DISTINCT FROM b OR c"), "SELECT x AND (a IS DISTINCT FROM b) OR c");
        assert_eq!(fixed("SELECT NOT a IS DISTINCT FROM b AND c"), "SELECT NOT (a IS DISTINCT FROM b) AND c");
        assert_eq!(
            fixed(&fixed("SELECT x AND a IS DISTINCT FROM b OR c")),
            fixed("SELECT x AND a IS DISTINCT FROM b OR c")
        );
        // The tree's shape where printing does not show it.
        let tree = |sql: &str| {
            let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
            super::fix_is_distinct(&mut statements);
            let sqlparser::ast::Statement::Query(q) = &statements[0] else { panic!() };
            let sqlparser::ast::SetExpr::Select(s) = q.body.as_ref() else { panic!() };
            format!("{:?}", s.projection[0])
        };
        let shape = |sql: &str| tree(sql).contains("BinaryOp { left: Nested(IsNotDistinctFrom");
        assert!(shape("SELECT a IS NOT DISTINCT FROM b AND c"));
        assert!(shape("SELECT a IS NOT DISTINCT FROM b OR c AND d"));
        // The OR lifted out from under the AND is on top.
        let lifted = tree("SELECT x AND a IS DISTINCT FROM b OR c");
        assert!(lifted.starts_with("UnnamedExpr(BinaryOp { left: BinaryOp") && lifted.contains("op: Or"), "{lifted}");
        assert!(!shape("SELECT a IS NOT DISTINCT FROM (b AND c)"));
        assert_eq!(fixed("SELECT a IS DISTINCT FROM b IS NULL"), "SELECT (a IS DISTINCT FROM b) IS NULL");
    }
}
