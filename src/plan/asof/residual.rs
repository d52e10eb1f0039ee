//! The conditions of an ASOF join across both sides besides its keys and time, evaluated on
//! pairs of a left row and a candidate right row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array, new_null_array};
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;

/// A condition over the left columns then the right ones.
#[derive(Debug)]
pub struct Residual {
    expr: Arc<dyn PhysicalExpr>,
    /// The left input's columns then the right input's, all nullable (a right column the
    /// condition does not read is NULL in the pairs).
    pairs: SchemaRef,
}

impl Residual {
    pub fn new(expr: Arc<dyn PhysicalExpr>, left: &Schema, right: &Schema) -> Self {
        let fields: Vec<Field> =
            left.fields().iter().chain(right.fields()).map(|f| f.as_ref().clone().with_nullable(true)).collect();
        Self { expr, pairs: Arc::new(Schema::new(fields)) }
    }

    pub fn expr(&self) -> &Arc<dyn PhysicalExpr> {
        &self.expr
    }

    /// The right columns the condition reads, given the left side's width.
    pub fn right_columns(&self, left_width: usize) -> impl Iterator<Item = usize> {
        collect_columns(&self.expr).into_iter().filter_map(move |c| c.index().checked_sub(left_width))
    }

    /// Whether each pair (`left` at `left_rows`, the right columns at `right_rows`) passes:
    /// true only where the condition is true (not NULL).
    pub fn passes(
        &self,
        left: &RecordBatch,
        left_rows: &UInt32Array,
        right: &[Option<ArrayRef>],
        right_rows: &UInt32Array,
    ) -> Result<Vec<bool>> {
        let n = left_rows.len();
        let mut columns = Vec::with_capacity(self.pairs.fields().len());
        for column in left.columns() {
            columns.push(take(column, left_rows, None)?);
        }
        for (r, field) in self.pairs.fields().iter().skip(left.num_columns()).enumerate() {
            columns.push(match right.get(r) {
                Some(Some(column)) => take(column, right_rows, None)?,
                _ => new_null_array(field.data_type(), n),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let pairs = RecordBatch::try_new_with_options(self.pairs.clone(), columns, &options)?;
        let passed = self.expr.evaluate(&pairs)?.into_array(n)?;
        let passed = passed.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
            DataFusionError::Internal(format!("an ASOF JOIN condition gave {}, not boolean", passed.data_type()))
        })?;
        Ok((0..n).map(|i| passed.is_valid(i) && passed.value(i)).collect())
    }
}
