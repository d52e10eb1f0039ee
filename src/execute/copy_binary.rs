//! The decoder for COPY FROM data in PostgreSQL's binary format (`FORMAT binary`, which
//! asyncpg's `copy_records_to_table` and pgjdbc's CopyManager users send).
//!
//! ```text
//!  header  "PGCOPY\n\xff\r\n\0" | flags i32 | extension length i32 | extension
//!  tuple   field count i16 | per field: length i32 (-1: NULL) | value in the type's binary send format
//!  trailer -1 as i16
//! ```
//! Each value is turned into the text the text format would carry, so binary rows go through
//! the same conversion, NOT NULL checks and error messages as text and CSV rows (the cost of
//! formatting is small next to storing the row).

use arrow::array::StringBuilder;
use chrono::{DateTime, Duration, NaiveDate};

use super::copy_format::{DecodedRows, Position};
use crate::error::{Error, Result, SqlState};
use crate::sql::types::{ColumnType, bytea_hex};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Decodes the complete tuples at the start of `data` (all of it if `last`) for columns of
/// `types`; returns them as text columns with the bytes they took. `position.line` counts
/// tuples (errors name the tuple), `past_header` and `ended` track the header and trailer.
pub fn decode_chunk(
    data: &[u8],
    types: &[ColumnType],
    position: &mut Position,
    last: bool,
) -> Result<(DecodedRows, usize)> {
    let mut builders: Vec<StringBuilder> = types.iter().map(|_| StringBuilder::new()).collect();
    let mut lines = Vec::new();
    let mut reader = Reader { data, pos: 0 };
    if !position.past_header {
        let Some(header) = reader.header()? else {
            return if last {
                Err(bad("COPY file signature not recognized"))
            } else {
                Ok((DecodedRows::new(builders, lines), 0))
            };
        };
        reader.pos = header;
        position.past_header = true;
    }
    let mut fields: Vec<Option<String>> = Vec::with_capacity(types.len());
    while !position.ended {
        let start = reader.pos;
        match reader.tuple(types, &mut fields, position.line)? {
            Tuple::Row => {
                for (builder, field) in builders.iter_mut().zip(fields.drain(..)) {
                    builder.append_option(field);
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
    Ok((DecodedRows::new(builders, lines), consumed))
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

    fn tuple(&mut self, types: &[ColumnType], fields: &mut Vec<Option<String>>, tuple: usize) -> Result<Tuple> {
        fields.clear();
        let Some(count) = self.i16() else { return Ok(Tuple::Incomplete) };
        if count == -1 {
            return Ok(Tuple::Trailer);
        }
        if count as usize != types.len() || count < 0 {
            return Err(bad(format!("row field count is {count}, expected {} (tuple {tuple})", types.len())));
        }
        for ty in types {
            let Some(len) = self.i32() else { return Ok(Tuple::Incomplete) };
            if len == -1 {
                fields.push(None);
                continue;
            }
            let len = usize::try_from(len).map_err(|_| bad(format!("invalid field length {len} (tuple {tuple})")))?;
            let Some(value) = self.take(len) else { return Ok(Tuple::Incomplete) };
            let text = to_text(*ty, value).ok_or_else(|| {
                bad(format!("incorrect binary data format for type {} (tuple {tuple})", ty.sql_name()))
            })?;
            fields.push(Some(text));
        }
        Ok(Tuple::Row)
    }
}

/// The text form of one binary value of type `ty`; `None` if the bytes do not fit the type.
fn to_text(ty: ColumnType, value: &[u8]) -> Option<String> {
    let int2 = || value.try_into().ok().map(i16::from_be_bytes);
    let int4 = || value.try_into().ok().map(i32::from_be_bytes);
    let int8 = || value.try_into().ok().map(i64::from_be_bytes);
    Some(match ty {
        ColumnType::Boolean => match value {
            [0] => "f".into(),
            [1] => "t".into(),
            _ => return None,
        },
        ColumnType::SmallInt => int2()?.to_string(),
        ColumnType::Integer => int4()?.to_string(),
        ColumnType::BigInt => int8()?.to_string(),
        ColumnType::Real => f32::from_bits(int4()? as u32).to_string(),
        ColumnType::Double => f64::from_bits(int8()? as u64).to_string(),
        ColumnType::Text | ColumnType::Varchar { .. } => String::from_utf8(value.to_vec()).ok()?,
        ColumnType::Bytea => bytea_hex(value),
        ColumnType::Date => {
            let days = int4()?;
            let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?;
            epoch.checked_add_signed(Duration::days(days.into()))?.format("%Y-%m-%d").to_string()
        }
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            let micros = int8()?.checked_add(PG_EPOCH_MICROS)?;
            let time = DateTime::from_timestamp_micros(micros)?.naive_utc();
            let zone = if ty == ColumnType::TimestampTz { "+00" } else { "" };
            format!("{}{zone}", time.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
        ColumnType::Numeric { .. } => numeric(value)?,
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
    fn values_of_every_type_become_their_text() {
        let types = [ColumnType::BigInt, ColumnType::Double, ColumnType::Text, ColumnType::Timestamp, ColumnType::Date];
        // 2025-01-01 12:00:00 is 789_048_000 s (9132 days and 12 hours) after 2000-01-01.
        let micros = 789_048_000_000_000i64;
        let data = stream(&[
            vec![
                Some((-5i64).to_be_bytes().to_vec()),
                Some(2.5f64.to_bits().to_be_bytes().to_vec()),
                Some(b"ok".to_vec()),
                Some(micros.to_be_bytes().to_vec()),
                Some(9132i32.to_be_bytes().to_vec()),
            ],
            vec![None, None, None, None, None],
        ]);
        let (rows, consumed) = decode_chunk(&data, &types, &mut Position::default(), true).unwrap();
        assert_eq!(consumed, data.len());
        assert_eq!(texts(&rows, 0), vec![Some("-5".into()), None]);
        assert_eq!(texts(&rows, 1), vec![Some("2.5".into()), None]);
        assert_eq!(texts(&rows, 2), vec![Some("ok".into()), None]);
        assert_eq!(texts(&rows, 3), vec![Some("2025-01-01 12:00:00.000000".into()), None]);
        assert_eq!(texts(&rows, 4), vec![Some("2025-01-01".into()), None]);
    }

    #[test]
    fn tuples_cut_by_a_chunk_boundary_wait_for_the_rest() {
        let types = [ColumnType::Integer];
        let data = stream(&[vec![Some(7i32.to_be_bytes().to_vec())], vec![Some(8i32.to_be_bytes().to_vec())]]);
        let mut position = Position::default();
        let cut = data.len() - 5;
        let (first, consumed) = decode_chunk(&data[..cut], &types, &mut position, false).unwrap();
        assert_eq!(texts(&first, 0), vec![Some("7".into())]);
        let (second, _) = decode_chunk(&data[consumed..], &types, &mut position, true).unwrap();
        assert_eq!(texts(&second, 0), vec![Some("8".into())]);
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
