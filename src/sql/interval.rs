//! Fixed-length intervals as written in options and windows: `'1 day'`, `'90 minutes'`, `'1h 30m'`.
//!
//! Months and years have no fixed length, so they are refused rather than guessed.

use crate::error::{Error, Result, SqlState};

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Parses an interval into microseconds. Accepts `<number> <unit>` pairs (units from
/// microseconds to weeks, singular, plural or abbreviated) and `HH:MM:SS[.ffffff]`.
pub fn parse_interval_micros(text: &str) -> Result<i64> {
    let invalid = || {
        Error::invalid_value(
            SqlState::InvalidDatetimeFormat,
            format!("invalid input syntax for type interval: \"{text}\""),
        )
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if trimmed.contains(':') && !trimmed.contains(' ') {
        return parse_clock(trimmed).ok_or_else(invalid);
    }
    let tokens = split_number_units(trimmed).ok_or_else(invalid)?;
    let mut total: i64 = 0;
    for (number, unit) in tokens {
        let unit_micros = unit_micros(&unit).ok_or_else(|| {
            if matches!(unit.as_str(), "mon" | "mons" | "month" | "months" | "year" | "years" | "y") {
                Error::invalid_value(
                    SqlState::InvalidParameterValue,
                    format!("interval \"{text}\" has no fixed length: use days"),
                )
            } else {
                invalid()
            }
        })?;
        let micros = number * unit_micros as f64;
        if !micros.is_finite() || micros.abs() > i64::MAX as f64 {
            return Err(Error::invalid_value(
                SqlState::DatetimeFieldOverflow,
                format!("interval out of range: \"{text}\""),
            ));
        }
        total = total.checked_add(micros.round() as i64).ok_or_else(invalid)?;
    }
    Ok(total)
}

/// `"1 day 2 hours"` / `"1h30m"` into `[(1, "day"), (2, "hours")]`.
fn split_number_units(text: &str) -> Option<Vec<(f64, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut number = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-' || *c == '+')
        {
            number.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut unit = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| c.is_alphabetic()) {
            unit.push(c.to_ascii_lowercase());
            chars.next();
        }
        if number.is_empty() || unit.is_empty() {
            return None;
        }
        out.push((number.parse().ok()?, unit));
    }
    (!out.is_empty()).then_some(out)
}

fn unit_micros(unit: &str) -> Option<i64> {
    Some(match unit {
        "us" | "usec" | "usecs" | "microsecond" | "microseconds" => 1,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1_000,
        "s" | "sec" | "secs" | "second" | "seconds" => MICROS_PER_SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => 60 * MICROS_PER_SECOND,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600 * MICROS_PER_SECOND,
        "d" | "day" | "days" => 86_400 * MICROS_PER_SECOND,
        "w" | "week" | "weeks" => 7 * 86_400 * MICROS_PER_SECOND,
        _ => return None,
    })
}

fn parse_clock(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?, 0.0),
        [h, m, s] => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?, s.parse::<f64>().ok()?),
        _ => return None,
    };
    let micros = (h * 3_600 + m * 60) as f64 * MICROS_PER_SECOND as f64 + s * MICROS_PER_SECOND as f64;
    micros.is_finite().then_some(micros.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms_parse() {
        assert_eq!(parse_interval_micros("1 day").unwrap(), 86_400_000_000);
        assert_eq!(parse_interval_micros("30 days").unwrap(), 30 * 86_400_000_000);
        assert_eq!(parse_interval_micros("1 hour 30 minutes").unwrap(), 5_400_000_000);
        assert_eq!(parse_interval_micros("1h30m").unwrap(), 5_400_000_000);
        assert_eq!(parse_interval_micros("01:00:00").unwrap(), 3_600_000_000);
        assert_eq!(parse_interval_micros("0.5 seconds").unwrap(), 500_000);
    }

    #[test]
    fn bad_and_variable_length_intervals_are_refused() {
        assert_eq!(parse_interval_micros("soon").unwrap_err().sqlstate(), "22007");
        assert_eq!(parse_interval_micros("").unwrap_err().sqlstate(), "22007");
        assert_eq!(parse_interval_micros("1 month").unwrap_err().sqlstate(), "22023");
        assert!(parse_interval_micros("1e308 weeks").is_err());
    }
}
