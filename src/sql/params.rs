//! Binding extended-protocol parameters into statements DataFusion does not plan (INSERT,
//! COPY, DDL): each `$n` is replaced by a literal of its bound value.

use std::ops::ControlFlow;

use datafusion::scalar::ScalarValue;
use sqlparser::ast::{Expr, Statement, Value, VisitMut, VisitorMut};

use crate::error::{Error, Result, SqlState};

/// Replaces `$1..$n` in `statement` by literals of `values` (`$1` is `values[0]`).
pub fn bind_parameters(statement: &mut Statement, values: &[ScalarValue]) -> Result<()> {
    let mut binder = Binder { values, error: None };
    let _ = statement.visit(&mut binder);
    match binder.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Binder<'a> {
    values: &'a [ScalarValue],
    error: Option<Error>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Value(v) = expr else { return ControlFlow::Continue(()) };
        let Value::Placeholder(name) = &v.value else { return ControlFlow::Continue(()) };
        let index = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1);
        match index.and_then(|i| self.values.get(i - 1)) {
            Some(value) => {
                *expr = literal(value);
                ControlFlow::Continue(())
            }
            None => {
                self.error =
                    Some(Error::invalid_input(SqlState::ProtocolViolation, format!("there is no parameter {name}")));
                ControlFlow::Break(())
            }
        }
    }
}

/// A SQL literal that evaluates back to `value` (or to its text, which column conversion parses).
fn literal(value: &ScalarValue) -> Expr {
    if value.is_null() {
        return Expr::value(Value::Null);
    }
    match value {
        ScalarValue::Boolean(Some(b)) => Expr::value(Value::Boolean(*b)),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Decimal128(..) => Expr::value(Value::Number(value.to_string(), false)),
        ScalarValue::Float32(Some(f)) if f.is_finite() => Expr::value(Value::Number(format!("{f:?}"), false)),
        ScalarValue::Float64(Some(f)) if f.is_finite() => Expr::value(Value::Number(format!("{f:?}"), false)),
        ScalarValue::Binary(Some(bytes)) | ScalarValue::LargeBinary(Some(bytes)) => {
            Expr::value(Value::SingleQuotedString(crate::sql::types::bytea_hex(bytes)))
        }
        other => Expr::value(Value::SingleQuotedString(text_of(other))),
    }
}

/// The value as text that converts back to it (`2024-01-01T09:00:00` for a timestamp, where
/// `ScalarValue`'s own Display would print microseconds since the epoch).
fn text_of(value: &ScalarValue) -> String {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other
            .to_array()
            .ok()
            .and_then(|array| arrow::util::display::array_value_to_string(&array, 0).ok())
            .unwrap_or_else(|| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn placeholders_become_literals() {
        let mut stmt =
            Parser::parse_sql(&PostgreSqlDialect {}, "INSERT INTO t VALUES ($1, $2, $3, $4, $5)").unwrap().remove(0);
        let values = [
            ScalarValue::Int64(Some(7)),
            ScalarValue::Utf8(Some("it's".into())),
            ScalarValue::Float64(None),
            ScalarValue::Float64(Some(1.5)),
            ScalarValue::TimestampMicrosecond(Some(1_704_099_600_000_000), None),
        ];
        bind_parameters(&mut stmt, &values).unwrap();
        assert_eq!(stmt.to_string(), "INSERT INTO t VALUES (7, 'it''s', NULL, 1.5, '2024-01-01T09:00:00')");
        let mut missing = Parser::parse_sql(&PostgreSqlDialect {}, "SELECT $3").unwrap().remove(0);
        assert!(bind_parameters(&mut missing, &values[..1]).is_err());
    }
}
