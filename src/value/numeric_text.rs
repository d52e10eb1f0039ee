//! NUMERIC text as PostgreSQL reads it: exponent notation written out (`1.5e-3` is
//! `0.0015`), which Arrow's decimal cast and DataFusion's literals do not accept as such.

/// `text` without its exponent (`1.5e-3` → `0.0015`, `1e2` → `100`); `None` if it has none.
/// Unsigned: callers strip the sign first.
/// `None` too for a mantissa that is not digits or an exponent beyond ±1000 (far past any
/// NUMERIC here: written out, it would be thousands of digits).
pub fn written_out(text: &str) -> Option<String> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: i64 = exponent.parse().ok().filter(|e: &i64| e.abs() <= 1000)?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + exponent; // digits before the decimal point
    let plain = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    let (int, rest) = plain.split_once('.').map_or((plain.as_str(), None), |(i, f)| (i, Some(f)));
    let int = match int.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    Some(match rest {
        Some(fraction) => format!("{int}.{fraction}"),
        None => int.to_string(),
    })
}

/// A numeric literal's text as NUMERIC prints it: exponent written out, a leading `0` before a
/// bare point (`.5` → `0.5`) and no trailing point (`5.` → `5`).
pub fn printed(text: &str) -> String {
    let (sign, unsigned) = split_sign(text);
    let plain = written_out(unsigned).unwrap_or_else(|| unsigned.to_string());
    let plain = plain.strip_suffix('.').unwrap_or(&plain);
    let zero = if plain.starts_with('.') { "0" } else { "" };
    format!("{sign}{zero}{plain}")
}

/// A decimal in exponent notation written without it, to one digit past `scale` (rounding
/// looks at that digit only); `None` for any other text (left to the cast, which reads it or
/// rejects it).
pub fn without_exponent(text: &str, scale: usize) -> Option<String> {
    let (sign, unsigned) = split_sign(text.trim());
    let plain = written_out(unsigned)?;
    // `1e-100` is 0 at the column's scale, where its 100 digits would fail the cast.
    let plain = match plain.split_once('.') {
        Some((whole, fraction)) if fraction.len() > scale + 1 => format!("{whole}.{}", &fraction[..scale + 1]),
        _ => plain,
    };
    Some(format!("{sign}{plain}"))
}

/// `-` or nothing, and the digits after any sign (`+` is dropped).
fn split_sign(text: &str) -> (&'static str, &str) {
    match text.strip_prefix('-') {
        Some(unsigned) => ("-", unsigned),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_are_written_out() {
        assert_eq!(written_out("1e2").as_deref(), Some("100"));
        assert_eq!(written_out("1.5e-3").as_deref(), Some("0.0015"));
        assert_eq!(written_out("1.50E1").as_deref(), Some("15.0"));
        assert_eq!(written_out("12.5e-1").as_deref(), Some("1.25"));
        assert_eq!(written_out("0.5"), None);
        assert_eq!(written_out("é5e-2"), None);
        assert_eq!(written_out("e5"), None);
        assert_eq!(written_out("1e999999999999"), None);
        assert_eq!(written_out("1e9223372036854775807"), None);
    }

    #[test]
    fn literals_print_as_numeric_does() {
        assert_eq!(printed(".5"), "0.5");
        assert_eq!(printed("-.5"), "-0.5");
        assert_eq!(printed("5."), "5");
        assert_eq!(printed("1e2"), "100");
        assert_eq!(printed("-1.5e-3"), "-0.0015");
        assert_eq!(printed("2.50"), "2.50");
    }

    #[test]
    fn exponents_stop_one_digit_past_the_scale() {
        assert_eq!(without_exponent("-1.5E-3", 4).as_deref(), Some("-0.0015"));
        assert_eq!(without_exponent("1e-100", 2).as_deref(), Some("0.000"));
        assert_eq!(without_exponent(" +1e2 ", 0).as_deref(), Some("100"));
        assert_eq!(without_exponent("+2.50e1", 5).as_deref(), Some("25.0"));
        assert_eq!(without_exponent("1.23456789e1", 2).as_deref(), Some("12.345"));
        assert_eq!(without_exponent("1.5", 2), None);
        assert_eq!(without_exponent("1e", 5), None);
        assert_eq!(without_exponent("1x5e2", 5), None);
        assert_eq!(without_exponent("e5", 2), None);
        assert_eq!(without_exponent("1e99999", 2), None);
    }
}
