//! Turns incoming values (INSERT results, COPY text) into rows of a table's exact schema.
//!
//! Every value is converted to its column's type; the first one that cannot be, and the first
//! NULL in a NOT NULL column, reject the whole statement with an error naming the row (or COPY
//! line) and column. Nothing is written unless every row conforms.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::array_value_to_string;

use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};
use crate::sql::types::ColumnType;
use crate::value::infinite::{infinite_micros, infinite_text};
use crate::value::numeric_text::without_exponent;
use crate::value::time_zone::{self, SessionZone};

/// How an error names the offending input row: `row 3` of an INSERT, `line 7` of COPY data.
#[derive(Debug, Clone, Copy)]
pub enum RowLabel<'a> {
    /// Rows of an INSERT, numbered from 1.
    Insert,
    /// A single row of an INSERT, by its number in the statement.
    InsertRow(usize),
    /// Rows of COPY data: the input line each row started on.
    Lines(&'a [usize]),
    /// The row of one message a source read.
    Message,
}

impl RowLabel<'_> {
    fn of(&self, row: usize) -> String {
        match self {
            RowLabel::Insert => format!("row {}", row + 1),
            RowLabel::InsertRow(number) => format!("row {number}"),
            RowLabel::Lines(lines) => format!("line {}", lines.get(row).copied().unwrap_or(row + 1)),
            RowLabel::Message => "in the message".into(),
        }
    }
}

/// Builds a batch of `def`'s schema with `rows` rows. `columns[i]` holds the values for table
/// column `i`, or `None` where the statement gave none (the column is NULL).
/// Text and timestamps are read in `zone`, the session's time zone, as PostgreSQL reads them.
pub fn conform(
    def: &TableDef,
    columns: Vec<Option<ArrayRef>>,
    rows: usize,
    label: RowLabel,
    zone: &SessionZone,
) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(def.columns.len());
    for (column, source) in def.columns.iter().zip(columns) {
        let array = match source {
            Some(source) => match zoned(&source, column.ty, zone) {
                Some(in_zone) => check_converted(&source, in_zone, column.ty, &column.name, label)?,
                None => convert(&source, column.ty, &column.name, label)?,
            },
            None if column.default.is_some() => column.default_value()?.to_array_of_size(rows)?,
            None => new_null_array(&column.ty.arrow_type(), rows),
        };
        if column.not_null && array.null_count() > 0 {
            let row = (0..array.len()).find(|i| array.is_null(*i)).unwrap_or(0);
            return Err(Error::NullViolation(format!(
                "null value in column \"{}\" of relation \"{}\" violates not-null constraint ({})",
                column.name,
                def.name,
                label.of(row)
            )));
        }
        if def.event_time == Some(arrays.len()) {
            finite_event_times(&array, &column.name, label)?;
        }
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(def.schema(), arrays)?)
}

/// Converts one column, reporting the first value that does not fit.
fn convert(source: &ArrayRef, ty: ColumnType, column: &str, label: RowLabel) -> Result<ArrayRef> {
    let target = ty.arrow_type();
    let converted = if source.data_type() == &DataType::Null {
        new_null_array(&target, source.len())
    } else if source.data_type() == &target {
        source.clone()
    } else if ty == ColumnType::Bytea && matches!(source.data_type(), DataType::Utf8) {
        decode_bytea(source, column, label)?
    } else {
        let options = CastOptions { safe: true, ..Default::default() };
        let source = &if target.is_integer() {
            crate::plan::round_for_integer(source)?
        } else if matches!(target, DataType::Timestamp(..)) {
            times_with_seconds(source)
        } else if let DataType::Decimal128(_, scale) = target {
            decimals_without_exponent(source, scale.max(0) as usize)
        } else {
            source.clone()
        };
        let converted = cast_with_options(source, &target, &options).map_err(|_| {
            Error::invalid_input(
                SqlState::DatatypeMismatch,
                format!(
                    "column \"{column}\" is of type {} but expression is of type {}",
                    ty.sql_name(),
                    source.data_type()
                ),
            )
        })?;
        with_infinities(source, converted)
    };
    check_converted(source, converted, ty, column, label)
}

/// `converted` if every value of `source` converted, else the error naming the first that did not.
fn check_converted(
    source: &ArrayRef,
    converted: ArrayRef,
    ty: ColumnType,
    column: &str,
    label: RowLabel,
) -> Result<ArrayRef> {
    if converted.null_count() > source.logical_null_count() {
        let row = (0..source.len()).find(|i| converted.is_null(*i) && source.is_valid(*i)).unwrap_or(0);
        return Err(rejected_value(source, row, ty, column, label));
    }
    if let ColumnType::Varchar { max_len: Some(max) } = ty {
        check_length(&converted, max, column, label)?;
    }
    Ok(converted)
}

/// Where the session's zone decides the value: text into a TIMESTAMPTZ column (which may
/// also carry its own offset, `2024-03-01 12:00-05`), and outside UTC a local time into a
/// TIMESTAMPTZ column or an instant into a TIMESTAMP column.
fn zoned(source: &ArrayRef, ty: ColumnType, zone: &SessionZone) -> Option<ArrayRef> {
    match (ty, source.data_type()) {
        (ColumnType::TimestampTz, DataType::Utf8) => time_zone::instants_in_zone(source, &zone.tz()),
        _ if zone.is_utc() => None,
        (ColumnType::TimestampTz, DataType::Timestamp(_, Some(_))) => None,
        (ColumnType::TimestampTz, _) => time_zone::instants_in_zone(source, &zone.tz()),
        (ColumnType::Timestamp, DataType::Timestamp(_, Some(_))) => time_zone::locals_in_zone(source, &zone.tz()),
        _ => None,
    }
}

/// An event happens at a time: `'infinity'` is refused as an event time (22008), since
/// windows, features and tiers place events by it.
fn finite_event_times(times: &ArrayRef, column: &str, label: RowLabel) -> Result<()> {
    let DataType::Timestamp(TimeUnit::Microsecond, _) = times.data_type() else { return Ok(()) };
    let times = times.as_primitive::<TimestampMicrosecondType>();
    match (0..times.len()).find(|i| times.is_valid(*i) && infinite_text(times.value(*i)).is_some()) {
        Some(row) => Err(Error::invalid_value(
            SqlState::DatetimeFieldOverflow,
            format!(
                "an event time must be finite: {} in column \"{column}\" ({})",
                infinite_text(times.value(row)).unwrap_or("infinity"),
                label.of(row)
            ),
        )),
        None => Ok(()),
    }
}

/// `converted` (text read as timestamps) with `'infinity'` and `'-infinity'` where the text
/// says so: Arrow's cast leaves them NULL.
fn with_infinities(source: &ArrayRef, converted: ArrayRef) -> ArrayRef {
    let (Some(texts), DataType::Timestamp(TimeUnit::Microsecond, _)) =
        (source.as_any().downcast_ref::<StringArray>(), converted.data_type())
    else {
        return converted;
    };
    let infinite = |i: usize| texts.is_valid(i).then(|| infinite_micros(texts.value(i))).flatten();
    if !(0..texts.len()).any(|i| converted.is_null(i) && infinite(i).is_some()) {
        return converted;
    }
    let times = converted.as_primitive::<TimestampMicrosecondType>();
    let patched: TimestampMicrosecondArray =
        (0..times.len()).map(|i| if times.is_valid(i) { Some(times.value(i)) } else { infinite(i) }).collect();
    Arc::new(patched.with_data_type(converted.data_type().clone()))
}

/// Text timestamps with `:00` added where they lack seconds (`value::with_seconds`).
fn times_with_seconds(source: &ArrayRef) -> ArrayRef {
    let Some(strings) = source.as_any().downcast_ref::<StringArray>() else { return source.clone() };
    if !strings.iter().flatten().any(|t| crate::value::with_seconds(t).is_some()) {
        return source.clone();
    }
    let fixed: StringArray =
        strings.iter().map(|t| t.map(|t| crate::value::with_seconds(t).unwrap_or_else(|| t.to_string()))).collect();
    Arc::new(fixed)
}

/// Text decimals in exponent notation written out (`1e2` → `100`, `-1.5E-3` → `-0.0015`):
/// PostgreSQL reads a NUMERIC so, Arrow's cast does not.
fn decimals_without_exponent(source: &ArrayRef, scale: usize) -> ArrayRef {
    let Some(strings) = source.as_any().downcast_ref::<StringArray>() else { return source.clone() };
    if !strings.iter().flatten().any(|t| without_exponent(t, scale).is_some()) {
        return source.clone();
    }
    let fixed: StringArray =
        strings.iter().map(|t| t.map(|t| without_exponent(t, scale).unwrap_or_else(|| t.to_string()))).collect();
    Arc::new(fixed)
}

fn rejected_value(source: &ArrayRef, row: usize, ty: ColumnType, column: &str, label: RowLabel) -> Error {
    let value = array_value_to_string(source, row).unwrap_or_default();
    let place = format!("{}, column {column}", label.of(row));
    let textual = matches!(source.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    if !textual {
        return Error::invalid_value(
            SqlState::NumericValueOutOfRange,
            format!("value {value} is out of range for type {} ({place})", ty.sql_name()),
        );
    }
    // Digits that do not fit the integer type are out of range, as PostgreSQL says.
    let digits = value.trim().strip_prefix(['+', '-']).unwrap_or(value.trim());
    let integer = matches!(ty, ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt);
    if integer && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Error::invalid_value(
            SqlState::NumericValueOutOfRange,
            format!("value \"{}\" is out of range for type {} ({place})", value.trim(), ty.sql_name()),
        );
    }
    let sqlstate = match ty {
        ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampTz => SqlState::InvalidDatetimeFormat,
        _ => SqlState::InvalidTextRepresentation,
    };
    Error::invalid_value(sqlstate, format!("invalid input syntax for type {}: \"{value}\" ({place})", ty.sql_name()))
}

fn check_length(array: &ArrayRef, max: u32, column: &str, label: RowLabel) -> Result<()> {
    let Some(strings) = array.as_any().downcast_ref::<StringArray>() else { return Ok(()) };
    for (row, value) in strings.iter().enumerate() {
        if value.is_some_and(|v| v.chars().count() > max as usize) {
            return Err(Error::invalid_value(
                SqlState::StringDataRightTruncation,
                format!("value too long for type character varying({max}) ({}, column {column})", label.of(row)),
            ));
        }
    }
    Ok(())
}

/// PostgreSQL's bytea input: `\x` followed by hex digits, or raw text with `\\` and `\ooo`
/// escapes.
fn decode_bytea(source: &ArrayRef, column: &str, label: RowLabel) -> Result<ArrayRef> {
    let strings =
        source.as_any().downcast_ref::<StringArray>().ok_or_else(|| Error::internal("bytea source is not utf8"))?;
    let mut out = BinaryBuilder::new();
    for (row, value) in strings.iter().enumerate() {
        match value {
            None => out.append_null(),
            Some(text) => match parse_bytea(text) {
                Some(bytes) => out.append_value(bytes),
                None => {
                    return Err(Error::invalid_value(
                        SqlState::InvalidTextRepresentation,
                        format!("invalid input syntax for type bytea: \"{text}\" ({}, column {column})", label.of(row)),
                    ));
                }
            },
        }
    }
    Ok(Arc::new(out.finish()))
}

fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x").or_else(|| text.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
            out.push(u8::from_str_radix(octal, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::catalog::ColumnDef;
    use arrow::array::{Float64Array, Int64Array};

    fn table() -> TableDef {
        let col = |name: &str, ty, not_null| ColumnDef::new(name, ty, not_null);
        TableDef {
            id: 1,
            name: "tx".into(),
            columns: vec![
                col("id", ColumnType::Integer, false),
                col("amt", ColumnType::Double, false),
                col("code", ColumnType::Varchar { max_len: Some(3) }, false),
                col("ts", ColumnType::Timestamp, true),
                col("raw", ColumnType::Bytea, false),
            ],
            event_time: Some(3),
            hot_retention_micros: 0,
            retention_micros: None,
            ingest_time: None,
            temporary: false,
            owner: "asofdb".into(),
        }
    }

    fn strings(values: &[Option<&str>]) -> Option<ArrayRef> {
        Some(Arc::new(StringArray::from(values.to_vec())))
    }

    #[test]
    fn text_values_convert_to_column_types() {
        let batch = conform(
            &table(),
            vec![
                strings(&[Some("1"), Some("2")]),
                Some(Arc::new(Int64Array::from(vec![5, 6]))),
                strings(&[Some("abc"), None]),
                strings(&[Some("2024-01-01 09:00:00"), Some("2024-01-01 10:00:00.5")]),
                strings(&[Some("\\x0aff"), Some("a\\\\b")]),
            ],
            2,
            RowLabel::Insert,
            &SessionZone::default(),
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        let amt = batch.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(amt.value(1), 6.0);
    }

    #[test]
    fn errors_name_row_column_and_sqlstate() {
        let ts = strings(&[Some("2024-01-01"), Some("2024-01-01")]);
        let bad_int = conform(
            &table(),
            vec![strings(&[Some("1"), Some("x")]), None, None, ts.clone(), None],
            2,
            RowLabel::Insert,
            &SessionZone::default(),
        )
        .unwrap_err();
        assert_eq!(bad_int.sqlstate(), "22P02");
        assert!(bad_int.to_string().contains("row 2, column id"), "{bad_int}");

        let lines = [2, 3];
        let label = RowLabel::Lines(&lines);
        let bad_ts = conform(
            &table(),
            vec![None, None, None, strings(&[Some("2024-01-01"), Some("nope")]), None],
            2,
            label,
            &SessionZone::default(),
        )
        .unwrap_err();
        assert_eq!(bad_ts.sqlstate(), "22007");
        assert!(bad_ts.to_string().contains("line 3"), "{bad_ts}");

        let null_ts = conform(
            &table(),
            vec![None, None, None, strings(&[Some("2024-01-01"), None]), None],
            2,
            RowLabel::Insert,
            &SessionZone::default(),
        )
        .unwrap_err();
        assert_eq!(null_ts.sqlstate(), "23502");

        let too_long = conform(
            &table(),
            vec![None, None, strings(&[Some("abcd"), None]), ts.clone(), None],
            2,
            RowLabel::Insert,
            &SessionZone::default(),
        )
        .unwrap_err();
        assert_eq!(too_long.sqlstate(), "22001");

        let overflow = Some(Arc::new(Int64Array::from(vec![1, 1 << 40])) as ArrayRef);
        let out_of_range =
            conform(&table(), vec![overflow, None, None, ts, None], 2, RowLabel::Insert, &SessionZone::default())
                .unwrap_err();
        assert_eq!(out_of_range.sqlstate(), "22003");
    }
}
