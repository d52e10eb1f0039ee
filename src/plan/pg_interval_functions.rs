//! PostgreSQL functions DataFusion lacks, over intervals and numbers: `justify_days`,
//! `justify_hours`, `justify_interval`, `age` (a symbolic difference in years, months and
//! days) and `div` (NUMERIC division truncated toward zero), each as PostgreSQL 15 computes it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, IntervalMonthDayNanoArray};
use arrow::datatypes::{
    DataType, Decimal128Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType,
};
use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

use super::expr_rules::columnar;
use crate::error::SqlState;
use crate::value::time_zone::{local_of_instant, parse_tz};

const DAYS_PER_MONTH: i64 = 30;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The functions of this module, to register.
pub fn functions() -> Vec<ScalarUDF> {
    [Kind::JustifyDays, Kind::JustifyHours, Kind::JustifyInterval, Kind::Age, Kind::Div]
        .into_iter()
        .map(|kind| {
            let signature = match kind {
                Kind::Age => Signature::variadic_any(Volatility::Stable),
                Kind::Div => Signature::any(2, Volatility::Immutable),
                _ => Signature::any(1, Volatility::Immutable),
            };
            ScalarUDF::new_from_impl(PgFunction { kind, signature })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    JustifyDays,
    JustifyHours,
    JustifyInterval,
    Age,
    Div,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFunction {
    kind: Kind,
    signature: Signature,
}

fn interval_type() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        match self.kind {
            Kind::JustifyDays => "justify_days",
            Kind::JustifyHours => "justify_hours",
            Kind::JustifyInterval => "justify_interval",
            Kind::Age => "age",
            Kind::Div => "div",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match self.kind {
            Kind::Div => {
                if args.iter().all(|t| t.is_numeric() || *t == DataType::Null) {
                    Ok(DataType::Decimal128(38, 0))
                } else {
                    Err(DataFusionError::Plan(format!("No function matches div({}, {})", args[0], args[1])))
                }
            }
            Kind::Age if args.is_empty() || args.len() > 2 => {
                Err(DataFusionError::Plan("No function matches age(): it takes one or two timestamps".into()))
            }
            _ => Ok(interval_type()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<_>>()?;
        let result: ArrayRef = match self.kind {
            Kind::JustifyDays | Kind::JustifyHours | Kind::JustifyInterval => {
                let intervals = arrow::compute::cast(&arrays[0], &interval_type())?;
                let justify = match self.kind {
                    Kind::JustifyDays => justify_days,
                    Kind::JustifyHours => justify_hours,
                    _ => justify_interval,
                };
                let mut out = Vec::with_capacity(intervals.len());
                for value in intervals.as_primitive::<IntervalMonthDayNanoType>().iter() {
                    out.push(match value {
                        None => None,
                        Some(v) => Some(justify(v).ok_or_else(|| {
                            crate::error::Error::in_datafusion(SqlState::DatetimeFieldOverflow, "interval out of range")
                        })?),
                    });
                }
                Arc::new(IntervalMonthDayNanoArray::from(out))
            }
            Kind::Age => {
                // age(x) is age(today's midnight, x), today in the session's zone.
                let zone = args.config_options.execution.time_zone.clone().unwrap_or_else(|| "+00:00".into());
                let (later, earlier) = if arrays.len() == 1 {
                    let tz = parse_tz(&zone).ok_or_else(|| {
                        crate::error::Error::in_datafusion(SqlState::InvalidParameterValue, "bad session zone")
                    })?;
                    let now = chrono::Utc::now().timestamp_micros();
                    let today = local_of_instant(now, &tz).unwrap_or(now).div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY;
                    (vec![Some(today); rows], local_times(&arrays[0])?)
                } else {
                    (local_times(&arrays[0])?, local_times(&arrays[1])?)
                };
                let out: IntervalMonthDayNanoArray =
                    later.iter().zip(&earlier).map(|(a, b)| age((*a)?, (*b)?)).collect();
                Arc::new(out)
            }
            Kind::Div => divide_truncating(&arrays[0], &arrays[1])?,
        };
        columnar(result, scalar)
    }
}

/// Timestamps (or dates) as local times in microseconds: a TIMESTAMPTZ in the zone it is
/// tagged with (the session's, `plan::session_time_zone`).
fn local_times(values: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let zone = match values.data_type() {
        DataType::Timestamp(_, Some(tag)) => parse_tz(tag),
        _ => None,
    };
    let tag = match values.data_type() {
        DataType::Timestamp(_, tag) => tag.clone(),
        _ => None,
    };
    let micros = arrow::compute::cast(values, &DataType::Timestamp(TimeUnit::Microsecond, tag))?;
    Ok(micros
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .map(|v| match &zone {
            Some(zone) => local_of_instant(v?, zone),
            None => v,
        })
        .collect())
}

/// Moves the whole `unit`s of `small` into `big` (30 days into a month, 24 hours into a day).
fn carry(big: &mut i64, small: &mut i64, unit: i64) {
    let whole = *small / unit;
    *small -= whole * unit;
    *big += whole;
}

/// Lends one `unit` of `big` to `small` (or back) where their signs differ.
fn agree(big: &mut i64, small: &mut i64, unit: i64) {
    if *big > 0 && *small < 0 {
        *small += unit;
        *big -= 1;
    } else if *big < 0 && *small > 0 {
        *small -= unit;
        *big += 1;
    }
}

fn justify_days(i: IntervalMonthDayNano) -> Option<IntervalMonthDayNano> {
    let (mut months, mut days) = (i64::from(i.months), i64::from(i.days));
    carry(&mut months, &mut days, DAYS_PER_MONTH);
    agree(&mut months, &mut days, DAYS_PER_MONTH);
    Some(IntervalMonthDayNano::new(i32::try_from(months).ok()?, i32::try_from(days).ok()?, i.nanoseconds))
}

fn justify_hours(i: IntervalMonthDayNano) -> Option<IntervalMonthDayNano> {
    let (mut days, mut micros) = (i64::from(i.days), i.nanoseconds / 1000);
    carry(&mut days, &mut micros, MICROS_PER_DAY);
    agree(&mut days, &mut micros, MICROS_PER_DAY);
    Some(IntervalMonthDayNano::new(i.months, i32::try_from(days).ok()?, micros * 1000 + i.nanoseconds % 1000))
}

/// PostgreSQL 15's `justify_interval`, step by step.
fn justify_interval(i: IntervalMonthDayNano) -> Option<IntervalMonthDayNano> {
    let (mut months, mut days, mut micros) = (i64::from(i.months), i64::from(i.days), i.nanoseconds / 1000);
    if (days > 0 && micros > 0) || (days < 0 && micros < 0) {
        carry(&mut months, &mut days, DAYS_PER_MONTH);
    }
    carry(&mut days, &mut micros, MICROS_PER_DAY);
    carry(&mut months, &mut days, DAYS_PER_MONTH);
    if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
        days += DAYS_PER_MONTH;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
        days -= DAYS_PER_MONTH;
        months += 1;
    }
    agree(&mut days, &mut micros, MICROS_PER_DAY);
    Some(IntervalMonthDayNano::new(i32::try_from(months).ok()?, i32::try_from(days).ok()?, micros * 1000))
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let next = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1);
    let following = chrono::NaiveDate::from_ymd_opt(next.0, next.1, 1);
    match (first, following) {
        (Some(a), Some(b)) => (b - a).num_days(),
        _ => 30,
    }
}

/// PostgreSQL's `age(a, b)`: `a - b` field by field (years, months, days, time), negative
/// fields borrowed from the next larger one, a month lent by the earlier date's month.
fn age(a: i64, b: i64) -> Option<IntervalMonthDayNano> {
    let at = |v: i64| chrono::DateTime::from_timestamp_micros(v).map(|d| d.naive_utc());
    let (t1, t2): (NaiveDateTime, NaiveDateTime) = (at(a)?, at(b)?);
    let flip = a < b;
    let sign = if flip { -1 } else { 1 };
    let fraction = |t: &NaiveDateTime| i64::from(t.nanosecond() / 1000);
    let mut micros = sign * (fraction(&t1) - fraction(&t2));
    let mut sec = sign * (i64::from(t1.second()) - i64::from(t2.second()));
    let mut min = sign * (i64::from(t1.minute()) - i64::from(t2.minute()));
    let mut hour = sign * (i64::from(t1.hour()) - i64::from(t2.hour()));
    let mut day = sign * (i64::from(t1.day()) - i64::from(t2.day()));
    let mut mon = sign * (i64::from(t1.month()) - i64::from(t2.month()));
    let mut year = sign * (i64::from(t1.year()) - i64::from(t2.year()));
    while micros < 0 {
        micros += 1_000_000;
        sec -= 1;
    }
    while sec < 0 {
        sec += 60;
        min -= 1;
    }
    while min < 0 {
        min += 60;
        hour -= 1;
    }
    while hour < 0 {
        hour += 24;
        day -= 1;
    }
    while day < 0 {
        let lender = if flip { &t1 } else { &t2 };
        day += days_in_month(lender.year(), lender.month());
        mon -= 1;
    }
    while mon < 0 {
        mon += 12;
        year -= 1;
    }
    let months = sign * (year * 12 + mon);
    let days = sign * day;
    let time = sign * (((hour * 60 + min) * 60 + sec) * 1_000_000 + micros);
    Some(IntervalMonthDayNano::new(i32::try_from(months).ok()?, i32::try_from(days).ok()?, time.checked_mul(1000)?))
}

/// `div(a, b)`: the integer quotient of two NUMERICs, truncated toward zero.
fn divide_truncating(a: &ArrayRef, b: &ArrayRef) -> Result<ArrayRef> {
    let scale_of = |t: &DataType| match t {
        DataType::Decimal128(_, s) => *s,
        DataType::Float32 | DataType::Float64 => 15,
        _ => 0,
    };
    let scale = scale_of(a.data_type()).max(scale_of(b.data_type())).clamp(0, 18);
    let exact = DataType::Decimal128(38, scale);
    // Not Arrow's safe cast, which would make a value too wide NULL: 22003 instead.
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let (a, b) = (
        arrow::compute::cast_with_options(a, &exact, &options)?,
        arrow::compute::cast_with_options(b, &exact, &options)?,
    );
    let (a, b) = (a.as_primitive::<Decimal128Type>(), b.as_primitive::<Decimal128Type>());
    let mut out = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b.iter()) {
        out.push(match (x, y) {
            (Some(_), Some(0)) => {
                return Err(crate::error::Error::in_datafusion(SqlState::DivisionByZero, "division by zero"));
            }
            (Some(x), Some(y)) => Some(x / y),
            _ => None,
        });
    }
    Ok(Arc::new(Decimal128Array::from(out).with_precision_and_scale(38, 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp_micros()
    }

    #[test]
    fn age_borrows_as_postgres_does() {
        let age = |a: &str, b: &str| age(micros(a), micros(b)).unwrap();
        // 1 year 2 mons 4 days 12:00:00
        assert_eq!(
            age("2024-03-05 12:00:00", "2023-01-01 00:00:00"),
            IntervalMonthDayNano::new(14, 4, 43_200_000_000_000)
        );
        // -1 years -2 mons -4 days -12:00:00
        assert_eq!(
            age("2023-01-01 00:00:00", "2024-03-05 12:00:00"),
            IntervalMonthDayNano::new(-14, -4, -43_200_000_000_000)
        );
        // From January 31st to March 1st: 1 mon 1 day (January lends its 31 days).
        assert_eq!(age("2024-03-01 00:00:00", "2024-01-31 00:00:00"), IntervalMonthDayNano::new(1, 1, 0));
    }

    #[test]
    fn justify_follows_postgres() {
        assert_eq!(justify_days(IntervalMonthDayNano::new(0, 35, 0)), Some(IntervalMonthDayNano::new(1, 5, 0)));
        assert_eq!(
            justify_hours(IntervalMonthDayNano::new(0, 0, 27 * 3_600_000_000_000)),
            Some(IntervalMonthDayNano::new(0, 1, 3 * 3_600_000_000_000))
        );
        assert_eq!(
            justify_interval(IntervalMonthDayNano::new(1, 0, -3_600_000_000_000)),
            Some(IntervalMonthDayNano::new(0, 29, 23 * 3_600_000_000_000))
        );
        // Out of range is an error (22008), not a wrapped value.
        assert_eq!(justify_hours(IntervalMonthDayNano::new(0, i32::MAX, 24 * 3_600_000_000_000)), None);
    }
}
