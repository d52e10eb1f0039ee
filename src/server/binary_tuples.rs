//! Binary COPY tuples written column by column for the common column types: a batch's rows
//! go into one buffer, each value as PostgreSQL's send function writes it, and each tuple is
//! a slice of that buffer. Other types take the general encoder (`encode::encode_with`).

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use bytes::{BufMut, Bytes, BytesMut};

use crate::value::infinite::infinite_text;

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for timestamps.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates.
const PG_EPOCH_DAYS: i32 = 10_957;

/// One column, typed once per batch.
enum Column<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    /// Sent as bigint (`encode::pg_fields`), the largest values as `i64::MAX`.
    UInt64(&'a UInt64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Date(&'a Date32Array),
    /// TIMESTAMP and TIMESTAMPTZ alike: microseconds since 2000 (infinities as they are stored).
    Timestamp(&'a TimestampMicrosecondArray),
    Text(&'a StringArray),
    TextView(&'a StringViewArray),
}

/// Whether every column of `schema` has a fast path here: then [`tuples`] encodes its batches.
pub fn supported(schema: &Schema) -> bool {
    schema.fields().iter().all(|f| {
        matches!(
            f.data_type(),
            DataType::Boolean
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt64
                | DataType::Float32
                | DataType::Float64
                | DataType::Date32
                | DataType::Timestamp(TimeUnit::Microsecond, _)
                | DataType::Utf8
                | DataType::Utf8View
        )
    })
}

fn typed(column: &ArrayRef) -> Option<Column<'_>> {
    Some(match column.data_type() {
        DataType::Boolean => Column::Bool(column.as_boolean()),
        DataType::Int16 => Column::Int16(column.as_primitive()),
        DataType::Int32 => Column::Int32(column.as_primitive()),
        DataType::Int64 => Column::Int64(column.as_primitive()),
        DataType::UInt64 => Column::UInt64(column.as_primitive()),
        DataType::Float32 => Column::Float32(column.as_primitive()),
        DataType::Float64 => Column::Float64(column.as_primitive()),
        DataType::Date32 => Column::Date(column.as_primitive()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Column::Timestamp(column.as_primitive()),
        DataType::Utf8 => Column::Text(column.as_string()),
        DataType::Utf8View => Column::TextView(column.as_string_view()),
        _ => return None,
    })
}

/// The rows of `batch` as binary COPY tuples (field count, then each field's length and
/// bytes, -1 for NULL), `header` before the first; `None` unless [`supported`].
pub fn tuples(batch: &RecordBatch, header: Option<&[u8]>) -> Option<Vec<Bytes>> {
    let columns: Vec<Column> = batch.columns().iter().map(typed).collect::<Option<_>>()?;
    let rows = batch.num_rows();
    let mut buffer = BytesMut::with_capacity(header.map_or(0, <[u8]>::len) + estimated_size(batch, &columns));
    let mut ends = Vec::with_capacity(rows);
    if let Some(header) = header {
        buffer.put_slice(header);
    }
    for row in 0..rows {
        buffer.put_i16(columns.len() as i16);
        for column in &columns {
            put_value(&mut buffer, column, row);
        }
        ends.push(buffer.len());
    }
    let mut buffer = buffer.freeze();
    let mut start = 0;
    Some(
        ends.into_iter()
            .map(|end| {
                let tuple = buffer.split_to(end - start);
                start = end;
                tuple
            })
            .collect(),
    )
}

/// Bytes the tuples take: a field count per row, a length per value, and the values.
fn estimated_size(batch: &RecordBatch, columns: &[Column]) -> usize {
    let rows = batch.num_rows();
    let values: usize = columns
        .iter()
        .map(|c| match c {
            Column::Bool(_) => rows,
            Column::Int16(_) => 2 * rows,
            Column::Int32(_) | Column::Float32(_) | Column::Date(_) => 4 * rows,
            Column::Int64(_) | Column::UInt64(_) | Column::Float64(_) | Column::Timestamp(_) => 8 * rows,
            Column::Text(texts) => texts.value_data().len(),
            Column::TextView(texts) => texts.total_buffer_bytes_used() + 12 * rows,
        })
        .sum();
    rows * (2 + 4 * columns.len()) + values
}

fn put_value(out: &mut BytesMut, column: &Column, row: usize) {
    macro_rules! fixed {
        ($array:expr, $width:expr, |$v:ident| $put:expr) => {{
            if $array.is_null(row) {
                out.put_i32(-1);
            } else {
                let $v = $array.value(row);
                out.put_i32($width);
                $put;
            }
        }};
    }
    match column {
        Column::Bool(a) => fixed!(a, 1, |v| out.put_u8(u8::from(v))),
        Column::Int16(a) => fixed!(a, 2, |v| out.put_i16(v)),
        Column::Int32(a) => fixed!(a, 4, |v| out.put_i32(v)),
        Column::Int64(a) => fixed!(a, 8, |v| out.put_i64(v)),
        Column::UInt64(a) => fixed!(a, 8, |v| out.put_i64(i64::try_from(v).unwrap_or(i64::MAX))),
        Column::Float32(a) => fixed!(a, 4, |v| out.put_f32(v)),
        Column::Float64(a) => fixed!(a, 8, |v| out.put_f64(v)),
        Column::Date(a) => fixed!(a, 4, |v| out.put_i32(v.saturating_sub(PG_EPOCH_DAYS))),
        Column::Timestamp(a) => fixed!(a, 8, |v| out.put_i64(pg_timestamp(v))),
        Column::Text(a) => fixed!(a, a.value(row).len() as i32, |v| out.put_slice(v.as_bytes())),
        Column::TextView(a) => fixed!(a, a.value(row).len() as i32, |v| out.put_slice(v.as_bytes())),
    }
}

/// Microseconds since 1970 as PostgreSQL sends a timestamp: since 2000, with `infinity` and
/// `-infinity` as the greatest and least values, as asofdb stores them.
fn pg_timestamp(micros: i64) -> i64 {
    if infinite_text(micros).is_some() { micros } else { micros.saturating_sub(PG_EPOCH_MICROS) }
}
