//! PostgreSQL's infinite timestamps: `'infinity'` and `'-infinity'` are the greatest and
//! least microsecond values (`i64::MAX`, `i64::MIN`), as PostgreSQL stores them. Here:
//! reading and printing them (their arithmetic is `plan::infinite_time`'s).

/// `'infinity'`: after every other time.
pub const INFINITY: i64 = i64::MAX;
/// `'-infinity'`: before every other time.
pub const MINUS_INFINITY: i64 = i64::MIN;

/// The microseconds of `infinity`, `+infinity` or `-infinity` (any case, spaces around).
pub fn infinite_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("infinity") || text.eq_ignore_ascii_case("+infinity") {
        Some(INFINITY)
    } else if text.eq_ignore_ascii_case("-infinity") {
        Some(MINUS_INFINITY)
    } else {
        None
    }
}

/// How PostgreSQL prints an infinite timestamp; None for a finite one.
pub fn infinite_text(micros: i64) -> Option<&'static str> {
    match micros {
        INFINITY => Some("infinity"),
        MINUS_INFINITY => Some("-infinity"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinity_is_read_in_any_case_and_printed_back() {
        assert_eq!(infinite_micros(" Infinity "), Some(INFINITY));
        assert_eq!(infinite_micros("+infinity"), Some(INFINITY));
        assert_eq!(infinite_micros("-INFINITY"), Some(MINUS_INFINITY));
        assert_eq!(infinite_micros("2024-01-01"), None);
        assert_eq!(infinite_text(INFINITY), Some("infinity"));
        assert_eq!(infinite_text(MINUS_INFINITY), Some("-infinity"));
        assert_eq!(infinite_text(0), None);
    }
}
