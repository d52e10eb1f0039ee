//! "Known at" evaluation (spec section 3): a key's value at T over only the events whose
//! ingest time is at or before K, the value the online system could have served at K.
//!
//! Tiles fold every event, known at K or not, so this path folds the window's events one by
//! one, skipping the ones not yet known: exact for any mix of late and on-time events, at the
//! cost of a rescan of the window per left row. It reads back from T to the latest known event
//! to decide the match (an event at or before T known at K), so the caller gives it the key's
//! whole history (`AsOf::reach`).

use datafusion::scalar::ScalarValue;

use super::evaluate::{finish_all, window_accs};
use super::history::KeyHistory;
use crate::error::Result;
use crate::feature::accumulate::Events;
use crate::feature::def::CompiledFeature;
use crate::feature::window::{AsOf, Span, Window, evaluation_time, span, upper_bound};

impl KeyHistory {
    /// The feature's values at `t` over the events known at `known` (ingest time at or before
    /// it), followed by the greatest ingest time of the window's known events; None when no event at or before `t`
    /// (before `t` if strict) was known then, or (with a staleness bound) none recent enough.
    pub fn evaluate_known(
        &self,
        feature: &CompiledFeature,
        t: i64,
        as_of: AsOf,
        known: i64,
    ) -> Result<Option<Vec<ScalarValue>>> {
        let ev = self.events(feature);
        let n = feature.def.values.len();
        let ingest = |i: usize| ev.word(i, n) as i64;
        let end = ev.after(upper_bound(t, as_of.strict));
        let Some(latest) = (0..end).rev().find(|i| ingest(*i) <= known) else { return Ok(None) };
        if as_of.max_age.is_some_and(|age| t.saturating_sub(ev.time(latest)) > age) {
            return Ok(None);
        }
        let window = match feature.def.window {
            Window::Session { gap } => known_session(&ev, latest, gap, t, |i| ingest(i) <= known),
            ref other => span(other, t, as_of.strict),
        };
        let mut accs = window_accs(feature, false, evaluation_time(&feature.def.window, t, as_of.strict));
        let mut greatest = None;
        if window.from <= window.to {
            for i in (ev.from(window.from)..ev.after(window.to)).filter(|i| ingest(*i) <= known) {
                for (j, acc) in accs.iter_mut().enumerate() {
                    acc.add(feature.def.values[j].kind, feature.reprs[j], &ev, i, j, 0);
                }
                greatest = greatest.max(Some(ingest(i)));
            }
        }
        let mut values = finish_all(feature, &accs, &ev)?;
        values.push(ScalarValue::Int64(greatest));
        Ok(Some(values))
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
