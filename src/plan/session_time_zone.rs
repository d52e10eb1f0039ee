//! The session's time zone in queries: where PostgreSQL reads or shows a TIMESTAMPTZ in the
//! session's zone, the plan does it in that zone (`value::time_zone` for the zone itself).
//!
//! TIMESTAMPTZ columns are stored as instants tagged `+00:00`. Arrow and DataFusion already
//! compute in the zone a type is tagged with (`date_trunc`, `extract`, `::date`,
//! `+ interval '1 day'` across a DST change), so [`SessionTimeZone`] retags a TIMESTAMPTZ to
//! the session's zone where it is taken apart, a metadata-only cast, and casts the result
//! back, so no column changes type. Where Arrow's conversions differ from PostgreSQL's it
//! uses its own: a local time to an instant (DST gaps and overlaps), an instant to a local
//! time (Arrow keeps the UTC clock), and text without an offset (a local time in the
//! session's zone). `AT TIME ZONE` is [`AtTimeZone`], registered as `pg_at_time_zone`.

use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::datatypes::{
    DataType, Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TryCast, Volatility, cast, lit,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{columnar, input_schema, rewrite_keeping_names};
use crate::value::time_zone::{SessionZone, UTC_TAG, instant_of_local, local_of_instant, parse_instant, parse_tz};

use crate::error::SqlState;
use crate::sql::function_spellings::AT_TIME_ZONE;

fn micros(tz: Option<&str>) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into))
}

/// See the module's doc. The session's zone is `execution.time_zone` of the config the
/// analyzer runs with (`Database::analyze`).
#[derive(Debug)]
pub struct SessionTimeZone;

impl AnalyzerRule for SessionTimeZone {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let zone = config.execution.time_zone.clone().unwrap_or_else(|| UTC_TAG.into());
        let udfs = Conversions::new();
        plan.transform_up_with_subqueries(|node| {
            let schema = input_schema(&node);
            rewrite_keeping_names(node, |e| in_zone(e, &schema, &zone, &udfs))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "session_time_zone"
    }
}

struct Conversions {
    local_time: Arc<ScalarUDF>,
    zoned_instant: Arc<ScalarUDF>,
    text_instant: Arc<ScalarUDF>,
    add_interval: Arc<ScalarUDF>,
}

impl Conversions {
    fn new() -> Self {
        let udf = |f: Conversion| Arc::new(ScalarUDF::new_from_impl(ConversionUdf::new(f)));
        Self {
            local_time: udf(Conversion::LocalTime),
            zoned_instant: udf(Conversion::ZonedInstant),
            text_instant: udf(Conversion::TextInstant),
            add_interval: udf(Conversion::AddInterval),
        }
    }
}

fn in_zone(expr: Expr, schema: &DFSchema, zone: &str, udfs: &Conversions) -> Result<Transformed<Expr>> {
    let type_of = |e: &Expr| e.get_type(schema).ok();
    let zoned = |t: &Option<DataType>| matches!(t, Some(DataType::Timestamp(_, Some(tag))) if tag.as_ref() != zone);
    let retag = |e: Expr| cast(e, micros(Some(zone)));
    let session_zone = || lit(zone.to_string());
    // An instant in the session's zone from a value PostgreSQL would read as one.
    let to_instant = |e: Expr, from: &DataType| -> Option<Expr> {
        match from {
            DataType::Timestamp(_, None) => Some(udfs.zoned_instant.call(vec![cast(e, micros(None)), session_zone()])),
            DataType::Date32 | DataType::Date64 => {
                Some(udfs.zoned_instant.call(vec![cast(e, micros(None)), session_zone()]))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Some(udfs.text_instant.call(vec![cast(e, DataType::Utf8), session_zone()]))
            }
            _ => None,
        }
    };
    Ok(match expr {
        // Text (`'2024-03-01 12:00' AT TIME ZONE ...`) is read as a TIMESTAMPTZ, as PostgreSQL does.
        Expr::ScalarFunction(ScalarFunction { func, mut args }) if func.name() == AT_TIME_ZONE => {
            let text_or_date = type_of(&args[0])
                .filter(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Date32));
            match text_or_date.and_then(|t| to_instant(args[0].clone(), &t)) {
                Some(instant) => {
                    args[0] = instant;
                    Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args }))
                }
                None => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        // Text to TIMESTAMPTZ in every zone: Arrow reads neither `12:00+02` nor `12:00`.
        Expr::Cast(Cast { expr: inner, field })
            if matches!(field.data_type(), DataType::Timestamp(_, Some(_)))
                && matches!(type_of(&inner), Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) =>
        {
            match type_of(&inner).and_then(|from| to_instant((*inner).clone(), &from)) {
                Some(instant) => Transformed::yes(cast(instant, field.data_type().clone())),
                None => Transformed::no(Expr::Cast(Cast { expr: inner, field })),
            }
        }
        // In UTC a TIMESTAMP is the instant of the same digits: its value, labelled. (Arrow's
        // cast goes through chrono, which refuses 'infinity' and years past 262143.)
        Expr::Cast(Cast { expr: inner, field })
            if zone == UTC_TAG
                && matches!(field.data_type(), DataType::Timestamp(TimeUnit::Microsecond, Some(_)))
                && matches!(type_of(&inner), Some(DataType::Timestamp(_, None))) =>
        {
            Transformed::yes(cast(cast(cast(*inner, micros(None)), DataType::Int64), field.data_type().clone()))
        }
        _ if zone == UTC_TAG => Transformed::no(expr),
        Expr::Cast(Cast { expr: inner, field }) => {
            let from = type_of(&inner);
            match conversion(*inner, &from, field.data_type(), zone, &to_instant, udfs) {
                Ok(converted) => Transformed::yes(converted),
                Err(inner) => Transformed::no(Expr::Cast(Cast { expr: Box::new(inner), field })),
            }
        }
        Expr::TryCast(TryCast { expr: inner, field }) => {
            let from = type_of(&inner);
            match conversion(*inner, &from, field.data_type(), zone, &to_instant, udfs) {
                Ok(converted) => Transformed::yes(converted),
                Err(inner) => Transformed::no(Expr::TryCast(TryCast { expr: Box::new(inner), field })),
            }
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if args.iter().any(|a| zoned(&type_of(a))) && !is_conversion(func.name()) =>
        {
            let before = Expr::ScalarFunction(ScalarFunction { func: func.clone(), args: args.clone() });
            let result_type = type_of(&before);
            let args = args.into_iter().map(|a| if zoned(&type_of(&a)) { retag(a) } else { a }).collect();
            let call = Expr::ScalarFunction(ScalarFunction { func, args });
            Transformed::yes(match result_type {
                Some(t @ DataType::Timestamp(_, Some(_))) => cast(call, t),
                _ => call,
            })
        }
        // `+ interval '1 day'` keeps the local time across a DST change.
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right })
            if (zoned(&type_of(&left)) && matches!(type_of(&right), Some(DataType::Interval(_))))
                || (zoned(&type_of(&right))
                    && matches!(type_of(&left), Some(DataType::Interval(_)))
                    && op == Operator::Plus) =>
        {
            let before = Expr::BinaryExpr(BinaryExpr { left: left.clone(), op, right: right.clone() });
            let Some(result_type) = type_of(&before) else { return Ok(Transformed::no(before)) };
            let (instant, interval) = if zoned(&type_of(&left)) { (*left, *right) } else { (*right, *left) };
            let sign = lit(if op == Operator::Plus { 1i64 } else { -1 });
            Transformed::yes(cast(udfs.add_interval.call(vec![retag(instant), interval, sign]), result_type))
        }
        other => Transformed::no(other),
    })
}

fn is_conversion(name: &str) -> bool {
    [Conversion::LocalTime, Conversion::ZonedInstant, Conversion::TextInstant, Conversion::AddInterval]
        .iter()
        .any(|c| c.name() == name)
}

/// A cast the session's zone changes, done in it; `Err` gives the operand back otherwise.
fn conversion(
    inner: Expr,
    from: &Option<DataType>,
    to: &DataType,
    zone: &str,
    to_instant: &dyn Fn(Expr, &DataType) -> Option<Expr>,
    udfs: &Conversions,
) -> std::result::Result<Expr, Expr> {
    let Some(from) = from else { return Err(inner) };
    let retag = |e: Expr| cast(e, micros(Some(zone)));
    match (from, to) {
        (DataType::Timestamp(_, Some(_)), DataType::Timestamp(_, None)) => {
            Ok(cast(udfs.local_time.call(vec![retag(inner)]), to.clone()))
        }
        (DataType::Timestamp(_, Some(_)), DataType::Timestamp(_, Some(_))) => Err(inner),
        (DataType::Timestamp(_, Some(tag)), _) if tag.as_ref() != zone => Ok(cast(retag(inner), to.clone())),
        (_, DataType::Timestamp(_, Some(_))) => match to_instant(inner.clone(), from) {
            Some(instant) => Ok(cast(instant, to.clone())),
            None => Err(inner),
        },
        _ => Err(inner),
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Conversion {
    /// `local_time(instant)`: the local time in the zone the argument is tagged with.
    LocalTime,
    /// `zoned_instant(local time, zone)`: the instant it names there.
    ZonedInstant,
    /// `text_instant(text, zone)`: text with or without an offset, read as an instant.
    TextInstant,
    /// `add_interval(instant, interval, sign)`: months and days added to the local time in
    /// the instant's zone, then the rest to the instant, as PostgreSQL adds them.
    AddInterval,
}

impl Conversion {
    fn name(&self) -> &'static str {
        match self {
            Conversion::LocalTime => "local_time",
            Conversion::ZonedInstant => "zoned_instant",
            Conversion::TextInstant => "text_instant",
            Conversion::AddInterval => "add_interval_in_zone",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ConversionUdf {
    conversion: Conversion,
    signature: Signature,
}

impl ConversionUdf {
    fn new(conversion: Conversion) -> Self {
        let arity = match conversion {
            Conversion::LocalTime => 1,
            Conversion::AddInterval => 3,
            _ => 2,
        };
        Self { conversion, signature: Signature::any(arity, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ConversionUdf {
    fn name(&self) -> &str {
        self.conversion.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(match self.conversion {
            Conversion::LocalTime => micros(None),
            Conversion::AddInterval => args[0].clone(),
            Conversion::ZonedInstant | Conversion::TextInstant => micros(Some(UTC_TAG)),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let result: ArrayRef = match self.conversion {
            Conversion::LocalTime => {
                let DataType::Timestamp(_, Some(tag)) = arrays[0].data_type() else {
                    return exec_err!("local_time of {}", arrays[0].data_type());
                };
                let zone = zone_named(tag)?;
                let instants = as_micros(&arrays[0])?;
                Arc::new(map_micros(&instants, |v| local_of_instant(v, &zone)))
            }
            Conversion::AddInterval => {
                let DataType::Timestamp(_, Some(tag)) = arrays[0].data_type() else {
                    return exec_err!("add_interval_in_zone of {}", arrays[0].data_type());
                };
                let zone = zone_named(tag)?;
                let instants = as_micros(&arrays[0])?;
                let intervals = arrow::compute::cast(&arrays[1], &DataType::Interval(IntervalUnit::MonthDayNano))?;
                let intervals = intervals.as_primitive::<IntervalMonthDayNanoType>();
                let signs = arrow::compute::cast(&arrays[2], &DataType::Int64)?;
                let signs = signs.as_primitive::<Int64Type>();
                let at = |array_len: usize, i: usize| if array_len == 1 { 0 } else { i };
                let rows = instants.len().max(intervals.len());
                let mut out = Vec::with_capacity(rows);
                for i in 0..rows {
                    let (a, b, c) = (at(instants.len(), i), at(intervals.len(), i), at(signs.len(), i));
                    if instants.is_null(a) || intervals.is_null(b) || signs.is_null(c) {
                        out.push(None);
                        continue;
                    }
                    let sum = add_in_zone(instants.value(a), intervals.value(b), signs.value(c), &zone);
                    out.push(Some(sum.ok_or_else(|| {
                        crate::error::Error::in_datafusion(SqlState::DatetimeFieldOverflow, "timestamp out of range")
                    })?));
                }
                Arc::new(TimestampMicrosecondArray::from(out).with_timezone(tag.clone()))
            }
            Conversion::ZonedInstant => {
                let zones = zones(&args.args[1], zone_named)?;
                let locals = as_micros(&arrays[0])?;
                let values = locals.iter().enumerate().map(|(i, v)| instant_of_local(v?, zones.at(i)?));
                Arc::new(values.collect::<TimestampMicrosecondArray>().with_timezone(UTC_TAG))
            }
            Conversion::TextInstant => {
                let zones = zones(&args.args[1], zone_named)?;
                let texts = arrays[0].as_string::<i32>();
                let mut values = Vec::with_capacity(texts.len());
                for (i, text) in texts.iter().enumerate() {
                    values.push(match text {
                        None => None,
                        Some(t) => match zones.at(i).and_then(|z| parse_instant(t, z)) {
                            Some(v) => Some(v),
                            None => {
                                let message =
                                    format!("invalid input syntax for type timestamp with time zone: \"{t}\"");
                                return Err(crate::error::Error::in_datafusion(
                                    SqlState::InvalidDatetimeFormat,
                                    message,
                                ));
                            }
                        },
                    });
                }
                Arc::new(TimestampMicrosecondArray::from(values).with_timezone(UTC_TAG))
            }
        };
        columnar(result, scalar)
    }
}

/// `instant + sign * interval` in `zone`, as PostgreSQL's `timestamptz + interval`: months,
/// then days, added to the local time (the day of month clamped to the month's last), read
/// back as an instant with PostgreSQL's DST choices; then the time part added to the instant.
fn add_in_zone(instant: i64, interval: IntervalMonthDayNano, sign: i64, zone: &Tz) -> Option<i64> {
    if crate::value::infinite::infinite_text(instant).is_some() {
        return Some(instant);
    }
    let months = i64::from(interval.months) * sign;
    let days = i64::from(interval.days) * sign;
    let nanos = interval.nanoseconds.checked_mul(sign)?;
    let local = |at: i64| Some(chrono::DateTime::from_timestamp_micros(local_of_instant(at, zone)?)?.naive_utc());
    let to_instant = |local: chrono::NaiveDateTime| instant_of_local(local.and_utc().timestamp_micros(), zone);
    // Each step reads the local time anew, as PostgreSQL does: a month that lands in a DST
    // gap moves the time before the days are added.
    let mut at = instant;
    if months != 0 {
        let step = chrono::Months::new(u32::try_from(months.unsigned_abs()).ok()?);
        let from = local(at)?;
        at = to_instant(if months > 0 { from.checked_add_months(step)? } else { from.checked_sub_months(step)? })?;
    }
    if days != 0 {
        at = to_instant(local(at)?.checked_add_signed(chrono::TimeDelta::try_days(days)?)?)?;
    }
    at.checked_add(nanos / 1000)
}

/// A timestamp array as microseconds, whatever its unit.
fn as_micros(array: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    let tag = match array.data_type() {
        DataType::Timestamp(_, tag) => tag.clone(),
        _ => None,
    };
    let array = arrow::compute::cast(array, &DataType::Timestamp(TimeUnit::Microsecond, tag))?;
    Ok(array.as_primitive::<TimestampMicrosecondType>().clone())
}

fn map_micros(values: &TimestampMicrosecondArray, f: impl Fn(i64) -> Option<i64>) -> TimestampMicrosecondArray {
    values.iter().map(|v| f(v?)).collect()
}

/// The zone of a type's tag or a session's setting.
fn zone_named(name: &str) -> Result<Tz> {
    parse_tz(name).ok_or_else(|| unknown_zone(name))
}

fn unknown_zone(name: &str) -> DataFusionError {
    crate::error::Error::in_datafusion(SqlState::InvalidParameterValue, format!("time zone \"{name}\" not recognized"))
}

/// Zones given per row (`AT TIME ZONE zone_column`) or once.
struct Zones(Vec<Option<Tz>>);

impl Zones {
    fn at(&self, row: usize) -> Option<&Tz> {
        self.0.get(row).or_else(|| self.0.first()).and_then(Option::as_ref)
    }
}

/// The zones an argument names, each read with `read`: once for a constant (the session's
/// zone, `AT TIME ZONE 'UTC'`), else per row, a repeated name read once.
fn zones(argument: &ColumnarValue, read: impl Fn(&str) -> Result<Tz>) -> Result<Zones> {
    let names = arrow::compute::cast(&argument.to_array(1)?, &DataType::Utf8)?;
    let names = names.as_string::<i32>();
    let names = match argument {
        ColumnarValue::Scalar(_) => names.slice(0, names.len().min(1)),
        ColumnarValue::Array(_) => names.clone(),
    };
    let mut last: Option<(String, Tz)> = None;
    let mut zones = Vec::with_capacity(names.len());
    for name in names.iter() {
        zones.push(match name {
            None => None,
            Some(n) => match &last {
                Some((seen, zone)) if seen == n => Some(*zone),
                _ => {
                    let zone = read(n)?;
                    last = Some((n.to_string(), zone));
                    Some(zone)
                }
            },
        });
    }
    Ok(Zones(zones))
}

/// `x AT TIME ZONE zone`, `timezone(zone, x)`: a TIMESTAMPTZ becomes the local time in
/// `zone`; a TIMESTAMP is read as a local time there and becomes an instant. The zone is
/// named as in `SET TimeZone` (`America/New_York`, `UTC`, POSIX `UTC+3`).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AtTimeZone {
    signature: Signature,
}

impl AtTimeZone {
    pub fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        AT_TIME_ZONE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Timestamp(_, None) => Ok(micros(Some(UTC_TAG))),
            DataType::Timestamp(_, Some(_)) | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Ok(micros(None))
            }
            DataType::Date32 | DataType::Null => Ok(micros(None)),
            other => plan_err!("No function matches timezone(unknown, {other})"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let zones = zones(&args.args[1], |n| {
            SessionZone::from_name_in_value(n).map(|z| z.tz()).ok_or_else(|| unknown_zone(n))
        })?;
        let value = &args.args[0].to_array(args.number_rows)?;
        let result: ArrayRef = match value.data_type() {
            DataType::Timestamp(_, None) => {
                let locals = as_micros(value)?;
                let instants = locals.iter().enumerate().map(|(i, v)| instant_of_local(v?, zones.at(i)?));
                Arc::new(instants.collect::<TimestampMicrosecondArray>().with_timezone(UTC_TAG))
            }
            DataType::Timestamp(_, Some(_)) => {
                let instants = as_micros(value)?;
                let locals = instants.iter().enumerate().map(|(i, v)| local_of_instant(v?, zones.at(i)?));
                Arc::new(locals.collect::<TimestampMicrosecondArray>())
            }
            _ => Arc::new(TimestampMicrosecondArray::new_null(value.len())),
        };
        columnar(result, scalar)
    }
}
