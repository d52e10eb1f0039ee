//! `to_char`, `to_date` and `to_timestamp` with PostgreSQL's template patterns
//! (`plan::datetime_template`), in place of DataFusion's, which take chrono's `%Y-%m-%d`:
//! `to_char(ts, 'YYYY-MM-DD')` printed the template back. `to_timestamp` is a TIMESTAMPTZ,
//! as in PostgreSQL (DataFusion's has no zone); text without an offset is read in the
//! session's zone.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::datetime_template::Template;
use super::expr_rules::columnar;
use crate::error::SqlState;
use crate::value::time_zone::{UTC_TAG, instant_of_local, parse_tz};

/// The three functions, to register over DataFusion's.
pub fn functions() -> Vec<ScalarUDF> {
    [Kind::Char, Kind::Date, Kind::Timestamp]
        .into_iter()
        .map(|k| ScalarUDF::new_from_impl(PgDatetime::new(k)))
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Char,
    Date,
    Timestamp,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgDatetime {
    kind: Kind,
    signature: Signature,
}

impl PgDatetime {
    fn new(kind: Kind) -> Self {
        let signature = match kind {
            Kind::Timestamp => Signature::variadic_any(Volatility::Immutable),
            _ => Signature::any(2, Volatility::Immutable),
        };
        Self { kind, signature }
    }
}

fn unsupported(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(crate::error::Error::unsupported(message)))
}

impl ScalarUDFImpl for PgDatetime {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Char => "to_char",
            Kind::Date => "to_date",
            Kind::Timestamp => "to_timestamp",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.kind {
            Kind::Char => match &args[0] {
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null => Ok(DataType::Utf8),
                other => Err(unsupported(format!("to_char of {other} is not supported (dates and timestamps only)"))),
            },
            Kind::Date => Ok(DataType::Date32),
            Kind::Timestamp => match args.len() {
                1 if args[0].is_numeric() || args[0] == DataType::Null => {
                    Ok(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_TAG.into())))
                }
                2 => Ok(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_TAG.into()))),
                _ => Err(DataFusionError::Plan(format!(
                    "No function matches to_timestamp({}): it takes seconds since 1970, or text and a template",
                    args.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ))),
            },
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let session_zone = args.config_options.execution.time_zone.clone().unwrap_or_else(|| UTC_TAG.into());
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let result = match self.kind {
            Kind::Char => to_char(&arrays[0], &arrays[1], &session_zone)?,
            Kind::Date => {
                let read = read_all(&text(&arrays[0])?, &text(&arrays[1])?)?;
                let dates: Date32Array = read
                    .iter()
                    .map(|r| r.map(|(at, _)| arrow::datatypes::Date32Type::from_naive_date(at.date())))
                    .collect();
                Arc::new(dates)
            }
            Kind::Timestamp if arrays.len() == 1 => epoch_seconds(&arrays[0])?,
            Kind::Timestamp => {
                let zone = parse_tz(&session_zone).ok_or_else(|| {
                    crate::error::Error::in_datafusion(SqlState::InvalidParameterValue, "bad session zone")
                })?;
                let read = read_all(&text(&arrays[0])?, &text(&arrays[1])?)?;
                let instants: TimestampMicrosecondArray = read
                    .iter()
                    .map(|r| {
                        let (at, offset) = (*r)?;
                        let local = at.and_utc().timestamp_micros();
                        match offset {
                            Some(seconds) => Some(local - i64::from(seconds) * 1_000_000),
                            None => instant_of_local(local, &zone),
                        }
                    })
                    .collect();
                Arc::new(instants.with_timezone(UTC_TAG))
            }
        };
        columnar(result, scalar)
    }
}

fn text(array: &ArrayRef) -> Result<StringArray> {
    Ok(arrow::compute::cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// The template of each row (one for all rows if given once), each text parsed once while
/// the rows repeat it.
struct Templates<'a> {
    texts: &'a StringArray,
    parsed: Option<(String, Template)>,
}

impl<'a> Templates<'a> {
    fn new(texts: &'a StringArray) -> Self {
        Self { texts, parsed: None }
    }

    /// Row `row`'s template and its text; None where it is NULL.
    fn at(&mut self, row: usize) -> Option<(&str, &Template)> {
        let row = if self.texts.len() == 1 { 0 } else { row };
        if self.texts.is_null(row) {
            return None;
        }
        let source = self.texts.value(row);
        if self.parsed.as_ref().is_none_or(|(s, _)| s != source) {
            self.parsed = Some((source.to_string(), Template::parse(source)));
        }
        self.parsed.as_ref().map(|(s, t)| (s.as_str(), t))
    }
}

/// A local time read from text, and the offset east of UTC in seconds the text gave, if any.
type Read = (NaiveDateTime, Option<i32>);

/// Every row of `texts` read with its template; NULL where either is NULL.
fn read_all(texts: &StringArray, templates: &StringArray) -> Result<Vec<Option<Read>>> {
    let mut parsed = Templates::new(templates);
    let mut out = Vec::with_capacity(texts.len());
    for row in 0..texts.len() {
        let Some((source, template)) = parsed.at(row).filter(|_| texts.is_valid(row)) else {
            out.push(None);
            continue;
        };
        let value = texts.value(row);
        match template.read(value) {
            Ok(read) => out.push(Some(read)),
            Err(reason) if reason.contains("out of range") => {
                return Err(crate::error::Error::in_datafusion(
                    SqlState::DatetimeFieldOverflow,
                    format!("date/time field value out of range: \"{value}\""),
                ));
            }
            Err(reason) => {
                return Err(crate::error::Error::in_datafusion(
                    SqlState::InvalidDatetimeFormat,
                    format!("{reason} in \"{value}\" (template \"{source}\")"),
                ));
            }
        }
    }
    Ok(out)
}

/// `to_timestamp(seconds)`: an instant, seconds since 1970 UTC with their fraction.
fn epoch_seconds(array: &ArrayRef) -> Result<ArrayRef> {
    let seconds = arrow::compute::cast(array, &DataType::Float64)?;
    let mut instants = Vec::with_capacity(seconds.len());
    for v in seconds.as_primitive::<arrow::datatypes::Float64Type>().iter() {
        instants.push(match v {
            None => None,
            Some(s) if s.is_finite() && s.abs() < 9.2e12 => Some((s * 1_000_000.0).round() as i64),
            Some(s) => {
                return Err(crate::error::Error::in_datafusion(
                    SqlState::DatetimeFieldOverflow,
                    format!("timestamp out of range: \"{s}\""),
                ));
            }
        });
    }
    Ok(Arc::new(TimestampMicrosecondArray::from(instants).with_timezone(UTC_TAG)))
}

/// `to_char(value, template)` of dates and timestamps; a TIMESTAMPTZ in the zone it is
/// tagged with (the session's: `plan::session_time_zone` retags it).
/// A date is printed as its midnight in `session_zone`, a TIMESTAMPTZ, as PostgreSQL does
/// (`to_char(date '2024-03-05', 'TZ')` is `EST` in New York); a TIMESTAMP has offset zero.
fn to_char(values: &ArrayRef, templates: &ArrayRef, session_zone: &str) -> Result<ArrayRef> {
    let templates = text(templates)?;
    let zone_name = match values.data_type() {
        DataType::Timestamp(_, Some(tag)) => Some(tag.to_string()),
        DataType::Date32 | DataType::Date64 => Some(session_zone.to_string()),
        _ => None,
    };
    let named = zone_name.as_deref().and_then(|n| chrono_tz::Tz::from_str(n).ok());
    let fixed = zone_name.as_deref().and_then(parse_tz);
    let micros = match values.data_type() {
        DataType::Null => return Ok(Arc::new(StringArray::new_null(values.len()))),
        DataType::Date32 | DataType::Date64 => {
            let zone = parse_tz(session_zone).ok_or_else(|| {
                crate::error::Error::in_datafusion(SqlState::InvalidParameterValue, "bad session zone")
            })?;
            let midnights = arrow::compute::cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let instants: TimestampMicrosecondArray = midnights
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| instant_of_local(v?, &zone))
                .collect();
            Arc::new(instants) as ArrayRef
        }
        _ => arrow::compute::cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
    };
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    let mut parsed = Templates::new(&templates);
    let mut out = Vec::with_capacity(micros.len());
    for row in 0..micros.len() {
        let Some((_, template)) = parsed.at(row).filter(|_| micros.is_valid(row)) else {
            out.push(None);
            continue;
        };
        let instant = micros.value(row);
        let Some(utc) = DateTime::from_timestamp_micros(instant) else {
            out.push(None);
            continue;
        };
        let (local, zone) = match (&named, &fixed) {
            (Some(tz), _) => {
                let at = tz.from_utc_datetime(&utc.naive_utc());
                let offset = at.offset().fix().local_minus_utc();
                let name = chrono_tz::OffsetName::abbreviation(at.offset()).unwrap_or("").to_string();
                (at.naive_local(), Some((name, offset)))
            }
            (None, Some(tz)) => {
                let offset = tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc();
                let local = utc.naive_utc() + chrono::TimeDelta::seconds(i64::from(offset));
                let name = if zone_name.as_deref() == Some(UTC_TAG) {
                    "UTC".to_string()
                } else {
                    crate::value::time_zone::offset_text(offset)
                };
                (local, Some((name, offset)))
            }
            (None, None) => (utc.naive_utc(), Some((String::new(), 0))),
        };
        out.push(Some(template.format(local, zone.as_ref().map(|(n, o)| (n.as_str(), *o)))));
    }
    Ok(Arc::new(StringArray::from(out)))
}
