//! How a feature stores each event: a few 64-bit words instead of Arrow rows or
//! `ScalarValue`s, so a key's history is one flat `Vec<u64>` and costs 8 bytes per aggregate.
//!
//! ```text
//!  event = [ time µs | arrival seq | flags | word of aggregate 0 | word of aggregate 1 | ... ]
//!  flags = 2 bits per aggregate: ABSENT (row WHERE passed, FILTER did not), NULL, VALUE
//! ```
//! An aggregate's word depends on what it needs of the value ([`Repr`]): nothing (counts), the
//! integer, the float's bits, a fixed-key SipHash (distinct counts of strings and other types:
//! two different values collide with probability 2^-64), or an index into the key's side list
//! of `ScalarValue`s (min/max/first/last of strings, decimals, dates, ...).

use std::hash::{Hash, Hasher};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::scalar::ScalarValue;

use super::aggregate::AggKind;
use crate::error::Result;

pub const ABSENT: u64 = 0;
pub const NULL: u64 = 1;
pub const VALUE: u64 = 2;

/// At most this many aggregates per feature: their flags share one word.
pub const MAX_AGGREGATES: usize = 32;

/// What an aggregate keeps of each input value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Presence only (`count(*)`, `count(x)`).
    Flag,
    /// The value as an i64 (integers, timestamps).
    Int,
    /// The value as an f64's bits.
    Float,
    /// A 64-bit hash of the value (distinct counts of non-numeric values).
    Hash,
    /// An index into the key's list of values (order-sensitive aggregates of other types).
    Other,
}

impl Repr {
    pub fn of(kind: AggKind, arg: &DataType) -> Repr {
        let integer = arg.is_integer() && *arg != DataType::UInt64 || matches!(arg, DataType::Timestamp(_, _));
        let float = matches!(arg, DataType::Float32 | DataType::Float64);
        let picks = kind.picks_values();
        match kind {
            AggKind::CountStar | AggKind::Count | AggKind::DecayedCount(_) => Repr::Flag,
            AggKind::ApproxPercentile(_) | AggKind::DecayedSum(_) => Repr::Float,
            AggKind::Sum if kind.result_type(arg) == DataType::Int64 => Repr::Int,
            AggKind::Sum | AggKind::Avg | AggKind::StddevSamp | AggKind::VarSamp => Repr::Float,
            AggKind::CountDistinct | AggKind::ApproxDistinct if integer => Repr::Int,
            AggKind::CountDistinct | AggKind::ApproxDistinct if float => Repr::Float,
            AggKind::CountDistinct | AggKind::ApproxDistinct => Repr::Hash,
            _ if picks && integer => Repr::Int,
            _ if picks && float => Repr::Float,
            _ => Repr::Other,
        }
    }
}

/// One aggregate's input over a batch: per row a flag and a word, plus the values kept for
/// [`Repr::Other`] (the word is then the row number within `others`).
pub enum Encoded {
    Words(Vec<(u64, u64)>),
    Others(Vec<(u64, Option<ScalarValue>)>),
}

/// Encodes `arg` (or `count(*)` when `None`) for rows whose FILTER passed (`included`).
pub fn encode(repr: Repr, arg: Option<&ArrayRef>, included: impl Fn(usize) -> bool, rows: usize) -> Result<Encoded> {
    let flag = |row: usize, valid: bool| match (included(row), valid) {
        (false, _) => ABSENT,
        (true, false) => NULL,
        (true, true) => VALUE,
    };
    let Some(arg) = arg else {
        return Ok(Encoded::Words((0..rows).map(|r| (flag(r, true), 0)).collect()));
    };
    Ok(match repr {
        Repr::Flag => Encoded::Words((0..rows).map(|r| (flag(r, arg.is_valid(r)), 0)).collect()),
        Repr::Int => {
            let ints = arrow::compute::cast(arg, &DataType::Int64)?;
            let ints = ints.as_primitive::<Int64Type>();
            Encoded::Words((0..rows).map(|r| (flag(r, arg.is_valid(r)), ints.value(r) as u64)).collect())
        }
        Repr::Float => {
            let floats = arrow::compute::cast(arg, &DataType::Float64)?;
            let floats = floats.as_primitive::<Float64Type>();
            Encoded::Words((0..rows).map(|r| (flag(r, arg.is_valid(r)), float_word(floats.value(r)))).collect())
        }
        Repr::Hash if matches!(arg.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            let strings = arrow::compute::cast(arg, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            Encoded::Words(
                (0..rows)
                    .map(|r| {
                        let f = flag(r, arg.is_valid(r));
                        (f, if f == VALUE { hash_str(strings.value(r)) } else { 0 })
                    })
                    .collect(),
            )
        }
        Repr::Hash => Encoded::Words(
            (0..rows)
                .map(|r| {
                    let f = flag(r, arg.is_valid(r));
                    Ok((f, if f == VALUE { hash(&ScalarValue::try_from_array(arg, r)?) } else { 0 }))
                })
                .collect::<Result<_>>()?,
        ),
        Repr::Other => Encoded::Others(
            (0..rows)
                .map(|r| {
                    let f = flag(r, arg.is_valid(r));
                    Ok((f, if f == VALUE { Some(ScalarValue::try_from_array(arg, r)?) } else { None }))
                })
                .collect::<Result<_>>()?,
        ),
    })
}

/// The bits of a float with -0.0 folded into 0.0 and every NaN into one, so equal values
/// (as SQL compares them) have equal words.
pub fn float_word(f: f64) -> u64 {
    if f == 0.0 {
        0
    } else if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    }
}

/// A stable 64-bit hash: SipHash-1-3 with fixed keys, identical on every machine and run, so
/// persisted hashes stay comparable.
pub fn hash(value: &ScalarValue) -> u64 {
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new_with_keys(0x5eed_a50f, 0xdb_f00d);
    value.hash(&mut hasher);
    hasher.finish()
}

/// [`hash`] of a text value without building a `ScalarValue` (the same hash for every
/// string array type).
pub fn hash_str(text: &str) -> u64 {
    #[allow(deprecated)]
    let mut hasher = std::hash::SipHasher::new_with_keys(0x5eed_a50f, 0xdb_f00d);
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// The value a word stands for, in the aggregate's argument type.
pub fn decode(repr: Repr, word: u64, others: &[ScalarValue], arg: &DataType) -> Result<ScalarValue> {
    Ok(match repr {
        Repr::Int => ScalarValue::Int64(Some(word as i64)).cast_to(arg)?,
        Repr::Float => ScalarValue::Float64(Some(f64::from_bits(word))).cast_to(arg)?,
        Repr::Other => others.get(word as usize).cloned().unwrap_or(ScalarValue::try_from(arg)?),
        Repr::Flag | Repr::Hash => ScalarValue::try_from(arg)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn words_round_trip() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(-5), None]));
        let Encoded::Words(w) = encode(Repr::Int, Some(&ints), |_| true, 2).unwrap() else { panic!("words") };
        assert_eq!(w[1].0, NULL);
        assert_eq!(decode(Repr::Int, w[0].1, &[], &DataType::Int32).unwrap(), ScalarValue::Int32(Some(-5)));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![-0.0, 0.0, 2.5]));
        let Encoded::Words(w) = encode(Repr::Float, Some(&floats), |r| r != 2, 3).unwrap() else { panic!("words") };
        assert_eq!(w[0].1, w[1].1);
        assert_eq!(w[2].0, ABSENT);
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a", "a", "b"]));
        let Encoded::Words(w) = encode(Repr::Hash, Some(&strings), |_| true, 3).unwrap() else { panic!("words") };
        assert_eq!(w[0].1, w[1].1);
        assert_ne!(w[0].1, w[2].1);
    }
}
