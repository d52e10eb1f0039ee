//! Dates and timestamps as PostgreSQL prints and reads them where chrono and Arrow differ:
//! no padded fraction, ` BC` for years before 1 AD, minutes without seconds accepted.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use bytes::BufMut;

/// `text` with `:00` seconds added if it is a date and a time without seconds
/// (`2024-03-01 12:00`, `2024-03-01T09:30`), which PostgreSQL accepts and Arrow refuses.
pub fn with_seconds(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let (date, time) = trimmed.split_once([' ', 'T'])?;
    let (hours, minutes) = time.split_once(':')?;
    let digits =
        |s: &str, n: std::ops::RangeInclusive<usize>| n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    (date.len() == 10 && digits(hours, 1..=2) && digits(minutes, 2..=2)).then(|| format!("{trimmed}:00"))
}

/// `2024-03-01 12:34:56.5` (and `+00` when `zoned`): the fraction without trailing zeros.
pub fn timestamp_text(micros: i64, zoned: bool) -> String {
    let offset = if zoned { "+00" } else { "" };
    timestamp_text_with(micros, offset)
}

/// [`timestamp_text`] with `offset` after the time and, for a year before 1 AD, PostgreSQL's
/// ` BC` after that (`0044-03-15 12:00:00+00 BC`).
pub fn timestamp_text_with(micros: i64, offset: &str) -> String {
    let mut text = Vec::with_capacity(32);
    put_timestamp(&mut text, micros, offset);
    ascii(text)
}

/// A DATE as PostgreSQL prints it: `2024-03-01`, `0044-03-15 BC`.
pub fn date_text(days_since_epoch: i32) -> String {
    let mut text = Vec::with_capacity(16);
    put_date(&mut text, i64::from(days_since_epoch));
    ascii(text)
}

/// The text the writers below made: ASCII, and `offset`, a `&str`, so always UTF-8.
fn ascii(text: Vec<u8>) -> String {
    String::from_utf8(text).unwrap_or_default()
}

/// Appends a DATE as PostgreSQL prints it in the ISO style: `2024-03-01`, `0044-03-15 BC`,
/// `12024-03-01` (every digit after year 9999).
pub fn put_date(out: &mut impl BufMut, days_since_epoch: i64) {
    if put_date_digits(out, days_since_epoch) {
        out.put_slice(b" BC");
    }
}

/// Appends a timestamp (µs since 1970) as PostgreSQL prints it in the ISO style: the date,
/// the time with its fraction without trailing zeros, `offset`, then ` BC` before 1 AD;
/// `infinity` or `-infinity` for the infinite ones.
pub fn put_timestamp(out: &mut impl BufMut, micros: i64, offset: &str) {
    if let Some(text) = super::infinite::infinite_text(micros) {
        out.put_slice(text.as_bytes());
        return;
    }
    const DAY: i64 = 86_400_000_000;
    let bc = put_date_digits(out, micros.div_euclid(DAY));
    let of_day = micros.rem_euclid(DAY);
    let seconds = (of_day / 1_000_000) as u32;
    out.put_u8(b' ');
    put_digits(out, seconds / 3600, 2);
    out.put_u8(b':');
    put_digits(out, seconds / 60 % 60, 2);
    out.put_u8(b':');
    put_digits(out, seconds % 60, 2);
    let mut fraction = (of_day % 1_000_000) as u32;
    if fraction != 0 {
        let mut width = 6;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        out.put_u8(b'.');
        put_digits(out, fraction, width);
    }
    out.put_slice(offset.as_bytes());
    if bc {
        out.put_slice(b" BC");
    }
}

/// `YYYY-MM-DD` with the year counted as PostgreSQL counts it (no year 0: 1 BC precedes
/// 1 AD; four digits or more); whether it is BC.
fn put_date_digits(out: &mut impl BufMut, days_since_epoch: i64) -> bool {
    let (year, month, day) = civil_date(days_since_epoch);
    let (shown, bc) = if year > 0 { (year, false) } else { (1 - year, true) };
    if shown > 9999 {
        out.put_slice(itoa::Buffer::new().format(shown).as_bytes());
    } else {
        put_digits(out, shown as u32, 4);
    }
    out.put_u8(b'-');
    put_digits(out, month, 2);
    out.put_u8(b'-');
    put_digits(out, day, 2);
    bc
}

/// `value` in exactly `width` digits, zero-padded (it has no more than `width` digits).
fn put_digits(out: &mut impl BufMut, value: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut rest = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.put_slice(&digits[..width]);
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970 (Howard Hinnant's
/// algorithm): every DATE, where chrono stops at year 262143. Year 0 is 1 BC.
fn civil_date(days_since_epoch: i64) -> (i64, u32, u32) {
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// The first day PostgreSQL prints without ` BC` (0001-01-01), in days since 1970.
pub const FIRST_AD_DAY: i32 = -719_162;

/// Whether a timestamp column (microseconds) holds a value arrow-pg cannot print as
/// PostgreSQL does: an infinite one, or one before 1 AD (PostgreSQL writes `BC`).
pub fn needs_pg_text(values: &ArrayRef) -> bool {
    const FIRST_AD_MICROS: i64 = FIRST_AD_DAY as i64 * 86_400_000_000;
    matches!(values.data_type(), DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _))
        && values
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .flatten()
            .any(|v| super::infinite::infinite_text(v).is_some() || v < FIRST_AD_MICROS)
}

#[cfg(test)]
mod tests {
    use super::timestamp_text;

    #[test]
    fn timestamps_print_as_postgres_does() {
        assert_eq!(timestamp_text(1_709_296_496_500_000, false), "2024-03-01 12:34:56.5");
        assert_eq!(timestamp_text(1_709_296_496_000_000, true), "2024-03-01 12:34:56+00");
        assert_eq!(timestamp_text(-1, false), "1969-12-31 23:59:59.999999");
        // 0044-03-15 BC, and a year after 9999.
        assert_eq!(timestamp_text(-63_517_780_800_000_000, true), "0044-03-15 12:00:00+00 BC");
        assert_eq!(super::date_text(3_699_933), "12100-01-27");
        assert_eq!(super::date_text(-719_163), "0001-12-31 BC");
    }

    #[test]
    fn times_without_seconds_get_them() {
        use super::with_seconds;
        assert_eq!(with_seconds("2024-03-01 12:00").as_deref(), Some("2024-03-01 12:00:00"));
        assert_eq!(with_seconds("2024-03-01T9:30").as_deref(), Some("2024-03-01T9:30:00"));
        assert_eq!(with_seconds("2024-03-01 12:00:00"), None);
        assert_eq!(with_seconds("2024-03-01"), None);
    }
}
