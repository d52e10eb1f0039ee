//! A float cast to NUMERIC as PostgreSQL converts it (`float8_numeric`): through its 15
//! significant digits (6 for `real`), so `(2^63)::numeric` is 9223372036854780000 and
//! `1e20::float8::numeric` is 100000000000000000000, where Arrow's cast carries the binary
//! value's every digit (9223372036854775808, 100000000000000001988.46...). The digits are
//! written as text and read by the cast to the NUMERIC's scale, which rounds.
//! NaN and infinities are 0A000 (22003 into a NUMERIC of a given precision, as PostgreSQL).

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, Signature, Volatility};

use super::expr_rules::TextFunction;
use crate::error::{Error, SqlState};
use crate::value::numeric_text::printed;

/// `value` (a float) as the text of the NUMERIC PostgreSQL makes of it, for a cast to
/// `target`.
pub fn float_digits(value: Expr, target: &DataType) -> Expr {
    let (precision, scale) = crate::sql::types::DEFAULT_NUMERIC;
    let (name, texts): (_, fn(&ArrayRef) -> Result<ArrayRef>) = if target == &DataType::Decimal128(precision, scale) {
        ("pg_float_digits", unbounded_texts)
    } else {
        ("pg_bounded_float_digits", bounded_texts)
    };
    let signature = Signature::uniform(1, vec![DataType::Float32, DataType::Float64], Volatility::Immutable);
    TextFunction::udf(name, signature, texts).call(vec![value])
}

/// `value` to `digits` significant digits, without an exponent. NUMERIC here holds no NaN
/// and no infinity (0A000; 22003 for a `bounded` NUMERIC, one of a given precision, as
/// PostgreSQL says).
fn text(value: f64, digits: usize, bounded: bool) -> Result<String> {
    if value.is_nan() {
        return Err(Error::in_datafusion(SqlState::FeatureNotSupported, "NaN is not supported as a NUMERIC value"));
    } else if value.is_infinite() && bounded {
        return Err(Error::in_datafusion(
            SqlState::NumericValueOutOfRange,
            "numeric field overflow: a NUMERIC of a given precision cannot hold an infinite value",
        ));
    } else if value.is_infinite() {
        return Err(Error::in_datafusion(SqlState::FeatureNotSupported, "infinite NUMERIC values are not supported"));
    }
    Ok(printed(&format!("{value:.*e}", digits - 1)))
}

fn bounded_texts(input: &ArrayRef) -> Result<ArrayRef> {
    texts(input, true)
}

fn unbounded_texts(input: &ArrayRef) -> Result<ArrayRef> {
    texts(input, false)
}

/// Each float of `input` as [`text`]: 6 digits of a `real`, 15 of a double.
fn texts(input: &ArrayRef, bounded: bool) -> Result<ArrayRef> {
    let texts = match input.data_type() {
        DataType::Float32 => input
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.map(|v| text(f64::from(v), 6, bounded)).transpose())
            .collect::<Result<StringArray>>(),
        _ => input
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|v| text(v, 15, bounded)).transpose())
            .collect::<Result<StringArray>>(),
    }?;
    Ok(Arc::new(texts))
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn fifteen_significant_digits() {
        let text = |v, digits| text(v, digits, true).unwrap();
        assert_eq!(text(2f64.powi(63), 15), "9223372036854780000");
        assert_eq!(text(1e20, 15), "100000000000000000000");
        assert_eq!(text(1.0 / 3.0, 15), "0.333333333333333");
        assert_eq!(text(-2.675, 15), "-2.67500000000000");
        assert_eq!(text(f64::from(1.1f32), 6), "1.10000");
        assert_eq!(text(0.0, 15), "0.00000000000000");
        assert!(super::text(f64::NAN, 15, true).is_err());
    }
}
