//! Numeric literals PostgreSQL reads as NUMERIC but Arrow's Decimal128 cannot hold (more than
//! 38 digits once the exponent is applied: `1e300`, `1e-50`) become double precision, the
//! closest type asofdb has, instead of failing to parse (docs/sql.md, differences).

use std::ops::ControlFlow;

use sqlparser::ast::{CastKind, DataType, Expr, Statement, Value, visit_expressions_mut};

/// Digits Decimal128 holds.
const MAX_DIGITS: i64 = 38;

/// Rewrites every such literal in `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Number(text, _) = &v.value
            && too_wide(text)
        {
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::value(Value::SingleQuotedString(text.clone()))),
                data_type: DataType::DoublePrecision,
                format: None,
                array: false,
            };
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Digits `text` needs as a decimal with its exponent applied exceed Decimal128's.
fn too_wide(text: &str) -> bool {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => match e.parse::<i64>() {
            Ok(e) => (m, e),
            Err(_) => return false,
        },
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let whole = whole.trim_start_matches('0').len() as i64;
    let fraction = fraction.len() as i64;
    let digits = (whole + exponent).max(0) + (fraction - exponent).max(0);
    digits > MAX_DIGITS
}

#[cfg(test)]
mod tests {
    use super::too_wide;

    #[test]
    fn only_numbers_beyond_decimal128_become_doubles() {
        assert!(too_wide("1e300"));
        assert!(too_wide("1.5E-50"));
        assert!(!too_wide("1e2"));
        assert!(!too_wide("0.000123"));
        assert!(!too_wide("12345678901234567890.5"));
        assert!(too_wide("123456789012345678901234567890123456789.5"));
    }
}
