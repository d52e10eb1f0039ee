//! What asofdb adds to `datafusion-pg-catalog`'s `pg_catalog` schema: the settings drivers
//! read from `pg_settings` (pgjdbc's `max_index_keys`), and `pg_constraint`'s key columns as
//! the `smallint[]` arrays PostgreSQL has (the crate holds them as text, so the ADBC driver's
//! `UNNEST(con.conkey)` fails), `pg_cursors` (the session's cursors), which the crate lacks,
//! and `pg_roles` from the catalog's roles. Every other table is the crate's own.

use std::any::Any;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Builder, Int32Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::cast::as_string_array;
use datafusion::error::{DataFusionError, Result};

use crate::catalog::{Catalog, RoleDef};

/// `pg_settings` rows: (name, setting). The crate's own row comes first.
const SETTINGS: [(&str, &str); 8] = [
    ("standard_conforming_strings", "on"),
    ("max_index_keys", "32"),
    ("max_identifier_length", "63"),
    ("server_version", "16.0"),
    ("server_version_num", "160000"),
    ("server_encoding", "UTF8"),
    ("integer_datetimes", "on"),
    ("block_size", "8192"),
];

/// `pg_constraint`'s columns that hold attribute numbers.
const KEY_COLUMNS: [&str; 3] = ["conkey", "confkey", "confdelsetcols"];

#[derive(Debug)]
pub struct PgCatalogExtension {
    inner: Arc<dyn SchemaProvider>,
    catalog: Arc<Catalog>,
}

impl PgCatalogExtension {
    pub fn new(inner: Arc<dyn SchemaProvider>, catalog: Arc<Catalog>) -> Self {
        Self { inner, catalog }
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogExtension {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case("pg_cursors") {
            return Ok(Some(Arc::new(super::pg_cursors::PgCursors::default())));
        }
        let Some(table) = self.inner.table(name).await? else { return Ok(None) };
        match name.to_ascii_lowercase().as_str() {
            "pg_settings" => Ok(Some(settings(table.schema())?)),
            "pg_roles" => Ok(Some(roles(table.schema(), &self.catalog)?)),
            "pg_constraint" => Ok(Some(constraints(table).await?)),
            _ => Ok(Some(table)),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("pg_cursors") || self.inner.table_exist(name)
    }
}

fn settings(schema: Arc<Schema>) -> Result<Arc<dyn TableProvider>> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "name" => Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|s| s.0))) as ArrayRef,
            "setting" | "reset_val" | "boot_val" => {
                Arc::new(StringArray::from_iter_values(SETTINGS.iter().map(|s| s.1)))
            }
            _ => new_null_array(field.data_type(), SETTINGS.len()),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `pg_roles`, in the crate's columns: one row per role, as PostgreSQL shows them (the
/// password always as `********`).
fn roles(schema: Arc<Schema>, catalog: &Catalog) -> Result<Arc<dyn TableProvider>> {
    let roles = catalog.roles();
    let flags =
        |f: fn(&RoleDef) -> bool| Arc::new(BooleanArray::from_iter(roles.iter().map(|r| Some(f(r))))) as ArrayRef;
    let columns = schema
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "rolname" => Arc::new(StringArray::from_iter_values(roles.iter().map(|r| r.name.as_str()))) as ArrayRef,
            "rolsuper" => flags(|r| r.superuser),
            "rolinherit" => flags(|_| true),
            "rolcreaterole" | "rolcreatedb" | "rolreplication" | "rolbypassrls" => flags(|r| r.superuser),
            "rolcanlogin" => flags(|r| r.login),
            "rolconnlimit" => Arc::new(Int32Array::from_iter_values(roles.iter().map(|r| r.connection_limit))),
            "rolpassword" => Arc::new(StringArray::from_iter_values(roles.iter().map(|_| "********"))),
            "oid" if field.data_type() == &DataType::Int32 => {
                Arc::new(Int32Array::from_iter_values(roles.iter().map(|r| r.oid as i32)))
            }
            "rolconfig" => {
                let mut config = ListBuilder::new(StringBuilder::new());
                for role in &roles {
                    if role.settings.is_empty() {
                        config.append(false);
                        continue;
                    }
                    for (name, value) in &role.settings {
                        config.values().append_value(format!("{name}={value}"));
                    }
                    config.append(true);
                }
                Arc::new(config.finish()) as ArrayRef
            }
            _ => new_null_array(field.data_type(), roles.len()),
        })
        .collect::<Vec<_>>();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

async fn constraints(table: Arc<dyn TableProvider>) -> Result<Arc<dyn TableProvider>> {
    let any: &dyn Any = table.as_ref();
    let memory = any
        .downcast_ref::<MemTable>()
        .ok_or_else(|| DataFusionError::Internal("pg_constraint is not held in memory".into()))?;
    let old = table.schema();
    let list = DataType::new_list(DataType::Int16, true);
    let fields: Vec<Field> = old
        .fields()
        .iter()
        .map(|f| {
            if KEY_COLUMNS.contains(&f.name().as_str()) && f.data_type() == &DataType::Utf8 {
                Field::new(f.name(), list.clone(), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut partitions = Vec::new();
    for partition in &memory.batches {
        let mut batches = Vec::new();
        for batch in partition.read().await.iter() {
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| if field.data_type() == &list { keys(column) } else { Ok(column.clone()) })
                .collect::<Result<Vec<_>>>()?;
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        partitions.push(batches);
    }
    Ok(Arc::new(MemTable::try_new(schema, partitions)?))
}

/// `"[1, 2]"` (or PostgreSQL's `"{1,2}"`) as a `smallint[]`.
fn keys(column: &ArrayRef) -> Result<ArrayRef> {
    let text = as_string_array(column)?;
    let mut out = ListBuilder::new(Int16Builder::new());
    for row in 0..text.len() {
        if text.is_null(row) {
            out.append(false);
            continue;
        }
        for value in text.value(row).trim_matches(|c| matches!(c, '[' | ']' | '{' | '}')).split(',') {
            let value = value.trim();
            if !value.is_empty() {
                let number = value
                    .parse::<i16>()
                    .map_err(|_| DataFusionError::Internal(format!("pg_constraint key \"{value}\"")))?;
                out.values().append_value(number);
            }
        }
        out.append(true);
    }
    Ok(Arc::new(out.finish()))
}
