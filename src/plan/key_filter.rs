//! `key = value` conjuncts of a filter on a feature: the one recogniser behind point reads
//! (`point_read`) and pushing key filters into the feature table (`feature_table`).

use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

/// Where the value a key column is compared with comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Literal(ScalarValue),
    /// `$n`, 0-based.
    Parameter(usize),
}

/// `column = literal` or `column = $n`, either way round: the column's name and the value.
pub fn key_equality(expr: &Expr) -> Option<(&str, KeySource)> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = expr else { return None };
    let (column, other) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), other) | (other, Expr::Column(c)) => (c, other),
        _ => return None,
    };
    let source = match other {
        Expr::Literal(v, _) => KeySource::Literal(v.clone()),
        Expr::Placeholder(p) => match p.id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n >= 1 => KeySource::Parameter(n - 1),
            _ => return None,
        },
        _ => return None,
    };
    Some((column.name.as_str(), source))
}

/// Every conjunct of `predicate` as a [`key_equality`]; None if any is something else.
pub fn key_equalities(predicate: &Expr) -> Option<Vec<(String, KeySource)>> {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut all = key_equalities(left)?;
            all.extend(key_equalities(right)?);
            Some(all)
        }
        other => key_equality(other).map(|(column, source)| vec![(column.to_string(), source)]),
    }
}
