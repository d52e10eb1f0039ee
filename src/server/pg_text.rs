//! PostgreSQL's exact text output for floats and timestamps.
//!
//! pgwire formats `40.0::float8` as `40.0` (ryu) and timestamps with padded fractions
//! (`09:00:00.000000+00`), where PostgreSQL prints `40` and `09:00:00+00`. Clients and tests
//! compare text, so [`PgText`] wraps any arrow-pg encoder and rewrites those values in text
//! format; binary format and every other type pass through untouched.

use arrow_pg::encoder::Encoder;

use bytes::BytesMut;
use pgwire::api::Type;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

use crate::value::float_text::write_float;

/// An encoder that fixes up the text of floats and timestamps, then delegates.
pub struct PgText<E>(pub E);

impl<E: Encoder> Encoder for PgText<E> {
    type Item = E::Item;

    fn encode_field<T>(&mut self, value: &T, pg_field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let ty = pg_field.datatype();
        let fix: fn(&str) -> Option<String> = match *ty {
            Type::FLOAT8 if pg_field.format_options().extra_float_digits >= 1 => |t| float_text(t, 15),
            Type::FLOAT4 if pg_field.format_options().extra_float_digits >= 1 => |t| float_text(t, 6),
            Type::TIMESTAMP | Type::TIMESTAMPTZ | Type::TIME => |t| Some(trim_fraction(t)),
            _ => return self.0.encode_field(value, pg_field),
        };
        if pg_field.format() != FieldFormat::Text {
            return self.0.encode_field(value, pg_field);
        }
        let mut text = BytesMut::new();
        match value.to_sql_text(ty, &mut text, pg_field.format_options()).map_err(PgWireError::ApiError)? {
            IsNull::Yes => self.0.encode_field(&None::<&str>, pg_field),
            IsNull::No => {
                let original = String::from_utf8_lossy(&text);
                let fixed = fix(&original).unwrap_or_else(|| original.to_string());
                self.0.encode_field(&fixed.as_str(), pg_field)
            }
        }
    }

    fn take_row(&mut self) -> Self::Item {
        self.0.take_row()
    }
}

/// PostgreSQL's shortest-exact float output: plain notation for decimal exponents in
/// `-4..digits`, else `d.ddde+XX` (`digits` is 15 for float8, 6 for float4).
pub fn float_text(text: &str, digits: i32) -> Option<String> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return Some(match text {
            "inf" => "Infinity".into(),
            "-inf" => "-Infinity".into(),
            other => other.into(),
        });
    }
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, value, digits == 6);
    String::from_utf8(out).ok()
}

/// `09:00:00.500000+00` → `09:00:00.5+00`, `09:00:00.000` → `09:00:00`.
pub fn trim_fraction(text: &str) -> String {
    let Some(colon) = text.rfind(':') else { return text.to_string() };
    let Some(dot) = text[colon..].find('.').map(|d| colon + d) else { return text.to_string() };
    let fraction_end = text[dot + 1..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |e| dot + 1 + e);
    let fraction = text[dot + 1..fraction_end].trim_end_matches('0');
    let suffix = &text[fraction_end..];
    if fraction.is_empty() {
        format!("{}{suffix}", &text[..dot])
    } else {
        format!("{}.{fraction}{suffix}", &text[..dot])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        let f8 = |s: &str| float_text(s, 15).unwrap();
        assert_eq!(f8("40.0"), "40");
        assert_eq!(f8("1.5"), "1.5");
        assert_eq!(f8("-0.001"), "-0.001");
        assert_eq!(f8("0.0001"), "0.0001");
        assert_eq!(f8("1e-5"), "1e-05");
        assert_eq!(f8("1e15"), "1e+15");
        assert_eq!(f8("123456789012345.0"), "123456789012345");
        assert_eq!(f8("0.1"), "0.1");
        assert_eq!(f8("116.75"), "116.75");
        assert_eq!(float_text("1000000.0", 6).unwrap(), "1e+06");
        assert_eq!(float_text("1.5", 6).unwrap(), "1.5");
        assert_eq!(f8("NaN"), "NaN");
        // Halfway to a neighbour: PostgreSQL prints more digits rather than the tie.
        assert_eq!(float_text("-52477288", 6).unwrap(), "-5.2477288e+07");
        assert_eq!(f8("18014398509481988"), "1.8014398509481988e+16");
        assert_eq!(float_text("16777216", 6).unwrap(), "1.6777216e+07");
        assert_eq!(f8("4.503599627370496e38"), "4.5035996273704956e+38");
        assert_eq!(f8("inf"), "Infinity");
    }

    #[test]
    fn timestamp_fractions_are_trimmed() {
        assert_eq!(trim_fraction("2024-01-01 09:00:00.000000+00"), "2024-01-01 09:00:00+00");
        assert_eq!(trim_fraction("2023-12-31 23:59:59.500"), "2023-12-31 23:59:59.5");
        assert_eq!(trim_fraction("2024-01-01 09:00:00.123456"), "2024-01-01 09:00:00.123456");
        assert_eq!(trim_fraction("2024-01-01 09:00:00"), "2024-01-01 09:00:00");
    }
}
