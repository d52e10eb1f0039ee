//! Window arithmetic: which of a key's events a feature aggregates when evaluated at time T.
//!
//! ```text
//!  kind       inclusive (s.t >= f.ts)            strict (s.t > f.ts)
//!  SLIDING w  T - w <  e <= T                     T - w <= e <  T
//!  HOPPING    SLIDING at b = latest k*h <= T      SLIDING strict at b = latest k*h < T
//!  TUMBLING w floor(T, w) <= e <= T               floor(T, w) <= e < T
//!  SESSION g  run ending at L = last e <= T,      same with L = last e < T
//!             consecutive gaps < g, if T - L < g
//!  LIFETIME   e <= T                              e < T
//! ```
//! Buckets and hops are aligned to the Unix epoch (UTC). All times are µs since the epoch.

use serde::{Deserialize, Serialize};

use crate::sql::feature::WindowClause;

/// The window of a feature; widths are in microseconds. See spec section 2, and [`span`]
/// for the exact boundaries. Stored with the feature's definition (serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// `T - width < e <= T`.
    Sliding { width: i64 },
    /// The sliding value at the latest multiple of `every` at or before T.
    Hopping { width: i64, every: i64 },
    /// `floor(T, width) <= e <= T`.
    Tumbling { width: i64 },
    /// The current session: events less than `gap` apart, ending within `gap` of T.
    Session { gap: i64 },
    /// `e <= T`.
    Lifetime,
}

impl From<WindowClause> for Window {
    fn from(clause: WindowClause) -> Self {
        match clause {
            WindowClause::Sliding { width } => Window::Sliding { width },
            WindowClause::Hopping { width, every } => Window::Hopping { width, every },
            WindowClause::Tumbling { width } => Window::Tumbling { width },
            WindowClause::Session { gap } => Window::Session { gap },
            WindowClause::Lifetime => Window::Lifetime,
        }
    }
}

/// How an ASOF join asks for a feature's value at T: whether events at exactly T count
/// (`>=`) or not (`>`, strict), and the staleness bound: the most µs the key's latest
/// qualifying event (at or before T, before T if strict) may lie before T for a match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsOf {
    pub strict: bool,
    pub max_age: Option<i64>,
    /// Each left row also gives a time K: only events whose ingest time is at or before K
    /// count ("known at", `state::known_at`).
    pub known_at: bool,
}

impl AsOf {
    pub fn at(strict: bool) -> Self {
        AsOf { strict, max_age: None, known_at: false }
    }

    /// The events a value at `t` rests on: the window's, back to `t - max_age` where the
    /// staleness bound reaches further (the latest event before the window decides a match).
    /// A known-at evaluation also needs to know whether an earlier event was known at K: the
    /// state keeps the least ingest time of the events it dropped (`state::known_at`).
    pub fn reach(&self, window: &Window, t: i64) -> Span {
        let span = span(window, t, self.strict);
        match self.max_age {
            Some(age) => Span { from: span.from.min(t.saturating_sub(age)), to: span.to },
            None => span,
        }
    }
}

/// An interval of event times `[from, to]`, both inclusive (µs). `from > to` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

impl Span {
    pub const EMPTY: Span = Span { from: 1, to: 0 };
}

/// The last event time counted at T: `T`, or `T - 1µs` for the strict variant.
pub fn upper_bound(t: i64, strict: bool) -> i64 {
    if strict { t.saturating_sub(1) } else { t }
}

/// The span of a non-session window evaluated at `t`. Session windows depend on the events
/// themselves: see [`session_span`].
pub fn span(window: &Window, t: i64, strict: bool) -> Span {
    match *window {
        Window::Sliding { width } => sliding(width, t, strict),
        Window::Hopping { width, .. } => sliding(width, evaluation_time(window, t, strict), strict),
        Window::Tumbling { width } => Span { from: floor(t, width), to: upper_bound(t, strict) },
        Window::Lifetime | Window::Session { .. } => Span { from: i64::MIN, to: upper_bound(t, strict) },
    }
}

/// The time T a window is evaluated at for decayed aggregates: T itself, or the hop `b` of a
/// hopping window (the latest multiple of `every` at or before T; before T if `strict`).
pub fn evaluation_time(window: &Window, t: i64, strict: bool) -> i64 {
    match *window {
        Window::Hopping { every, .. } => floor(if strict { t.saturating_sub(1) } else { t }, every),
        _ => t,
    }
}

fn sliding(width: i64, t: i64, strict: bool) -> Span {
    if strict {
        Span { from: t.saturating_sub(width), to: t.saturating_sub(1) }
    } else {
        Span { from: t.saturating_sub(width).saturating_add(1), to: t }
    }
}

/// The latest multiple of `width` at or before `t` (epoch-aligned).
pub fn floor(t: i64, width: i64) -> i64 {
    t.div_euclid(width).saturating_mul(width)
}

/// The current session at `t` over a key's first `len` events (`time(i)` ascending): the span
/// of the longest run ending at the last event `L <= upper` whose consecutive events are less
/// than `gap` apart, provided `t - L < gap`; otherwise empty.
pub fn session_span(len: usize, time: impl Fn(usize) -> i64, gap: i64, t: i64, strict: bool) -> Span {
    let upper = upper_bound(t, strict);
    let end = (0..len).rev().find(|i| time(*i) <= upper).map_or(0, |i| i + 1);
    if end == 0 {
        return Span::EMPTY;
    }
    let last = time(end - 1);
    if t.saturating_sub(last) >= gap {
        return Span::EMPTY;
    }
    let mut start = end - 1;
    while start > 0 && time(start).saturating_sub(time(start - 1)) < gap {
        start -= 1;
    }
    Span { from: time(start), to: last }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    #[test]
    fn sliding_bounds_match_the_spec() {
        let w = Window::Sliding { width: H };
        assert_eq!(span(&w, 10 * H, false), Span { from: 9 * H + 1, to: 10 * H });
        assert_eq!(span(&w, 10 * H, true), Span { from: 9 * H, to: 10 * H - 1 });
    }

    #[test]
    fn hopping_uses_the_latest_boundary() {
        let w = Window::Hopping { width: H, every: H / 2 };
        // 10:10 -> b = 10:00; 09:59 -> b = 09:30 (spec example).
        assert_eq!(span(&w, 10 * H + H / 6, false), span(&Window::Sliding { width: H }, 10 * H, false));
        assert_eq!(span(&w, 10 * H - H / 60, false), span(&Window::Sliding { width: H }, 9 * H + H / 2, false));
        // Strict at an exact boundary steps back one hop.
        assert_eq!(span(&w, 10 * H, true), span(&Window::Sliding { width: H }, 9 * H + H / 2, true));
    }

    #[test]
    fn tumbling_and_session() {
        let day = 24 * H;
        assert_eq!(span(&Window::Tumbling { width: day }, day + 5, false), Span { from: day, to: day + 5 });
        let m = 60_000_000;
        let times = [9 * 60 * m, 9 * 60 * m + 30 * m, 10 * 60 * m, 10 * 60 * m];
        // gap 20 minutes: at 10:05 the current session is {10:00, 10:00}; at 10:25 it has closed.
        assert_eq!(
            session_span(times.len(), |i| times[i], 20 * m, 10 * 60 * m + 5 * m, false),
            Span { from: 600 * m, to: 600 * m }
        );
        assert_eq!(session_span(times.len(), |i| times[i], 20 * m, 10 * 60 * m + 25 * m, false), Span::EMPTY);
        assert_eq!(
            session_span(times.len(), |i| times[i], 20 * m, 9 * 60 * m + 10 * m, false),
            Span { from: 540 * m, to: 540 * m }
        );
        assert_eq!(session_span(times.len(), |i| times[i], 20 * m, 9 * 60 * m, true), Span::EMPTY);
    }
}
