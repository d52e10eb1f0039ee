//! CREATE TABLE: validates columns and the `event_time` / `hot_retention` options.

use sqlparser::ast::{ColumnOption, CreateTable, CreateTableOptions, Expr, OnCommit, SqlOption, UnaryOperator, Value};

use crate::catalog::{ColumnDef, DEFAULT_HOT_RETENTION_MICROS, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::sql::names::{ident_name, option_text, table_name};
use crate::sql::parse_interval_micros;
use crate::sql::types::ColumnType;

/// Builds the definition `CREATE TABLE` describes (its id is assigned by the catalog).
pub fn table_def(create: &CreateTable) -> Result<TableDef> {
    if create.query.is_some() {
        return Err(Error::unsupported(
            "CREATE TABLE ... AS is not supported: create the table, then INSERT ... SELECT",
        ));
    }
    if create.external || create.or_replace {
        return Err(Error::unsupported("only plain CREATE TABLE is supported"));
    }
    if create.on_commit.is_some_and(|c| !matches!(c, OnCommit::PreserveRows)) {
        return Err(Error::unsupported("ON COMMIT DELETE ROWS and ON COMMIT DROP are not supported"));
    }
    if !create.constraints.is_empty() {
        return Err(Error::unsupported("table constraints are not supported on event tables"));
    }
    let name = table_name(&create.name)?;
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(create.columns.len());
    for column in &create.columns {
        let column_name = ident_name(&column.name);
        if columns.iter().any(|c| c.name == column_name) {
            return Err(Error::Conflict {
                sqlstate: SqlState::DuplicateColumn,
                message: format!("column \"{column_name}\" specified more than once"),
            });
        }
        let mut not_null = false;
        let mut default = None;
        for option in &column.options {
            match &option.option {
                ColumnOption::NotNull => not_null = true,
                ColumnOption::Null => not_null = false,
                ColumnOption::Default(expr) => default = literal_text(expr)?,
                other => {
                    return Err(Error::unsupported(format!(
                        "column option {other} is not supported on event tables (column \"{column_name}\")"
                    )));
                }
            }
        }
        let mut def = ColumnDef::new(column_name, ColumnType::from_sql(&column.data_type)?, not_null);
        def.default = default;
        def.default_value()?;
        columns.push(def);
    }
    if columns.is_empty() {
        return Err(Error::invalid_input(SqlState::SyntaxError, "a table needs at least one column"));
    }

    let mut def = TableDef {
        id: 0,
        name,
        columns,
        event_time: None,
        hot_retention_micros: DEFAULT_HOT_RETENTION_MICROS,
        retention_micros: None,
        ingest_time: None,
        temporary: create.temporary,
        owner: crate::catalog::BOOTSTRAP_ROLE.into(),
    };
    let mut ingest_time = None;
    let options = match &create.table_options {
        CreateTableOptions::None => &[][..],
        CreateTableOptions::With(options) => options.as_slice(),
        _ => return Err(Error::unsupported("table options are given as WITH (name = value, ...)")),
    };
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(Error::invalid_input(SqlState::SyntaxError, format!("invalid table option {option}")));
        };
        let text = option_text(value)?;
        match ident_name(key).as_str() {
            "event_time" => {
                let index = def.column_index(&text).ok_or_else(|| Error::NotFound {
                    sqlstate: SqlState::UndefinedColumn,
                    message: format!("event_time column \"{text}\" does not exist"),
                })?;
                if !def.columns[index].ty.is_timestamp() {
                    return Err(Error::invalid_input(
                        SqlState::DatatypeMismatch,
                        format!(
                            "event_time column \"{text}\" must be TIMESTAMP or TIMESTAMPTZ, not {}",
                            def.columns[index].ty.sql_name()
                        ),
                    ));
                }
                def.columns[index].not_null = true;
                def.event_time = Some(index);
            }
            "ingest_time" => {
                let index = def.column_index(&text).ok_or_else(|| Error::NotFound {
                    sqlstate: SqlState::UndefinedColumn,
                    message: format!("ingest_time column \"{text}\" does not exist"),
                })?;
                ingest_time = Some((index, text));
            }
            "hot_retention" => {
                let micros = parse_interval_micros(&text)?;
                if micros <= 0 {
                    return Err(Error::invalid_input(
                        SqlState::InvalidParameterValue,
                        "hot_retention must be a positive interval",
                    ));
                }
                def.hot_retention_micros = micros;
            }
            "retention" => def.retention_micros = Some(retention_micros(&text)?),
            other => {
                return Err(Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!(
                        "unrecognized table option \"{other}\" (known: event_time, hot_retention, ingest_time, retention)"
                    ),
                ));
            }
        }
    }
    if def.retention_micros.is_some() && def.event_time.is_none() {
        return Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            "retention needs an event_time column: events expire by their event time",
        ));
    }
    if let Some((index, name)) = ingest_time {
        // Of the event-time column's type, so "known at T" compares like with like.
        let event_time = def.event_time_column().ok_or_else(|| {
            Error::invalid_input(SqlState::InvalidParameterValue, "ingest_time needs an event_time column")
        })?;
        if def.event_time == Some(index) || def.columns[index].ty != event_time.ty {
            return Err(Error::invalid_input(
                SqlState::DatatypeMismatch,
                format!(
                    "ingest_time column \"{name}\" must be a {} column other than the event-time column",
                    event_time.ty.sql_name()
                ),
            ));
        }
        if def.columns[index].not_null {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                format!("ingest_time column \"{name}\" cannot be NOT NULL: a commit fills the rows that leave it NULL"),
            ));
        }
        def.ingest_time = Some(index);
    }
    Ok(def)
}

/// A DEFAULT's value as text (None for `DEFAULT NULL`): literals only, since the default is
/// what every row stored before an added column existed reads, fixed once.
pub(super) fn literal_text(expr: &Expr) -> Result<Option<String>> {
    let not_literal = || {
        Error::unsupported(format!(
            "DEFAULT {expr} is not supported: a column default is a literal (number, string, boolean or NULL)"
        ))
    };
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Null => Ok(None),
            Value::Number(n, _) => Ok(Some(n.to_string())),
            Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            Value::Boolean(b) => Ok(Some(b.to_string())),
            _ => Err(not_literal()),
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr: inner } => match inner.as_ref() {
            Expr::Value(v) if matches!(v.value, Value::Number(..)) => Ok(Some(format!("-{}", v.value))),
            _ => Err(not_literal()),
        },
        Expr::Nested(inner) => literal_text(inner),
        Expr::Cast { expr: inner, .. } => literal_text(inner),
        _ => Err(not_literal()),
    }
}

/// The µs of a `retention` option: a positive interval.
pub(super) fn retention_micros(text: &str) -> Result<i64> {
    let micros = parse_interval_micros(text)?;
    if micros <= 0 {
        return Err(Error::invalid_input(SqlState::InvalidParameterValue, "retention must be a positive interval"));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_literals() {
        let parse = |sql: &str| {
            sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                .try_with_sql(sql)
                .unwrap()
                .parse_expr()
                .unwrap()
        };
        assert_eq!(literal_text(&parse("-5")).unwrap().as_deref(), Some("-5"));
        assert_eq!(literal_text(&parse("'x'")).unwrap().as_deref(), Some("x"));
        assert_eq!(literal_text(&parse("NULL")).unwrap(), None);
        assert!(literal_text(&parse("now()")).is_err());
    }
}
