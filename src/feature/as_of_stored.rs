//! ASOF against a feature over its stored events, for spines that reach further back than the
//! live state holds (it keeps one window behind the latest event, see `FeatureState::evict`).
//!
//! The spine's rows are sorted by time. The feature's table is scanned over the range they
//! need, day by day in event-time order from both tiers (a reader thread decodes while this
//! one evaluates), into a scratch state holding the spine's keys only. Once a day is in, the
//! rows whose window ends before the next day are evaluated by the shared core
//! (`KeyHistory::sweep`, sliding distinct counts carried per key), and the events older than
//! every remaining row's window are evicted. Memory is one window (plus a day) of the spine
//! keys' events, not the table's history.

use std::collections::HashMap;

use datafusion::scalar::ScalarValue;

use super::window::{AsOf, upper_bound};
use super::{FeatureState, LiveFeature, SlidingDistinct, distinct_aggregates};
use crate::error::Result;
use crate::storage::blocks::event_times;
use crate::storage::{BLOCK_MICROS, EventStore, StoredPart};

const DAY_MICROS: i64 = 86_400_000_000;

/// One spine row to evaluate: its key (index into the distinct keys), time, and output slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub key: u32,
    pub time: i64,
    /// K of a known-at evaluation (`i64::MAX` otherwise).
    pub known: i64,
    pub slot: u32,
}

/// Evaluates `feature` at every probe from the stored events; `emit(slot, values)` gets each
/// result (`None`: the key has no qualifying event at or before the time).
pub(super) fn evaluate_stored(
    feature: &LiveFeature,
    store: &EventStore,
    keys: &[Box<[u8]>],
    probes: &mut [Probe],
    as_of: AsOf,
    emit: &mut dyn FnMut(u32, Option<Vec<ScalarValue>>),
) -> Result<()> {
    let compiled = &feature.compiled;
    let strict = as_of.strict;
    if probes.is_empty() {
        return Ok(());
    }
    let mut scratch = FeatureState::scratch(compiled)?;
    {
        let live = feature.state()?;
        for key in keys {
            scratch.add_key(key, live.encoded(key).and_then(|h| h.first()));
        }
    }
    probes.sort_by_key(|p| (p.time, p.key));
    let window_from = |t: i64| as_of.reach(&compiled.def.window, t).from;
    // A known-at evaluation reads from the first event: whether an event older than the
    // window was known at K decides a match, and the sweep's evictions record that
    // (`FeatureState::evicted_ingest`).
    let first_block = if as_of.known_at { i64::MIN } else { window_from(probes[0].time).div_euclid(BLOCK_MICROS) };
    let last_block = upper_bound(probes[probes.len() - 1].time, strict).div_euclid(BLOCK_MICROS);
    // Only the columns the feature reads are decoded from cold files.
    let scan = store.scan_columns(compiled.table.scan_table(), (first_block, last_block), compiled.columns_read());

    let mut sweep = Sweep { scratch, windows: HashMap::default(), next: 0, as_of };
    std::thread::scope(|scope| {
        let (parts, received) = std::sync::mpsc::sync_channel::<Result<StoredPart>>(4);
        scope.spawn(move || {
            for part in scan {
                if parts.send(part).is_err() {
                    break;
                }
            }
        });
        let mut day = i64::MIN;
        for part in received {
            let part = part?;
            let times = event_times(part.batch.column(compiled.event_time))?;
            let Some(first) = times.values().first() else { continue };
            let part_day = first.div_euclid(DAY_MICROS);
            if part_day > day {
                // Every event before this day is in (the scan goes day by day).
                sweep.evaluate_before(feature, keys, probes, part_day.saturating_mul(DAY_MICROS), emit)?;
                day = part_day;
            }
            sweep.scratch.ingest(compiled, &part.batch, part.seq)?;
        }
        sweep.evaluate_before(feature, keys, probes, i64::MAX, emit)
    })
}

struct Sweep {
    scratch: FeatureState,
    /// Sliding distinct counts per key, carried from one day's rows to the next.
    windows: HashMap<Box<[u8]>, SlidingDistinct, ahash::RandomState>,
    /// The first probe not evaluated yet.
    next: usize,
    as_of: AsOf,
}

impl Sweep {
    /// Evaluates the probes whose last counted event time is before `limit`, then evicts what
    /// the remaining probes no longer need.
    fn evaluate_before(
        &mut self,
        feature: &LiveFeature,
        keys: &[Box<[u8]>],
        probes: &mut [Probe],
        limit: i64,
        emit: &mut dyn FnMut(u32, Option<Vec<ScalarValue>>),
    ) -> Result<()> {
        let compiled = &feature.compiled;
        let start = self.next;
        let end = start + probes[start..].partition_point(|p| upper_bound(p.time, self.as_of.strict) < limit);
        if end == start {
            return Ok(());
        }
        let chunk = &mut probes[start..end];
        chunk.sort_by_key(|p| (p.key, p.time));
        for rows in chunk.chunk_by(|a, b| a.key == b.key) {
            let key = &keys[rows[0].key as usize];
            let Some(history) = self.scratch.encoded(key) else {
                rows.iter().for_each(|p| emit(p.slot, None));
                continue;
            };
            let window = match self.windows.get_mut(key) {
                Some(window) => window,
                None => self.windows.entry(key.clone()).or_default(),
            };
            let mut slots = rows.iter().map(|p| p.slot);
            let mut emit = |value| {
                if let Some(slot) = slots.next() {
                    emit(slot, value);
                }
                Ok(())
            };
            if self.as_of.known_at {
                let evicted = self.scratch.evicted_ingest(key);
                let known: Vec<(i64, i64)> = rows.iter().map(|p| (p.time, p.known)).collect();
                history.sweep_known(compiled, &known, self.as_of, evicted, window, &mut emit)?;
            } else {
                history.sweep(compiled, rows.iter().map(|p| p.time), self.as_of, window, &mut emit)?;
            }
        }
        self.next = end;
        if let Some(p) = probes.get(end) {
            let horizon = self.as_of.reach(&compiled.def.window, p.time).from;
            let windows = &mut self.windows;
            let distinct = distinct_aggregates(compiled);
            self.scratch.evict(compiled, horizon, &mut |key, history, r| {
                if let Some(window) = windows.get_mut(key) {
                    history.retire_window(compiled, &distinct, window, r);
                }
            });
        }
        Ok(())
    }
}
