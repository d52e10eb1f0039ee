//! The Parquet encoding of a cold file: one table's rows of one day, sorted by event time.
//!
//! Rows are sorted by event time with a stable sort, so rows sharing an event time keep their
//! arrival order (the tie-break features and ASOF joins rely on). Row groups carry min/max
//! statistics, so a time-bounded read skips row groups, as DuckDB or Spark would.

use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};
use crate::storage::blocks::event_times;

/// Rows per row group: small enough to prune by time, large enough to compress well.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

fn parquet_error(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("parquet: {e}"))
}

/// Rows gathered into one sorted slice for the Parquet writer: the sorted rows are never
/// materialized whole next to the input.
const WRITE_SLICE_ROWS: usize = 64 * 1024;

/// A cold file's bytes and what its manifest entry records of its rows.
pub struct EncodedFile {
    pub bytes: Vec<u8>,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// Writes one cold file, zstd-compressed Parquet, from rows that arrive in event-time order a
/// group at a time: only the encoded file and the group being added are held.
pub struct FileWriter {
    writer: ArrowWriter<Vec<u8>>,
    event_time: usize,
    rows: u64,
    /// Event times of the first and the last row written.
    span: Option<(i64, i64)>,
}

impl FileWriter {
    pub fn new(schema: SchemaRef, event_time: usize) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet_error)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by("asofdb".into())
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(props)).map_err(parquet_error)?;
        Ok(Self { writer, event_time, rows: 0, span: None })
    }

    /// Adds the rows of `batches`, sorted here by event time, all at or after every row added
    /// before. The sort is stable: rows sharing an event time keep the order of `batches` and
    /// their order within a batch.
    pub fn add_sorting(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let mut order: Vec<(i64, u32, u32)> = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
        for (b, batch) in batches.iter().enumerate() {
            let times = event_times(batch.column(self.event_time))?;
            order.extend(times.values().iter().enumerate().map(|(row, t)| (*t, b as u32, row as u32)));
        }
        if !order.is_sorted_by_key(|(t, _, _)| *t) {
            order.sort_by_key(|(t, _, _)| *t);
        }
        let inputs: Vec<&RecordBatch> = batches.iter().collect();
        let mut indices = Vec::with_capacity(WRITE_SLICE_ROWS);
        for slice in order.chunks(WRITE_SLICE_ROWS) {
            indices.clear();
            indices.extend(slice.iter().map(|(_, b, row)| (*b as usize, *row as usize)));
            self.add_sorted(&interleave_record_batch(&inputs, &indices)?)?;
        }
        Ok(())
    }

    /// Adds `batch`, whose rows are in event-time order and at or after every row added before.
    pub fn add_sorted(&mut self, batch: &RecordBatch) -> Result<()> {
        let times = event_times(batch.column(self.event_time))?;
        let (Some(first), Some(last)) = (times.values().first(), times.values().last()) else { return Ok(()) };
        if self.span.is_some_and(|(_, max)| *first < max) {
            return Err(Error::internal("cold file rows added out of event-time order"));
        }
        self.span = Some((self.span.map_or(*first, |(min, _)| min), *last));
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).map_err(parquet_error)
    }

    /// Whether no row was added yet.
    pub fn is_empty(&self) -> bool {
        self.span.is_none()
    }

    /// The file's bytes; an error if no row was added.
    pub fn finish(self) -> Result<EncodedFile> {
        let Some((min_time, max_time)) = self.span else {
            return Err(Error::internal("a cold file needs at least one row"));
        };
        let bytes = self.writer.into_inner().map_err(parquet_error)?;
        Ok(EncodedFile { bytes, rows: self.rows, min_time, max_time })
    }
}

/// Reads all of a cold file but the rows at the positions `erased` lists (sorted), a slice of
/// rows at a time (in the file's event-time order): its schema and its batches.
pub fn read(bytes: Bytes, erased: &[u32]) -> Result<(SchemaRef, impl Iterator<Item = Result<RecordBatch>>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let groups: Vec<usize> = (0..builder.metadata().num_row_groups()).collect();
    let builder = match selection(builder.metadata(), &groups, erased) {
        Some(kept) => builder.with_row_selection(kept),
        None => builder,
    };
    let reader = builder.with_batch_size(WRITE_SLICE_ROWS).build().map_err(parquet_error)?;
    Ok((reader.schema(), reader.map(|b| b.map_err(parquet_error))))
}

/// Reads every row of a cold file, erased or not, with only the stored columns among
/// `columns` (table column numbers, ascending; all if `None`): the number of columns the file
/// stores, and batches whose rows are the file's in order (the `i`-th row read is row `i`).
pub fn read_columns(
    bytes: Bytes,
    columns: Option<&[usize]>,
) -> Result<(usize, impl Iterator<Item = Result<RecordBatch>>)> {
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let stored = builder.schema().fields().len();
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied().filter(|c| *c < stored));
        builder = builder.with_projection(mask);
    }
    let reader = builder.with_batch_size(WRITE_SLICE_ROWS).build().map_err(parquet_error)?;
    Ok((stored, reader.map(|b| b.map_err(parquet_error))))
}

/// Decodes a cold file's row groups that may hold event times in `min..=max` (µs), without
/// the rows at the positions `erased` lists (sorted), and with only the stored columns among
/// `columns` if given (see [`read_columns`]): the number of columns the file stores, and the
/// batches.
pub fn decode(
    bytes: Bytes,
    event_time: Option<usize>,
    (min, max): (i64, i64),
    erased: &[u32],
    columns: Option<&[usize]>,
) -> Result<(usize, Vec<RecordBatch>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let stored = builder.schema().fields().len();
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
    let kept = selection(builder.metadata(), &groups, erased);
    let mut builder = builder.with_row_groups(groups);
    if let Some(kept) = kept {
        builder = builder.with_row_selection(kept);
    }
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied().filter(|c| *c < stored));
        builder = builder.with_projection(mask);
    }
    let reader = builder.with_batch_size(64 * 1024).build().map_err(parquet_error)?;
    Ok((stored, reader.map(|b| b.map_err(parquet_error)).collect::<Result<_>>()?))
}

/// The rows of row groups `groups` (ascending) of a file that are not at the positions
/// `erased` lists (sorted; file row numbers), as a selection over those groups' rows; `None`
/// when no row is erased.
fn selection(meta: &ParquetMetaData, groups: &[usize], erased: &[u32]) -> Option<RowSelection> {
    (!erased.is_empty()).then(|| select(meta, groups, erased, false))
}

/// A selection over the rows of row groups `groups` (ascending) of a file: the rows at the
/// positions `listed` gives (sorted; file row numbers) if `keep`, else all the others.
fn select(meta: &ParquetMetaData, groups: &[usize], listed: &[u32], keep: bool) -> RowSelection {
    type Run = fn(usize) -> RowSelector;
    let (listed_run, other_run): (Run, Run) = match keep {
        true => (RowSelector::select, RowSelector::skip),
        false => (RowSelector::skip, RowSelector::select),
    };
    let mut starts = Vec::with_capacity(meta.num_row_groups());
    let mut at = 0u64;
    for g in 0..meta.num_row_groups() {
        starts.push(at);
        at += meta.row_group(g).num_rows().max(0) as u64;
    }
    debug_assert!(listed.windows(2).all(|w| w[0] < w[1]), "row positions must be strictly increasing");
    let mut selectors = Vec::new();
    for g in groups {
        let (start, end) = (starts[*g], starts[*g] + meta.row_group(*g).num_rows().max(0) as u64);
        let first = listed.partition_point(|p| u64::from(*p) < start);
        let mut next = start;
        for p in listed[first..].iter().map(|p| u64::from(*p)).take_while(|p| *p < end) {
            if p > next {
                selectors.push(other_run((p - next) as usize));
            }
            selectors.push(listed_run(1));
            next = p + 1;
        }
        if end > next {
            selectors.push(other_run((end - next) as usize));
        }
    }
    RowSelection::from(selectors)
}

/// Reads the rows of a cold file at the positions `rows` lists (sorted; file row numbers),
/// with only the stored columns among `columns` (as [`read_columns`]): the number of columns
/// the file stores, and the batches. The other rows are skipped, not decoded into batches
/// (the file's bytes are all in memory: `ColdStore::get` reads the whole object).
pub fn read_rows(bytes: Bytes, rows: &[u32], columns: Option<&[usize]>) -> Result<(usize, Vec<RecordBatch>)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let stored = builder.schema().fields().len();
    let groups: Vec<usize> = (0..builder.metadata().num_row_groups()).collect();
    let wanted = select(builder.metadata(), &groups, rows, true);
    let mut builder = builder.with_row_selection(wanted);
    if let Some(columns) = columns {
        let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied().filter(|c| *c < stored));
        builder = builder.with_projection(mask);
    }
    let reader = builder.with_batch_size(WRITE_SLICE_ROWS).build().map_err(parquet_error)?;
    Ok((stored, reader.map(|b| b.map_err(parquet_error)).collect::<Result<_>>()?))
}

/// The schema check of a decoded batch against the table's (cold files never change schema,
/// but a file edited by hand should fail loudly rather than return wrong columns).
pub fn conform(batch: RecordBatch, schema: &arrow::datatypes::SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != schema.fields().len() {
        return Err(Error::Storage("cold file does not match its table's columns".into()));
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())?)
}
