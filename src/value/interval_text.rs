//! INTERVAL values as PostgreSQL prints them (IntervalStyle `postgres`, its EncodeInterval):
//! `1 year 2 mons -3 days +04:05:06.5` (a field after a negative one carries its sign, the
//! fraction without trailing zeros), `00:00:00` for zero. The wire prints results with it
//! and the planner casts intervals to text with it.

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType};

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

/// An interval as PostgreSQL writes it, in the unit form Arrow's parser reads: a clock
/// (`03:30:00.5`, `-04:05`) becomes hours, minutes and seconds each with the clock's sign, and
/// a field's `+` goes (`-1 years -2 mons +3 days`). `None` if there is nothing to change, so
/// what PostgreSQL prints reads back as the same interval.
pub fn arrow_readable(text: &str) -> Option<String> {
    let mut changed = false;
    let tokens: Vec<String> = text
        .split_whitespace()
        .map(|token| {
            let rewritten = clock_as_units(token).or_else(|| {
                token.strip_prefix('+').filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit())).map(String::from)
            });
            changed |= rewritten.is_some();
            rewritten.unwrap_or_else(|| token.to_string())
        })
        .collect();
    changed.then(|| tokens.join(" "))
}

/// `[+-]hh:mm[:ss[.ffffff]]` as `h hours m minutes s seconds`, each signed.
fn clock_as_units(token: &str) -> Option<String> {
    let (sign, clock) = match token.strip_prefix('-') {
        Some(clock) => ("-", clock),
        None => ("", token.strip_prefix('+').unwrap_or(token)),
    };
    let mut parts = clock.split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next().unwrap_or("0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, "0"));
    if parts.next().is_some() || !digits(hours) || !digits(minutes) || !digits(whole) || !digits(fraction) {
        return None;
    }
    Some(format!("{sign}{hours} hours {sign}{minutes} minutes {sign}{seconds} seconds"))
}

#[cfg(test)]
mod tests {
    use super::Interval;

    fn text(months: i32, days: i32, micros: i64) -> String {
        Interval { months, days, micros }.text()
    }

    #[test]
    fn what_postgres_prints_becomes_units() {
        use super::arrow_readable;
        assert_eq!(arrow_readable("2 days 03:00:00").as_deref(), Some("2 days 03 hours 00 minutes 00 seconds"));
        assert_eq!(arrow_readable("-1 years -2 mons +3 days").as_deref(), Some("-1 years -2 mons 3 days"));
        assert_eq!(arrow_readable("1 day -03:30:00.5").as_deref(), Some("1 day -03 hours -30 minutes -00.5 seconds"));
        assert_eq!(arrow_readable("-04:05").as_deref(), Some("-04 hours -05 minutes -0 seconds"));
        assert_eq!(arrow_readable("1 day 2 hours"), None);
        assert_eq!(arrow_readable("1:2:3:4"), None);
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
