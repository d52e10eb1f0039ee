//! Event-time bounds implied by a scan's filters, used to skip whole blocks.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

/// An inclusive range of event times in µs since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub min: i64,
    pub max: i64,
}

impl TimeBounds {
    pub const ALL: TimeBounds = TimeBounds { min: i64::MIN, max: i64::MAX };

    /// Narrows the range by every filter that compares `column` with a timestamp constant.
    pub fn from_filters(column: &str, filters: &[Expr]) -> Self {
        filters.iter().fold(Self::ALL, |b, f| b.intersect(Self::from_filter(column, f).unwrap_or(Self::ALL)))
    }

    /// The bounds one filter implies, or `None` when it does not bound `column`.
    pub fn from_filter(column: &str, filter: &Expr) -> Option<Self> {
        match filter {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = if is_column(left, column) {
                    (*op, timestamp_micros(right)?)
                } else if is_column(right, column) {
                    (op.swap()?, timestamp_micros(left)?)
                } else {
                    return None;
                };
                Some(match op {
                    Operator::Eq => TimeBounds { min: value, max: value },
                    Operator::Gt => TimeBounds { min: value.saturating_add(1), max: i64::MAX },
                    Operator::GtEq => TimeBounds { min: value, max: i64::MAX },
                    Operator::Lt => TimeBounds { min: i64::MIN, max: value.saturating_sub(1) },
                    Operator::LtEq => TimeBounds { min: i64::MIN, max: value },
                    _ => return None,
                })
            }
            Expr::Between(Between { expr, negated: false, low, high }) if is_column(expr, column) => {
                Some(TimeBounds { min: timestamp_micros(low)?, max: timestamp_micros(high)? })
            }
            _ => None,
        }
    }

    fn intersect(self, other: Self) -> Self {
        TimeBounds { min: self.min.max(other.min), max: self.max.min(other.max) }
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name)
}

/// A timestamp constant in µs. Rounds outward so the bound never excludes a matching row.
fn timestamp_micros(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
            ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn ts(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(Some(us), None))
    }

    #[test]
    fn comparisons_narrow_the_range() {
        let filters = vec![col("ts").gt_eq(ts(10)), ts(20).gt(col("ts")), col("x").eq(lit(1))];
        assert_eq!(TimeBounds::from_filters("ts", &filters), TimeBounds { min: 10, max: 19 });
        assert_eq!(TimeBounds::from_filters("other", &filters), TimeBounds::ALL);
        assert_eq!(TimeBounds::from_filter("ts", &col("ts").not_eq(ts(3))), None);
    }
}
