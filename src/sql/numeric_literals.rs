//! Numeric literals with an exponent, which PostgreSQL reads as NUMERIC. Those Arrow's
//! Decimal128 can hold are written out (`1e2` is `100`, `1.5e-3` is `0.0015`: DataFusion
//! would make a decimal of negative scale, which its division cannot type); those it cannot
//! (more than 38 digits once the exponent is applied: `1e300`, `1e-50`) become double
//! precision, the closest type asofdb has, instead of failing to parse (docs/sql.md).

use std::ops::ControlFlow;

use crate::value::numeric_text::written_out;
use sqlparser::ast::{CastKind, DataType, ExactNumberInfo, Expr, Statement, Value, visit_expressions_mut};

/// Digits Decimal128 holds.
const MAX_DIGITS: i64 = 38;

/// Rewrites every such literal in `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(v) = expr
            && let Value::Number(text, _) = &v.value
            && !too_wide(text)
            && let Some(plain) = written_out(text)
        {
            // Still NUMERIC when it is whole (`1e2` is numeric 100, not integer 100).
            let (whole, fraction) = plain.split_once('.').unwrap_or((&plain, ""));
            let whole_digits = if whole == "0" { 0 } else { whole.len() as u64 };
            let scale = fraction.len() as u64;
            let digits = (whole_digits + scale).clamp(1, 38);
            *expr = Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::value(Value::Number(plain, false))),
                data_type: DataType::Numeric(ExactNumberInfo::PrecisionAndScale(digits, scale as i64)),
                format: None,
                array: false,
            };
        } else if let Expr::Value(v) = expr
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
            // Far beyond any decimal: a double (no digit arithmetic on such exponents).
            Ok(e) if e.unsigned_abs() > 10_000 => return true,
            Ok(e) => (m, e),
            Err(_) => return true,
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
        assert!(too_wide("1e9223372036854775807"));
        assert!(too_wide("1e-9223372036854775808"));
    }
}
