//! The definition of an event table: columns, event-time column, retention.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::sql::types::ColumnType;

/// `hot_retention` when `CREATE TABLE` does not say: one day.
pub const DEFAULT_HOT_RETENTION_MICROS: i64 = 86_400_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    /// `DEFAULT` (of `ALTER TABLE ... ADD COLUMN`) as the value's text; rows that give no
    /// value, and rows stored before the column was added, read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl ColumnDef {
    pub fn new(name: impl Into<String>, ty: ColumnType, not_null: bool) -> Self {
        ColumnDef { name: name.into(), ty, not_null, default: None }
    }

    /// The column's default in its type (a typed NULL without one).
    pub fn default_value(&self) -> crate::error::Result<ScalarValue> {
        let ty = self.ty.arrow_type();
        if let (ColumnType::Varchar { max_len: Some(n) }, Some(text)) = (self.ty, &self.default)
            && text.chars().count() > n as usize
        {
            return Err(crate::error::Error::invalid_value(
                crate::error::SqlState::StringDataRightTruncation,
                format!("value too long for type character varying({n})"),
            ));
        }
        match &self.default {
            None => Ok(ScalarValue::try_from(&ty)?),
            Some(text) => ScalarValue::Utf8(Some(text.clone())).cast_to(&ty).map_err(|_| {
                crate::error::Error::invalid_value(
                    crate::error::SqlState::InvalidTextRepresentation,
                    format!("invalid input syntax for type {}: \"{text}\"", self.ty.sql_name()),
                )
            }),
        }
    }
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
    /// `WITH (retention = ...)`: events older than the watermark minus this many µs are
    /// erased from both tiers by the tiering passes (`execute::retention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_micros: Option<i64>,
    /// Index of the ingest-time column (`WITH (ingest_time = ...)`): when each row became
    /// known; a commit fills it where a row gives none (`storage::ingest_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_time: Option<usize>,
    /// CREATE TEMPORARY TABLE: dropped when the session that made it ends (or at start-up,
    /// if the server stopped first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
    /// The role that created it; tables made before roles belong to the bootstrap superuser.
    #[serde(default = "super::role::bootstrap_name")]
    pub owner: String,
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

    /// What reads widen rows stored before a column was added to (`storage::TableColumns`).
    pub fn stored_columns(&self) -> crate::error::Result<crate::storage::TableColumns> {
        let defaults = self.columns.iter().map(ColumnDef::default_value).collect::<crate::error::Result<_>>()?;
        Ok(crate::storage::TableColumns { schema: self.schema(), defaults, ingest_time: self.ingest_time })
    }
}
