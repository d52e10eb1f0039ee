//! Identifier rules: unquoted names fold to lower case, as in PostgreSQL.

use sqlparser::ast::{Ident, ObjectName};

use crate::error::{Error, Result, SqlState};

/// The name an identifier refers to: quoted names as written, unquoted ones lower-cased.
pub fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// The table an object name refers to. Only the `public` schema holds tables.
pub fn table_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| part.as_ident().map(ident_name).ok_or_else(|| Error::syntax(format!("invalid name {name}"))))
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [table] => Ok(table.clone()),
        [schema, table] | [_, schema, table] if schema == "public" => Ok(table.clone()),
        [schema, _] | [_, schema, _] => Err(Error::NotFound {
            sqlstate: SqlState::InvalidSchemaName,
            message: format!("schema \"{schema}\" does not exist"),
        }),
        _ => Err(Error::syntax(format!("improper qualified name: {name}"))),
    }
}

/// An option value (`WITH (name = value)`): a string literal, a bare identifier or word, or
/// an `INTERVAL '...'` (its text).
pub fn option_text(value: &sqlparser::ast::Expr) -> Result<String> {
    use sqlparser::ast::{Expr, Value};
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            other => Ok(other.to_string()),
        },
        Expr::Identifier(ident) => Ok(ident_name(ident)),
        Expr::Interval(interval) if interval.leading_field.is_none() => option_text(&interval.value),
        other => Err(Error::invalid_input(SqlState::InvalidParameterValue, format!("invalid option value {other}"))),
    }
}
