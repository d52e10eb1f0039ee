//! ALTER TABLE: `ADD [COLUMN] [IF NOT EXISTS] name type [NULL | NOT NULL] [DEFAULT literal]`,
//! and `SET (retention = '...')` / `RESET (retention)`, the forms event tables take (their
//! history is immutable; other forms are 0A000).

use sqlparser::ast::{AlterTable, AlterTableOperation, ColumnOption, SqlOption};

use crate::catalog::ColumnDef;
use crate::error::{Error, Result};
use crate::sql::names::{ident_name, option_text, table_name};
use crate::sql::types::ColumnType;

use super::Database;
use super::create_table::literal_text;

/// Applies `alter`; returns the notices it raises (a column that exists, with IF NOT EXISTS).
pub async fn alter_table(db: &Database, alter: &AlterTable) -> Result<Vec<String>> {
    let name = table_name(&alter.name)?;
    if db.catalog.table(&name).is_none() {
        if alter.if_exists {
            return Ok(vec![format!("relation \"{name}\" does not exist, skipping")]);
        }
        return Err(Error::undefined_table(&name));
    }
    let (if_not_exists, column_def) = match alter.operations.as_slice() {
        [AlterTableOperation::AddColumn { if_not_exists, column_def, column_position: None, .. }] => {
            (if_not_exists, column_def)
        }
        [AlterTableOperation::SetOptionsParens { options }] => return set_options(db, &name, options).await,
        _ => {
            let form = alter.operations.first().map_or("ALTER TABLE".to_string(), |op| op.to_string());
            return Err(Error::unsupported(format!(
                "ALTER TABLE {form} is not supported: event tables take ADD COLUMN (one column per statement) and SET (retention = ...)"
            )));
        }
    };
    let column_name = ident_name(&column_def.name);
    let mut column = ColumnDef::new(column_name.clone(), ColumnType::from_sql(&column_def.data_type)?, false);
    for option in &column_def.options {
        match &option.option {
            ColumnOption::NotNull => column.not_null = true,
            ColumnOption::Null => column.not_null = false,
            ColumnOption::Default(expr) => column.default = literal_text(expr)?,
            other => {
                return Err(Error::unsupported(format!(
                    "column option {other} is not supported on event tables (column \"{column_name}\")"
                )));
            }
        }
    }
    // No write commits meanwhile: one conformed before the change and committed after it is
    // widened at its commit (`Database::commit`), never half-way through this.
    let _no_commits = db.commit_gate.write().await;
    let store = db.catalog.store().clone();
    let has_rows = |def: &crate::catalog::TableDef| -> Result<bool> {
        Ok(store.scan(def.scan_table(), (i64::MIN, i64::MAX), (0, 1)).next().transpose()?.is_some())
    };
    if db.catalog.add_column(&name, column, *if_not_exists, has_rows).await? {
        Ok(Vec::new())
    } else {
        Ok(vec![format!("column \"{column_name}\" of relation \"{name}\" already exists, skipping")])
    }
}

/// `SET (retention = '...')`; a NULL value (`RESET (retention)`) removes it.
async fn set_options(db: &Database, name: &str, options: &[SqlOption]) -> Result<Vec<String>> {
    let [SqlOption::KeyValue { key, value }] = options else {
        return Err(Error::unsupported("ALTER TABLE SET takes one option: retention"));
    };
    match ident_name(key).as_str() {
        "retention" => {
            let is_null = matches!(value, sqlparser::ast::Expr::Value(v) if v.value == sqlparser::ast::Value::Null);
            let retention = match is_null {
                true => None,
                false => Some(super::create_table::retention_micros(&option_text(value)?)?),
            };
            let def = db.catalog.require_table(name)?;
            if retention.is_some() && def.event_time.is_none() {
                return Err(Error::invalid_input(
                    crate::error::SqlState::InvalidParameterValue,
                    "retention needs an event_time column: events expire by their event time",
                ));
            }
            db.catalog.set_retention(name, retention).await?;
            Ok(Vec::new())
        }
        other => Err(Error::unsupported(format!(
            "ALTER TABLE SET ({other}) is not supported: of a table's options only retention changes after CREATE TABLE"
        ))),
    }
}
