//! The definition of an event table: columns, event-time column, retention.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::sql::types::ColumnType;

/// `hot_retention` when `CREATE TABLE` does not say: one day.
pub const DEFAULT_HOT_RETENTION_MICROS: i64 = 86_400_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// Stable identity in storage keys; never reused while the table exists.
    pub id: u64,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Index of the event-time column (`WITH (event_time = ...)`); it is never NULL.
    pub event_time: Option<usize>,
    /// Events older than the watermark minus this many µs belong to the cold tier.
    pub hot_retention_micros: i64,
    /// CREATE TEMPORARY TABLE: dropped when the session that made it ends (or at start-up,
    /// if the server stopped first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

impl TableDef {
    /// The Arrow schema rows of this table are stored in.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), !c.not_null)).collect::<Vec<_>>(),
        ))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// What a storage scan needs to know about this table.
    pub fn scan_table(&self) -> crate::storage::ScanTable {
        crate::storage::ScanTable { id: self.id, event_time: self.event_time }
    }

    pub fn event_time_column(&self) -> Option<&ColumnDef> {
        self.event_time.map(|i| &self.columns[i])
    }
}
