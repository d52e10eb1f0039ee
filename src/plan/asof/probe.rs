//! What both ASOF operators share: probe times, plan properties, output assembly.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{Partitioning, PlanProperties};

use crate::error::{Error, SqlState};

/// One side's part of an ASOF match: its key expressions (in key order) and its time.
#[derive(Debug, Clone)]
pub struct JoinSide {
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub time: Arc<dyn PhysicalExpr>,
    /// The left row's K of a known-at join against a feature, and whether it is strict.
    pub known: Option<(Arc<dyn PhysicalExpr>, bool)>,
}

impl JoinSide {
    /// Every expression of the side, keys first (for `ExecutionPlan::apply_expressions`).
    pub fn expressions(&self) -> impl Iterator<Item = &Arc<dyn PhysicalExpr>> {
        self.keys.iter().chain([&self.time]).chain(self.known.iter().map(|(k, _)| k))
    }
}

/// The properties of an ASOF join's output, partitioned as `partitioning` (its left input's).
pub fn properties(partitioning: Partitioning, schema: SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        partitioning,
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// `expr` over `batch` as an array of `data_type` (key values are compared in the right
/// side's types).
pub fn evaluate_as(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch, data_type: &DataType) -> Result<ArrayRef> {
    let array = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    if array.data_type() == data_type { Ok(array) } else { Ok(cast(&array, data_type)?) }
}

/// Times as ordered 64-bit keys: µs since the epoch for timestamps (any unit) and dates, the
/// value of a BIGINT, and an order-preserving image of a DOUBLE PRECISION (the planner casts
/// both sides' times to one of these, `plan::asof::planner`).
pub fn micros(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<TimestampMicrosecondArray> {
    let array = expr.evaluate(batch)?.into_array(batch.num_rows())?;
    if let Some(ints) = array.as_any().downcast_ref::<arrow::array::Int64Array>() {
        return Ok(TimestampMicrosecondArray::new(ints.values().clone(), ints.nulls().cloned()));
    }
    if let Some(floats) = array.as_any().downcast_ref::<arrow::array::Float64Array>() {
        return Ok(floats.iter().map(|f| f.map(ordered_float)).collect());
    }
    let not_a_time = || {
        external(Error::invalid_input(
            SqlState::DatatypeMismatch,
            format!("ASOF JOIN time values must be timestamps or dates, not {}", array.data_type()),
        ))
    };
    if !matches!(array.data_type(), DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null) {
        return Err(not_a_time());
    }
    let cast = cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, None)).map_err(|_| not_a_time())?;
    cast.as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("timestamp cast".into()))
}

/// The output batch of `rows` rows from its columns, cast to the schema's types where the
/// planner coerced them.
pub fn assemble(schema: &SchemaRef, rows: usize, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { cast(&c, f.data_type()) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

/// The left rows (only `keep` of them, if given) followed by `right` columns.
pub fn left_then_right(left: &RecordBatch, keep: Option<&UInt32Array>, right: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
    let mut columns: Vec<ArrayRef> = match keep {
        Some(keep) => left.columns().iter().map(|c| take(c, keep, None)).collect::<std::result::Result<_, _>>()?,
        None => left.columns().to_vec(),
    };
    columns.extend(right);
    Ok(columns)
}

pub fn external(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// An i64 that orders as the float does (-0.0 as 0.0; NaN after +infinity, as PostgreSQL and
/// DuckDB sort it).
fn ordered_float(f: f64) -> i64 {
    let f = if f == 0.0 {
        0.0
    } else if f.is_nan() {
        f64::NAN
    } else {
        f
    };
    let bits = f.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::ordered_float;

    #[test]
    fn float_keys_keep_the_order() {
        let values =
            [f64::NEG_INFINITY, -1e300, -2.5, -1.0, -1e-300, 0.0, 1e-300, 1.0, 2.5, 1e300, f64::INFINITY, f64::NAN];
        for pair in values.windows(2) {
            assert!(ordered_float(pair[0]) < ordered_float(pair[1]), "{pair:?}");
        }
        assert_eq!(ordered_float(-0.0), ordered_float(0.0));
    }
}
