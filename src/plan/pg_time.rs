//! PostgreSQL's rules for dates and times where Arrow's differ:
//!
//! - `date ± interval` is a timestamp (`date '2024-03-01' + interval '1 hour'` is
//!   `2024-03-01 01:00:00`); Arrow adds to the date and drops the hours.
//! - `date - date` is an integer; `timestamp - timestamp` is whole days and a time
//!   (`4 days 03:00:00`), not hours.
//! - `extract(second ...)` keeps the fraction and `extract(epoch ...)` the microseconds, as
//!   NUMERIC with six decimals (`56.500000`); DataFusion returns whole seconds. Every other
//!   field is a whole NUMERIC, as `extract` is in PostgreSQL (DataFusion: an integer).
//! - `TIMESTAMP '...'` and `::timestamp` are microseconds, as stored columns are, so years
//!   before 1677 and after 2262 are read (DataFusion plans nanoseconds).
//! - `'infinity'`, `'0044-03-15 BC'` and `'2024-03-01 12:00'` are timestamps (and dates)
//!   ([`PgTimeLiterals`]). A timestamp as text is `plan::text_casts`'s.
//!
//! [`PgTimeBeforeCoercion`] runs before type coercion (it changes result types, which what
//! surrounds the expression must then be coerced to); [`PgTimeLiterals`] after it, so it
//! also sees the casts coercion adds.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, IntervalMonthDayNanoArray};
use arrow::datatypes::{DataType, Int64Type, IntervalMonthDayNano, IntervalUnit, TimeUnit, TimestampMicrosecondType};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, TryCast, Volatility, cast, lit, try_cast, when,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

use super::expr_rules::{input_schema, rewrite_keeping_names, rewrite_retyping};
use crate::error::SqlState;
use crate::value::with_seconds;

/// Date arithmetic and `extract`; see the module's doc.
#[derive(Debug)]
pub struct PgTimeBeforeCoercion;

impl AnalyzerRule for PgTimeBeforeCoercion {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let node = node.recompute_schema()?;
            let schema = input_schema(&node);
            rewrite_retyping(node, |e| before_coercion(e, &schema))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_time_before_coercion"
    }
}

fn before_coercion(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let is = |e: &Expr, check: fn(&DataType) -> bool| e.get_type(schema).is_ok_and(|t| check(&t));
    let date = |t: &DataType| matches!(t, DataType::Date32 | DataType::Date64);
    let interval = |t: &DataType| matches!(t, DataType::Interval(_));
    let stamp = |t: &DataType| matches!(t, DataType::Timestamp(..));
    let stamp_or_date = |t: &DataType| matches!(t, DataType::Timestamp(..) | DataType::Date32 | DataType::Date64);
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right })
            if is(&left, date) && is(&right, interval) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(cast(*left, timestamp)), op, right)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Plus, right }) if is(&left, interval) && is(&right, date) => {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(left, Operator::Plus, Box::new(cast(*right, timestamp)))))
        }
        // date ± integer is a date, the integer in days (DataFusion makes an interval of the
        // integer's seconds, which overflows past 106,751 days).
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right })
            if is(&left, date) && is(&right, |t| t.is_integer()) =>
        {
            let days = Expr::BinaryExpr(BinaryExpr::new(Box::new(cast(*left, DataType::Int64)), op, right));
            Transformed::yes(cast(super::pg_numeric::to_integer(days, DataType::Int32), DataType::Date32))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Plus, right })
            if is(&left, |t| t.is_integer()) && is(&right, date) =>
        {
            let days = Expr::BinaryExpr(BinaryExpr::new(left, Operator::Plus, Box::new(cast(*right, DataType::Int64))));
            Transformed::yes(cast(super::pg_numeric::to_integer(days, DataType::Int32), DataType::Date32))
        }
        // `t > '-infinity'`: the text is read as the timestamp it is compared with (type
        // coercion would parse it with Arrow, which does not read `infinity`).
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if is_comparison_op(op)
                && (infinite_text_literal(&left) && is(&right, stamp)
                    || infinite_text_literal(&right) && is(&left, stamp)) =>
        {
            let (left_type, right_type) = (left.get_type(schema)?, right.get_type(schema)?);
            let typed = |e: Expr, t: &DataType| infinite_literal(&e, t).unwrap_or(e);
            let left = typed(*left, &right_type);
            let right = typed(*right, &left_type);
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))))
        }
        // date - date is an integer number of days in PostgreSQL (Arrow: bigint).
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Minus, right }) if is(&left, date) && is(&right, date) => {
            Transformed::yes(cast(Expr::BinaryExpr(BinaryExpr::new(left, Operator::Minus, right)), DataType::Int32))
        }
        // timestamp - timestamp: whole days, then the time of day, as PostgreSQL shows it.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Minus, right })
            if (is(&left, stamp) && is(&right, stamp_or_date)) || (is(&left, stamp_or_date) && is(&right, stamp)) =>
        {
            // A TIMESTAMPTZ less a TIMESTAMP or a date: the other is read as an instant (in
            // the session's zone, `plan::session_time_zone`), as PostgreSQL casts it.
            let zoned = |e: &Expr| is(e, |t| matches!(t, DataType::Timestamp(_, Some(_))));
            let instant = DataType::Timestamp(TimeUnit::Microsecond, Some(crate::value::time_zone::UTC_TAG.into()));
            let (left, right) = match (zoned(&left), zoned(&right)) {
                (true, false) => (*left, cast(*right, instant)),
                (false, true) => (cast(*left, instant), *right),
                _ => (*left, *right),
            };
            let difference = ScalarUDF::new_from_impl(TimestampDifference::new());
            Transformed::yes(difference.call(vec![left, right]))
        }
        // now() in microseconds, PostgreSQL's precision: compared with a stored TIMESTAMPTZ
        // it would otherwise make DataFusion convert the column to nanoseconds, which
        // `'infinity'` and times outside 1677-2262 do not fit.
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "now" && args.is_empty() => {
            let micros = DataType::Timestamp(TimeUnit::Microsecond, Some(crate::value::time_zone::UTC_TAG.into()));
            Transformed::yes(cast(Expr::ScalarFunction(ScalarFunction { func, args }), micros))
        }
        // generate_series of dates or timestamps: text arguments take the type of the typed
        // ones (PostgreSQL's unknown literals), the step is an interval, and dates make a
        // series of TIMESTAMPTZ, PostgreSQL's preferred type for them.
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "generate_series"
                && args.len() == 3
                && args.iter().take(2).any(|a| is(a, stamp_or_date)) =>
        {
            let text = |e: &Expr| is(e, |t| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8));
            let types: Vec<DataType> = args.iter().take(2).filter_map(|a| a.get_type(schema).ok()).collect();
            let instant = DataType::Timestamp(TimeUnit::Microsecond, Some(crate::value::time_zone::UTC_TAG.into()));
            let target = match types.iter().find(|t| matches!(t, DataType::Timestamp(_, Some(_)))) {
                Some(zoned) => zoned.clone(),
                None => match types.iter().find(|t| matches!(t, DataType::Timestamp(_, None))) {
                    Some(local) => local.clone(),
                    None => instant,
                },
            };
            let mut args = args;
            for arg in args.iter_mut().take(2) {
                if (is(arg, stamp_or_date) && arg.get_type(schema)? != target) || text(arg) {
                    *arg = cast(arg.clone(), target.clone());
                }
            }
            if text(&args[2]) {
                args[2] = cast(args[2].clone(), DataType::Interval(IntervalUnit::MonthDayNano));
            }
            Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args }))
        }
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "date_part" && args.len() == 2 => {
            let part = match &args[0] {
                Expr::Literal(ScalarValue::Utf8(Some(p)), _) => p.to_ascii_lowercase(),
                _ => return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args }))),
            };
            let of_timestamp = is(&args[1], |t| matches!(t, DataType::Timestamp(..)));
            let mut args = args;
            if of_timestamp {
                let monotonic = super::infinite_time::MONOTONIC_FIELDS.contains(&part.as_str());
                let guard = ScalarUDF::new_from_impl(super::infinite_time::FinitePartOf::new());
                args[1] = guard.call(vec![args[1].clone(), lit(monotonic)]);
            }
            match part.as_str() {
                "second" | "seconds" | "s" if of_timestamp => {
                    let micros = Expr::ScalarFunction(ScalarFunction {
                        func: func.clone(),
                        args: vec![lit("microsecond"), args[1].clone()],
                    });
                    let seconds = ScalarUDF::new_from_impl(MicrosAsSeconds::new());
                    Transformed::yes(seconds.call(vec![micros]))
                }
                "epoch" if of_timestamp => {
                    let epoch = Expr::ScalarFunction(ScalarFunction { func, args });
                    Transformed::yes(cast(epoch, DataType::Decimal128(38, 6)))
                }
                // Every other field is a whole NUMERIC in PostgreSQL (`extract` is numeric
                // since PostgreSQL 14); DataFusion's is an integer.
                // There is no year 0 in PostgreSQL: 1 BC precedes 1 AD (Arrow's year 0).
                "year" | "years" | "y" | "yr" | "yrs" if is(&args[1], stamp_or_date) => {
                    let year = Expr::ScalarFunction(ScalarFunction { func, args });
                    let counted = when(year.clone().lt_eq(lit(0)), year.clone() - lit(1)).otherwise(year)?;
                    Transformed::yes(cast(counted, DataType::Decimal128(38, 0)))
                }
                // PostgreSQL's `timestamp_part` from the (astronomical) year, which Arrow lacks.
                "century" | "centuries" | "c" | "cent" | "millennium" | "millennia" | "mil" | "mils" | "decade"
                | "decades" | "dec" | "decs"
                    if is(&args[1], stamp_or_date) =>
                {
                    let year = Expr::ScalarFunction(ScalarFunction { func, args: vec![lit("year"), args[1].clone()] });
                    let (span, offset, bc_offset) = match part.chars().next() {
                        Some('c') => (100, 99, 99),
                        Some('m') => (1000, 999, 999),
                        _ => (10, 0, 8),
                    };
                    let ad = (year.clone() + lit(offset)) / lit(span);
                    let bc = lit(0) - ((lit(bc_offset) - (year.clone() - lit(1))) / lit(span));
                    let after = if span == 10 { year.gt_eq(lit(0)) } else { year.gt(lit(0)) };
                    Transformed::yes(cast(when(after, ad).otherwise(bc)?, DataType::Decimal128(38, 0)))
                }
                // A year of an interval is 365.25 days in PostgreSQL's epoch, 360 in Arrow's
                // (twelve 30-day months); the months past whole years are 30 days in both.
                "epoch" if is(&args[1], |t| matches!(t, DataType::Interval(_))) => {
                    let years = Expr::ScalarFunction(ScalarFunction {
                        func: func.clone(),
                        args: vec![lit("year"), args[1].clone()],
                    });
                    let epoch = Expr::ScalarFunction(ScalarFunction { func, args });
                    let extra = cast(years, DataType::Decimal128(38, 6))
                        * lit(ScalarValue::Decimal128(Some(453_600_000_000), 38, 6));
                    Transformed::yes(cast(
                        cast(epoch, DataType::Decimal128(38, 6)) + extra,
                        DataType::Decimal128(38, 6),
                    ))
                }
                _ if is(&args[1], stamp_or_date) => {
                    let field = Expr::ScalarFunction(ScalarFunction { func, args });
                    Transformed::yes(cast(field, DataType::Decimal128(38, 0)))
                }
                _ => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        // `TIMESTAMP '...'` and `::timestamp` are microseconds, PostgreSQL's precision and
        // that of stored columns: DataFusion's nanoseconds end in 1677 and 2262.
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::Timestamp(TimeUnit::Nanosecond, _)) =>
        {
            let DataType::Timestamp(_, zone) = field.data_type() else { unreachable!() };
            Transformed::yes(cast(*expr, DataType::Timestamp(TimeUnit::Microsecond, zone.clone())))
        }
        Expr::TryCast(TryCast { expr, field })
            if matches!(field.data_type(), DataType::Timestamp(TimeUnit::Nanosecond, _)) =>
        {
            let DataType::Timestamp(_, zone) = field.data_type() else { unreachable!() };
            Transformed::yes(try_cast(*expr, DataType::Timestamp(TimeUnit::Microsecond, zone.clone())))
        }
        other => Transformed::no(other),
    })
}

/// `a - b` of timestamps (or a timestamp and a date) as PostgreSQL's interval: the whole
/// days of the difference, then the rest, both with its sign (`4 days 03:00:00`, where
/// Arrow gives `99:00:00`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimestampDifference {
    signature: Signature,
}

impl TimestampDifference {
    fn new() -> Self {
        Self { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for TimestampDifference {
    fn name(&self) -> &str {
        "timestamp_difference"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows;
        let micros = |v: &ColumnarValue| -> Result<ArrayRef> {
            let array = v.to_array(rows)?;
            let array = match array.data_type() {
                DataType::Timestamp(_, Some(_)) => {
                    arrow::compute::cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())))?
                }
                _ => array,
            };
            Ok(arrow::compute::cast(&array, &DataType::Timestamp(TimeUnit::Microsecond, None))?)
        };
        let (a, b) = (micros(&args.args[0])?, micros(&args.args[1])?);
        let (a, b) = (a.as_primitive::<TimestampMicrosecondType>(), b.as_primitive::<TimestampMicrosecondType>());
        const DAY: i64 = 86_400_000_000;
        let infinite = |v: i64| crate::value::infinite::infinite_text(v).is_some();
        let differences: IntervalMonthDayNanoArray = a
            .iter()
            .zip(b.iter())
            .map(|(a, b)| {
                let (Some(a), Some(b)) = (a, b) else { return Ok(None) };
                if infinite(a) || infinite(b) {
                    return Err(crate::error::Error::in_datafusion(
                        SqlState::DatetimeFieldOverflow,
                        "cannot subtract infinite timestamps",
                    ));
                }
                let total = a.checked_sub(b).ok_or_else(|| {
                    crate::error::Error::in_datafusion(SqlState::DatetimeFieldOverflow, "interval out of range")
                })?;
                Ok(Some(IntervalMonthDayNano::new(0, (total / DAY) as i32, (total % DAY) * 1000)))
            })
            .collect::<Result<_>>()?;
        let differences: ArrayRef = Arc::new(differences);
        super::expr_rules::columnar(differences, scalars)
    }
}

/// Microseconds (DataFusion's `date_part('microsecond', ..)`: seconds and fraction) as
/// NUMERIC seconds with six decimals: the same integer, read at scale 6.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MicrosAsSeconds {
    signature: Signature,
}

impl MicrosAsSeconds {
    fn new() -> Self {
        Self { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MicrosAsSeconds {
    fn name(&self) -> &str {
        "micros_as_seconds"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(8, 6))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let micros = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let micros = arrow::compute::cast(&micros, &DataType::Int64)?;
        let seconds: Decimal128Array = micros
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(i128::from))
            .collect::<Decimal128Array>()
            .with_precision_and_scale(8, 6)?;
        let seconds: ArrayRef = Arc::new(seconds);
        super::expr_rules::columnar(seconds, scalar)
    }
}

/// Timestamp literals PostgreSQL reads and Arrow does not; see the module's doc.
#[derive(Debug)]
pub struct PgTimeLiterals;

impl AnalyzerRule for PgTimeLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            rewrite_keeping_names(node, |e| match e {
                // `'infinity'` and `'-infinity'`: the greatest and least microseconds.
                Expr::Cast(cast) if infinite_literal(&cast.expr, cast.field.data_type()).is_some() => {
                    let literal = infinite_literal(&cast.expr, cast.field.data_type());
                    Ok(Transformed::yes(literal.unwrap_or(Expr::Cast(cast))))
                }
                Expr::Cast(Cast { expr, field })
                    if matches!(field.data_type(), DataType::Date32 | DataType::Date64) && infinite_text_literal(&expr) =>
                {
                    Err(crate::error::Error::in_datafusion(
                        SqlState::FeatureNotSupported,
                        "infinite dates ('infinity'::date) are not supported; an infinite timestamp is",
                    ))
                }
                // `'0044-03-15 BC'`: PostgreSQL's era suffix, which Arrow does not read.
                Expr::Cast(cast) if before_christ_literal(&cast.expr, cast.field.data_type()).is_some() => {
                    let literal = before_christ_literal(&cast.expr, cast.field.data_type());
                    Ok(Transformed::yes(literal.unwrap_or(Expr::Cast(cast))))
                }
                // `'2024-03-01 12:00'`: PostgreSQL reads a time without seconds, Arrow does not.
                Expr::Cast(Cast { expr, field })
                    if matches!(field.data_type(), DataType::Timestamp(..))
                        && matches!(expr.as_ref(), Expr::Literal(ScalarValue::Utf8(Some(t)), _) if with_seconds(t).is_some()) =>
                {
                    let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = *expr else { unreachable!() };
                    let full = with_seconds(&text).unwrap_or(text);
                    Ok(Transformed::yes(Expr::Cast(Cast { expr: Box::new(lit(full)), field })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "pg_time_literals"
    }
}

fn is_comparison_op(op: Operator) -> bool {
    matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq)
}

/// `'infinity'` or `'-infinity'` written as text.
fn infinite_text_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(ScalarValue::Utf8(Some(text)), _) if crate::value::infinite::infinite_micros(text).is_some())
}

/// `'infinity'::timestamp` (or `-infinity`, to a microsecond timestamp type) as its value.
fn infinite_literal(expr: &Expr, target: &DataType) -> Option<Expr> {
    let (Expr::Literal(ScalarValue::Utf8(Some(text)), _), DataType::Timestamp(TimeUnit::Microsecond, tag)) =
        (expr, target)
    else {
        return None;
    };
    let micros = crate::value::infinite::infinite_micros(text)?;
    Some(Expr::Literal(ScalarValue::TimestampMicrosecond(Some(micros), tag.clone()), None))
}

/// `'0044-03-15 BC'::date` or `'0001-01-01 12:00:00 BC'::timestamp` (a text literal cast to
/// a DATE or a TIMESTAMP) as its value: the year before 1 AD that PostgreSQL means.
fn before_christ_literal(expr: &Expr, target: &DataType) -> Option<Expr> {
    let Expr::Literal(ScalarValue::Utf8(Some(text)), _) = expr else { return None };
    let trimmed = text.trim();
    let body = trimmed
        .len()
        .checked_sub(3)
        .filter(|&at| trimmed.get(at..).is_some_and(|end| end.eq_ignore_ascii_case(" bc")))?;
    let body = trimmed[..body].trim_end();
    let (date, time) = match body.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time.trim())),
        None => (body, None),
    };
    // PostgreSQL reads a BC year of four digits or more, not `44-03-15 BC`.
    if date.split('-').next().is_none_or(|year| year.len() < 4) {
        return None;
    }
    let ad = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    use chrono::Datelike;
    let date = chrono::NaiveDate::from_ymd_opt(1 - ad.year(), ad.month(), ad.day()).filter(|_| ad.year() >= 1)?;
    let time = match time {
        None => chrono::NaiveTime::MIN,
        Some(time) => chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.f")
            .or_else(|_| chrono::NaiveTime::parse_from_str(time, "%H:%M"))
            .ok()?,
    };
    let value = match target {
        DataType::Date32 => {
            ScalarValue::Date32(Some((date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32))
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            ScalarValue::TimestampMicrosecond(Some(date.and_time(time).and_utc().timestamp_micros()), None)
        }
        _ => return None,
    };
    Some(Expr::Literal(value, None))
}
