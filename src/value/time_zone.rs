//! Time zones as PostgreSQL has them: naming a session's zone (`SET TimeZone`), and turning
//! local times into instants and back in a zone, with PostgreSQL's choices at DST changes.
//!
//! TIMESTAMPTZ values are instants (microseconds since 1970 UTC) whatever the zone; the zone
//! decides how they are read from text, printed, and split into fields. Arrow names zones in
//! its types (`Timestamp(µs, "America/New_York")`), so [`SessionZone::arrow_name`] is a string
//! Arrow's and DataFusion's functions understand.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone};

/// The stored tag of TIMESTAMPTZ columns, and the zone of a session that has not set one.
pub const UTC_TAG: &str = "+00:00";

/// A session's time zone: how `SHOW TimeZone` names it and how Arrow does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionZone {
    /// As `SHOW TimeZone` prints it (`America/New_York`, `<+05:30>-05:30`, `UTC+3`).
    pub shown: String,
    /// As Arrow types name it (`America/New_York`, `+05:30`, `-03:00`).
    pub arrow_name: String,
}

impl Default for SessionZone {
    fn default() -> Self {
        Self { shown: "UTC".into(), arrow_name: UTC_TAG.into() }
    }
}

impl SessionZone {
    /// True for UTC, where instants and local times coincide.
    pub fn is_utc(&self) -> bool {
        self.arrow_name == UTC_TAG
    }

    /// The zone a `SET TimeZone = '...'` string names, as PostgreSQL reads it: a tz database
    /// name in any case (`america/new_york`), or a POSIX offset (`+05:30`, `UTC+3`), whose
    /// sign is west of Greenwich: `UTC+3` is three hours *behind* UTC. None if neither.
    pub fn from_setting(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("utc")
            || text.eq_ignore_ascii_case("local")
            || text.eq_ignore_ascii_case("default")
        {
            return Some(Self::default());
        }
        if let Some(zone) = chrono_tz::TZ_VARIANTS.iter().find(|z| z.name().eq_ignore_ascii_case(text)) {
            let name = zone.name();
            let arrow_name = if name == "UTC" || name == "Etc/UTC" { UTC_TAG.to_string() } else { name.to_string() };
            return Some(Self { shown: name.to_string(), arrow_name });
        }
        let letters = text.bytes().take_while(u8::is_ascii_alphabetic).count();
        if letters != 0 && letters < 3 {
            return None;
        }
        let seconds_west = offset_seconds(&text[letters..])?;
        Some(Self { shown: text.to_string(), arrow_name: fixed_name(-seconds_west)? })
    }

    /// A zone named in a value (`'2024-03-01 12:00 PST'`, `AT TIME ZONE 'PST'`): as
    /// PostgreSQL looks it up, one of its time zone abbreviations first (a fixed offset:
    /// `CET` is +01 in summer too), then a name `SET TimeZone` takes.
    pub fn from_name_in_value(text: &str) -> Option<Self> {
        let text = text.trim();
        match super::zone_abbreviations::abbreviation_offset(text) {
            Some(0) => Some(Self::default()),
            Some(seconds_east) => {
                Some(Self { shown: text.to_ascii_uppercase(), arrow_name: fixed_name(seconds_east)? })
            }
            None => Self::from_setting(text),
        }
    }

    /// The zone of `SET TIME ZONE 5.5` or `SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE`:
    /// hours east of Greenwich.
    pub fn from_hours_east(hours: f64) -> Option<Self> {
        if !hours.is_finite() || hours.abs() > 15.0 {
            return None;
        }
        let seconds = (hours * 3600.0).round() as i32;
        let posix = offset_text(-seconds);
        let iso = offset_text(seconds);
        Some(Self { shown: format!("<{iso}>{posix}"), arrow_name: fixed_name(seconds)? })
    }

    /// The zone as Arrow's `Tz`.
    pub fn tz(&self) -> Tz {
        parse_tz(&self.arrow_name).unwrap_or_else(|| Tz::from_str(UTC_TAG).expect("UTC parses"))
    }
}

/// Arrow's zone for a type's tag (`+00:00`, `America/New_York`).
pub fn parse_tz(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

/// `[+-]HH[:MM[:SS]]` (or `HHMM`) as signed seconds.
fn offset_seconds(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        b'0'..=b'9' => (1, text),
        _ => return None,
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let number = |p: &str| p.parse::<i32>().ok();
    let (hours, minutes, seconds) = match parts.as_slice() {
        [hhmm] if hhmm.len() == 4 => (number(&hhmm[..2])?, number(&hhmm[2..])?, 0),
        [h] => (number(h)?, 0, 0),
        [h, m] => (number(h)?, number(m)?, 0),
        [h, m, s] => (number(h)?, number(m)?, number(s)?),
        _ => return None,
    };
    if hours > 15 || minutes > 59 || seconds > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60 + seconds))
}

/// Arrow's name for a fixed offset east of UTC (`+05:30`); whole minutes only.
fn fixed_name(seconds_east: i32) -> Option<String> {
    if seconds_east % 60 != 0 {
        return None;
    }
    let sign = if seconds_east < 0 { '-' } else { '+' };
    let minutes = seconds_east.abs() / 60;
    Some(format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60))
}

/// An offset as PostgreSQL prints it after a time: `+00`, `-05`, `+05:30`, `-04:56:02`.
pub fn offset_text(seconds_east: i32) -> String {
    let sign = if seconds_east < 0 { '-' } else { '+' };
    let s = seconds_east.abs();
    let (hours, minutes, seconds) = (s / 3600, s / 60 % 60, s % 60);
    match (minutes, seconds) {
        (0, 0) => format!("{sign}{hours:02}"),
        (_, 0) => format!("{sign}{hours:02}:{minutes:02}"),
        _ => format!("{sign}{hours:02}:{minutes:02}:{seconds:02}"),
    }
}

/// The instant a local time in `zone` names, as PostgreSQL resolves DST changes: a time the
/// clocks skipped takes the offset from before the change (02:30 on a spring-forward day in
/// New York is 03:30 EDT), and a time they passed twice is the later instant (standard time).
pub fn instant_of_local(local_micros: i64, zone: &Tz) -> Option<i64> {
    if super::infinite::infinite_text(local_micros).is_some() {
        return Some(local_micros);
    }
    let local = DateTime::from_timestamp_micros(local_micros)?.naive_utc();
    let offset = match zone.offset_from_local_datetime(&local) {
        LocalResult::Single(offset) => offset.fix(),
        LocalResult::Ambiguous(_, later) => later.fix(),
        LocalResult::None => zone.offset_from_utc_datetime(&(local - TimeDelta::days(1))).fix(),
    };
    local_micros.checked_sub(i64::from(offset.local_minus_utc()) * 1_000_000)
}

/// The local time in `zone` at an instant.
pub fn local_of_instant(micros: i64, zone: &Tz) -> Option<i64> {
    if super::infinite::infinite_text(micros).is_some() {
        return Some(micros);
    }
    micros.checked_add(i64::from(offset_at(micros, zone)?) * 1_000_000)
}

/// The offset east of UTC, in seconds, that `zone` has at an instant.
pub fn offset_at(micros: i64, zone: &Tz) -> Option<i32> {
    let at = DateTime::from_timestamp_micros(micros)?.naive_utc();
    Some(zone.offset_from_utc_datetime(&at).fix().local_minus_utc())
}

/// Reads a timestamp written as text into an instant: with an explicit offset
/// (`2024-03-01 12:00+02`, `...Z`) at that offset, with a zone's name after it
/// (`2024-03-01 12:00 UTC`, `... America/New_York`) as a local time there, otherwise as a
/// local time in `zone`. Seconds may be left out (`2024-03-01 12:00`), as PostgreSQL allows.
/// None if unreadable.
pub fn parse_instant(text: &str, zone: &Tz) -> Option<i64> {
    let text = text.trim();
    if let Some(infinite) = super::infinite::infinite_micros(text) {
        return Some(infinite);
    }
    if let Some((stamp, name)) = text.rsplit_once(' ')
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && time_part(stamp.trim()).is_some()
    {
        let named = SessionZone::from_name_in_value(name)?;
        return parse_instant(stamp, &named.tz());
    }
    let utc = Tz::from_str(UTC_TAG).ok()?;
    if has_offset(text) {
        let full = with_seconds_before_offset(text);
        return arrow::compute::kernels::cast_utils::string_to_datetime(&utc, &full).ok()?.timestamp_micros().into();
    }
    let full = super::datetime_text::with_seconds(text).unwrap_or_else(|| text.to_string());
    let local: NaiveDateTime = arrow::compute::kernels::cast_utils::string_to_datetime(&utc, &full).ok()?.naive_utc();
    instant_of_local(local.and_utc().timestamp_micros(), zone)
}

/// True if a timestamp's text ends in an offset: `Z`, or a sign after the time of day.
fn has_offset(text: &str) -> bool {
    let Some(time) = time_part(text) else { return false };
    time.ends_with(['Z', 'z']) || time.contains(['+', '-'])
}

/// The part of `2024-03-01 12:00:00+02` after the date.
fn time_part(text: &str) -> Option<&str> {
    let split = text.find([' ', 'T', 't'])?;
    Some(&text[split + 1..])
}

/// `2024-03-01 12:00+02` as `2024-03-01 12:00:00+02`: Arrow wants the seconds.
fn with_seconds_before_offset(text: &str) -> String {
    let Some(time) = time_part(text) else { return text.to_string() };
    let start = text.len() - time.len();
    let zone_at = time.find(['+', '-', 'Z', 'z']).map_or(text.len(), |i| start + i);
    let clock = text[start..zone_at].trim_end();
    let offset = &text[zone_at..];
    // Arrow reads `+02:00` and `+0200`, not PostgreSQL's short `+02`.
    let offset = if offset.len() == 3 && offset[1..].bytes().all(|b| b.is_ascii_digit()) {
        format!("{offset}:00")
    } else {
        offset.to_string()
    };
    let clock = if clock.matches(':').count() == 1 { format!("{clock}:00") } else { clock.to_string() };
    format!("{}{clock}{offset}", &text[..start])
}

/// An instant as PostgreSQL prints a TIMESTAMPTZ in `zone`: `2024-03-01 07:00:00.5-05`.
pub fn zoned_text(micros: i64, zone: &Tz) -> Option<String> {
    if let Some(text) = super::infinite::infinite_text(micros) {
        return Some(text.to_string());
    }
    let offset = offset_at(micros, zone)?;
    let local = micros + i64::from(offset) * 1_000_000;
    Some(super::datetime_text::timestamp_text_with(local, &offset_text(offset)))
}

/// A column of values PostgreSQL reads as instants in `zone` (text, local timestamps,
/// dates), as instants tagged [`UTC_TAG`]; a value that cannot be read is NULL. None for
/// any other type.
pub fn instants_in_zone(values: &ArrayRef, zone: &Tz) -> Option<ArrayRef> {
    let instants: TimestampMicrosecondArray = match values.data_type() {
        DataType::Utf8 => {
            // Arrow's cast reads most text a column at a time (offsets too, and local times
            // in the zone); what it cannot read (times without seconds, short offsets, DST
            // changes, zone names) is read one value at a time.
            let texts = values.as_string::<i32>();
            let zoned = DataType::Timestamp(TimeUnit::Microsecond, Some(zone.to_string().into()));
            let options = arrow::compute::CastOptions { safe: true, ..Default::default() };
            let quick = arrow::compute::cast_with_options(values, &zoned, &options).ok();
            let quick = quick.as_ref().map(|q| q.as_primitive::<TimestampMicrosecondType>());
            (0..texts.len())
                .map(|i| {
                    if texts.is_null(i) {
                        return None;
                    }
                    match quick {
                        // Arrow gives a value only where the local time is unambiguous.
                        Some(q) if q.is_valid(i) => Some(q.value(i)),
                        _ => parse_instant(texts.value(i), zone),
                    }
                })
                .collect()
        }
        DataType::Timestamp(_, None) | DataType::Date32 => {
            let locals = arrow::compute::cast(values, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?;
            locals.as_primitive::<TimestampMicrosecondType>().iter().map(|v| instant_of_local(v?, zone)).collect()
        }
        _ => return None,
    };
    Some(Arc::new(instants.with_timezone(UTC_TAG)))
}

/// A column of instants as local times in `zone` (TIMESTAMP without time zone).
pub fn locals_in_zone(instants: &ArrayRef, zone: &Tz) -> Option<ArrayRef> {
    let DataType::Timestamp(_, Some(_)) = instants.data_type() else { return None };
    let instants =
        arrow::compute::cast(instants, &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC_TAG.into()))).ok()?;
    let locals: TimestampMicrosecondArray =
        instants.as_primitive::<TimestampMicrosecondType>().iter().map(|v| local_of_instant(v?, zone)).collect();
    Some(Arc::new(locals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_micros()
    }

    fn new_york() -> Tz {
        parse_tz("America/New_York").unwrap()
    }

    #[test]
    fn settings_are_read_as_postgres_reads_them() {
        let zone = SessionZone::from_setting("america/new_york").unwrap();
        assert_eq!((zone.shown.as_str(), zone.arrow_name.as_str()), ("America/New_York", "America/New_York"));
        let posix = SessionZone::from_setting("UTC+3").unwrap();
        assert_eq!((posix.shown.as_str(), posix.arrow_name.as_str()), ("UTC+3", "-03:00"));
        assert_eq!(SessionZone::from_setting("+05:30").unwrap().arrow_name, "-05:30");
        let hours = SessionZone::from_hours_east(5.5).unwrap();
        assert_eq!((hours.shown.as_str(), hours.arrow_name.as_str()), ("<+05:30>-05:30", "+05:30"));
        assert_eq!(SessionZone::from_hours_east(-7.0).unwrap().shown, "<-07>+07");
        assert!(SessionZone::from_setting("utc").unwrap().is_utc());
        assert!(SessionZone::from_setting("Etc/UTC").unwrap().is_utc());
        assert_eq!(SessionZone::from_setting("foo"), None);
        assert_eq!(SessionZone::from_setting("Z"), None);
    }

    #[test]
    fn dst_changes_resolve_as_in_postgres() {
        let ny = new_york();
        let local = |t: &str| micros(&format!("{t}Z"));
        // Skipped: 02:30 takes EST, the offset before the change, so is 03:30 EDT.
        assert_eq!(instant_of_local(local("2024-03-10T02:30:00"), &ny), Some(micros("2024-03-10T07:30:00Z")));
        // Passed twice: the later instant, EST.
        assert_eq!(instant_of_local(local("2024-11-03T01:30:00"), &ny), Some(micros("2024-11-03T06:30:00Z")));
        assert_eq!(instant_of_local(local("2024-07-01T12:00:00"), &ny), Some(micros("2024-07-01T16:00:00Z")));
        let berlin = parse_tz("Europe/Berlin").unwrap();
        assert_eq!(instant_of_local(local("2024-03-31T02:30:00"), &berlin), Some(micros("2024-03-31T01:30:00Z")));
    }

    #[test]
    fn text_is_read_with_or_without_an_offset() {
        let ny = new_york();
        assert_eq!(parse_instant("2024-03-01 12:00", &ny), Some(micros("2024-03-01T17:00:00Z")));
        assert_eq!(parse_instant("2024-03-01 12:00+00", &ny), Some(micros("2024-03-01T12:00:00Z")));
        assert_eq!(parse_instant("2024-03-01T12:00:00.5-02:30", &ny), Some(micros("2024-03-01T14:30:00.5Z")));
        assert_eq!(parse_instant("2024-03-01 12:00:00Z", &ny), Some(micros("2024-03-01T12:00:00Z")));
        assert_eq!(parse_instant("2024-03-01", &ny), Some(micros("2024-03-01T05:00:00Z")));
        assert_eq!(parse_instant("yesterday-ish", &ny), None);
    }

    #[test]
    fn instants_print_in_the_zone() {
        let ny = new_york();
        assert_eq!(zoned_text(micros("2024-03-01T12:00:00.5Z"), &ny).unwrap(), "2024-03-01 07:00:00.5-05");
        let kolkata = parse_tz("Asia/Kolkata").unwrap();
        assert_eq!(zoned_text(micros("2024-03-01T12:00:00Z"), &kolkata).unwrap(), "2024-03-01 17:30:00+05:30");
        assert_eq!(zoned_text(micros("1850-01-01T12:00:00Z"), &ny).unwrap(), "1850-01-01 07:03:58-04:56:02");
    }
}
