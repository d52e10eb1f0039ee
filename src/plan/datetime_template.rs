//! PostgreSQL's template patterns for dates and times (`YYYY-MM-DD HH24:MI:SS`, `FMDay`,
//! `Mon DDth`), for `to_char` to print and `to_date`/`to_timestamp` to read
//! (`plan::pg_datetime_functions`). Pure: local times in, text out, and back.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// One element of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// A field, with the FM (no padding) and TH/th (ordinal suffix) modifiers.
    Field { field: Field, fill: bool, ordinal: Option<Case> },
    /// Text copied as is: separators, spaces, `"quoted"` text.
    Literal(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Upper,
    Lower,
    Title,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Hour24,
    Hour12,
    Minute,
    Second,
    Millis,
    Micros,
    /// FF1..FF6: that many digits of the fraction.
    Fraction(u8),
    SecondsOfDay,
    Meridiem {
        dots: bool,
        case: Case,
    },
    YearComma,
    Year4,
    Year3,
    Year2,
    Year1,
    IsoYear,
    MonthName {
        case: Case,
        short: bool,
    },
    Month,
    DayName {
        case: Case,
        short: bool,
    },
    DayOfYear,
    DayOfMonth,
    /// D: 1 (Sunday) to 7.
    DayOfWeek,
    /// ID: 1 (Monday) to 7.
    IsoDayOfWeek,
    WeekOfMonth,
    WeekOfYear,
    IsoWeek,
    Quarter,
    Century,
    Julian,
    ZoneName {
        lower: bool,
    },
    ZoneOffset,
    ZoneHours,
    ZoneMinutes,
}

/// Template keywords, longest first where one is a prefix of another (`HH24` before `HH`).
const KEYWORDS: &[(&str, Field)] = &[
    ("HH24", Field::Hour24),
    ("HH12", Field::Hour12),
    ("HH", Field::Hour12),
    ("MI", Field::Minute),
    ("SSSSS", Field::SecondsOfDay),
    ("SSSS", Field::SecondsOfDay),
    ("SS", Field::Second),
    ("MS", Field::Millis),
    ("US", Field::Micros),
    ("FF1", Field::Fraction(1)),
    ("FF2", Field::Fraction(2)),
    ("FF3", Field::Fraction(3)),
    ("FF4", Field::Fraction(4)),
    ("FF5", Field::Fraction(5)),
    ("FF6", Field::Fraction(6)),
    ("A.M.", Field::Meridiem { dots: true, case: Case::Upper }),
    ("a.m.", Field::Meridiem { dots: true, case: Case::Lower }),
    ("P.M.", Field::Meridiem { dots: true, case: Case::Upper }),
    ("p.m.", Field::Meridiem { dots: true, case: Case::Lower }),
    ("AM", Field::Meridiem { dots: false, case: Case::Upper }),
    ("am", Field::Meridiem { dots: false, case: Case::Lower }),
    ("PM", Field::Meridiem { dots: false, case: Case::Upper }),
    ("pm", Field::Meridiem { dots: false, case: Case::Lower }),
    ("Y,YYY", Field::YearComma),
    ("YYYY", Field::Year4),
    ("YYY", Field::Year3),
    ("YY", Field::Year2),
    ("Y", Field::Year1),
    ("IYYY", Field::IsoYear),
    ("MONTH", Field::MonthName { case: Case::Upper, short: false }),
    ("Month", Field::MonthName { case: Case::Title, short: false }),
    ("month", Field::MonthName { case: Case::Lower, short: false }),
    ("MON", Field::MonthName { case: Case::Upper, short: true }),
    ("Mon", Field::MonthName { case: Case::Title, short: true }),
    ("mon", Field::MonthName { case: Case::Lower, short: true }),
    ("MM", Field::Month),
    ("DAY", Field::DayName { case: Case::Upper, short: false }),
    ("Day", Field::DayName { case: Case::Title, short: false }),
    ("day", Field::DayName { case: Case::Lower, short: false }),
    ("DY", Field::DayName { case: Case::Upper, short: true }),
    ("Dy", Field::DayName { case: Case::Title, short: true }),
    ("dy", Field::DayName { case: Case::Lower, short: true }),
    ("DDD", Field::DayOfYear),
    ("DD", Field::DayOfMonth),
    ("D", Field::DayOfWeek),
    ("ID", Field::IsoDayOfWeek),
    ("IW", Field::IsoWeek),
    ("WW", Field::WeekOfYear),
    ("W", Field::WeekOfMonth),
    ("Q", Field::Quarter),
    ("CC", Field::Century),
    ("J", Field::Julian),
    ("TZH", Field::ZoneHours),
    ("TZM", Field::ZoneMinutes),
    ("TZ", Field::ZoneName { lower: false }),
    ("tz", Field::ZoneName { lower: true }),
    ("OF", Field::ZoneOffset),
];

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

impl Template {
    /// Reads a template as PostgreSQL does: keywords (case matters for names: `Mon`, `MON`),
    /// `FM` before and `TH`/`th` after a field, `"quoted"` and `\`-escaped text as is, and
    /// anything else copied.
    pub fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while !rest.is_empty() {
            if let Some(quoted) = rest.strip_prefix('"') {
                let end = quoted.find('"').unwrap_or(quoted.len());
                literal.push_str(&quoted[..end]);
                rest = quoted.get(end + 1..).unwrap_or("");
                continue;
            }
            if let Some(escaped) = rest.strip_prefix('\\')
                && let Some(c) = escaped.chars().next()
            {
                literal.push(c);
                rest = &escaped[c.len_utf8()..];
                continue;
            }
            // TM (translated names: English is the only language here) and FX (exact
            // widths when reading) change nothing asofdb does; FM drops padding.
            let mut fill = false;
            let mut after_fill = rest;
            loop {
                let upper = after_fill.get(..2).map(str::to_ascii_uppercase);
                match upper.as_deref() {
                    Some("FM") => fill = true,
                    Some("TM" | "FX") => {}
                    _ => break,
                }
                after_fill = &after_fill[2..];
            }
            if let Some((keyword, field)) = KEYWORDS.iter().find(|(k, _)| starts_with_keyword(after_fill, k)) {
                let mut after = &after_fill[keyword.len()..];
                let ordinal = if let Some(r) = after.strip_prefix("TH") {
                    after = r;
                    Some(Case::Upper)
                } else if let Some(r) = after.strip_prefix("th") {
                    after = r;
                    Some(Case::Lower)
                } else {
                    None
                };
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Field { field: *field, fill, ordinal });
                rest = after;
                continue;
            }
            let c = rest.chars().next().unwrap_or(' ');
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Template(parts)
    }

    /// `local` printed with the template; `zone` names the zone (`EST`) and its offset east
    /// of UTC in seconds, for TIMESTAMPTZ values.
    pub fn format(&self, local: NaiveDateTime, zone: Option<(&str, i32)>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field { field, fill, ordinal } => {
                    let text = format_field(*field, *fill, local, zone);
                    out.push_str(&text);
                    if let Some(case) = ordinal {
                        let number: i64 = text.trim().parse().unwrap_or(0);
                        let suffix = ordinal_suffix(number);
                        out.push_str(&if *case == Case::Upper { suffix.to_uppercase() } else { suffix.to_string() });
                    }
                }
            }
        }
        out
    }

    /// Reads `text` with the template, as `to_timestamp`/`to_date` do: numbers may be shorter
    /// than their field where a separator follows; a separator or space in the template
    /// matches any run of them in the text. Returns the local time and, if the text gave
    /// one, its offset east of UTC in seconds.
    pub fn read(&self, text: &str) -> Result<(NaiveDateTime, Option<i32>), String> {
        let mut reader = Reader::default();
        let mut rest = text;
        let parts = &self.0;
        for (index, part) in parts.iter().enumerate() {
            match part {
                Part::Literal(literal) => {
                    for expected in literal.chars() {
                        if expected.is_alphanumeric() {
                            rest = rest.strip_prefix(expected).ok_or_else(|| format!("expected \"{expected}\""))?;
                        } else {
                            // A separator skips one separator or space in the text, if there is one.
                            if let Some(c) = rest.chars().next()
                                && !c.is_alphanumeric()
                            {
                                rest = &rest[c.len_utf8()..];
                            }
                        }
                    }
                }
                Part::Field { field, .. } => {
                    rest = rest.trim_start_matches(' ');
                    let next_is_field = matches!(parts.get(index + 1), Some(Part::Field { .. }));
                    rest = reader.read_field(*field, rest, next_is_field)?;
                    if let Some(r) = rest.strip_prefix("TH").or_else(|| rest.strip_prefix("th")) {
                        rest = r;
                    }
                    for suffix in ["st", "nd", "rd", "th", "ST", "ND", "RD", "TH"] {
                        if matches!(part, Part::Field { ordinal: Some(_), .. })
                            && let Some(r) = rest.strip_prefix(suffix)
                        {
                            rest = r;
                            break;
                        }
                    }
                }
            }
        }
        // Text left after the template is ignored, as PostgreSQL ignores it
        // (`to_date('2024-03-05 14:00', 'YYYY-MM-DD')`).
        let _ = rest;
        reader.finish()
    }
}

fn starts_with_keyword(text: &str, keyword: &str) -> bool {
    // Names and meridiem markers are case-sensitive in how they print; the numeric
    // keywords are matched in any case (`yyyy`, `hh24`), as PostgreSQL does.
    let is_cased = keyword.chars().any(|c| c.is_ascii_lowercase())
        || matches!(keyword, "MONTH" | "MON" | "DAY" | "DY" | "AM" | "PM" | "A.M." | "P.M." | "TZ");
    if is_cased {
        text.starts_with(keyword)
    } else {
        text.len() >= keyword.len()
            && text.is_char_boundary(keyword.len())
            && text[..keyword.len()].eq_ignore_ascii_case(keyword)
    }
}

fn ordinal_suffix(n: i64) -> &'static str {
    match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

fn cased(name: &str, case: Case, short: bool, fill: bool) -> String {
    let name = if short { &name[..3] } else { name };
    let text = match case {
        Case::Upper => name.to_uppercase(),
        Case::Lower => name.to_lowercase(),
        Case::Title => name.to_string(),
    };
    // Full names are padded to nine characters unless FM is given.
    if short || fill { text } else { format!("{text:<9}") }
}

fn number(value: i64, width: usize, fill: bool) -> String {
    if fill {
        value.to_string()
    } else if value < 0 {
        format!("-{:0width$}", -value, width = width)
    } else {
        format!("{value:0width$}")
    }
}

fn format_field(field: Field, fill: bool, t: NaiveDateTime, zone: Option<(&str, i32)>) -> String {
    let hour12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let year = i64::from(t.year());
    let micros = i64::from(t.nanosecond() / 1000);
    match field {
        Field::Hour24 => number(i64::from(t.hour()), 2, fill),
        Field::Hour12 => number(i64::from(hour12), 2, fill),
        Field::Minute => number(i64::from(t.minute()), 2, fill),
        Field::Second => number(i64::from(t.second()), 2, fill),
        Field::Millis => number(micros / 1000, 3, fill),
        Field::Micros => number(micros, 6, fill),
        Field::Fraction(digits) => {
            let text = format!("{micros:06}");
            text[..usize::from(digits)].to_string()
        }
        Field::SecondsOfDay => i64::from(t.num_seconds_from_midnight()).to_string(),
        Field::Meridiem { dots, case } => {
            let pm = t.hour() >= 12;
            let text = match (pm, dots) {
                (false, false) => "AM",
                (true, false) => "PM",
                (false, true) => "A.M.",
                (true, true) => "P.M.",
            };
            if case == Case::Lower { text.to_lowercase() } else { text.to_string() }
        }
        Field::YearComma => {
            let thousands = year / 1000;
            format!("{thousands},{:03}", year % 1000)
        }
        Field::Year4 => number(year, 4, fill),
        Field::Year3 => number(year % 1000, 3, fill),
        Field::Year2 => number(year % 100, 2, fill),
        Field::Year1 => number(year % 10, 1, fill),
        Field::IsoYear => number(i64::from(t.iso_week().year()), 4, fill),
        Field::MonthName { case, short } => cased(MONTHS[t.month0() as usize], case, short, fill),
        Field::Month => number(i64::from(t.month()), 2, fill),
        Field::DayName { case, short } => cased(DAYS[t.weekday().num_days_from_sunday() as usize], case, short, fill),
        Field::DayOfYear => number(i64::from(t.ordinal()), 3, fill),
        Field::DayOfMonth => number(i64::from(t.day()), 2, fill),
        Field::DayOfWeek => (t.weekday().num_days_from_sunday() + 1).to_string(),
        Field::IsoDayOfWeek => t.weekday().number_from_monday().to_string(),
        Field::WeekOfMonth => ((t.day() - 1) / 7 + 1).to_string(),
        Field::WeekOfYear => number(i64::from((t.ordinal() - 1) / 7 + 1), 2, fill),
        Field::IsoWeek => number(i64::from(t.iso_week().week()), 2, fill),
        Field::Quarter => ((t.month() - 1) / 3 + 1).to_string(),
        Field::Century => {
            let century = if year > 0 { (year + 99) / 100 } else { -((99 - year) / 100) };
            number(century, 2, fill)
        }
        Field::Julian => (i64::from(t.date().num_days_from_ce()) + 1_721_425).to_string(),
        Field::ZoneName { lower } => {
            let name = zone.map_or("", |(name, _)| name);
            if lower { name.to_lowercase() } else { name.to_string() }
        }
        Field::ZoneOffset => zone.map_or(String::new(), |(_, offset)| crate::value::time_zone::offset_text(offset)),
        Field::ZoneHours => zone.map_or(String::new(), |(_, offset)| {
            let sign = if offset < 0 { '-' } else { '+' };
            format!("{sign}{:02}", offset.abs() / 3600)
        }),
        Field::ZoneMinutes => zone.map_or(String::new(), |(_, offset)| format!("{:02}", offset.abs() / 60 % 60)),
    }
}

/// What `read` has found so far.
#[derive(Debug, Default)]
struct Reader {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    day_of_year: Option<u32>,
    hour: Option<u32>,
    hour12: bool,
    pm: Option<bool>,
    minute: u32,
    second: u32,
    micros: u32,
    offset: Option<i32>,
    julian: Option<i64>,
}

impl Reader {
    fn read_field<'a>(&mut self, field: Field, text: &'a str, next_is_field: bool) -> Result<&'a str, String> {
        let digits = |text: &'a str, max: usize| -> Result<(i64, &'a str), String> {
            let (negative, body) = match text.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, text),
            };
            // Without a separator after it, a field takes exactly its width.
            let limit = if next_is_field { max } else { usize::MAX };
            let len = body.bytes().take(limit).take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return Err(format!("invalid value \"{}\"", text.chars().take(max.min(12)).collect::<String>()));
            }
            let value: i64 = body[..len].parse().map_err(|_| "value out of range".to_string())?;
            Ok((if negative { -value } else { value }, &body[len..]))
        };
        let small = |v: i64| u32::try_from(v).map_err(|_| "value out of range".to_string());
        let int = |v: i64| i32::try_from(v).map_err(|_| "value out of range".to_string());
        // A fraction of `width` digits given in fewer: `.5` is 500 milliseconds.
        let fraction = |v: i64, len: usize, width: u32| -> Result<u32, String> {
            let scaled = 10i64.checked_pow(width.saturating_sub(len as u32)).and_then(|unit| v.checked_mul(unit));
            scaled
                .filter(|s| *s < 10i64.pow(width))
                .and_then(|s| u32::try_from(s).ok())
                .ok_or_else(|| "value out of range".to_string())
        };
        let rest = match field {
            Field::Hour24 | Field::Hour12 => {
                let (v, r) = digits(text, 2)?;
                self.hour = Some(small(v)?);
                self.hour12 = field == Field::Hour12;
                r
            }
            Field::Minute => {
                let (v, r) = digits(text, 2)?;
                self.minute = small(v)?;
                r
            }
            Field::Second => {
                let (v, r) = digits(text, 2)?;
                self.second = small(v)?;
                r
            }
            Field::Millis => {
                let (v, r) = digits(text, 3)?;
                let len = text.len() - r.len();
                self.micros = fraction(v, len, 3)? * 1000;
                r
            }
            Field::Micros | Field::Fraction(_) => {
                let (v, r) = digits(text, 6)?;
                let len = text.len() - r.len();
                self.micros = fraction(v, len, 6)?;
                r
            }
            Field::SecondsOfDay => {
                let (v, r) = digits(text, 5)?;
                let v = small(v)?;
                self.hour = Some(v / 3600);
                self.minute = v / 60 % 60;
                self.second = v % 60;
                r
            }
            Field::Meridiem { .. } => {
                let upper = text.to_ascii_uppercase();
                let (pm, len) = if upper.starts_with("A.M.") {
                    (false, 4)
                } else if upper.starts_with("P.M.") {
                    (true, 4)
                } else if upper.starts_with("AM") {
                    (false, 2)
                } else if upper.starts_with("PM") {
                    (true, 2)
                } else {
                    return Err("invalid value for AM/PM".into());
                };
                self.pm = Some(pm);
                &text[len..]
            }
            Field::YearComma => {
                let (thousands, r) = digits(text, 3)?;
                let r = r.strip_prefix(',').unwrap_or(r);
                let (rest, r) = digits(r, 3)?;
                self.year =
                    Some(int(thousands.checked_mul(1000).and_then(|t| t.checked_add(rest)).unwrap_or(i64::MAX))?);
                r
            }
            Field::Year4 | Field::IsoYear => {
                let (v, r) = digits(text, 4)?;
                let len = text.len() - r.len();
                // PostgreSQL reads a two-digit year in YYYY as the nearest to 2020.
                self.year = Some(if len <= 2 && v >= 0 { adjust_two_digit_year(int(v)?) } else { int(v)? });
                r
            }
            Field::Year3 => {
                let (v, r) = digits(text, 3)?;
                self.year = Some(if v < 100 { adjust_two_digit_year(int(v)?) } else { 2000 + int(v % 1000)? });
                r
            }
            Field::Year2 => {
                let (v, r) = digits(text, 2)?;
                self.year = Some(adjust_two_digit_year(int(v)?));
                r
            }
            Field::Year1 => {
                let (v, r) = digits(text, 1)?;
                self.year = Some(2000 + int(v)?);
                r
            }
            Field::MonthName { short, .. } => {
                let (index, len) = name_at(text, &MONTHS, short)?;
                self.month = Some(index + 1);
                &text[len..]
            }
            Field::Month => {
                let (v, r) = digits(text, 2)?;
                self.month = Some(small(v)?);
                r
            }
            Field::DayName { short, .. } => {
                let (_, len) = name_at(text, &DAYS, short)?;
                &text[len..]
            }
            Field::DayOfYear => {
                let (v, r) = digits(text, 3)?;
                self.day_of_year = Some(small(v)?);
                r
            }
            Field::DayOfMonth => {
                let (v, r) = digits(text, 2)?;
                self.day = Some(small(v)?);
                r
            }
            Field::Julian => {
                let (v, r) = digits(text, 7)?;
                self.julian = Some(v);
                r
            }
            Field::ZoneHours => {
                let sign = if text.starts_with('-') { -1 } else { 1 };
                let body = text.trim_start_matches(['+', '-']);
                let (v, r) = digits(body, 2)?;
                if v > 15 {
                    return Err("value out of range".into());
                }
                self.offset = Some(sign * int(v)? * 3600);
                r
            }
            Field::ZoneMinutes => {
                let (v, r) = digits(text, 2)?;
                let offset = self.offset.unwrap_or(0);
                if v > 59 {
                    return Err("value out of range".into());
                }
                let minutes = int(v)? * 60;
                self.offset = Some(if offset < 0 { offset - minutes } else { offset + minutes });
                r
            }
            Field::DayOfWeek | Field::IsoDayOfWeek | Field::WeekOfMonth | Field::Quarter => digits(text, 1)?.1,
            Field::WeekOfYear | Field::IsoWeek | Field::Century => digits(text, 2)?.1,
            Field::ZoneName { .. } | Field::ZoneOffset => {
                return Err("formatting field \"TZ\"/\"OF\" is only supported in to_char".into());
            }
        };
        Ok(rest)
    }

    fn finish(self) -> Result<(NaiveDateTime, Option<i32>), String> {
        let date = if let Some(julian) = self.julian {
            let days = i32::try_from(julian - 1_721_425).map_err(|_| "date out of range")?;
            NaiveDate::from_num_days_from_ce_opt(days).ok_or("date out of range")?
        } else {
            let year = self.year.unwrap_or(1);
            match (self.day_of_year, self.month, self.day) {
                (Some(doy), None, None) => NaiveDate::from_yo_opt(year, doy).ok_or("date out of range")?,
                (_, month, day) => {
                    let (month, day) = (month.unwrap_or(1), day.unwrap_or(1));
                    if !(1..=12).contains(&month) {
                        return Err(format!("date/time field value out of range: month {month}"));
                    }
                    NaiveDate::from_ymd_opt(year, month, day)
                        .ok_or_else(|| format!("date/time field value out of range: {year}-{month}-{day}"))?
                }
            }
        };
        let mut hour = self.hour.unwrap_or(0);
        if self.hour12 || self.pm.is_some() {
            if !(1..=12).contains(&hour) {
                return Err(format!("hour \"{hour}\" is invalid for the 12-hour clock"));
            }
            hour %= 12;
            if self.pm == Some(true) {
                hour += 12;
            }
        }
        if hour > 24 || self.minute > 59 || self.second > 60 {
            return Err("date/time field value out of range".into());
        }
        let time = chrono::NaiveTime::from_hms_micro_opt(hour % 24, self.minute, self.second.min(59), self.micros)
            .ok_or("date/time field value out of range")?;
        let mut at = date.and_time(time);
        if hour == 24 {
            at = at.checked_add_signed(chrono::TimeDelta::days(1)).ok_or("date out of range")?;
        }
        Ok((at, self.offset))
    }
}

/// PostgreSQL's two-digit years: 70 to 99 are the 1900s, 0 to 69 the 2000s.
fn adjust_two_digit_year(year: i32) -> i32 {
    if year < 70 { 2000 + year } else { 1900 + year }
}

/// The month or day name at the start of `text`, in any case: its index and length.
fn name_at(text: &str, names: &[&str], short: bool) -> Result<(u32, usize), String> {
    for (index, name) in names.iter().enumerate() {
        let candidate = if short { &name[..3] } else { name };
        if text.len() >= candidate.len()
            && text.is_char_boundary(candidate.len())
            && text[..candidate.len()].eq_ignore_ascii_case(candidate)
        {
            return Ok((index as u32, candidate.len()));
        }
    }
    Err(format!("invalid value \"{}\"", text.chars().take(9).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn templates_print_as_postgres_prints_them() {
        let t = at("2024-03-05 14:07:09.123456");
        let f = |template: &str| Template::parse(template).format(t, Some(("EST", -5 * 3600)));
        assert_eq!(f("YYYY-MM-DD HH24:MI:SS"), "2024-03-05 14:07:09");
        assert_eq!(f("HH12:MI AM"), "02:07 PM");
        assert_eq!(f("Month DD, YYYY"), "March     05, 2024");
        assert_eq!(f("FMMonth FMDDth, YYYY"), "March 5th, 2024");
        assert_eq!(f("Dy Mon DD"), "Tue Mar 05");
        assert_eq!(f("DAY day"), "TUESDAY   tuesday  ");
        assert_eq!(f("MS US FF2"), "123 123456 12");
        assert_eq!(f("Q IW DDD D ID J"), "1 10 065 3 2 2460375");
        assert_eq!(f("\"Quarter\" Q, TZ OF"), "Quarter 1, EST -05");
        assert_eq!(f("yyyy-mm-dd"), "2024-03-05");
        assert_eq!(f("CC Y,YYY"), "21 2,024");
        assert_eq!(f("TMMonth"), "March    ");
    }

    #[test]
    fn templates_read_as_postgres_reads_them() {
        let read = |text: &str, template: &str| Template::parse(template).read(text).map(|(t, _)| t);
        assert_eq!(read("2024-03-05", "YYYY-MM-DD").unwrap(), at("2024-03-05 00:00:00"));
        assert_eq!(read("05 Mar 2024", "DD Mon YYYY").unwrap(), at("2024-03-05 00:00:00"));
        assert_eq!(read("20240305", "YYYYMMDD").unwrap(), at("2024-03-05 00:00:00"));
        assert_eq!(read("2024-03-05 2:07:09 PM", "YYYY-MM-DD HH:MI:SS AM").unwrap(), at("2024-03-05 14:07:09"));
        assert_eq!(read("2024-3-5 14:07:09.5", "YYYY-MM-DD HH24:MI:SS.MS").unwrap(), at("2024-03-05 14:07:09.5"));
        assert_eq!(read("March 5th, 2024", "Month DDth, YYYY").unwrap(), at("2024-03-05 00:00:00"));
        assert!(read("2024-13-05", "YYYY-MM-DD").is_err());
        assert!(read("2024-02-30", "YYYY-MM-DD").is_err());
        assert!(read("nonsense", "YYYY-MM-DD").is_err());
        // Text after the template is ignored; TM and FX change nothing.
        assert_eq!(read("2024-03-05 14:00", "YYYY-MM-DD").unwrap(), at("2024-03-05 00:00:00"));
        assert_eq!(read("March 2024", "TMMonth FXYYYY").unwrap(), at("2024-03-01 00:00:00"));
        // Out of range, not a panic.
        assert!(read("262142-12-31 24:00", "YYYY-MM-DD HH24:MI").is_err());
        assert!(read("5000000", "MS").is_err());
        assert!(read("2024-01-01 +999999", "YYYY-MM-DD TZH").is_err());
        assert!(read("4294969296", "YYYY").is_err());
    }
}
