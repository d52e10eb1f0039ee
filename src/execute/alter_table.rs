//! ALTER TABLE: `ADD [COLUMN] [IF NOT EXISTS] name type [NULL | NOT NULL] [DEFAULT literal]`,
//! the one form event tables take (their history is immutable; other forms are 0A000).

use sqlparser::ast::{AlterTable, AlterTableOperation, ColumnOption};

use crate::catalog::ColumnDef;
use crate::error::{Error, Result};
use crate::sql::names::{ident_name, table_name};
use crate::sql::types::ColumnType;

use super::Database;
use super::create_table::literal_text;

/// Applies `alter`; returns the notices it raises (a column that exists, with IF NOT EXISTS).
pub async fn alter_table(db: &Database, alter: &AlterTable) -> Result<Vec<String>> {
    let name = table_name(&alter.name)?;
    let [AlterTableOperation::AddColumn { if_not_exists, column_def, column_position: None, .. }] =
        alter.operations.as_slice()
    else {
        let form = alter.operations.first().map_or("ALTER TABLE".to_string(), |op| op.to_string());
        return Err(Error::unsupported(format!(
            "ALTER TABLE {form} is not supported: event tables take only ADD COLUMN, one column per statement"
        )));
    };
    if db.catalog.table(&name).is_none() {
        if alter.if_exists {
            return Ok(vec![format!("relation \"{name}\" does not exist, skipping")]);
        }
        return Err(Error::undefined_table(&name));
    }
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
