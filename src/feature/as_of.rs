//! A feature evaluated at many (key, time) points at once, for ASOF training sets:
//! - if every point's window lies within what the live state holds (its horizon, about one window
//!   behind the latest event), from the live state: each batch is swept key by key, rows
//!   ordered by (key, time), each key's history looked up once;
//! - otherwise from the stored events of both tiers, swept in time order with memory bounded
//!   by one window (`as_of_stored`).
//!
//! Both evaluate with the core online reads use (`KeyHistory::sweep`/`evaluate`, `>=`
//! inclusive, `>` strict).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};
use datafusion::scalar::ScalarValue;

use super::as_of_stored::{Probe, evaluate_stored};
use super::window::AsOf;
use super::{FeatureState, LiveFeature, SlidingDistinct};
use crate::error::Result;

/// Per point: the feature's values, or `None` when its key has no qualifying event at or
/// before its time (or its key or time is NULL).
pub type Values = Vec<Option<Vec<ScalarValue>>>;

/// A batch of points: their keys, in the feature's key types, and times; for a known-at
/// evaluation, each point's K (a NULL K knows nothing).
pub struct Points<'a> {
    pub keys: &'a [ArrayRef],
    pub times: &'a TimestampMicrosecondArray,
    pub known: Option<&'a TimestampMicrosecondArray>,
}

impl Points<'_> {
    /// Point `r`'s K: what a known-at evaluation counts up to (`i64::MAX` without one).
    fn known(&self, r: usize) -> i64 {
        match self.known {
            Some(k) if k.is_valid(r) => k.value(r),
            Some(_) => i64::MIN,
            None => i64::MAX,
        }
    }
}

/// Sliding windows kept per key (by history address) across the batches of one call, at most
/// this many words in all.
const CACHED_WINDOW_WORDS: usize = 4 << 20;

impl LiveFeature {
    /// The feature's values at every point of every batch: as of each time, counting events
    /// at that time unless strict, within the staleness bound if there is one.
    pub fn evaluate_at(&self, points: &[Points], as_of: AsOf) -> Result<Vec<Values>> {
        // What the earliest time evaluated needs: every later one starts and ends no earlier.
        let earliest = points.iter().flat_map(|p| p.times.iter().flatten()).min();
        let window = earliest.map(|t| as_of.reach(&self.compiled.def.window, t));
        {
            let state = self.state()?;
            if window.is_none_or(|w| state.holds(w)) {
                let mut windows = HashMap::new();
                return points.iter().map(|p| self.live(&state, p, as_of, &mut windows)).collect();
            }
        }
        self.stored(points, as_of)
    }

    /// Values from the live state, which holds every event the rows' windows reach.
    fn live(
        &self,
        state: &FeatureState,
        p: &Points,
        as_of: AsOf,
        windows: &mut HashMap<usize, SlidingDistinct>,
    ) -> Result<Values> {
        let compiled = &self.compiled;
        let (n, times) = (p.times.len(), p.times);
        let histories = state.histories(p.keys)?;
        // Key by key (histories are grouped by address), each key's rows in time order.
        let mut order: Vec<u32> =
            (0..n as u32).filter(|r| histories[*r as usize].is_some() && times.is_valid(*r as usize)).collect();
        let address = |r: u32| histories[r as usize].map_or(0, |h| h as *const _ as usize);
        order.sort_unstable_by_key(|r| (address(*r), times.value(*r as usize)));
        let mut values: Values = vec![None; n];
        let encoded = if as_of.known_at { Some(state.encode_keys(p.keys)?) } else { None };
        if windows.values().map(SlidingDistinct::size).sum::<usize>() > CACHED_WINDOW_WORDS {
            windows.clear();
        }
        for rows in order.chunk_by(|a, b| address(*a) == address(*b)) {
            let Some(history) = histories[rows[0] as usize] else { continue };
            let mut next = rows.iter();
            let times_of_rows = rows.iter().map(|r| times.value(*r as usize));
            let window = windows.entry(address(rows[0])).or_default();
            let mut emit = |value| {
                if let Some(r) = next.next() {
                    values[*r as usize] = value;
                }
                Ok(())
            };
            match &encoded {
                Some(encoded) => {
                    let evicted = state.evicted_ingest(encoded.row(rows[0] as usize).as_ref());
                    let known: Vec<(i64, i64)> =
                        rows.iter().map(|r| (times.value(*r as usize), p.known(*r as usize))).collect();
                    history.sweep_known(compiled, &known, as_of, evicted, window, &mut emit)?;
                }
                None => history.sweep(compiled, times_of_rows, as_of, window, &mut emit)?,
            }
        }
        Ok(values)
    }

    /// Values from the stored events (`as_of_stored`).
    fn stored(&self, points: &[Points], as_of: AsOf) -> Result<Vec<Values>> {
        let scratch = FeatureState::new(&self.compiled)?;
        let mut ids: HashMap<Box<[u8]>, u32, ahash::RandomState> = HashMap::default();
        let mut keys: Vec<Box<[u8]>> = Vec::new();
        let mut probes = Vec::new();
        let mut slot = 0u32;
        for p in points {
            let rows = scratch.encode_keys(p.keys)?;
            for r in 0..p.times.len() {
                if p.times.is_valid(r) && p.keys.iter().all(|k| k.is_valid(r)) {
                    let key = rows.row(r);
                    let id = match ids.get(key.as_ref()) {
                        Some(id) => *id,
                        None => {
                            keys.push(key.as_ref().into());
                            ids.insert(key.as_ref().into(), keys.len() as u32 - 1);
                            keys.len() as u32 - 1
                        }
                    };
                    probes.push(Probe { key: id, time: p.times.value(r), known: p.known(r), slot });
                }
                slot += 1;
            }
        }
        drop(ids);
        let mut flat: Values = vec![None; slot as usize];
        evaluate_stored(self, &self.store, &keys, &mut probes, as_of, &mut |slot, values| {
            flat[slot as usize] = values
        })?;
        let mut rest = flat.into_iter();
        Ok(points.iter().map(|p| rest.by_ref().take(p.times.len()).collect()).collect())
    }
}
