//! Text and CSV COPY rows written column by column for the common column types, each value as
//! PostgreSQL's output function and COPY write it (`CopyAttributeOutText`/`OutCSV`), into a
//! few reused buffers (`copy_frames`). Other types take the general encoder
//! (`copy_out::encode_rows`).

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use bytes::{BufMut, Bytes, BytesMut};
use pgwire::api::results::FieldInfo;
use pgwire::messages::copy::CopyData;

use super::copy_frames::{Buffers, Column, FramedRows, typed};
use crate::execute::copy_format::CopyFormat;
use crate::value::datetime_text::{put_date, put_timestamp};
use crate::value::float_text::write_float;

/// How rows are written: text or CSV, and their options.
pub struct TextLayout {
    csv: bool,
    delimiter: u8,
    quote: u8,
    escape: u8,
    null: Vec<u8>,
    /// One column: a CSV value `\.` alone on a line is quoted, not to read as the end of data.
    single_column: bool,
}

impl TextLayout {
    pub fn new(format: &CopyFormat, columns: usize) -> Self {
        Self {
            csv: format.csv,
            delimiter: format.delimiter,
            quote: format.quote,
            escape: format.escape,
            null: format.null.as_bytes().to_vec(),
            single_column: columns == 1,
        }
    }

    /// The header line: the column names, each escaped (text) or quoted (CSV) as a value is.
    pub fn header<'a>(&self, names: impl Iterator<Item = &'a str>) -> Bytes {
        let mut line = BytesMut::new();
        let mut scratch = Vec::new();
        for (i, name) in names.enumerate() {
            if i > 0 {
                line.put_u8(self.delimiter);
            }
            let start = line.len();
            line.put_slice(name.as_bytes());
            self.finish_value(&mut line, start, &mut scratch);
        }
        line.put_u8(b'\n');
        line.freeze()
    }

    /// Escapes (text) or quotes (CSV) the value written from `start` on, if it needs it.
    fn finish_value(&self, out: &mut BytesMut, start: usize, scratch: &mut Vec<u8>) {
        if self.csv {
            quote_if_needed(out, start, self, scratch);
        } else {
            escape_if_needed(out, start, self.delimiter, scratch);
        }
    }
}

/// Whether every column of `schema` has a fast path here: floats only with PostgreSQL's
/// shortest-exact output (`extra_float_digits` of 1 or more), dates and times only in the ISO
/// style (`DateStyle`).
pub fn supported(schema: &Schema, fields: &[FieldInfo]) -> bool {
    let iso = |info: &FieldInfo| info.format_options().date_style.trim().to_ascii_uppercase().starts_with("ISO");
    schema.fields().len() == fields.len()
        && schema.fields().iter().zip(fields).all(|(f, info)| match f.data_type() {
            DataType::Boolean | DataType::Int16 | DataType::Int32 | DataType::Int64 => true,
            DataType::Utf8 | DataType::Utf8View => true,
            DataType::Date32 | DataType::Timestamp(TimeUnit::Microsecond, _) => iso(info),
            DataType::Float32 | DataType::Float64 => info.format_options().extra_float_digits >= 1,
            _ => false,
        })
}

/// The rows of `batch` as text or CSV lines, `header` (taken only on success) before the
/// first, each line framed as its own CopyData message. `None` if a column or a value has no
/// fast path here: the caller encodes the batch the general way.
pub fn framed_rows(
    batch: &RecordBatch,
    layout: &TextLayout,
    header: &mut Option<Bytes>,
    buffers: &mut Buffers,
) -> Option<Vec<CopyData>> {
    // TIMESTAMPTZ columns arrive as text in the session's zone (`encode::zoned_as_text`).
    let zoned = |c: &ArrayRef| matches!(c.data_type(), DataType::Timestamp(_, Some(_)));
    if batch.columns().iter().any(zoned) {
        return None;
    }
    let columns: Vec<Column> = batch.columns().iter().map(typed).collect::<Option<_>>()?;
    let rows = batch.num_rows();
    if rows == 0 {
        // The header waits for the first row.
        return Some(Vec::new());
    }
    let mut framed = FramedRows::new(buffers, 16 * columns.len() + 8);
    let mut scratch = Vec::new();
    for row in 0..rows {
        let buffer = framed.start_row();
        if row == 0
            && let Some(header) = header.as_ref()
        {
            buffer.put_slice(header);
        }
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                buffer.put_u8(layout.delimiter);
            }
            put_field(buffer, column, row, layout, &mut scratch)?;
        }
        buffer.put_u8(b'\n');
        framed.end_row()?;
    }
    header.take();
    Some(framed.finish())
}

/// One field: the NULL string, or the value's text, escaped (text) or quoted (CSV) as COPY
/// writes it. `None` for a type the general encoder prints.
fn put_field(
    out: &mut BytesMut,
    column: &Column,
    row: usize,
    layout: &TextLayout,
    scratch: &mut Vec<u8>,
) -> Option<()> {
    macro_rules! nulls {
        ($array:expr) => {
            if $array.is_null(row) {
                out.put_slice(&layout.null);
                return Some(());
            }
        };
    }
    let start = out.len();
    match column {
        Column::Bool(a) => {
            nulls!(a);
            out.put_u8(if a.value(row) { b't' } else { b'f' });
        }
        Column::Int16(a) => {
            nulls!(a);
            out.put_slice(itoa::Buffer::new().format(a.value(row)).as_bytes());
        }
        Column::Int32(a) => {
            nulls!(a);
            out.put_slice(itoa::Buffer::new().format(a.value(row)).as_bytes());
        }
        Column::Int64(a) => {
            nulls!(a);
            out.put_slice(itoa::Buffer::new().format(a.value(row)).as_bytes());
        }
        Column::Float32(a) => {
            nulls!(a);
            write_float(out, f64::from(a.value(row)), true);
        }
        Column::Float64(a) => {
            nulls!(a);
            write_float(out, a.value(row), false);
        }
        Column::Date(a) => {
            nulls!(a);
            put_date(out, i64::from(a.value(row)));
        }
        Column::Timestamp(a) => {
            nulls!(a);
            put_timestamp(out, a.value(row), "");
        }
        Column::Text(a) => {
            nulls!(a);
            out.put_slice(a.value(row).as_bytes());
        }
        Column::TextView(a) => {
            nulls!(a);
            out.put_slice(a.value(row).as_bytes());
        }
        // Printed as numeric by the general encoder (`TextLayout::new` leaves it to it).
        Column::UInt64(_) => return None,
    }
    layout.finish_value(out, start, scratch);
    Some(())
}

/// Text format: a backslash before a backslash or the delimiter, and control characters as
/// `\b \f \n \r \t \v` (others as they are), as PostgreSQL's `CopyAttributeOutText` writes.
fn escape_if_needed(out: &mut BytesMut, start: usize, delimiter: u8, scratch: &mut Vec<u8>) {
    if !out[start..].iter().any(|b| *b < 0x20 || *b == b'\\' || *b == delimiter) {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(&out[start..]);
    out.truncate(start);
    for &b in scratch.iter() {
        let named = match b {
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            0x0b => Some(b'v'),
            _ => None,
        };
        match named {
            Some(letter) => out.put_slice(&[b'\\', letter]),
            None if b == b'\\' || b == delimiter => out.put_slice(&[b'\\', b]),
            None => out.put_u8(b),
        }
    }
}

/// CSV: the value in quotes, each quote or escape character after an escape character, when it
/// equals the NULL string, holds the delimiter, a quote, CR or LF, or is `\.` alone on a line,
/// as PostgreSQL's `CopyAttributeOutCSV` writes.
fn quote_if_needed(out: &mut BytesMut, start: usize, layout: &TextLayout, scratch: &mut Vec<u8>) {
    let value = &out[start..];
    let needs = value == layout.null.as_slice()
        || (layout.single_column && value == b"\\.")
        || value.iter().any(|b| *b == layout.delimiter || *b == layout.quote || *b == b'\n' || *b == b'\r');
    if !needs {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(value);
    out.truncate(start);
    out.put_u8(layout.quote);
    for &b in scratch.iter() {
        if b == layout.quote || b == layout.escape {
            out.put_u8(layout.escape);
        }
        out.put_u8(b);
    }
    out.put_u8(layout.quote);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn layout(csv: bool, columns: usize) -> TextLayout {
        let null = if csv { "" } else { "\\N" };
        TextLayout { csv, delimiter: b',', quote: b'"', escape: b'"', null: null.into(), single_column: columns == 1 }
    }

    #[test]
    fn an_empty_batch_keeps_the_header_for_the_first_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::new_empty(schema);
        let mut header = Some(Bytes::from_static(b"n\n"));
        let rows = framed_rows(&batch, &layout(true, 1), &mut header, &mut Buffers::default()).unwrap();
        assert!(rows.is_empty() && header.is_some());
    }

    #[test]
    fn header_names_are_quoted_as_values_are() {
        let csv = layout(true, 3);
        assert_eq!(csv.header(["a\"b", "", "c,d"].into_iter()), Bytes::from_static(b"\"a\"\"b\",\"\",\"c,d\"\n"));
        let text = layout(false, 2);
        assert_eq!(text.header(["a\\b", "t\tx"].into_iter()), Bytes::from_static(b"a\\\\b,t\\tx\n"));
    }

    fn lines(rows: &[CopyData]) -> (usize, String) {
        let messages = rows.iter().map(|r| r.framed_messages).sum();
        // Each message is `d`, a 4-byte length, then the line.
        let mut text = String::new();
        for chunk in rows {
            let mut rest = &chunk.data[..];
            while !rest.is_empty() {
                let length = i32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                text.push_str(std::str::from_utf8(&rest[5..1 + length]).unwrap());
                rest = &rest[1 + length..];
            }
        }
        (messages, text)
    }

    #[test]
    fn each_row_is_a_message_and_the_header_comes_once() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true), Field::new("s", DataType::Utf8, true)]));
        let n = Int64Array::from(vec![Some(1), None, Some(-3)]);
        let s = StringArray::from(vec![Some(""), Some("a,b"), None]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(n), Arc::new(s)]).unwrap();
        let mut header = Some(Bytes::from_static(b"n,s\n"));
        let rows = framed_rows(&batch, &layout(true, 2), &mut header, &mut Buffers::default()).unwrap();
        assert!(header.is_none(), "the header is sent");
        assert_eq!(lines(&rows), (3, "n,s\n1,\"\"\n,\"a,b\"\n-3,\n".to_string()));
        let rows = framed_rows(&batch, &layout(false, 2), &mut None, &mut Buffers::default()).unwrap();
        assert_eq!(lines(&rows), (3, "1,\n\\N,a\\,b\n-3,\\N\n".to_string()));
    }

    #[test]
    fn dates_after_year_9999_have_more_digits_and_bc_ones_say_so() {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        // 1970-01-01, 10000-01-01, 0001-12-31 BC
        let dates = Date32Array::from(vec![0, 2_932_897, -719_163]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(dates)]).unwrap();
        let rows = framed_rows(&batch, &layout(true, 1), &mut None, &mut Buffers::default()).unwrap();
        assert_eq!(lines(&rows), (3, "1970-01-01\n10000-01-01\n0001-12-31 BC\n".to_string()));
    }
}
