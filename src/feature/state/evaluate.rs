//! A key's values at a time T (`evaluate`), and at many ascending times in one pass (`sweep`):
//! the one evaluation core behind online reads, backfill and ASOF JOIN.

use datafusion::scalar::ScalarValue;

use super::history::KeyHistory;
use super::sliding_distinct::SlidingDistinct;
use super::tiles::fold_into;
use crate::error::Result;
use crate::feature::accumulate::{Acc, Events, distinct as distinct_of};
use crate::feature::aggregate::AggKind;
use crate::feature::def::CompiledFeature;
use crate::feature::window::Window;
use crate::feature::window::{AsOf, Span, evaluation_time, session_span, span, upper_bound};

impl KeyHistory {
    /// The feature's values at `t`, or `None` when the key has no qualifying event at or
    /// before `t` (before `t` if `strict`).
    pub fn evaluate(&self, feature: &CompiledFeature, t: i64, strict: bool) -> Result<Option<Vec<ScalarValue>>> {
        Ok(self.evaluate_span(feature, t, AsOf::at(strict), false)?.map(|(values, _)| values))
    }

    /// Evaluates at each of `times`, ascending (an ASOF sweep over one key), calling `emit`
    /// with each result in order. Distinct counts of sliding windows are kept incrementally
    /// (each event enters and leaves the window once) instead of merging every tile's words
    /// at every time; everything else evaluates as [`evaluate`](Self::evaluate) does.
    ///
    /// `window` carries the sliding distinct counts between calls for this key (pass a default
    /// one the first time; keep it only while the state's [`version`](FeatureState::version)
    /// is unchanged), so consecutive batches of a time-ordered spine extend it instead of
    /// rebuilding it.
    pub fn sweep(
        &self,
        feature: &CompiledFeature,
        times: impl Iterator<Item = i64>,
        as_of: AsOf,
        window: &mut SlidingDistinct,
        emit: &mut dyn FnMut(Option<Vec<ScalarValue>>) -> Result<()>,
    ) -> Result<()> {
        let distinct = distinct_aggregates(feature);
        if distinct.is_empty() || matches!(feature.def.window, Window::Session { .. }) {
            for t in times {
                emit(self.evaluate_span(feature, t, as_of, false)?.map(|(values, _)| values))?;
            }
            return Ok(());
        }
        let ev = self.events(feature);
        if window.counts.len() != distinct.len() {
            *window = SlidingDistinct::new(distinct.len());
        }
        for t in times {
            let Some((mut values, span)) = self.evaluate_span(feature, t, as_of, true)? else {
                emit(None)?;
                continue;
            };
            window.slide(&ev, &distinct, span);
            for (i, j) in distinct.iter().enumerate() {
                values[*j] = distinct_of(feature.def.values[*j].kind, window.counts[i].keys());
            }
            emit(Some(values))?;
        }
        Ok(())
    }

    /// The values at `t` and the window's event range; distinct counts are left NULL when
    /// `skip_distinct` (the caller computes them). None where the key has no qualifying
    /// event at or before `t`, or (with a staleness bound) none recent enough: the events
    /// back to `t - max_age` must be held (see [`AsOf::reach`]).
    pub(super) fn evaluate_span(
        &self,
        feature: &CompiledFeature,
        t: i64,
        as_of: AsOf,
        skip_distinct: bool,
    ) -> Result<Option<Evaluated>> {
        let strict = as_of.strict;
        let ev = self.events(feature);
        let end = ev.after(upper_bound(t, strict));
        if end == 0 && self.first().is_none_or(|first| first > upper_bound(t, strict)) {
            return Ok(None);
        }
        if let Some(age) = as_of.max_age
            && (end == 0 || t.saturating_sub(ev.time(end - 1)) > age)
        {
            return Ok(None);
        }
        let window = match feature.def.window {
            Window::Session { gap } => session_span(end, |i| ev.time(i), gap, t, strict),
            ref other => span(other, t, strict),
        };
        let at = evaluation_time(&feature.def.window, t, strict);
        let (a, b) = if window.from > window.to { (0, 0) } else { (ev.from(window.from), ev.after(window.to)) };
        let accs = match &self.body().tiles {
            // Distinct counts only, computed by the caller: nothing to fold.
            _ if skip_distinct && is_distinct_only(feature) => window_accs(feature, true, at),
            Some(tiles) if b > a => {
                // Tiles wholly inside [from, to] are merged; the edges are folded event by event.
                let (k0, k1) = tiles.inside(feature.tile, window.from, window.to);
                if k0 < k1 {
                    let (inner_begin, inner_end) = (tiles.begin(k0), tiles.ends[k1 - 1] as usize);
                    let mut accs = window_accs(feature, skip_distinct, at);
                    fold_into(feature, &ev, &mut accs, a, inner_begin, 0);
                    let n = accs.len();
                    for k in k0..k1 {
                        for (j, acc) in accs.iter_mut().enumerate() {
                            let v = &feature.def.values[j];
                            acc.merge(v.kind, feature.reprs[j], &ev, j, &tiles.partials[k * n + j], tiles.begin(k));
                        }
                    }
                    fold_into(feature, &ev, &mut accs, inner_end, b, 0);
                    accs
                } else {
                    let mut accs = window_accs(feature, skip_distinct, at);
                    fold_into(feature, &ev, &mut accs, a, b, 0);
                    accs
                }
            }
            _ => {
                let mut accs = window_accs(feature, skip_distinct, at);
                fold_into(feature, &ev, &mut accs, a, b, 0);
                accs
            }
        };
        let mut values = finish_all(feature, &accs, &ev)?;
        if feature.ingest.is_some() {
            // The greatest ingest time of the window's events (docs/asof.md); a read of the
            // feature as a table shows the key's over all its events instead (`engine`).
            values.push(ScalarValue::Int64(self.window_ingest(feature, &ev, window, (a, b))));
        }
        Ok(Some((values, (a, b))))
    }

    /// The greatest ingest time of the window's events `a..b`: whole tiles give theirs, only
    /// the edges' events are read.
    pub(super) fn window_ingest(
        &self,
        feature: &CompiledFeature,
        ev: &Events,
        window: Span,
        (a, b): (usize, usize),
    ) -> Option<i64> {
        let n = feature.def.values.len();
        let scan = |from: usize, to: usize| (from..to).map(|i| ev.word(i, n) as i64).max();
        if let Some(tiles) = self.body().tiles.as_deref().filter(|_| b > a) {
            let (k0, k1) = tiles.inside(feature.tile, window.from, window.to);
            if k0 < k1 {
                let inner = tiles.max_ingest[k0..k1].iter().max().copied();
                return inner.max(scan(a, tiles.begin(k0))).max(scan(tiles.ends[k1 - 1] as usize, b));
            }
        }
        scan(a, b)
    }

    /// Keeps a sliding window of this key's sweep in step with the eviction of its first `r`
    /// events (call before they go).
    /// `distinct` is [`distinct_aggregates`] of the feature.
    pub fn retire_window(&self, feature: &CompiledFeature, distinct: &[usize], window: &mut SlidingDistinct, r: usize) {
        window.retire(&self.events(feature), distinct, r);
    }
}

/// The indexes of the feature's distinct-count aggregates.
pub fn distinct_aggregates(feature: &CompiledFeature) -> Vec<usize> {
    (0..feature.def.values.len())
        .filter(|j| matches!(feature.def.values[*j].kind, AggKind::CountDistinct | AggKind::ApproxDistinct))
        .collect()
}

/// Whether every aggregate of the feature is a distinct count (checked after every write, so
/// without allocating).
pub(super) fn is_distinct_only(feature: &CompiledFeature) -> bool {
    feature.def.values.iter().all(|v| matches!(v.kind, AggKind::CountDistinct | AggKind::ApproxDistinct))
}

/// Each aggregate's result from its accumulator.
pub(super) fn finish_all(feature: &CompiledFeature, accs: &[Acc], ev: &Events) -> Result<Vec<ScalarValue>> {
    accs.iter()
        .enumerate()
        .map(|(j, acc)| {
            let v = &feature.def.values[j];
            acc.finish(v.kind, feature.reprs[j], ev, j, &feature.result_types[j], &feature.arg_types[j])
        })
        .collect()
}

/// A window's values and its event range.
pub(super) type Evaluated = (Vec<ScalarValue>, (usize, usize));

/// Empty window accumulators, with distinct counts skipped if `skip_distinct`.
pub(super) fn window_accs(feature: &CompiledFeature, skip_distinct: bool, at: i64) -> Vec<Acc> {
    feature
        .def
        .values
        .iter()
        .zip(&feature.reprs)
        .map(|(v, r)| match v.kind {
            AggKind::CountDistinct | AggKind::ApproxDistinct if skip_distinct => Acc::Skip,
            kind => Acc::new(kind, *r, false, at),
        })
        .collect()
}
