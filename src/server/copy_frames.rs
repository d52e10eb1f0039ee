//! COPY TO rows written straight into a few reused buffers, each row framed as its own
//! CopyData message: shared by the column-by-column writers of binary (`binary_tuples`) and
//! text and CSV (`text_tuples`) rows.

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, StringViewArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::copy::CopyData;

/// One column, typed once per batch.
pub enum Column<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    /// Sent as bigint (`encode::pg_fields`), the largest values as `i64::MAX`.
    UInt64(&'a UInt64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Date(&'a Date32Array),
    /// TIMESTAMP and TIMESTAMPTZ alike: microseconds since 1970 (infinities as they are stored).
    Timestamp(&'a TimestampMicrosecondArray),
    Text(&'a StringArray),
    TextView(&'a StringViewArray),
}

/// The column as one of the types written column by column, if it is.
pub fn typed(column: &ArrayRef) -> Option<Column<'_>> {
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
    pub(super) fresh: usize,
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

/// The rows of one batch being framed: one CopyData per row, as PostgreSQL sends them and as
/// clients read them, written into buffers of about [`CHUNK_BYTES`] instead of one trip
/// through pgwire's sink per row.
pub struct FramedRows<'a> {
    buffers: &'a mut Buffers,
    buffer: BytesMut,
    capacity: usize,
    /// Where the current row's length goes.
    length_at: usize,
    in_buffer: usize,
    chunks: Vec<CopyData>,
}

impl<'a> FramedRows<'a> {
    /// Rows of about `per_row` bytes each, into `buffers`.
    pub fn new(buffers: &'a mut Buffers, per_row: usize) -> Self {
        let capacity = CHUNK_BYTES + per_row;
        let buffer = buffers.take(capacity);
        Self { buffers, buffer, capacity, length_at: 0, in_buffer: 0, chunks: Vec::new() }
    }

    /// Starts a row: its content goes into the returned buffer until [`FramedRows::end_row`].
    pub fn start_row(&mut self) -> &mut BytesMut {
        self.buffer.put_u8(b'd');
        self.length_at = self.buffer.len();
        self.buffer.put_i32(0);
        &mut self.buffer
    }

    /// Ends the row started last; `None` if it is longer than a message can be.
    pub fn end_row(&mut self) -> Option<()> {
        // The length counts itself and the message's content, not the type byte.
        let length = i32::try_from(self.buffer.len() - self.length_at).ok()?;
        self.buffer[self.length_at..self.length_at + 4].copy_from_slice(&length.to_be_bytes());
        self.in_buffer += 1;
        if self.buffer.len() >= CHUNK_BYTES {
            let full = std::mem::replace(&mut self.buffer, self.buffers.take(self.capacity));
            self.chunks.push(CopyData::framed(self.buffers.hand_out(full), std::mem::take(&mut self.in_buffer)));
        }
        Some(())
    }

    /// The framed rows, a CopyData per buffer.
    pub fn finish(mut self) -> Vec<CopyData> {
        if self.in_buffer > 0 {
            let last = std::mem::take(&mut self.buffer);
            self.chunks.push(CopyData::framed(self.buffers.hand_out(last), self.in_buffer));
        } else {
            self.buffers.free.push(std::mem::take(&mut self.buffer));
        }
        self.chunks
    }
}
