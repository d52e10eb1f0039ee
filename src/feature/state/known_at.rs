//! "Known at" evaluation (spec section 3): a key's value at T over only the events whose
//! ingest time is at or before K, the value the online system could have served at K.
//!
//! Each tile knows the greatest ingest time of its events: a tile of the window whose events
//! were all known at K is merged whole, as for an ordinary evaluation; the events of the other
//! tiles (holding a late event, or ingested after K) and of the two edges are folded one by
//! one, skipping those not known. So the cost over an ordinary evaluation is the events of the
//! tiles with an event ingested after K, which for a spine whose K is its T are the few tiles
//! nearest T that late events reach. A match needs an event at or before T known at K: among
//! the held events, else among the evicted ones, all older than the window, of which the state
//! keeps the least ingest time per key (`FeatureState::evicted_ingest`).

use datafusion::scalar::ScalarValue;

use std::collections::{HashMap, HashSet};

use super::evaluate::{distinct_aggregates, finish_all, window_accs};
use super::history::KeyHistory;
use super::ingest_chunks::IngestChunks;
use super::sliding_distinct::SlidingDistinct;
use super::tiles::{Tiles, fold_into};
use crate::error::Result;
use crate::feature::accumulate::{Acc, Events, distinct_without};
use crate::feature::def::CompiledFeature;
use crate::feature::encoding::VALUE;
use crate::feature::window::{AsOf, Span, Window, evaluation_time, span, upper_bound};

impl KeyHistory {
    /// The feature's values at `t` over the events known at `known` (ingest time at or before
    /// it), followed by the greatest ingest time of the window's known events; None when no
    /// event at or before `t` (before `t` if strict) was known then, or (with a staleness
    /// bound) none recent enough. `evicted`: the least ingest time of the key's events no
    /// longer held (older than every window the state still evaluates).
    pub fn evaluate_known(
        &self,
        feature: &CompiledFeature,
        t: i64,
        as_of: AsOf,
        known: i64,
        evicted: Option<i64>,
    ) -> Result<Option<Vec<ScalarValue>>> {
        self.evaluate_known_with(feature, t, as_of, known, evicted, None)
    }

    /// [`KeyHistory::evaluate_known`], with distinct counts left NULL if `skipping` them (a
    /// sweep computes those), given the ingest runs of this key's events (`self.events`).
    fn evaluate_known_with(
        &self,
        feature: &CompiledFeature,
        t: i64,
        as_of: AsOf,
        known: i64,
        evicted: Option<i64>,
        skipping: Option<&IngestChunks>,
    ) -> Result<Option<Vec<ScalarValue>>> {
        let ev = self.events(feature);
        let n = feature.def.values.len();
        let ingest = |i: usize| ev.word(i, n) as i64;
        let end = ev.after(upper_bound(t, as_of.strict));
        let latest = (0..end).rev().find(|i| ingest(*i) <= known);
        let matched = match latest {
            Some(latest) => as_of.max_age.is_none_or(|age| t.saturating_sub(ev.time(latest)) <= age),
            // Evicted events are older than any staleness bound still evaluated.
            None => as_of.max_age.is_none() && evicted.is_some_and(|e| e <= known),
        };
        if !matched {
            return Ok(None);
        }
        let session = matches!(feature.def.window, Window::Session { .. });
        let window = match (feature.def.window, latest) {
            (Window::Session { gap }, Some(latest)) => known_session(&ev, latest, gap, t, |i| ingest(i) <= known),
            (Window::Session { .. }, None) => Span::EMPTY,
            (ref other, _) => span(other, t, as_of.strict),
        };
        let mut accs = window_accs(feature, skipping.is_some(), evaluation_time(&feature.def.window, t, as_of.strict));
        // Only distinct counts, skipped: the greatest ingest time is all that is wanted.
        let folds = accs.iter().any(|acc| !matches!(acc, Acc::Skip));
        let mut greatest = None;
        if window.from <= window.to {
            let (a, b) = (ev.from(window.from), ev.after(window.to));
            // Folds the known events of `from..to`; returns the greatest ingest time among them.
            let fold_known = |accs: &mut [Acc], from: usize, to: usize| {
                if let Some(chunks) = skipping.filter(|_| !folds) {
                    return chunks.greatest_known(&ev, from, to, known);
                }
                let mut greatest = None;
                for i in (from..to).filter(|i| ingest(*i) <= known) {
                    fold_into(feature, &ev, accs, i, i + 1, 0);
                    greatest = greatest.max(Some(ingest(i)));
                }
                greatest
            };
            match self.body().tiles.as_deref().filter(|_| b > a && !session) {
                Some(tiles) => {
                    let (k0, k1) = tiles.inside(feature.tile, window.from, window.to);
                    if k0 < k1 {
                        greatest = fold_known(&mut accs, a, tiles.begin(k0));
                        for k in k0..k1 {
                            let tile = if tiles.max_ingest[k] <= known {
                                if folds {
                                    merge_tile(feature, &ev, &mut accs, tiles, k);
                                }
                                Some(tiles.max_ingest[k])
                            } else {
                                fold_known(&mut accs, tiles.begin(k), tiles.ends[k] as usize)
                            };
                            greatest = greatest.max(tile);
                        }
                        greatest = greatest.max(fold_known(&mut accs, tiles.ends[k1 - 1] as usize, b));
                    } else {
                        greatest = fold_known(&mut accs, a, b);
                    }
                }
                None => greatest = fold_known(&mut accs, a, b),
            }
        }
        let mut values = finish_all(feature, &accs, &ev)?;
        values.push(ScalarValue::Int64(greatest));
        Ok(Some(values))
    }
}

impl KeyHistory {
    /// Evaluates at each of `rows` (T, K), ascending in T, as [`KeyHistory::evaluate_known`]
    /// does. A row whose window's events were all known at K (its greatest ingest time, which
    /// an ordinary evaluation gives, is at or before K) has the ordinary value, with distinct
    /// counts kept incrementally by `window` as [`KeyHistory::sweep`] keeps them; the other
    /// rows are evaluated over their known events, their distinct counts taken from `window`
    /// less the values only unknown events hold (found through the greatest ingest times of
    /// tiles and of runs of events). An ordinary evaluation with no match means none known
    /// either.
    pub fn sweep_known(
        &self,
        feature: &CompiledFeature,
        rows: &[(i64, i64)],
        as_of: AsOf,
        evicted: Option<i64>,
        window: &mut SlidingDistinct,
        emit: &mut dyn FnMut(Option<Vec<ScalarValue>>) -> Result<()>,
    ) -> Result<()> {
        let ordinary = AsOf { known_at: false, ..as_of };
        // A hopping window ends at its last hop, before T: with a staleness bound, an event
        // after the hop, unknown at K, would decide an ordinary match but not a known one.
        let same_match = as_of.max_age.is_none() || !matches!(feature.def.window, Window::Hopping { .. });
        let all_known = |values: &[ScalarValue], k: i64| {
            same_match && matches!(values.last(), Some(ScalarValue::Int64(Some(m))) if *m <= k)
        };
        let distinct = distinct_aggregates(feature);
        let session = matches!(feature.def.window, Window::Session { .. });
        if distinct.is_empty() && !session {
            // Whether the window was all known decides which evaluation runs: only one does.
            let ev = self.events(feature);
            for &(t, k) in rows {
                let window = span(&feature.def.window, t, as_of.strict);
                let (a, b) = if window.from > window.to { (0, 0) } else { (ev.from(window.from), ev.after(window.to)) };
                let all =
                    same_match && b > a && self.window_ingest(feature, &ev, window, (a, b)).is_some_and(|m| m <= k);
                emit(match all {
                    true => self.evaluate_span(feature, t, ordinary, false)?.map(|(values, _)| values),
                    false => self.evaluate_known(feature, t, as_of, k, evicted)?,
                })?;
            }
            return Ok(());
        }
        if session {
            for &(t, k) in rows {
                emit(match self.evaluate_span(feature, t, ordinary, false)? {
                    None => None,
                    Some((values, _)) if all_known(&values, k) => Some(values),
                    Some(_) => self.evaluate_known(feature, t, as_of, k, evicted)?,
                })?;
            }
            return Ok(());
        }
        let ev = self.events(feature);
        // Built for the first row whose window holds an unknown event (most sweeps of a key
        // have none): reading every held event is not free for a long window.
        let mut chunks: Option<IngestChunks> = None;
        if window.counts.len() != distinct.len() {
            *window = SlidingDistinct::new(distinct.len());
        }
        for &(t, k) in rows {
            let Some((values, span)) = self.evaluate_span(feature, t, ordinary, true)? else {
                emit(None)?;
                continue;
            };
            window.slide(&ev, &distinct, span);
            let (mut values, unknown) = if all_known(&values, k) {
                (values, Vec::new())
            } else {
                let chunks = chunks.get_or_insert_with(|| IngestChunks::new(&ev, feature.def.values.len()));
                let Some(known) = self.evaluate_known_with(feature, t, as_of, k, evicted, Some(chunks))? else {
                    emit(None)?;
                    continue;
                };
                (known, self.unknown_events(feature, &ev, chunks, span, k))
            };
            for (i, j) in distinct.iter().enumerate() {
                let counts = &window.counts[i];
                let mut only_unknown: HashMap<u64, u32, ahash::RandomState> = HashMap::default();
                for e in unknown.iter().filter(|e| ev.flag(**e, *j) == VALUE) {
                    *only_unknown.entry(ev.word(*e, *j)).or_insert(0) += 1;
                }
                let only_unknown: HashSet<u64, ahash::RandomState> =
                    only_unknown.into_iter().filter(|(word, n)| counts.get(word) == Some(n)).map(|(w, _)| w).collect();
                values[*j] = distinct_without(feature.def.values[*j].kind, counts.keys(), Some(&only_unknown));
            }
            emit(Some(values))?;
        }
        Ok(())
    }

    /// The events of `a..b` (a window) ingested after `known`: whole tiles and runs of events
    /// known by then are skipped.
    fn unknown_events(
        &self,
        feature: &CompiledFeature,
        ev: &Events,
        chunks: &IngestChunks,
        (a, b): (usize, usize),
        known: i64,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        let mut late = |from: usize, to: usize| chunks.late(ev, from, to, known, &mut out);
        let Some(tiles) = self.body().tiles.as_deref().filter(|_| b > a) else {
            late(a, b);
            return out;
        };
        let (from, to) = (ev.time(a), ev.time(b - 1));
        let (k0, k1) = tiles.inside(feature.tile, from, to);
        if k0 >= k1 || tiles.begin(k0) < a || tiles.ends[k1 - 1] as usize > b {
            late(a, b);
            return out;
        }
        late(a, tiles.begin(k0));
        for k in (k0..k1).filter(|k| tiles.max_ingest[*k] > known) {
            late(tiles.begin(k), tiles.ends[k] as usize);
        }
        late(tiles.ends[k1 - 1] as usize, b);
        out
    }
}

/// Merges tile `k`'s partials into `accs`.
fn merge_tile(feature: &CompiledFeature, ev: &Events, accs: &mut [Acc], tiles: &Tiles, k: usize) {
    let n = accs.len();
    for (j, acc) in accs.iter_mut().enumerate() {
        let v = &feature.def.values[j];
        acc.merge(v.kind, feature.reprs[j], ev, j, &tiles.partials[k * n + j], tiles.begin(k));
    }
}

/// The current session at `t` over the known events, ending at the latest known one.
fn known_session(ev: &Events, latest: usize, gap: i64, t: i64, known: impl Fn(usize) -> bool) -> Span {
    let last = ev.time(latest);
    if t.saturating_sub(last) >= gap {
        return Span::EMPTY;
    }
    let mut start = last;
    for i in (0..latest).rev().filter(|i| known(*i)) {
        if start.saturating_sub(ev.time(i)) >= gap {
            break;
        }
        start = ev.time(i);
    }
    Span { from: start, to: last }
}
