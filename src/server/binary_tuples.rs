//! Binary COPY tuples written column by column for the common column types: a batch's rows
//! go into one buffer, each value as PostgreSQL's send function writes it, and each tuple is
//! a slice of that buffer. Other types take the general encoder (`encode::encode_with`).

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, RecordBatch, StringArray, StringViewArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::copy::CopyData;

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

/// Bytes of framed tuples per buffer: under mimalloc's largest pooled size (a buffer per
/// 8192-row batch, half a megabyte, was mapped fresh each time).
const CHUNK_BYTES: usize = 56 << 10;

/// Buffers in flight or ready for reuse, at most: a few batches' worth (`executor` runs two
/// batches ahead of the socket).
const MAX_BUFFERS: usize = 64;

/// The buffers of one COPY TO, used again once pgwire has written them to the socket. Fresh
/// buffers freed on another thread were returned to the system and faulted in anew: page
/// faults took a third of a table read's time (docs/benchmarks.md).
#[derive(Default)]
pub struct Buffers {
    /// Every buffer handed out, still shared with a message until pgwire drops it.
    handed_out: Vec<Bytes>,
    free: Vec<BytesMut>,
    /// Buffers allocated (not reused), for the test.
    fresh: usize,
}

impl Buffers {
    fn take(&mut self, capacity: usize) -> BytesMut {
        if self.free.is_empty() {
            self.reclaim();
        }
        match self.free.pop() {
            Some(mut buffer) => {
                buffer.clear();
                buffer.reserve(capacity);
                buffer
            }
            None => {
                self.fresh += 1;
                BytesMut::with_capacity(capacity)
            }
        }
    }

    /// Takes back the buffers nobody else holds any more.
    fn reclaim(&mut self) {
        for bytes in std::mem::take(&mut self.handed_out) {
            match bytes.try_into_mut() {
                Ok(buffer) => self.free.push(buffer),
                Err(shared) => self.handed_out.push(shared),
            }
        }
    }

    fn hand_out(&mut self, buffer: BytesMut) -> Bytes {
        let bytes = buffer.freeze();
        if self.handed_out.len() + self.free.len() < MAX_BUFFERS {
            self.handed_out.push(bytes.clone());
        }
        bytes
    }
}

/// The rows of `batch` as binary COPY tuples (field count, then each field's length and
/// bytes, -1 for NULL), `header` before the first, each tuple framed as its own CopyData
/// message (`d`, length): one CopyData per row, as PostgreSQL sends and as clients read them,
/// written into a few buffers of [`CHUNK_BYTES`] instead of one trip through pgwire's sink per
/// row. `None` unless [`supported`].
pub fn framed_tuples(batch: &RecordBatch, header: Option<&[u8]>, buffers: &mut Buffers) -> Option<Vec<CopyData>> {
    let columns: Vec<Column> = batch.columns().iter().map(typed).collect::<Option<_>>()?;
    let rows = batch.num_rows();
    let per_row = 5 + estimated_size(batch, &columns) / rows.max(1);
    let capacity = CHUNK_BYTES + per_row;
    let mut chunks = Vec::new();
    let mut buffer = buffers.take(capacity + header.map_or(0, <[u8]>::len));
    let mut in_buffer = 0;
    for row in 0..rows {
        buffer.put_u8(b'd');
        let length_at = buffer.len();
        buffer.put_i32(0);
        if row == 0
            && let Some(header) = header
        {
            buffer.put_slice(header);
        }
        buffer.put_i16(columns.len() as i16);
        for column in &columns {
            put_value(&mut buffer, column, row);
        }
        // The length counts itself and the message's content, not the type byte.
        let length = i32::try_from(buffer.len() - length_at).ok()?;
        buffer[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
        in_buffer += 1;
        if buffer.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut buffer, buffers.take(capacity));
            chunks.push(CopyData::framed(buffers.hand_out(full), std::mem::take(&mut in_buffer)));
        }
    }
    if in_buffer > 0 {
        chunks.push(CopyData::framed(buffers.hand_out(buffer), in_buffer));
    } else {
        buffers.free.push(buffer);
    }
    Some(chunks)
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
