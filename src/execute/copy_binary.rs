//! The decoder for COPY FROM data in PostgreSQL's binary format (`FORMAT binary`, which
//! asyncpg's `copy_records_to_table` and pgjdbc's CopyManager users send).
//!
//! ```text
//!  header  "PGCOPY\n\xff\r\n\0" | flags i32 | extension length i32 | extension
//!  tuple   field count i16 | per field: length i32 (-1: NULL) | value in the type's binary send format
//!  trailer -1 as i16
//! ```
//! Booleans, integers, floats, dates, timestamps and text are decoded straight into arrays of
//! their column's type; NUMERIC and BYTEA values become the text the text format would carry.
//! Either way the columns then go through the same NOT NULL checks and conversions as text
//! and CSV rows (`conform`), which pass an array of the column's type as it is.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Duration, NaiveDate};

use super::copy_format::{DecodedRows, Position};
use crate::error::{Error, Result, SqlState};
use crate::sql::types::{ColumnType, bytea_hex};
use crate::value::infinite::{INFINITY, MINUS_INFINITY};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds, and days, between the Unix epoch and PostgreSQL's, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// Decodes the complete tuples at the start of `data` (all of it if `last`) for columns of
/// `types`; returns them as columns (of the column's type, or text, see the module comment)
/// with the bytes they took. `position.line` counts
/// tuples (errors name the tuple), `past_header` and `ended` track the header and trailer.
pub fn decode_chunk(
    data: &[u8],
    types: &[ColumnType],
    position: &mut Position,
    last: bool,
) -> Result<(DecodedRows, usize)> {
    let mut builders: Vec<Builder> = types.iter().map(|ty| Builder::new(*ty)).collect();
    let mut lines = Vec::new();
    let mut reader = Reader { data, pos: 0 };
    if !position.past_header {
        let Some(header) = reader.header()? else {
            return if last {
                Err(bad("COPY file signature not recognized"))
            } else {
                Ok((finish(builders, lines), 0))
            };
        };
        reader.pos = header;
        position.past_header = true;
    }
    let mut fields: Vec<Option<(usize, usize)>> = Vec::with_capacity(types.len());
    while !position.ended {
        let start = reader.pos;
        match reader.tuple(types.len(), &mut fields, position.line)? {
            Tuple::Row => {
                for ((builder, ty), field) in builders.iter_mut().zip(types).zip(&fields) {
                    let value = field.map(|(from, to)| &data[from..to]);
                    builder.append(value).ok_or_else(|| {
                        bad(format!(
                            "incorrect binary data format for type {} (tuple {})",
                            ty.sql_name(),
                            position.line
                        ))
                    })?;
                }
                lines.push(position.line);
                position.line += 1;
            }
            Tuple::Trailer => position.ended = true,
            Tuple::Incomplete => {
                reader.pos = start;
                break;
            }
        }
    }
    // PostgreSQL takes the end of the data where a tuple would start as the end of the rows,
    // trailer or not (the ADBC driver sends none); anything cut short is an error.
    if last && !position.ended && (reader.pos != data.len() || !position.past_header) {
        return Err(bad("unexpected EOF in COPY data"));
    }
    let consumed = if position.ended { data.len() } else { reader.pos };
    Ok((finish(builders, lines), consumed))
}

fn finish(builders: Vec<Builder>, lines: Vec<usize>) -> DecodedRows {
    DecodedRows { columns: builders.into_iter().map(Builder::finish).collect(), lines }
}

fn bad(message: impl Into<String>) -> Error {
    Error::invalid_value(SqlState::BadCopyFileFormat, message.into())
}

enum Tuple {
    Row,
    Trailer,
    Incomplete,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let bytes = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The offset just past the header, or `None` if it has not all arrived.
    fn header(&mut self) -> Result<Option<usize>> {
        let Some(signature) = self.take(SIGNATURE.len()) else { return Ok(None) };
        if signature != SIGNATURE {
            return Err(bad("COPY file signature not recognized"));
        }
        let (Some(flags), Some(extension)) = (self.i32(), self.i32()) else { return Ok(None) };
        if flags & (1 << 16) != 0 {
            return Err(bad("COPY binary data with OIDs is not supported"));
        }
        let extension = usize::try_from(extension).map_err(|_| bad("invalid COPY file header (extension length)"))?;
        Ok(self.take(extension).is_some().then_some(self.pos))
    }

    /// The next tuple's fields as ranges of the data (`None`: NULL), once all of it is here.
    fn tuple(&mut self, columns: usize, fields: &mut Vec<Option<(usize, usize)>>, tuple: usize) -> Result<Tuple> {
        fields.clear();
        let Some(count) = self.i16() else { return Ok(Tuple::Incomplete) };
        if count == -1 {
            return Ok(Tuple::Trailer);
        }
        if count as usize != columns || count < 0 {
            return Err(bad(format!("row field count is {count}, expected {columns} (tuple {tuple})")));
        }
        for _ in 0..columns {
            let Some(len) = self.i32() else { return Ok(Tuple::Incomplete) };
            if len == -1 {
                fields.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| bad(format!("invalid field length {len} (tuple {tuple})")))?;
            let from = self.pos;
            if self.take(len).is_none() {
                return Ok(Tuple::Incomplete);
            }
            fields.push(Some((from, self.pos)));
        }
        Ok(Tuple::Row)
    }
}

/// One column's values as they are decoded: in an array of the column's type, or as text.
enum Builder {
    Boolean(BooleanBuilder),
    SmallInt(Int16Builder),
    Integer(Int32Builder),
    BigInt(Int64Builder),
    Real(Float32Builder),
    Double(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Text(StringBuilder, ColumnType),
}

impl Builder {
    fn new(ty: ColumnType) -> Builder {
        match ty {
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            ColumnType::SmallInt => Builder::SmallInt(Int16Builder::new()),
            ColumnType::Integer => Builder::Integer(Int32Builder::new()),
            ColumnType::BigInt => Builder::BigInt(Int64Builder::new()),
            ColumnType::Real => Builder::Real(Float32Builder::new()),
            ColumnType::Double => Builder::Double(Float64Builder::new()),
            ColumnType::Date => Builder::Date(Date32Builder::new()),
            ColumnType::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new(), false),
            ColumnType::TimestampTz => Builder::Timestamp(TimestampMicrosecondBuilder::new(), true),
            ty => Builder::Text(StringBuilder::new(), ty),
        }
    }

    /// Appends one value (`None`: NULL); `None` if its bytes do not fit the type.
    fn append(&mut self, value: Option<&[u8]>) -> Option<()> {
        let Some(value) = value else {
            match self {
                Builder::Boolean(b) => b.append_null(),
                Builder::SmallInt(b) => b.append_null(),
                Builder::Integer(b) => b.append_null(),
                Builder::BigInt(b) => b.append_null(),
                Builder::Real(b) => b.append_null(),
                Builder::Double(b) => b.append_null(),
                Builder::Date(b) => b.append_null(),
                Builder::Timestamp(b, _) => b.append_null(),
                Builder::Text(b, _) => b.append_null(),
            }
            return Some(());
        };
        let int4 = || value.try_into().ok().map(i32::from_be_bytes);
        let int8 = || value.try_into().ok().map(i64::from_be_bytes);
        match self {
            // As PostgreSQL's `boolrecv`: any byte but 0 is true.
            Builder::Boolean(b) => b.append_value(match value {
                [byte] => *byte != 0,
                _ => return None,
            }),
            Builder::SmallInt(b) => b.append_value(value.try_into().ok().map(i16::from_be_bytes)?),
            Builder::Integer(b) => b.append_value(int4()?),
            Builder::BigInt(b) => b.append_value(int8()?),
            Builder::Real(b) => b.append_value(f32::from_bits(int4()? as u32)),
            Builder::Double(b) => b.append_value(f64::from_bits(int8()? as u64)),
            Builder::Date(b) => b.append_value(date_days(int4()?)?),
            Builder::Timestamp(b, _) => b.append_value(timestamp_micros(int8()?)?),
            Builder::Text(b, ty) => b.append_value(to_text(*ty, value)?),
        }
        Some(())
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::SmallInt(mut b) => Arc::new(b.finish()),
            Builder::Integer(mut b) => Arc::new(b.finish()),
            Builder::BigInt(mut b) => Arc::new(b.finish()),
            Builder::Real(mut b) => Arc::new(b.finish()),
            Builder::Double(mut b) => Arc::new(b.finish()),
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b, zoned) => {
                let array = b.finish();
                // As `ColumnType::arrow_type` types the column: an instant, in UTC.
                Arc::new(if zoned { array.with_timezone("+00:00") } else { array })
            }
            Builder::Text(mut b, _) => Arc::new(b.finish()),
        }
    }
}

/// A binary DATE (days since 2000-01-01) as days since 1970, within the dates chrono holds.
fn date_days(days: i32) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?;
    epoch.checked_add_signed(Duration::days(days.into()))?;
    days.checked_add(PG_EPOCH_DAYS)
}

/// A binary TIMESTAMP (µs since 2000-01-01) as µs since 1970, within the times chrono holds;
/// `infinity` and `-infinity` (the greatest and least i64, in PostgreSQL as here) as they are.
fn timestamp_micros(micros: i64) -> Option<i64> {
    if micros == INFINITY || micros == MINUS_INFINITY {
        return Some(micros);
    }
    let micros = micros.checked_add(PG_EPOCH_MICROS)?;
    DateTime::from_timestamp_micros(micros).map(|_| micros)
}

/// The text form of one binary value of a type decoded as text; `None` if the bytes do not
/// fit the type.
fn to_text(ty: ColumnType, value: &[u8]) -> Option<String> {
    Some(match ty {
        ColumnType::Bytea => bytea_hex(value),
        ColumnType::Numeric { .. } => numeric(value)?,
        ColumnType::Text | ColumnType::Varchar { .. } => String::from_utf8(value.to_vec()).ok()?,
        _ => return None,
    })
}

/// PostgreSQL's binary numeric: digit count, weight (of the first base-10000 digit), sign,
/// display scale, then the base-10000 digits.
fn numeric(value: &[u8]) -> Option<String> {
    let word = |i: usize| value.get(2 * i..2 * i + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Some("NaN".into());
    }
    let digits: Vec<i16> = (0..ndigits.max(0) as usize).map(|i| word(4 + i)).collect::<Option<_>>()?;
    let mut int_part = String::new();
    for k in 0..=weight.max(-1) {
        let d = digits.get(k as usize).copied().unwrap_or(0);
        if int_part.is_empty() { int_part = d.to_string() } else { int_part.push_str(&format!("{d:04}")) }
    }
    if int_part.is_empty() {
        int_part.push('0');
    }
    let mut frac = String::new();
    let mut k = weight as i32 + 1;
    while (frac.len() as i32) < dscale as i32 {
        let d = if k < 0 { 0 } else { digits.get(k as usize).copied().unwrap_or(0) };
        frac.push_str(&format!("{d:04}"));
        k += 1;
    }
    frac.truncate(dscale.max(0) as usize);
    let minus = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() { format!("{minus}{int_part}") } else { format!("{minus}{int_part}.{frac}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(tuples: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for tuple in tuples {
            out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
            for field in tuple {
                match field {
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn texts(rows: &DecodedRows, column: usize) -> Vec<Option<String>> {
        use arrow::array::{Array, AsArray};
        let array = rows.columns[column].as_string::<i32>();
        (0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i).to_string())).collect()
    }

    #[test]
    fn values_are_decoded_into_their_columns_types() {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
        let types = [
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Text,
            ColumnType::Timestamp,
            ColumnType::Date,
            ColumnType::TimestampTz,
            ColumnType::Boolean,
        ];
        // 2025-01-01 12:00:00 is 789_048_000 s (9132 days and 12 hours) after 2000-01-01.
        let micros = 789_048_000_000_000i64;
        let data = stream(&[
            vec![
                Some((-5i64).to_be_bytes().to_vec()),
                Some(2.5f64.to_bits().to_be_bytes().to_vec()),
                Some(b"ok".to_vec()),
                Some(micros.to_be_bytes().to_vec()),
                Some(9132i32.to_be_bytes().to_vec()),
                Some(micros.to_be_bytes().to_vec()),
                Some(vec![1]),
            ],
            vec![None, None, None, None, None, None, None],
        ]);
        let (rows, consumed) = decode_chunk(&data, &types, &mut Position::default(), true).unwrap();
        assert_eq!(consumed, data.len());
        for (column, ty) in rows.columns.iter().zip(types) {
            assert_eq!(column.data_type(), &ty.arrow_type(), "{ty:?}");
            assert!(column.is_null(1), "{ty:?}");
        }
        assert_eq!(rows.columns[0].as_primitive::<Int64Type>().value(0), -5);
        assert_eq!(rows.columns[1].as_primitive::<Float64Type>().value(0), 2.5);
        assert_eq!(texts(&rows, 2), vec![Some("ok".into()), None]);
        // 2025-01-01 12:00:00 UTC in µs since 1970.
        let since_1970 = 1_735_732_800_000_000i64;
        assert_eq!(rows.columns[3].as_primitive::<TimestampMicrosecondType>().value(0), since_1970);
        assert_eq!(rows.columns[4].as_primitive::<Date32Type>().value(0), 20089);
        assert_eq!(rows.columns[5].as_primitive::<TimestampMicrosecondType>().value(0), since_1970);
        assert!(rows.columns[6].as_boolean().value(0));
    }

    #[test]
    fn values_that_do_not_fit_their_type_are_rejected_with_the_tuple() {
        let types = [ColumnType::Boolean];
        let data = stream(&[vec![Some(vec![1])], vec![Some(vec![1, 0])]]);
        let Err(error) = decode_chunk(&data, &types, &mut Position::default(), true) else { panic!("decoded") };
        let error = error.to_string();
        assert!(error.contains("incorrect binary data format for type boolean (tuple 2)"), "{error}");
        let types = [ColumnType::Timestamp];
        let far = stream(&[vec![Some((i64::MAX - 1).to_be_bytes().to_vec())]]);
        assert!(decode_chunk(&far, &types, &mut Position::default(), true).is_err());
    }

    #[test]
    fn infinities_and_any_true_byte_are_read_as_postgres_reads_them() {
        use arrow::array::AsArray;
        let types = [ColumnType::Timestamp, ColumnType::Boolean];
        let data = stream(&[
            vec![Some(i64::MAX.to_be_bytes().to_vec()), Some(vec![2])],
            vec![Some(i64::MIN.to_be_bytes().to_vec()), Some(vec![0])],
        ]);
        let (rows, _) = decode_chunk(&data, &types, &mut Position::default(), true).unwrap();
        let times = rows.columns[0].as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.values().to_vec(), vec![INFINITY, MINUS_INFINITY]);
        let booleans = rows.columns[1].as_boolean();
        assert!(booleans.value(0) && !booleans.value(1));
    }

    #[test]
    fn tuples_cut_by_a_chunk_boundary_wait_for_the_rest() {
        let types = [ColumnType::Integer];
        let data = stream(&[vec![Some(7i32.to_be_bytes().to_vec())], vec![Some(8i32.to_be_bytes().to_vec())]]);
        let mut position = Position::default();
        let cut = data.len() - 5;
        let ints = |rows: &DecodedRows| {
            use arrow::array::AsArray;
            rows.columns[0].as_primitive::<arrow::datatypes::Int32Type>().values().to_vec()
        };
        let (first, consumed) = decode_chunk(&data[..cut], &types, &mut position, false).unwrap();
        assert_eq!(ints(&first), vec![7]);
        let (second, _) = decode_chunk(&data[consumed..], &types, &mut position, true).unwrap();
        assert_eq!(ints(&second), vec![8]);
    }

    #[test]
    fn malformed_streams_are_rejected() {
        let types = [ColumnType::Integer];
        let bad_signature = b"PGCOPY\nxx\0\0\0\0\0\0\0\0".to_vec();
        assert!(decode_chunk(&bad_signature, &types, &mut Position::default(), true).is_err());
        let wrong_width = stream(&[vec![Some(vec![1, 2])]]);
        assert!(decode_chunk(&wrong_width, &types, &mut Position::default(), true).is_err());
        let mut no_trailer = stream(&[vec![Some(7i32.to_be_bytes().to_vec())]]);
        no_trailer.truncate(no_trailer.len() - 2);
        let (rows, _) = decode_chunk(&no_trailer, &types, &mut Position::default(), true).expect("as PostgreSQL");
        assert_eq!(rows.lines.len(), 1);
        no_trailer.truncate(no_trailer.len() - 1);
        assert!(decode_chunk(&no_trailer, &types, &mut Position::default(), true).is_err());
        let too_many = stream(&[vec![None, None]]);
        assert!(decode_chunk(&too_many, &types, &mut Position::default(), true).is_err());
    }

    #[test]
    fn numerics_print_as_postgres_does() {
        // 12345.678: digits [1, 2345, 6780], weight 1, dscale 3.
        let words: [i16; 7] = [3, 1, 0, 3, 1, 2345, 6780];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&bytes).unwrap(), "12345.678");
        // -0.05: digits [500], weight -1, dscale 2.
        let words: [i16; 5] = [1, -1, 0x4000, 2, 500];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(numeric(&bytes).unwrap(), "-0.05");
    }
}
