//! Floats as PostgreSQL prints them (`float8out` with `extra_float_digits` of 1 or more, its
//! default): shortest exact digits, `1e+20` not `1e20`, `1` not `1.0`, `-0` kept. The wire
//! prints results with it and the planner casts floats to text with it.

use std::fmt::Write;

use bytes::BufMut;

/// Writes a finite or infinite float as PostgreSQL prints it with `extra_float_digits` of 1 or
/// more (the default of its clients): shortest exact digits, in plain notation for decimal
/// exponents in `-4..digits` (15 for float8, 6 for float4 when `single`), else `d.ddde+XX`.
pub fn write_float(out: &mut impl BufMut, value: f64, single: bool) {
    if value.is_nan() {
        return out.put_slice(b"NaN");
    }
    if value.is_infinite() {
        return out.put_slice(if value > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    if value == 0.0 {
        return out.put_slice(if value.is_sign_negative() { b"-0" } else { b"0" });
    }
    let scientific = shortest(value, single);
    let text = scientific.as_bytes();
    let Some(e) = text.iter().position(|b| *b == b'e') else {
        return out.put_slice(text);
    };
    let (mantissa, exponent) = (&text[..e], &text[e + 1..]);
    let exponent: i32 = std::str::from_utf8(exponent).ok().and_then(|x| x.parse().ok()).unwrap_or(0);
    let negative = mantissa.first() == Some(&b'-');
    let mut digits = [0u8; 24];
    let mut count = 0;
    for d in mantissa.iter().filter(|b| b.is_ascii_digit()).take(digits.len()) {
        digits[count] = *d;
        count += 1;
    }
    // A longer form (`shortest`) may end in zeros, which PostgreSQL does not print.
    while count > 1 && digits[count - 1] == b'0' {
        count -= 1;
    }
    let digits = &digits[..count];
    if negative {
        out.put_u8(b'-');
    }
    let limit = if single { 6 } else { 15 };
    if exponent < -4 || exponent >= limit {
        out.put_u8(digits[0]);
        if digits.len() > 1 {
            out.put_u8(b'.');
            out.put_slice(&digits[1..]);
        }
        out.put_slice(if exponent < 0 { b"e-" } else { b"e+" });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.put_u8(b'0');
        }
        out.put_slice(itoa::Buffer::new().format(magnitude).as_bytes());
        return;
    }
    let point = exponent + 1; // digits before the decimal point
    if point <= 0 {
        out.put_slice(b"0.");
        (0..-point).for_each(|_| out.put_u8(b'0'));
        out.put_slice(digits);
    } else if point as usize >= digits.len() {
        out.put_slice(digits);
        (digits.len()..point as usize).for_each(|_| out.put_u8(b'0'));
    } else {
        out.put_slice(&digits[..point as usize]);
        out.put_u8(b'.');
        out.put_slice(&digits[point as usize..]);
    }
}

/// The shortest scientific form (`1.5e-7`, `4e1`) that reads back as `value` (a float4's when
/// `single`), as PostgreSQL's Ryu finds it: Rust's shortest form, unless that lies exactly
/// halfway to a neighbouring float, which PostgreSQL never picks (it builds Ryu without
/// `acceptBounds`, so its output reads back the same whatever way a reader breaks ties); then
/// the fewest digits, correctly rounded, strictly nearer.
fn shortest(value: f64, single: bool) -> StackText {
    let scientific = |precision: Option<usize>| {
        let mut text = StackText::default();
        // Cannot fail: the longest form, `-1.2345678901234567e-308`, fits.
        let _ = match (single, precision) {
            (true, None) => write!(text, "{:e}", value as f32),
            (false, None) => write!(text, "{value:e}"),
            (true, Some(p)) => write!(text, "{:.p$e}", value as f32),
            (false, Some(p)) => write!(text, "{value:.p$e}"),
        };
        text
    };
    let first = scientific(None);
    if !halfway(first.as_bytes(), value, single) {
        return first;
    }
    let most = if single { 9 } else { 17 };
    let reads_back = |text: &StackText| {
        let read = std::str::from_utf8(text.as_bytes()).ok();
        match single {
            true => read.and_then(|t| t.parse::<f32>().ok()) == Some(value as f32),
            false => read.and_then(|t| t.parse::<f64>().ok()) == Some(value),
        }
    };
    let digits = first.as_bytes().iter().take_while(|b| **b != b'e').filter(|b| b.is_ascii_digit()).count();
    (digits..most)
        .map(|precision| scientific(Some(precision)))
        .find(|text| reads_back(text) && !halfway(text.as_bytes(), value, single))
        .unwrap_or(first)
}

/// Whether the decimal `text` (`d.ddde±x`) is exactly halfway between `value` and the float
/// above or below it, compared as integers.
fn halfway(text: &[u8], value: f64, single: bool) -> bool {
    let Some(e) = text.iter().position(|b| *b == b'e') else { return false };
    let Some(exponent) = std::str::from_utf8(&text[e + 1..]).ok().and_then(|x| x.parse::<i32>().ok()) else {
        return false;
    };
    let mut mantissa: u128 = 0;
    let mut digits = 0i32;
    for d in text[..e].iter().filter(|b| b.is_ascii_digit()) {
        mantissa = mantissa * 10 + u128::from(d - b'0');
        digits += 1;
    }
    let decimal_exponent = exponent - (digits - 1);
    // value = m2 * 2^e2 (magnitude); the midpoints to its neighbours, as (odd, power of two).
    let (m2, e2, lowest_of_binade) = if single {
        let bits = (value as f32).to_bits();
        let (field, fraction) = ((bits >> 23) & 0xff, u64::from(bits & 0x7f_ffff));
        match field {
            0 => (fraction, -149, false),
            _ => (fraction | 1 << 23, field as i32 - 150, fraction == 0 && field > 1),
        }
    } else {
        let bits = value.to_bits();
        let (field, fraction) = ((bits >> 52) & 0x7ff, bits & ((1 << 52) - 1));
        match field {
            0 => (fraction, -1074, false),
            _ => (fraction | 1 << 52, field as i32 - 1075, fraction == 0 && field > 1),
        }
    };
    let (m2, above) = (u128::from(m2), (2 * u128::from(m2) + 1, e2 - 1));
    let below = if lowest_of_binade { (4 * m2 - 1, e2 - 2) } else { (2 * m2 - 1, e2 - 1) };
    // mantissa * 10^d == odd * 2^power, with 10^d = 5^d * 2^d: the fives on the side they
    // multiply, then the twos moved to one side. Equal only if 5^|d| divides the other side,
    // so |d| <= 24 for a tie and the fives fit; a shift past 128 bits is no tie.
    let fives = |x: u128, k: i32| if k > 55 { None } else { x.checked_mul(5u128.pow(k as u32)) };
    let twos = |x: u128, k: i32| if k >= 128 || x.leading_zeros() < k as u32 { None } else { Some(x << k) };
    let equal = |(odd, power): (u128, i32)| -> bool {
        let (left, right) = if decimal_exponent >= 0 {
            (fives(mantissa, decimal_exponent), Some(odd))
        } else {
            (Some(mantissa), fives(odd, -decimal_exponent))
        };
        let shift = decimal_exponent - power;
        let (left, right) = if shift >= 0 {
            (left.and_then(|l| twos(l, shift)), right)
        } else {
            (left, right.and_then(|r| twos(r, -shift)))
        };
        matches!((left, right), (Some(l), Some(r)) if l == r)
    };
    equal(above) || equal(below)
}

/// A short text written on the stack (a float's scientific form).
#[derive(Default)]
struct StackText {
    bytes: [u8; 32],
    len: usize,
}

impl StackText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: f64, single: bool) -> String {
        let mut out = Vec::new();
        write_float(&mut out, value, single);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn zeros_keep_their_sign_and_whole_numbers_have_no_fraction() {
        assert_eq!(text(-0.0, false), "-0");
        assert_eq!(text(0.0, true), "0");
        assert_eq!(text(1.0, false), "1");
        assert_eq!(text(1e20, false), "1e+20");
        assert_eq!(text(1e-5, false), "1e-05");
        assert_eq!(text(123456789012345678.0, false), "1.2345678901234568e+17");
        assert_eq!(text(f64::NEG_INFINITY, false), "-Infinity");
    }
}
