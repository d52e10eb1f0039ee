//! Binary COPY tuples written column by column for the common column types: a batch's rows
//! go into a few reused buffers (`copy_frames`), each value as PostgreSQL's send function
//! writes it. Other types take the general encoder (`encode::encode_with`).

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use bytes::{BufMut, BytesMut};
use pgwire::messages::copy::CopyData;

use super::copy_frames::{Buffers, Column, FramedRows, typed};
use crate::value::infinite::infinite_text;

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for timestamps.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch for dates.
const PG_EPOCH_DAYS: i32 = 10_957;

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

/// The rows of `batch` as binary COPY tuples (field count, then each field's length and
/// bytes, -1 for NULL), `header` before the first, each tuple framed as its own CopyData
/// message (`copy_frames`). `None` unless [`supported`].
pub fn framed_tuples(batch: &RecordBatch, header: Option<&[u8]>, buffers: &mut Buffers) -> Option<Vec<CopyData>> {
    let columns: Vec<Column> = batch.columns().iter().map(typed).collect::<Option<_>>()?;
    let rows = batch.num_rows();
    let mut framed = FramedRows::new(buffers, 5 + estimated_size(batch, &columns) / rows.max(1));
    for row in 0..rows {
        let buffer = framed.start_row();
        if row == 0
            && let Some(header) = header
        {
            buffer.put_slice(header);
        }
        buffer.put_i16(columns.len() as i16);
        for column in &columns {
            put_value(buffer, column, row);
        }
        framed.end_row()?;
    }
    Some(framed.finish())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn buffers_written_out_are_used_again() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..20_000))]).unwrap();
        let mut buffers = Buffers::default();
        let first = framed_tuples(&batch, None, &mut buffers).unwrap();
        let first_fresh = buffers.fresh;
        let addresses: Vec<usize> = first.iter().map(|c| c.data.as_ptr() as usize).collect();
        assert!(first.len() > 1, "a batch is split into chunks");
        assert_eq!(first.iter().map(|c| c.framed_messages).sum::<usize>(), 20_000);
        let mut wire = BytesMut::new();
        for chunk in first {
            pgwire::messages::PgWireBackendMessage::CopyData(chunk).encode(&mut wire).unwrap();
        }
        let second = framed_tuples(&batch, None, &mut buffers).unwrap();
        let reused = second.iter().filter(|c| addresses.contains(&(c.data.as_ptr() as usize))).count();
        assert_eq!(reused, second.len(), "every buffer comes back");
        assert_eq!(buffers.fresh, first_fresh, "no new buffer");
    }
}
