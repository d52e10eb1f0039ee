//! INTERVAL values on the wire, in PostgreSQL's own text (IntervalStyle `postgres`). The
//! encoder arrow-pg uses prints `-1 years -5 mons 75 days` where PostgreSQL prints
//! `-1 years -5 mons +75 days` (a field after a negative one carries its sign) and keeps six
//! fraction digits (`00:00:00.500000`); [`Interval`] prints as PostgreSQL's EncodeInterval.

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType};
use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql, to_sql_checked};

/// One INTERVAL: months, days and microseconds, each with its own sign.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// PostgreSQL's text: `1 year 2 mons -3 days +04:05:06.5`, `00:00:00` for zero.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let mut part = |value: i64, unit: &str| {
            if value == 0 {
                return;
            }
            let space = if is_zero { "" } else { " " };
            let plus = if is_before && value > 0 { "+" } else { "" };
            let plural = if value != 1 { "s" } else { "" };
            out.push_str(&format!("{space}{plus}{value} {unit}{plural}"));
            is_before = value < 0;
            is_zero = false;
        };
        part(i64::from(self.months / 12), "year");
        part(i64::from(self.months % 12), "mon");
        part(i64::from(self.days), "day");
        if is_zero || self.micros != 0 {
            let minus = self.micros < 0;
            let magnitude = self.micros.unsigned_abs();
            let (hours, rest) = (magnitude / 3_600_000_000, magnitude % 3_600_000_000);
            let (minutes, rest) = (rest / 60_000_000, rest % 60_000_000);
            let (seconds, fraction) = (rest / 1_000_000, rest % 1_000_000);
            let space = if is_zero { "" } else { " " };
            let sign = if minus {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            };
            out.push_str(&format!("{space}{sign}{hours:02}:{minutes:02}:{seconds:02}"));
            if fraction != 0 {
                out.push('.');
                out.push_str(format!("{fraction:06}").trim_end_matches('0'));
            }
        }
        out
    }
}

impl ToSql for Interval {
    /// PostgreSQL's binary INTERVAL: microseconds, days, months.
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl ToSqlText for Interval {
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

/// The interval in row `row` of an interval column.
pub fn interval_at(column: &ArrayRef, unit: IntervalUnit, row: usize) -> Interval {
    match unit {
        IntervalUnit::YearMonth => {
            Interval { months: column.as_primitive::<IntervalYearMonthType>().value(row), days: 0, micros: 0 }
        }
        IntervalUnit::DayTime => {
            let v = column.as_primitive::<IntervalDayTimeType>().value(row);
            Interval { months: 0, days: v.days, micros: i64::from(v.milliseconds) * 1000 }
        }
        IntervalUnit::MonthDayNano => {
            let v = column.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Interval { months: v.months, days: v.days, micros: v.nanoseconds / 1000 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Interval;

    fn text(months: i32, days: i32, micros: i64) -> String {
        Interval { months, days, micros }.text()
    }

    #[test]
    fn text_is_postgres_style() {
        assert_eq!(text(0, 0, 0), "00:00:00");
        assert_eq!(text(-17, 75, 0), "-1 years -5 mons +75 days");
        assert_eq!(text(0, -17, 36_000_000_000), "-17 days +10:00:00");
        assert_eq!(text(0, -4, -12_600_500_000), "-4 days -03:30:00.5");
        assert_eq!(text(14, 1, 0), "1 year 2 mons 1 day");
        assert_eq!(text(0, 16, 328_500_000_000), "16 days 91:15:00");
        assert_eq!(text(1, 0, 0), "1 mon");
    }
}
