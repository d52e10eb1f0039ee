//! NUMERIC values on the wire, for any Decimal128. arrow-pg converts them to
//! `rust_decimal`, which holds 28 digits at most, so a wider value (a `bigint` sum, a
//! quotient with 16 decimals) failed to be sent. [`Numeric`] writes PostgreSQL's text form
//! and its binary form (base-10000 digits) straight from the unscaled integer.

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql, to_sql_checked};

/// One NUMERIC value: the unscaled integer and its scale.
#[derive(Debug, Clone, Copy)]
pub struct Numeric {
    pub unscaled: i128,
    pub scale: i8,
}

impl Numeric {
    /// The decimal text PostgreSQL prints: every digit of the scale, no exponent.
    pub fn text(&self) -> String {
        let digits = self.unscaled.unsigned_abs().to_string();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        if self.scale <= 0 {
            let zeros = if self.unscaled == 0 { String::new() } else { "0".repeat(self.scale.unsigned_abs().into()) };
            return format!("{sign}{digits}{zeros}");
        }
        let scale = self.scale as usize;
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{sign}{whole}.{fraction}")
    }

    /// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, then base-10000 digits.
    fn binary(&self, out: &mut BytesMut) {
        let text = self.text();
        let unsigned = text.trim_start_matches('-');
        let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let whole = whole.trim_start_matches('0');
        // Whole digits grouped by four from the right, fraction digits by four from the left.
        let lead = (4 - whole.len() % 4) % 4;
        let whole_padded = format!("{}{whole}", "0".repeat(lead));
        let tail = (4 - fraction.len() % 4) % 4;
        let fraction_padded = format!("{fraction}{}", "0".repeat(tail));
        let group = |s: &str| -> Vec<i16> {
            s.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).map_or(0, |g| g.parse().unwrap_or(0))).collect()
        };
        let mut groups = group(&whole_padded);
        let mut weight = groups.len() as i16 - 1;
        groups.extend(group(&fraction_padded));
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        out.put_i16(groups.len() as i16);
        out.put_i16(weight);
        out.put_u16(if self.unscaled < 0 { 0x4000 } else { 0 });
        out.put_i16(i16::from(self.scale.max(0)));
        for g in groups {
            out.put_i16(g);
        }
    }
}

impl ToSql for Numeric {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.binary(out);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    to_sql_checked!();
}

impl ToSqlText for Numeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &pgwire::types::format::FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keeps_every_digit_of_the_scale() {
        assert_eq!(Numeric { unscaled: 35, scale: 1 }.text(), "3.5");
        assert_eq!(Numeric { unscaled: -5, scale: 3 }.text(), "-0.005");
        assert_eq!(Numeric { unscaled: 0, scale: 2 }.text(), "0.00");
        assert_eq!(Numeric { unscaled: 12, scale: -2 }.text(), "1200");
        assert_eq!(Numeric { unscaled: i128::MAX, scale: 0 }.text(), i128::MAX.to_string());
    }

    #[test]
    fn binary_is_base_10000() {
        let mut out = BytesMut::new();
        Numeric { unscaled: 12345678, scale: 2 }.binary(&mut out); // 123456.78 → 12|3456.7800
        assert_eq!(out.to_vec(), vec![0, 3, 0, 1, 0, 0, 0, 2, 0, 12, 13, 128, 30, 120]);
        let mut out = BytesMut::new();
        Numeric { unscaled: -5, scale: 3 }.binary(&mut out); // -0.005 → weight -1, digit 50
        assert_eq!(out.to_vec(), vec![0, 1, 255, 255, 64, 0, 0, 3, 0, 50]);
    }
}
