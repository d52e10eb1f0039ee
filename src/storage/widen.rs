//! Rows stored before a column was added by `ALTER TABLE`, read with that column and its default.
//!
//! Stored rows are never rewritten: a hot value or cold file keeps the columns its table had
//! when it was written, and every read of either tier (scans, moves to the cold tier) passes
//! it through [`TableColumns::widen`], which appends each missing trailing column holding its
//! default (NULL without one). The catalog tells the store each table's columns
//! (`EventStore::set_columns`) when it opens, creates or alters a table.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};

/// A table's current columns as reads return them, with the value rows written before a
/// column existed read for it.
#[derive(Debug, Clone)]
pub struct TableColumns {
    pub schema: SchemaRef,
    /// One per column of `schema`: its default, or a typed NULL.
    pub defaults: Vec<ScalarValue>,
    /// The `ingest_time` column, whose NULLs a commit fills (`ingest_time`).
    pub ingest_time: Option<usize>,
}

impl TableColumns {
    /// `batch` with the columns added after it was stored (a batch with all of them is returned
    /// as it is).
    pub fn widen(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let (have, want) = (batch.num_columns(), self.schema.fields().len());
        if have >= want {
            return Ok(batch);
        }
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for (default, field) in self.defaults[have..].iter().zip(&self.schema.fields()[have..]) {
            if default.is_null() && !field.is_nullable() && rows > 0 {
                // Rows written before a NOT NULL column without a default was added.
                return Err(Error::NullViolation(format!(
                    "column \"{}\" contains null values: these rows were written before it was added",
                    field.name()
                )));
            }
            columns.push(default.to_array_of_size(rows)?);
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Storage(format!("stored rows do not fit their table's columns: {e}")))
    }
}

impl TableColumns {
    /// Rows read with only some columns (`read`: table column numbers, ascending) from a store
    /// holding the first `stored` columns, as a batch of all the table's columns: those read,
    /// those added since (among `read`) at their defaults, and NULL in every other, under the
    /// table's schema with every column nullable. Readers of such a batch use only `read`.
    pub fn sparse(&self, projected: RecordBatch, read: &[usize], stored: usize) -> Result<RecordBatch> {
        let rows = projected.num_rows();
        let mut from_store = projected.columns().iter();
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in self.schema.fields().iter().enumerate() {
            let column = match (read.binary_search(&i).is_ok(), i < stored) {
                (true, true) => from_store
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::Storage("stored rows lack a column they should hold".into()))?,
                (true, false) => self.defaults[i].to_array_of_size(rows)?,
                (false, _) => arrow::array::new_null_array(field.data_type(), rows),
            };
            columns.push(column);
        }
        let fields: Vec<_> = self.schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(fields, self.schema.metadata().clone()));
        RecordBatch::try_new_with_options(
            schema,
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| Error::Storage(format!("stored rows do not fit their table's columns: {e}")))
    }
}

/// Widens `batch` if the table's columns are known.
pub(super) fn widen(columns: &Option<Arc<TableColumns>>, batch: RecordBatch) -> Result<RecordBatch> {
    match columns {
        Some(columns) => columns.widen(batch),
        None => Ok(batch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn older_rows_read_the_default_and_newer_ones_are_untouched() {
        let old = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let new = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, false),
            Field::new("c", DataType::Utf8, true),
        ]));
        let columns = TableColumns {
            schema: new.clone(),
            defaults: vec![ScalarValue::Int64(None), ScalarValue::Int64(Some(7)), ScalarValue::Utf8(None)],
            ingest_time: None,
        };
        let batch = RecordBatch::try_new(old, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        let wide = columns.widen(batch).unwrap();
        assert_eq!(wide.schema(), new);
        let b = wide.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(b.values().to_vec(), vec![7, 7]);
        assert_eq!(wide.column(2).null_count(), 2);
        assert_eq!(columns.widen(wide.clone()).unwrap(), wide);
    }
}
