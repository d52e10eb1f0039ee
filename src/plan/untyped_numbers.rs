//! A quoted literal beside a number takes the number's type, as PostgreSQL's untyped
//! literals do: `1 + '2'` is 3 (DataFusion: "Cannot coerce Int64 + Utf8"), and `2.5 > '10'`
//! compares NUMERICs (DataFusion cast `'10'` to the other side's `NUMERIC(2,1)` and failed).
//! Beside an integer or a float the literal is read as that type (`1 + '2.5'` is 22P02, as in
//! PostgreSQL); beside a NUMERIC as a NUMERIC of its own digits. Only literals: a text column
//! beside a number stays an error, as in PostgreSQL.

use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, cast};
use datafusion::scalar::ScalarValue;
use sqlparser::ast::BinaryOperator;

/// The expression planner, consulted as DataFusion plans each operator (where it would fail
/// on `Int64 + Utf8` before any analyzer rule ran); see the module's doc.
#[derive(Debug)]
pub struct UntypedNumbers;

impl ExprPlanner for UntypedNumbers {
    fn plan_binary_op(&self, expr: RawBinaryExpr, schema: &DFSchema) -> Result<PlannerResult<RawBinaryExpr>> {
        use BinaryOperator::*;
        let RawBinaryExpr { op, left, right } = expr;
        let applies = matches!(op, Plus | Minus | Multiply | Divide | Modulo | Eq | NotEq | Lt | LtEq | Gt | GtEq);
        let number = |e: &Expr| e.get_type(schema).ok().filter(|t| t.is_numeric());
        let (left, right) = match (applies, text_literal(&left), text_literal(&right)) {
            (true, None, Some(text)) if let Some(ty) = number(&left) => {
                let ty = literal_integer_type(&left).unwrap_or(ty);
                (left, as_number(right, text, &ty))
            }
            (true, Some(text), None) if let Some(ty) = number(&right) => {
                let ty = literal_integer_type(&right).unwrap_or(ty);
                (as_number(left, text, &ty), right)
            }
            _ => (left, right),
        };
        Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }))
    }
}

/// `integer` for an integer literal that fits one: it becomes one later
/// (`plan::integer_literals`), so `1 + '2'` is an integer, as in PostgreSQL, not a bigint.
fn literal_integer_type(expr: &Expr) -> Option<DataType> {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) if i32::try_from(*v).is_ok() => Some(DataType::Int32),
        _ => None,
    }
}

fn text_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

/// `literal` (whose text is `text`) as a number beside one of type `other`.
fn as_number(literal: Expr, text: String, other: &DataType) -> Expr {
    match other {
        // Exponents written out (`'1e5'` is 100000), which Arrow's cast does not read.
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let plain = crate::value::numeric_text::printed(text.trim());
            match decimal_type(&plain) {
                Some(own) => cast(datafusion::logical_expr::lit(plain), own),
                None => cast(literal, other.clone()),
            }
        }
        _ => cast(literal, other.clone()),
    }
}

/// The NUMERIC type of a decimal's own digits (`10` is NUMERIC(2,0), `-0.50` NUMERIC(2,2));
/// `None` for other text or more than 38 digits.
fn decimal_type(text: &str) -> Option<DataType> {
    let unsigned = text.trim().trim_start_matches(['+', '-']);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole = whole.trim_start_matches('0').len();
    let precision = (whole + fraction.len()).max(1);
    (precision <= 38).then_some(DataType::Decimal128(precision as u8, fraction.len() as i8))
}

#[cfg(test)]
mod tests {
    use super::decimal_type;
    use arrow::datatypes::DataType;

    #[test]
    fn a_decimal_has_its_own_digits() {
        assert_eq!(decimal_type("10"), Some(DataType::Decimal128(2, 0)));
        assert_eq!(decimal_type(" -0.50 "), Some(DataType::Decimal128(2, 2)));
        assert_eq!(decimal_type("abc"), None);
        assert_eq!(decimal_type("."), None);
        assert_eq!(decimal_type("1e5"), None);
    }
}
