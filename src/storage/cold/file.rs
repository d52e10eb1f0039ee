//! The Parquet encoding of a cold file: one table's rows of one day, sorted by event time.
//!
//! Rows are sorted by event time with a stable sort, so rows sharing an event time keep their
//! arrival order (the tie-break features and ASOF joins rely on). Row groups carry min/max
//! statistics, so a time-bounded read skips row groups, as DuckDB or Spark would.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::storage::blocks::event_times;

/// Rows per row group: small enough to prune by time, large enough to compress well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn parquet_error(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("parquet: {e}"))
}

/// Sorts `batch` by its event-time column, stably.
pub fn sort_by_time(batch: &RecordBatch, event_time: usize) -> Result<RecordBatch> {
    let times = event_times(batch.column(event_time))?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by_key(|r| times.value(*r as usize));
    if order.windows(2).all(|w| w[0] < w[1]) {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &UInt32Array::from(order))?)
}

/// Encodes sorted rows as a zstd-compressed Parquet file.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet_error)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by("asofdb".into())
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).map_err(parquet_error)?;
    writer.write(batch).map_err(parquet_error)?;
    writer.close().map_err(parquet_error)?;
    Ok(out)
}

/// Decodes a cold file's row groups that may hold event times in `min..=max` (µs).
pub fn decode(bytes: Bytes, event_time: Option<usize>, (min, max): (i64, i64)) -> Result<Vec<RecordBatch>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let groups: Vec<usize> = (0..builder.metadata().num_row_groups())
        .filter(|g| {
            let Some(col) = event_time else { return true };
            let Some(Statistics::Int64(stats)) = builder.metadata().row_group(*g).column(col).statistics() else {
                return true;
            };
            match (stats.min_opt(), stats.max_opt()) {
                (Some(lo), Some(hi)) => *hi >= min && *lo <= max,
                _ => true,
            }
        })
        .collect();
    let reader = builder.with_row_groups(groups).with_batch_size(64 * 1024).build().map_err(parquet_error)?;
    reader.map(|b| b.map_err(parquet_error)).collect()
}

/// The schema check of a decoded batch against the table's (cold files never change schema,
/// but a file edited by hand should fail loudly rather than return wrong columns).
pub fn conform(batch: RecordBatch, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Storage("cold file does not match its table's columns".into()));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?)
}
