//! The aggregates a feature may compute, and their result over a window's events.

use arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};
use sqlparser::ast::Expr;

use crate::error::{Error, Result, SqlState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggKind {
    CountStar,
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    StddevSamp,
    VarSamp,
    FirstValue,
    LastValue,
    ApproxDistinct,
    /// `last_k(x, k)`: the k latest non-NULL values, latest first.
    LastK(u16),
    /// `max_k(x, k)`: the k largest non-NULL values, descending, duplicates kept.
    MaxK(u16),
    /// `min_k(x, k)`: the k smallest non-NULL values, ascending, duplicates kept.
    MinK(u16),
    /// `approx_percentile(x, q)`.
    ApproxPercentile(Fraction),
    /// `decayed_sum(x, h)`: sum of `x * 2^(-(T - e) / h)`; the half-life `h` in µs.
    DecayedSum(i64),
    /// `decayed_count(h)`: sum of `2^(-(T - e) / h)`.
    DecayedCount(i64),
}

/// A constant in [0, 1], kept as its bits so aggregates stay `Eq` and serialize exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fraction(u64);

impl Fraction {
    /// `q` if it lies in [0, 1].
    pub fn new(q: f64) -> Option<Self> {
        (0.0..=1.0).contains(&q).then(|| Fraction((q + 0.0).to_bits()))
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// The most values a k-aggregate may keep (spec section 2).
pub const MAX_K: i64 = 1000;

impl AggKind {
    /// Resolves a function name as written (`count(DISTINCT x)` is `count` + `distinct`);
    /// `param` is the constant argument of the ML aggregates (k, q or the half-life).
    pub fn from_name(name: &str, distinct: bool, star: bool, param: Option<&Expr>) -> Result<Self> {
        if distinct && !matches!(name, "count") {
            return Err(Error::unsupported(format!("DISTINCT is supported only in count(DISTINCT x), not {name}")));
        }
        let kind = match (name, distinct) {
            ("count", false) if star => AggKind::CountStar,
            ("count", false) => AggKind::Count,
            ("count", true) => AggKind::CountDistinct,
            ("sum", _) => AggKind::Sum,
            ("avg" | "mean", _) => AggKind::Avg,
            ("min", _) => AggKind::Min,
            ("max", _) => AggKind::Max,
            ("stddev_samp" | "stddev", _) => AggKind::StddevSamp,
            ("var_samp" | "variance", _) => AggKind::VarSamp,
            ("first_value", _) => AggKind::FirstValue,
            ("last_value", _) => AggKind::LastValue,
            ("approx_distinct", _) => AggKind::ApproxDistinct,
            ("last_k", _) => AggKind::LastK(k_of(name, param)?),
            ("max_k", _) => AggKind::MaxK(k_of(name, param)?),
            ("min_k", _) => AggKind::MinK(k_of(name, param)?),
            ("approx_percentile", _) => AggKind::ApproxPercentile(fraction_of(param)?),
            ("decayed_sum", _) => AggKind::DecayedSum(half_life_of(name, param)?),
            ("decayed_count", _) => AggKind::DecayedCount(half_life_of(name, param)?),
            (other, _) => {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedFunction,
                    message: format!(
                        "unsupported feature aggregate {other}(): use count, sum, avg, min, max, count(DISTINCT), \
                         stddev_samp, var_samp, first_value, last_value, approx_distinct, last_k, max_k, min_k, \
                         approx_percentile, decayed_sum or decayed_count"
                    ),
                });
            }
        };
        Ok(kind)
    }

    /// How many arguments the aggregate takes after its value (`k`, `q`, the half-life), and
    /// whether it takes a value at all (`decayed_count(h)` does not).
    pub fn takes(name: &str) -> (bool, usize) {
        match name {
            "last_k" | "max_k" | "min_k" | "approx_percentile" | "decayed_sum" => (true, 1),
            "decayed_count" => (false, 1),
            _ => (true, 0),
        }
    }

    /// The type of the result for an argument of type `arg`.
    pub fn result_type(&self, arg: &DataType) -> DataType {
        match self {
            AggKind::CountStar | AggKind::Count | AggKind::CountDistinct | AggKind::ApproxDistinct => DataType::Int64,
            AggKind::Sum if arg.is_integer() => DataType::Int64,
            AggKind::Sum | AggKind::Avg | AggKind::StddevSamp | AggKind::VarSamp => DataType::Float64,
            AggKind::Min | AggKind::Max | AggKind::FirstValue | AggKind::LastValue => arg.clone(),
            AggKind::LastK(_) | AggKind::MaxK(_) | AggKind::MinK(_) => {
                DataType::List(std::sync::Arc::new(Field::new_list_field(arg.clone(), true)))
            }
            AggKind::ApproxPercentile(_) | AggKind::DecayedSum(_) | AggKind::DecayedCount(_) => DataType::Float64,
        }
    }

    pub fn needs_numeric(&self) -> bool {
        matches!(
            self,
            AggKind::Sum
                | AggKind::Avg
                | AggKind::StddevSamp
                | AggKind::VarSamp
                | AggKind::ApproxPercentile(_)
                | AggKind::DecayedSum(_)
        )
    }

    /// Whether the result is chosen from the window's values (so they must be kept in the
    /// argument's own order, not hashed or summed).
    pub fn picks_values(&self) -> bool {
        matches!(
            self,
            AggKind::Min
                | AggKind::Max
                | AggKind::FirstValue
                | AggKind::LastValue
                | AggKind::LastK(_)
                | AggKind::MaxK(_)
                | AggKind::MinK(_)
        )
    }

    /// The half-life of a decayed aggregate (µs).
    pub fn half_life(&self) -> Option<i64> {
        match self {
            AggKind::DecayedSum(h) | AggKind::DecayedCount(h) => Some(*h),
            _ => None,
        }
    }
}

/// `k` of `last_k`/`max_k`/`min_k`: an integer constant from 1 to [`MAX_K`] (else 22023, as
/// PostgreSQL reports an invalid argument value).
fn k_of(name: &str, param: Option<&Expr>) -> Result<u16> {
    let k = param.and_then(constant).and_then(|(text, negative)| text.parse::<i64>().ok().map(|k| (k, negative)));
    match k {
        Some((k, false)) if (1..=MAX_K).contains(&k) => Ok(k as u16),
        _ => Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!(
                "k of {name}() must be an integer constant from 1 to {MAX_K}, not {}",
                param.map_or("nothing".to_string(), |p| p.to_string())
            ),
        )),
    }
}

/// `q` of `approx_percentile`: a numeric constant in [0, 1] (else 22003, as PostgreSQL's
/// `percentile_cont` says "percentile value ... is not between 0 and 1").
fn fraction_of(param: Option<&Expr>) -> Result<Fraction> {
    let q = param.and_then(constant).and_then(|(text, negative)| {
        let q = text.parse::<f64>().ok()?;
        Some(if negative { -q } else { q })
    });
    match q {
        Some(q) if let Some(q) = Fraction::new(q) => Ok(q),
        _ => Err(Error::invalid_input(
            SqlState::NumericValueOutOfRange,
            format!(
                "percentile value {} is not between 0 and 1",
                param.map_or("nothing".to_string(), |p| p.to_string())
            ),
        )),
    }
}

/// The half-life of a decayed aggregate: a positive INTERVAL literal, in µs.
fn half_life_of(name: &str, param: Option<&Expr>) -> Result<i64> {
    use sqlparser::ast::Value;
    let micros = match param {
        Some(Expr::Interval(interval)) => match (interval.value.as_ref(), &interval.leading_field) {
            (Expr::Value(v), field) => match &v.value {
                Value::SingleQuotedString(text) => {
                    let text = field.as_ref().map_or(text.clone(), |unit| format!("{text} {unit}"));
                    crate::sql::parse_interval_micros(&text).ok()
                }
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    match micros {
        Some(h) if h > 0 => Ok(h),
        _ => Err(Error::invalid_input(
            SqlState::InvalidParameterValue,
            format!(
                "the half-life of {name}() must be a positive INTERVAL literal, not {}",
                param.map_or("nothing".to_string(), |p| p.to_string())
            ),
        )),
    }
}

/// A numeric literal as written, and whether a unary minus preceded it.
fn constant(expr: &Expr) -> Option<(String, bool)> {
    use sqlparser::ast::{UnaryOperator, Value};
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some((n.to_string(), false)),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => constant(expr).map(|(n, neg)| (n, !neg)),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => constant(expr),
        Expr::Nested(inner) => constant(inner),
        _ => None,
    }
}

/// HyperLogLog with 2^14 registers: standard error 1.04 / sqrt(16384) ≈ 0.81%, exact-ish
/// (linear counting) below ~40K distinct values. Values arrive as their stored 64-bit word
/// (the integer itself, float bits, or a fixed-key SipHash of anything else) and are mixed
/// with SplitMix64's finalizer, so estimates are deterministic.
pub struct HyperLogLog {
    registers: Vec<u8>,
}

const HLL_BITS: u32 = 14;

impl Default for HyperLogLog {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperLogLog {
    pub fn new() -> Self {
        Self { registers: vec![0; 1 << HLL_BITS] }
    }

    /// Adds a value given as its stored word (see `feature::encoding`), mixed into a hash.
    pub fn add(&mut self, word: u64) {
        let hash = mix(word);
        let index = (hash >> (64 - HLL_BITS)) as usize;
        let rest = (hash << HLL_BITS) | (1 << (HLL_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if rank > self.registers[index] {
            self.registers[index] = rank;
        }
    }

    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|r| 2f64.powi(-(*r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|r| **r == 0).count();
        if raw <= 2.5 * m && zeros > 0 { (m * (m / zeros as f64).ln()).round() } else { raw.round() }
    }
}

/// SplitMix64's finalizer: spreads the bits of a word (an integer, float bits or a hash).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperloglog_is_close() {
        let mut h = HyperLogLog::new();
        for i in 0..100_000i64 {
            h.add((i % 50_000) as u64);
        }
        let est = h.estimate();
        assert!((est - 50_000.0).abs() / 50_000.0 < 0.03, "{est}");
        let mut small = HyperLogLog::new();
        for i in 0..100i64 {
            small.add(i as u64);
        }
        assert_eq!(small.estimate(), 100.0);
    }
}
