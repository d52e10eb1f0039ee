//! CREATE TABLE: validates columns and the `event_time` / `hot_retention` options.

use sqlparser::ast::{ColumnOption, CreateTable, CreateTableOptions, OnCommit, SqlOption};

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
        for option in &column.options {
            match &option.option {
                ColumnOption::NotNull => not_null = true,
                ColumnOption::Null => not_null = false,
                other => {
                    return Err(Error::unsupported(format!(
                        "column option {other} is not supported on event tables (column \"{column_name}\")"
                    )));
                }
            }
        }
        columns.push(ColumnDef::new(column_name, ColumnType::from_sql(&column.data_type)?, not_null));
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
        temporary: create.temporary,
    };
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
            other => {
                return Err(Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!("unrecognized table option \"{other}\" (known: event_time, hot_retention)"),
                ));
            }
        }
    }
    Ok(def)
}
