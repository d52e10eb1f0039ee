//! Running aggregates: one [`Acc`] per aggregate folds a key's events one at a time, and
//! merges the pre-aggregated partial of a whole tile (see `state`). The same code builds tile
//! partials and evaluates windows, so a tiled and an untiled evaluation agree.
//!
//! Non-invertible aggregates keep what lets partials merge: min/max/first/last keep the index
//! of the chosen event (so ties resolve by event order exactly as a scan would), distinct
//! counts keep the tile's distinct words.

use std::cmp::Ordering;
use std::collections::HashSet;

use arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;

use datafusion_functions_aggregate_common::tdigest::TDigest;

use super::aggregate::{AggKind, HyperLogLog};
use super::encoding::{ABSENT, Repr, VALUE, decode};
use super::quantile;
use crate::error::{Error, Result, SqlState};

/// Read access to a key's events (see `encoding` for the layout).
#[derive(Clone, Copy)]
pub struct Events<'a> {
    pub words: &'a [u64],
    pub stride: usize,
    pub others: &'a [ScalarValue],
}

/// Words before the aggregates' words in each event: time, arrival, flags.
pub const HEADER: usize = 3;

impl Events<'_> {
    pub fn len(&self) -> usize {
        self.words.len() / self.stride
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn time(&self, i: usize) -> i64 {
        self.words[i * self.stride] as i64
    }

    pub fn seq(&self, i: usize) -> u64 {
        self.words[i * self.stride + 1]
    }

    pub fn flag(&self, i: usize, j: usize) -> u64 {
        (self.words[i * self.stride + 2] >> (2 * j)) & 3
    }

    pub fn word(&self, i: usize, j: usize) -> u64 {
        self.words[i * self.stride + HEADER + j]
    }

    /// The first event index whose time is greater than `t` (all events if none).
    pub fn after(&self, t: i64) -> usize {
        partition(self.len(), |i| self.time(i) <= t)
    }

    /// The first event index whose time is at least `t`.
    pub fn from(&self, t: i64) -> usize {
        partition(self.len(), |i| self.time(i) < t)
    }

    fn compare(&self, repr: Repr, j: usize, a: usize, b: usize) -> Ordering {
        let (x, y) = (self.word(a, j), self.word(b, j));
        match repr {
            Repr::Int => (x as i64).cmp(&(y as i64)),
            Repr::Float => f64::from_bits(x).total_cmp(&f64::from_bits(y)),
            Repr::Other => self.others[x as usize].partial_cmp(&self.others[y as usize]).unwrap_or(Ordering::Equal),
            Repr::Flag | Repr::Hash => x.cmp(&y),
        }
    }
}

/// The first index in `0..len` where `before` turns false (`before` must be monotone).
pub fn partition(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

/// The running state of one aggregate. Event indices in `Pick` are relative to an offset the
/// caller passes (a tile's first event, or 0 when evaluating a window).
#[derive(Debug, Clone, PartialEq)]
pub enum Acc {
    Count(i64),
    SumInt {
        n: u64,
        sum: i128,
    },
    /// Count, plain sum, and Welford's mean and squared deviations (stable variance).
    Moments {
        n: u64,
        sum: f64,
        mean: f64,
        m2: f64,
    },
    Pick(Option<u32>),
    /// A tile's distinct words, sorted.
    Distinct(Vec<u64>),
    /// A window's distinct words while it is evaluated.
    Set(HashSet<u64, ahash::RandomState>),
    /// The events a k-aggregate keeps, worst first (see [`Acc::rank`]), at most k.
    Ranked(Vec<u32>),
    /// A percentile's values not yet sketched, and sketches of the rest (see `quantile`).
    Quantile {
        values: Vec<f64>,
        digests: Vec<TDigest>,
    },
    /// A decayed sum referred to time `at`: the sum of `x * 2^((e - at) / h)` over `n` values.
    /// Events are never later than `at`, so no factor exceeds 1 (no overflow, however long
    /// the window is in half-lives).
    Decayed {
        n: u64,
        sum: f64,
        at: i64,
    },
    /// An aggregate computed elsewhere (a sweep's sliding distinct count): does nothing.
    Skip,
}

impl Acc {
    /// An empty accumulator; `tile` selects the mergeable form of distinct counts, and `at`
    /// is the time decayed sums refer to (the evaluation time, or a tile's last instant).
    pub fn new(kind: AggKind, repr: Repr, tile: bool, at: i64) -> Acc {
        match kind {
            AggKind::LastK(_) | AggKind::MaxK(_) | AggKind::MinK(_) => Acc::Ranked(Vec::new()),
            AggKind::ApproxPercentile(_) => Acc::Quantile { values: Vec::new(), digests: Vec::new() },
            AggKind::DecayedSum(_) | AggKind::DecayedCount(_) => Acc::Decayed { n: 0, sum: 0.0, at },
            AggKind::Sum if repr == Repr::Int => Acc::SumInt { n: 0, sum: 0 },
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::Sum | AggKind::Avg | AggKind::StddevSamp | AggKind::VarSamp => {
                Acc::Moments { n: 0, sum: 0.0, mean: 0.0, m2: 0.0 }
            }
            AggKind::Min | AggKind::Max | AggKind::FirstValue | AggKind::LastValue => Acc::Pick(None),
            AggKind::CountDistinct | AggKind::ApproxDistinct if tile => Acc::Distinct(Vec::new()),
            AggKind::CountDistinct | AggKind::ApproxDistinct => Acc::Set(HashSet::default()),
        }
    }

    /// Folds event `i` (absolute) into aggregate `j`; picks are stored as `i - offset`.
    pub fn add(&mut self, kind: AggKind, repr: Repr, ev: &Events, i: usize, j: usize, offset: usize) {
        let flag = ev.flag(i, j);
        if flag == ABSENT {
            return;
        }
        let word = ev.word(i, j);
        match self {
            Acc::Skip => {}
            Acc::Count(n) => *n += (kind == AggKind::CountStar || flag == VALUE) as i64,
            _ if flag != VALUE && !matches!(kind, AggKind::FirstValue | AggKind::LastValue) => {}
            Acc::SumInt { n, sum } => {
                *n += 1;
                *sum += word as i64 as i128;
            }
            Acc::Moments { n, sum, mean, m2 } => {
                let x = f64::from_bits(word);
                *n += 1;
                *sum += x;
                let delta = x - *mean;
                *mean += delta / *n as f64;
                *m2 += delta * (x - *mean);
            }
            Acc::Pick(chosen) => {
                let better = match (kind, *chosen) {
                    (_, None) => true,
                    (AggKind::LastValue, Some(_)) => true,
                    (AggKind::Min, Some(c)) => ev.compare(repr, j, i, c as usize + offset) == Ordering::Less,
                    (AggKind::Max, Some(c)) => ev.compare(repr, j, i, c as usize + offset) == Ordering::Greater,
                    _ => false,
                };
                if better {
                    *chosen = Some((i - offset) as u32);
                }
            }
            Acc::Distinct(words) => {
                if let Err(at) = words.binary_search(&word) {
                    words.insert(at, word);
                }
            }
            Acc::Set(set) => {
                set.insert(word);
            }
            Acc::Ranked(kept) => Acc::rank_in(kept, kind, repr, ev, j, i, offset),
            Acc::Quantile { values, digests } => {
                values.push(f64::from_bits(word));
                quantile::compact(values, digests);
            }
            Acc::Decayed { n, sum, at } => {
                let x = if matches!(kind, AggKind::DecayedSum(_)) { f64::from_bits(word) } else { 1.0 };
                *n += 1;
                *sum += x * decay(ev.time(i), *at, kind);
            }
        }
    }

    /// Keeps event `i` (absolute; stored relative to `offset`) among the k best of `kept`.
    fn rank_in(kept: &mut Vec<u32>, kind: AggKind, repr: Repr, ev: &Events, j: usize, i: usize, offset: usize) {
        let k = match kind {
            AggKind::LastK(k) | AggKind::MaxK(k) | AggKind::MinK(k) => k as usize,
            _ => return,
        };
        let at =
            partition(kept.len(), |p| Acc::rank(kind, repr, ev, j, kept[p] as usize + offset, i) == Ordering::Less);
        if kept.len() == k && at == 0 {
            return;
        }
        kept.insert(at, (i - offset) as u32);
        if kept.len() > k {
            kept.remove(0);
        }
    }

    /// How event `a` ranks against event `b` in a k-aggregate: Greater if `a` comes first in
    /// its result. `last_k` prefers the later event (events are in time then arrival order);
    /// `max_k`/`min_k` the larger/smaller value, then the later event.
    fn rank(kind: AggKind, repr: Repr, ev: &Events, j: usize, a: usize, b: usize) -> Ordering {
        match kind {
            AggKind::MaxK(_) => ev.compare(repr, j, a, b).then(a.cmp(&b)),
            AggKind::MinK(_) => ev.compare(repr, j, b, a).then(a.cmp(&b)),
            _ => a.cmp(&b),
        }
    }

    /// Folds event `i` (absolute), just inserted before the tile's last event, into this tile
    /// partial (picks relative to `offset`) with the result a fold in event order would give.
    /// Returns false for sums of floats, whose rounding depends on order: refold those.
    pub fn insert(&mut self, kind: AggKind, repr: Repr, ev: &Events, i: usize, j: usize, offset: usize) -> bool {
        let rel = (i - offset) as u32;
        match self {
            // Float sums round by order; kept events and sketches are cheaper refolded.
            Acc::Moments { .. } | Acc::Decayed { .. } | Acc::Ranked(_) | Acc::Quantile { .. } => return false,
            Acc::Pick(Some(c)) if *c >= rel => *c += 1,
            _ => {}
        }
        let flag = ev.flag(i, j);
        let Acc::Pick(chosen) = self else {
            self.add(kind, repr, ev, i, j, offset);
            return true;
        };
        let counts = flag == VALUE || (flag != ABSENT && matches!(kind, AggKind::FirstValue | AggKind::LastValue));
        let Some(c) = *chosen else {
            if counts {
                *chosen = Some(rel);
            }
            return true;
        };
        if counts {
            let earlier = rel < c;
            let order = ev.compare(repr, j, i, c as usize + offset);
            let better = match kind {
                AggKind::Min => order == Ordering::Less || (order == Ordering::Equal && earlier),
                AggKind::Max => order == Ordering::Greater || (order == Ordering::Equal && earlier),
                AggKind::FirstValue => earlier,
                AggKind::LastValue => !earlier,
                _ => false,
            };
            if better {
                *chosen = Some(rel);
            }
        }
        true
    }

    /// Merges `tile` (whose picks are relative to `tile_offset`) into this window accumulator
    /// (picks relative to 0). Tiles must be merged in time order, after the events before them.
    pub fn merge(&mut self, kind: AggKind, repr: Repr, ev: &Events, j: usize, tile: &Acc, tile_offset: usize) {
        match (self, tile) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumInt { n, sum }, Acc::SumInt { n: bn, sum: bs }) => {
                *n += bn;
                *sum += bs;
            }
            (Acc::Moments { n, sum, mean, m2 }, Acc::Moments { n: bn, sum: bs, mean: bm, m2: bm2 }) => {
                if *bn == 0 {
                    return;
                }
                // Chan et al.'s parallel combination of Welford states.
                let total = *n + bn;
                let delta = bm - *mean;
                *mean += delta * *bn as f64 / total as f64;
                *m2 += bm2 + delta * delta * (*n as f64) * (*bn as f64) / total as f64;
                *sum += bs;
                *n = total;
            }
            (Acc::Pick(chosen), Acc::Pick(Some(b))) => {
                let candidate = *b as usize + tile_offset;
                let better = match (kind, *chosen) {
                    (_, None) => true,
                    (AggKind::LastValue, Some(_)) => true,
                    (AggKind::Min, Some(c)) => ev.compare(repr, j, candidate, c as usize) == Ordering::Less,
                    (AggKind::Max, Some(c)) => ev.compare(repr, j, candidate, c as usize) == Ordering::Greater,
                    _ => false,
                };
                if better {
                    *chosen = Some(candidate as u32);
                }
            }
            (Acc::Set(set), Acc::Distinct(words)) => set.extend(words.iter().copied()),
            (Acc::Ranked(kept), Acc::Ranked(theirs)) => {
                for i in theirs {
                    Acc::rank_in(kept, kind, repr, ev, j, *i as usize + tile_offset, 0);
                }
            }
            (Acc::Quantile { values, digests }, Acc::Quantile { values: v, digests: d }) => {
                values.extend_from_slice(v);
                digests.extend_from_slice(d);
                quantile::compact(values, digests);
            }
            (Acc::Decayed { n, sum, at }, Acc::Decayed { n: bn, sum: bs, at: bat }) => {
                // The tile ends no later than the window's evaluation time: a factor <= 1.
                *n += bn;
                *sum += bs * decay(*bat, *at, kind);
            }
            _ => {}
        }
    }

    /// The aggregate's result (picks relative to 0). Over no events `count` is 0 and every
    /// other aggregate NULL.
    pub fn finish(
        &self,
        kind: AggKind,
        repr: Repr,
        ev: &Events,
        j: usize,
        result_type: &DataType,
        arg_type: &DataType,
    ) -> Result<ScalarValue> {
        let null = ScalarValue::try_from(result_type)?;
        Ok(match self {
            Acc::Count(n) => ScalarValue::Int64(Some(*n)),
            Acc::SumInt { n: 0, .. } | Acc::Moments { n: 0, .. } => null,
            Acc::SumInt { sum, .. } => ScalarValue::Int64(Some(i64::try_from(*sum).map_err(|_| {
                Error::invalid_value(SqlState::NumericValueOutOfRange, "bigint out of range in sum()")
            })?)),
            Acc::Moments { n, sum, m2, .. } => match kind {
                AggKind::Sum => ScalarValue::Float64(Some(*sum)),
                AggKind::Avg => ScalarValue::Float64(Some(sum / *n as f64)),
                _ if *n < 2 => null,
                AggKind::VarSamp => ScalarValue::Float64(Some(m2 / (*n - 1) as f64)),
                _ => ScalarValue::Float64(Some((m2 / (*n - 1) as f64).sqrt())),
            },
            Acc::Pick(None) => null,
            Acc::Pick(Some(i)) => {
                let i = *i as usize;
                if ev.flag(i, j) == VALUE { decode(repr, ev.word(i, j), ev.others, arg_type)? } else { null }
            }
            Acc::Distinct(words) => distinct(kind, words.iter()),
            Acc::Set(set) => distinct(kind, set.iter()),
            Acc::Ranked(kept) if kept.is_empty() => null,
            Acc::Ranked(kept) => {
                let values = kept
                    .iter()
                    .rev()
                    .map(|i| decode(repr, ev.word(*i as usize, j), ev.others, arg_type))
                    .collect::<Result<Vec<_>>>()?;
                ScalarValue::List(ScalarValue::new_list(&values, arg_type, true))
            }
            Acc::Quantile { values, digests } => match kind {
                AggKind::ApproxPercentile(q) => ScalarValue::Float64(quantile::estimate(values, digests, q.get())),
                _ => null,
            },
            Acc::Decayed { sum, .. } if matches!(kind, AggKind::DecayedCount(_)) => ScalarValue::Float64(Some(*sum)),
            Acc::Decayed { n: 0, .. } => null,
            Acc::Decayed { sum, .. } => ScalarValue::Float64(Some(*sum)),
            Acc::Skip => null,
        })
    }
}

/// `2^((e - at) / h)` for an event at `e` no later than `at`, `h` the aggregate's half-life.
fn decay(e: i64, at: i64, kind: AggKind) -> f64 {
    let h = kind.half_life().unwrap_or(i64::MAX) as f64;
    (e.saturating_sub(at) as f64 / h).exp2()
}

/// A distinct count (exact or approximate) of `words`.
pub fn distinct<'a>(kind: AggKind, words: impl ExactSizeIterator<Item = &'a u64>) -> ScalarValue {
    distinct_without(kind, words, None)
}

/// The distinct count of `words` without `dropped`, all of which are among them. An exact
/// count subtracts (a window's distinct values can number thousands, dropped ones a few); a
/// sketch is built from the rest.
pub fn distinct_without<'a>(
    kind: AggKind,
    words: impl ExactSizeIterator<Item = &'a u64>,
    dropped: Option<&HashSet<u64, ahash::RandomState>>,
) -> ScalarValue {
    let kept = |w: &&u64| dropped.is_none_or(|d| !d.contains(*w));
    if kind == AggKind::ApproxDistinct {
        let mut sketch = HyperLogLog::new();
        words.filter(kept).for_each(|w| sketch.add(*w));
        ScalarValue::Int64(Some(sketch.estimate() as i64))
    } else {
        ScalarValue::Int64(Some(words.len().saturating_sub(dropped.map_or(0, |d| d.len())) as i64))
    }
}
