//! Per-key state of one feature, and evaluation at a time T: the one evaluation core behind
//! online reads, backfill and ASOF JOIN.
//!
//! A key keeps its qualifying events (those passing the feature's WHERE) sorted by (event
//! time, arrival), as flat words (`encoding`). Once a key has `tile_min_events` events it also
//! keeps **tiles**: per epoch-aligned interval of `tile` µs, each aggregate's partial over the
//! tile's events (`accumulate::Acc`). Evaluating a window merges the partials of the tiles
//! wholly inside it and folds only the events of the two edge tiles one by one, so a read costs
//! O(tiles in the window + events in two tiles), not O(events in the window), and stays exact
//! at the edges. A write (in order or however late) updates its own tile only: appended to a
//! tile's end it is folded into the partial; inserted inside a tile it recomputes that tile.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::row::{RowConverter, SortField};
use datafusion::scalar::ScalarValue;

use super::accumulate::{Acc, Events, HEADER, distinct as distinct_of, partition};
use super::aggregate::AggKind;
use super::def::CompiledFeature;
use super::encoding::VALUE;
use super::encoding::{Encoded, encode};
use super::window::{Span, floor, session_span, span, upper_bound};
use crate::error::{Error, Result};
use crate::sql::feature::Window;
use crate::storage::blocks::event_times;

#[derive(Debug, Default)]
struct Tiles {
    /// Start time of each non-empty tile, ascending.
    starts: Vec<i64>,
    /// One past the index of each tile's last event.
    ends: Vec<u32>,
    /// `aggregates` partials per tile, tile-major.
    partials: Vec<Acc>,
}

impl Tiles {
    fn begin(&self, k: usize) -> usize {
        if k == 0 { 0 } else { self.ends[k - 1] as usize }
    }
}

/// One key's events. Kept small (16 bytes): a feature holds one per key ever seen, and most
/// keys of a short window hold no events, only their first time (no [`Body`] then).
#[derive(Debug)]
pub struct KeyHistory {
    body: Option<Box<Body>>,
    /// The earliest qualifying event time ever seen for the key ([`NO_FIRST`]: none), kept when
    /// that event itself has been evicted: a key matches at T if it has any event at or before
    /// T, in memory or not.
    first: i64,
}

const _: () = assert!(size_of::<KeyHistory>() == 16, "one per key: keep it small");

/// `KeyHistory::first` of a key with no qualifying event (greater than every time, so
/// `min` keeps the earliest).
const NO_FIRST: i64 = i64::MAX;

impl Default for KeyHistory {
    fn default() -> Self {
        Self { body: None, first: NO_FIRST }
    }
}

/// The events a key holds (one word per event field, in time then arrival order), the
/// non-numeric values they refer to, and the tiles of their partial aggregates.
#[derive(Debug, Default)]
struct Body {
    words: Vec<u64>,
    others: Others,
    tiles: Option<Box<Tiles>>,
}

/// The body of every key that holds no events.
static NO_EVENTS: Body = Body { words: Vec::new(), others: Others(None), tiles: None };

/// The values of order-sensitive aggregates of non-numeric types, which few features have:
/// boxed, so a key without any costs one pointer.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // the box is the point: 8 bytes per key instead of 24
struct Others(Option<Box<Vec<ScalarValue>>>);

impl Others {
    fn as_slice(&self) -> &[ScalarValue] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }

    fn push(&mut self, value: ScalarValue) -> u64 {
        let values = self.0.get_or_insert_with(Box::default);
        values.push(value);
        (values.len() - 1) as u64
    }

    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.capacity())
    }

    fn shrink_to_fit(&mut self) {
        match &mut self.0 {
            Some(values) if values.is_empty() => self.0 = None,
            Some(values) => values.shrink_to_fit(),
            None => {}
        }
    }
}

impl Body {
    fn events<'a>(&'a self, feature: &CompiledFeature) -> Events<'a> {
        Events { words: &self.words, stride: feature.stride(), others: self.others.as_slice() }
    }

    /// Number of events kept.
    pub fn len(&self, feature: &CompiledFeature) -> usize {
        self.words.len() / feature.stride()
    }

    /// Inserts one event (time, arrival seq, flags, one word per aggregate) in its place.
    pub fn insert(&mut self, feature: &CompiledFeature, event: &[u64]) {
        let stride = feature.stride();
        let (t, seq) = (event[0] as i64, event[1]);
        let ev = self.events(feature);
        let mut p = ev.len();
        while p > 0 && (ev.time(p - 1), ev.seq(p - 1)) > (t, seq) {
            p -= 1;
        }
        self.words.splice(p * stride..p * stride, event.iter().copied());
        self.update_tiles(feature, p, t);
    }

    /// Drops the first `r` events (all older than every window still to be evaluated).
    /// Tiles wholly within the prefix go and the rest shift down; only the first kept tile,
    /// which the cut may pass through, is refolded (rebuilding every tile on each eviction
    /// took more time than the rest of an ASOF sweep over stored events).
    fn drop_prefix(&mut self, feature: &CompiledFeature, r: usize) {
        self.words.drain(..r * feature.stride());
        let Some(tiles) = &mut self.tiles else {
            self.compacted(feature);
            return;
        };
        let n = feature.def.values.len();
        let gone = partition(tiles.ends.len(), |k| tiles.ends[k] as usize <= r);
        tiles.starts.drain(..gone);
        tiles.ends.drain(..gone);
        tiles.partials.drain(..gone * n);
        tiles.ends.iter_mut().for_each(|e| *e -= r as u32);
        self.compact_others(feature);
        if self.len(feature) < feature.tile_min_events.max(1) {
            self.tiles = None;
        } else if let Some(tiles) = &mut self.tiles {
            let ev = Events { words: &self.words, stride: feature.stride(), others: self.others.as_slice() };
            let end = tiles.ends[0] as usize;
            tiles.partials[..n].clone_from_slice(&fold_tile(feature, &ev, 0, end));
        }
        self.release_spare();
    }

    /// For a feature of distinct counts only, evaluated from now on at times at or after its
    /// latest event: drops every event whose values all occur again later. Whenever such an
    /// event is in a window ending at or after the later ones, they are in it too, so no count
    /// changes; a key then keeps one event per distinct value instead of one per occurrence.
    fn keep_latest_distinct(&mut self, feature: &CompiledFeature) {
        let stride = feature.stride();
        let n = self.words.len() / stride;
        let aggregates = feature.def.values.len();
        let mut seen: Vec<std::collections::HashSet<u64, ahash::RandomState>> =
            (0..aggregates).map(|_| Default::default()).collect();
        let mut keep = vec![false; n];
        for i in (0..n).rev() {
            let event = &self.words[i * stride..(i + 1) * stride];
            for (j, set) in seen.iter_mut().enumerate() {
                if (event[2] >> (2 * j)) & 3 == VALUE && set.insert(event[HEADER + j]) {
                    keep[i] = true;
                }
            }
        }
        if keep.contains(&false) {
            let mut i = 0;
            self.words.retain(|_| {
                let kept = keep[i / stride];
                i += 1;
                kept
            });
            self.compacted(feature);
        }
    }

    /// Restores the invariants after events were removed: `others` holds only referenced
    /// values, tiles are rebuilt, spare capacity is returned.
    fn compacted(&mut self, feature: &CompiledFeature) {
        self.compact_others(feature);
        let ev = self.events(feature);
        let tiles = worth_tiling(feature, &ev).then(|| Box::new(build_tiles(feature, &ev)));
        self.tiles = tiles;
        self.release_spare();
    }

    /// Keeps only the `others` values still referenced, renumbering the words that index them.
    fn compact_others(&mut self, feature: &CompiledFeature) {
        if self.others.as_slice().is_empty() {
            return;
        }
        let mut kept = Others::default();
        for event in self.words.chunks_exact_mut(feature.stride()) {
            for (j, repr) in feature.reprs.iter().enumerate() {
                if *repr == super::encoding::Repr::Other && (event[2] >> (2 * j)) & 3 == VALUE {
                    event[HEADER + j] = kept.push(self.others.as_slice()[event[HEADER + j] as usize].clone());
                }
            }
        }
        self.others = kept;
    }

    fn release_spare(&mut self) {
        if self.words.is_empty() {
            // Most keys of a short window end up here: they keep only their first time.
            self.words = Vec::new();
            self.others = Others::default();
            self.tiles = None;
        } else if self.words.capacity() > 2 * self.words.len() + 64 {
            self.words.shrink_to_fit();
        }
    }

    /// Stores a value of an order-sensitive aggregate of a non-numeric type; returns its word.
    fn keep(&mut self, value: ScalarValue) -> u64 {
        self.others.push(value)
    }

    fn update_tiles(&mut self, feature: &CompiledFeature, p: usize, t: i64) {
        let Body { words, others, tiles } = self;
        let ev = Events { words, stride: feature.stride(), others: others.as_slice() };
        let Some(tiles) = tiles else {
            if worth_tiling(feature, &ev) {
                *tiles = Some(Box::new(build_tiles(feature, &ev)));
            }
            return;
        };
        let n = feature.def.values.len();
        let start = floor(t, feature.tile);
        let k = partition(tiles.starts.len(), |k| tiles.starts[k] < start);
        if tiles.starts.get(k) == Some(&start) {
            tiles.ends[k..].iter_mut().for_each(|e| *e += 1);
            let (begin, end) = (tiles.begin(k), tiles.ends[k] as usize);
            let partials = &mut tiles.partials[k * n..(k + 1) * n];
            if p + 1 == end {
                for (j, acc) in partials.iter_mut().enumerate() {
                    acc.add(feature.def.values[j].kind, feature.reprs[j], &ev, p, j, begin);
                }
            } else {
                // A late event inside the tile: most partials take it in place; refolding the
                // whole tile for each would make late rows of busy keys quadratic.
                let mut in_place = true;
                for (j, acc) in partials.iter_mut().enumerate() {
                    in_place &= acc.insert(feature.def.values[j].kind, feature.reprs[j], &ev, p, j, begin);
                }
                if !in_place {
                    partials.clone_from_slice(&fold_tile(feature, &ev, begin, end));
                }
            }
        } else {
            tiles.starts.insert(k, start);
            tiles.ends.insert(k, p as u32 + 1);
            tiles.ends[k + 1..].iter_mut().for_each(|e| *e += 1);
            tiles.partials.splice(k * n..k * n, fold_tile(feature, &ev, p, p + 1));
        }
    }
}

impl KeyHistory {
    fn body(&self) -> &Body {
        self.body.as_deref().unwrap_or(&NO_EVENTS)
    }

    fn body_mut(&mut self) -> &mut Body {
        self.body.get_or_insert_with(Box::default)
    }

    /// Frees the body of a key left without events.
    fn release_if_empty(&mut self) {
        if self.body.as_ref().is_some_and(|b| b.words.is_empty()) {
            self.body = None;
        }
    }

    fn events<'a>(&'a self, feature: &CompiledFeature) -> Events<'a> {
        self.body().events(feature)
    }

    /// Number of events kept.
    pub fn len(&self, feature: &CompiledFeature) -> usize {
        self.body().len(feature)
    }

    /// Inserts one event (time, arrival seq, flags, one word per aggregate) in its place.
    pub fn insert(&mut self, feature: &CompiledFeature, event: &[u64]) {
        self.body_mut().insert(feature, event);
    }

    /// Drops the first `r` events (see [`Body::drop_prefix`]).
    fn drop_prefix(&mut self, feature: &CompiledFeature, r: usize) {
        if let Some(body) = &mut self.body {
            body.drop_prefix(feature, r);
        }
        self.release_if_empty();
    }

    /// See [`Body::keep_latest_distinct`].
    fn keep_latest_distinct(&mut self, feature: &CompiledFeature) {
        if let Some(body) = &mut self.body {
            body.keep_latest_distinct(feature);
        }
        self.release_if_empty();
    }

    /// Stores a value of an order-sensitive aggregate of a non-numeric type; returns its word.
    fn keep(&mut self, value: ScalarValue) -> u64 {
        self.body_mut().keep(value)
    }

    /// The feature's values at `t`, or `None` when the key has no qualifying event at or
    /// before `t` (before `t` if `strict`).
    pub fn evaluate(&self, feature: &CompiledFeature, t: i64, strict: bool) -> Result<Option<Vec<ScalarValue>>> {
        Ok(self.evaluate_span(feature, t, strict, false)?.map(|(values, _)| values))
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
        strict: bool,
        window: &mut SlidingDistinct,
        emit: &mut dyn FnMut(Option<Vec<ScalarValue>>) -> Result<()>,
    ) -> Result<()> {
        let distinct = distinct_aggregates(feature);
        if distinct.is_empty() || matches!(feature.def.window, Window::Session { .. }) {
            for t in times {
                emit(self.evaluate(feature, t, strict)?)?;
            }
            return Ok(());
        }
        let ev = self.events(feature);
        if window.counts.len() != distinct.len() {
            *window = SlidingDistinct::new(distinct.len());
        }
        for t in times {
            let Some((mut values, span)) = self.evaluate_span(feature, t, strict, true)? else {
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
    /// `skip_distinct` (the caller computes them).
    fn evaluate_span(
        &self,
        feature: &CompiledFeature,
        t: i64,
        strict: bool,
        skip_distinct: bool,
    ) -> Result<Option<Evaluated>> {
        let ev = self.events(feature);
        let end = ev.after(upper_bound(t, strict));
        if end == 0 && self.first().is_none_or(|first| first > upper_bound(t, strict)) {
            return Ok(None);
        }
        let window = match feature.def.window {
            Window::Session { gap } => session_span(end, |i| ev.time(i), gap, t, strict),
            ref other => span(other, t, strict),
        };
        let (a, b) = if window.from > window.to { (0, 0) } else { (ev.from(window.from), ev.after(window.to)) };
        let accs = match &self.body().tiles {
            // Distinct counts only, computed by the caller: nothing to fold.
            _ if skip_distinct && is_distinct_only(feature) => window_accs(feature, true),
            Some(tiles) if b > a => {
                // Tiles wholly inside [from, to] are merged; the edges are folded event by event.
                let size = feature.tile;
                let k0 = partition(tiles.starts.len(), |k| tiles.starts[k] < window.from);
                let k1 = partition(tiles.starts.len(), |k| tiles.starts[k].saturating_add(size - 1) <= window.to);
                if k0 < k1 {
                    let (inner_begin, inner_end) = (tiles.begin(k0), tiles.ends[k1 - 1] as usize);
                    let mut accs = window_accs(feature, skip_distinct);
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
                    let mut accs = window_accs(feature, skip_distinct);
                    fold_into(feature, &ev, &mut accs, a, b, 0);
                    accs
                }
            }
            _ => {
                let mut accs = window_accs(feature, skip_distinct);
                fold_into(feature, &ev, &mut accs, a, b, 0);
                accs
            }
        };
        let values = accs
            .iter()
            .enumerate()
            .map(|(j, acc)| {
                let v = &feature.def.values[j];
                acc.finish(v.kind, feature.reprs[j], &ev, j, &feature.result_types[j], &feature.arg_types[j])
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((values, (a, b))))
    }

    /// The events as stored, for snapshots: `(words, others)`.
    pub fn raw(&self) -> (&[u64], &[ScalarValue]) {
        (&self.body().words, self.body().others.as_slice())
    }

    /// The earliest qualifying event time ever seen, if it is no longer held as an event.
    pub fn evicted_first(&self, feature: &CompiledFeature) -> Option<i64> {
        let ev = self.events(feature);
        self.first().filter(|first| ev.is_empty() || *first < ev.time(0))
    }

    /// The earliest qualifying event time ever seen.
    pub fn first(&self) -> Option<i64> {
        (self.first != NO_FIRST).then_some(self.first)
    }

    /// Keeps a sliding window of this key's sweep in step with the eviction of its first `r`
    /// events (call before they go).
    /// `distinct` is [`distinct_aggregates`] of the feature.
    pub fn retire_window(&self, feature: &CompiledFeature, distinct: &[usize], window: &mut SlidingDistinct, r: usize) {
        window.retire(&self.events(feature), distinct, r);
    }

    /// Approximate heap bytes held (for `asofdb.features` and the memory figures).
    pub fn heap_bytes(&self) -> usize {
        let Some(body) = &self.body else { return 0 };
        let tiles = body
            .tiles
            .as_ref()
            .map_or(0, |t| t.starts.capacity() * 8 + t.ends.capacity() * 4 + t.partials.capacity() * size_of::<Acc>());
        size_of::<Body>() + body.words.capacity() * 8 + body.others.capacity() * size_of::<ScalarValue>() + tiles
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
fn is_distinct_only(feature: &CompiledFeature) -> bool {
    feature.def.values.iter().all(|v| matches!(v.kind, AggKind::CountDistinct | AggKind::ApproxDistinct))
}

/// A window's values and its event range.
type Evaluated = (Vec<ScalarValue>, (usize, usize));

/// Empty window accumulators, with distinct counts skipped if `skip_distinct`.
fn window_accs(feature: &CompiledFeature, skip_distinct: bool) -> Vec<Acc> {
    feature
        .def
        .values
        .iter()
        .zip(&feature.reprs)
        .map(|(v, r)| match v.kind {
            AggKind::CountDistinct | AggKind::ApproxDistinct if skip_distinct => Acc::Skip,
            kind => Acc::new(kind, *r, false),
        })
        .collect()
}

/// The distinct words of a window that only moves forward, with their multiplicities.
#[derive(Debug, Default)]
pub struct SlidingDistinct {
    /// Events `lo..hi` are in `counts`.
    lo: usize,
    hi: usize,
    counts: Vec<HashMap<u64, u32, ahash::RandomState>>,
}

impl SlidingDistinct {
    fn new(aggregates: usize) -> Self {
        SlidingDistinct { lo: 0, hi: 0, counts: (0..aggregates).map(|_| HashMap::default()).collect() }
    }

    /// Moves the window to events `a..b` (`distinct` are the aggregates' indexes).
    /// Words held, over all aggregates (for bounding caches of windows).
    pub fn size(&self) -> usize {
        self.counts.iter().map(|c| c.len()).sum()
    }

    /// Follows the eviction of the first `r` events of the key (which later windows never
    /// reach): they leave the window, and positions shift down by `r`.
    fn retire(&mut self, ev: &Events, distinct: &[usize], r: usize) {
        if self.hi <= r {
            self.counts.iter_mut().for_each(|c| c.clear());
            (self.lo, self.hi) = (0, 0);
            return;
        }
        if self.lo < r {
            self.slide(ev, distinct, (r, self.hi));
        }
        (self.lo, self.hi) = (self.lo - r, self.hi - r);
    }

    fn slide(&mut self, ev: &Events, distinct: &[usize], (a, b): (usize, usize)) {
        if a < self.lo || b < self.hi || a > self.hi {
            // Not a forward move of an overlapping window: start over.
            self.counts.iter_mut().for_each(|c| c.clear());
            (self.lo, self.hi) = (a, a);
        }
        for i in self.hi..b {
            for (c, j) in self.counts.iter_mut().zip(distinct) {
                if ev.flag(i, *j) == VALUE {
                    *c.entry(ev.word(i, *j)).or_insert(0) += 1;
                }
            }
        }
        for i in self.lo..a {
            for (c, j) in self.counts.iter_mut().zip(distinct) {
                if ev.flag(i, *j) == VALUE {
                    let word = ev.word(i, *j);
                    if let Some(n) = c.get_mut(&word) {
                        *n -= 1;
                        if *n == 0 {
                            c.remove(&word);
                        }
                    }
                }
            }
        }
        (self.lo, self.hi) = (a, b);
    }
}

/// A tile's partials over events `from..to` (picks relative to `from`).
/// A tile's distinct words are gathered, then sorted once (inserting each in order was
/// quadratic in the tile's distinct values).
fn fold_tile(feature: &CompiledFeature, ev: &Events, from: usize, to: usize) -> Vec<Acc> {
    let aggregates = feature.def.values.iter().zip(&feature.reprs).enumerate();
    aggregates
        .map(|(j, (v, repr))| {
            let mut acc = Acc::new(v.kind, *repr, true);
            if let Acc::Distinct(words) = &mut acc {
                words.extend((from..to).filter(|i| ev.flag(*i, j) == VALUE).map(|i| ev.word(i, j)));
                words.sort_unstable();
                words.dedup();
            } else {
                (from..to).for_each(|i| acc.add(v.kind, *repr, ev, i, j, from));
            }
            acc
        })
        .collect()
}

fn fold_into(feature: &CompiledFeature, ev: &Events, accs: &mut [Acc], from: usize, to: usize, offset: usize) {
    for i in from..to {
        for (j, acc) in accs.iter_mut().enumerate() {
            acc.add(feature.def.values[j].kind, feature.reprs[j], ev, i, j, offset);
        }
    }
}

/// Tiles pay off only for a key whose latest window holds many events; for the sparse
/// majority of keys they would cost ~50 bytes per event and save nothing.
fn worth_tiling(feature: &CompiledFeature, ev: &Events) -> bool {
    if ev.is_empty() || ev.len() < feature.tile_min_events {
        return false;
    }
    let window = span(&feature.def.window, ev.time(ev.len() - 1), false);
    ev.len() - ev.from(window.from) >= feature.tile_min_events
}

fn build_tiles(feature: &CompiledFeature, ev: &Events) -> Tiles {
    let mut tiles = Tiles::default();
    let mut i = 0;
    while i < ev.len() {
        let start = floor(ev.time(i), feature.tile);
        let end = ev.after(start.saturating_add(feature.tile - 1));
        tiles.starts.push(start);
        tiles.ends.push(end as u32);
        tiles.partials.extend(fold_tile(feature, ev, i, end));
        i = end;
    }
    tiles
}

/// The arrival number of a snapshot row that only records a key's earliest (evicted) event time.
pub const FIRST_ONLY: u64 = u64::MAX;

/// All keys of one feature.
pub struct FeatureState {
    converter: RowConverter,
    /// aHash: the keys are short byte strings and this map is on every write's path.
    keys: HashMap<Box<[u8]>, KeyHistory, ahash::RandomState>,
    /// Bumped by every change: positions of events (and addresses of histories) seen at one
    /// version are valid until the next (sweeps cache per-key windows by it).
    version: u64,
    /// Events older than this are not kept (they are outside every window evaluated at the
    /// latest event time or later); `i64::MIN` until the first eviction.
    horizon: i64,
    /// The greatest event time ingested (of any row, qualifying or not).
    max_time: i64,
    /// Whether ingesting moves the horizon along with `max_time` (the live state); a sweep's
    /// scratch state moves it itself.
    auto_evict: bool,
    /// Evaluations whose window ends at or after this time are exact (a hopping window ends at
    /// its last hop, before T); earlier windows may miss events dropped as repeats
    /// (`KeyHistory::keep_latest_distinct`). `i64::MIN` until the first drop.
    exact_from: i64,
}

/// The horizon moves in steps of at least this much (µs), so that each eviction pass over
/// every key drops a good share of the events: four hours, or a quarter of the window if
/// longer. (A day held up to a day of events for a one-hour window: 1.5M events at 100M.)
const MIN_EVICTION_STEP: i64 = 4 * 3_600_000_000;

/// A feature of distinct counts only also drops repeated values on eviction, a costlier pass
/// (a hash set per key): at most once per day of event time.
const DISTINCT_EVICTION_STEP: i64 = 86_400_000_000;

impl FeatureState {
    pub fn new(feature: &CompiledFeature) -> Result<Self> {
        let fields =
            feature.key_columns.iter().map(|i| SortField::new(feature.table.columns[*i].ty.arrow_type())).collect();
        let hasher = ahash::RandomState::with_seeds(0x5eed, 0xa50f, 0xdb, 0xf00d);
        Ok(Self {
            converter: RowConverter::new(fields)?,
            keys: HashMap::with_hasher(hasher),
            version: 0,
            horizon: i64::MIN,
            max_time: i64::MIN,
            auto_evict: true,
            exact_from: i64::MIN,
        })
    }

    /// A scratch state for an ASOF sweep over stored events: it keeps only the keys it is
    /// given (`add_key`) and evicts only when told to.
    pub fn scratch(feature: &CompiledFeature) -> Result<Self> {
        Ok(Self { auto_evict: false, ..Self::new(feature)? })
    }

    /// Adds the qualifying rows of `batch` (rows of the source table stored under `seq`).
    pub fn ingest(&mut self, feature: &CompiledFeature, batch: &RecordBatch, seq: u64) -> Result<()> {
        self.ingest_rows(feature, batch, seq, !self.auto_evict)?;
        self.evict_due(feature);
        Ok(())
    }

    /// Moves the live state's horizon up to `max_time - lookback` once it has fallen a step
    /// behind.
    /// A feature of distinct counts only also drops repeated values then, every day of event
    /// time, so its keys hold one event per distinct value of the window.
    pub fn evict_due(&mut self, feature: &CompiledFeature) {
        let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) else { return };
        let distinct_only = is_distinct_only(feature);
        let step = if distinct_only { DISTINCT_EVICTION_STEP } else { (lookback / 4).max(MIN_EVICTION_STEP) };
        let target = self.max_time.saturating_sub(lookback);
        if target >= self.horizon.saturating_add(step) {
            self.evict(feature, target, &mut |_, _, _| {});
            if distinct_only {
                self.keys.values_mut().for_each(|history| {
                    history.keep_latest_distinct(feature);
                });
                self.exact_from = self.max_time;
            }
        }
    }

    /// After a snapshot is loaded: the snapshot lacks what its state had evicted or dropped
    /// (neither horizon is stored), so both are set as late as they can have been.
    pub fn restored(&mut self, feature: &CompiledFeature) {
        let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) else { return };
        self.evict(feature, self.max_time.saturating_sub(lookback), &mut |_, _, _| {});
        if is_distinct_only(feature) {
            self.exact_from = self.max_time;
        }
    }

    /// Drops every event older than `horizon`; `before_drop(key, history, count)` sees each
    /// key that loses `count` events, before they go. Keys stay, with their first event time.
    pub fn evict(
        &mut self,
        feature: &CompiledFeature,
        horizon: i64,
        before_drop: &mut dyn FnMut(&[u8], &KeyHistory, usize),
    ) {
        if horizon <= self.horizon {
            return;
        }
        self.version += 1;
        self.horizon = horizon;
        for (key, history) in self.keys.iter_mut() {
            let r = history.events(feature).from(horizon);
            if r > 0 {
                before_drop(key, history, r);
                history.drop_prefix(feature, r);
            }
        }
    }

    /// Whether the state holds every event a window spanning `window` needs: none evicted
    /// (the horizon) and none dropped as a repeat (`exact_from`, against the window's end,
    /// which for a hopping window is its last hop, before T).
    pub fn holds(&self, window: Span) -> bool {
        window.from >= self.horizon && window.to >= self.exact_from
    }

    /// Adds an empty history for a key (row-encoded) whose earliest event is `first`.
    pub fn add_key(&mut self, key: &[u8], first: Option<i64>) {
        self.keys.entry(key.into()).or_default().first = first.unwrap_or(NO_FIRST);
    }

    /// The key's history, by its row-encoded form.
    pub fn encoded(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.keys.get(key)
    }

    /// Row-encodes keys given as arrays in key-column order (as `encoded` and `add_key` take them).
    pub fn encode_keys(&self, keys: &[ArrayRef]) -> Result<arrow::row::Rows> {
        Ok(self.converter.convert_columns(keys)?)
    }

    fn ingest_rows(
        &mut self,
        feature: &CompiledFeature,
        batch: &RecordBatch,
        seq: u64,
        known_keys_only: bool,
    ) -> Result<()> {
        self.version += 1;
        let rows = batch.num_rows();
        let passes = match &feature.filter {
            Some(f) => Some(boolean(f.evaluate(batch)?.into_array(rows)?)?),
            None => None,
        };
        let mut encoded = Vec::with_capacity(feature.args.len());
        for (j, arg) in feature.args.iter().enumerate() {
            let filter = feature.value_filters[j]
                .as_ref()
                .map(|f| evaluate_where(f, batch, passes.as_ref()).and_then(boolean))
                .transpose()?;
            let rows_in = match (&passes, &filter) {
                (Some(p), Some(f)) => Some(arrow::compute::and(p, f)?),
                (Some(only), None) | (None, Some(only)) => Some(only.clone()),
                (None, None) => None,
            };
            let arg = arg.as_ref().map(|a| evaluate_where(a, batch, rows_in.as_ref())).transpose()?;
            let included = |row: usize| filter.as_ref().is_none_or(|f| f.is_valid(row) && f.value(row));
            encoded.push(encode(feature.reprs[j], arg.as_ref(), included, rows)?);
        }
        let key_arrays: Vec<ArrayRef> = feature.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        let key_rows = self.converter.convert_columns(&key_arrays)?;
        let times = event_times(batch.column(feature.event_time))?;
        if let Some(max) = times.values().iter().max() {
            self.max_time = self.max_time.max(*max);
        }
        let mut event = vec![0u64; feature.stride()];
        for row in 0..rows {
            if passes.as_ref().is_some_and(|p| !p.is_valid(row) || !p.value(row)) {
                continue;
            }
            let key = key_rows.row(row);
            let history = match self.keys.get_mut(key.as_ref()) {
                Some(history) => history,
                None if known_keys_only => continue,
                None => self.keys.entry(key.as_ref().into()).or_default(),
            };
            let t = times.value(row);
            history.first = history.first.min(t);
            if t < self.horizon {
                continue;
            }
            event[0] = t as u64;
            event[1] = seq;
            event[2] = 0;
            for (j, column) in encoded.iter().enumerate() {
                let (flag, word) = match column {
                    Encoded::Words(words) => words[row],
                    Encoded::Others(values) => match &values[row] {
                        (flag, Some(value)) => (*flag, history.keep(value.clone())),
                        (flag, None) => (*flag, 0),
                    },
                };
                event[2] |= flag << (2 * j);
                event[HEADER + j] = word;
            }
            history.insert(feature, &event);
        }
        Ok(())
    }

    /// The key's history, looked up by key values in key-column order.
    pub fn history(&self, key: &[ScalarValue]) -> Result<Option<&KeyHistory>> {
        let arrays: Vec<ArrayRef> = key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?;
        let rows = self.converter.convert_columns(&arrays)?;
        Ok(self.keys.get(rows.row(0).as_ref()))
    }

    /// The history of each row's key in `keys` (key-column order and types): `None` for a key
    /// with no history or a NULL in it.
    pub fn histories(&self, keys: &[ArrayRef]) -> Result<Vec<Option<&KeyHistory>>> {
        let rows = self.converter.convert_columns(keys)?;
        Ok((0..rows.num_rows())
            .map(|r| if keys.iter().any(|k| k.is_null(r)) { None } else { self.keys.get(rows.row(r).as_ref()) })
            .collect())
    }

    /// Every key (as key-column arrays, one row per key) with its history.
    pub fn all(&self) -> Result<(Vec<ArrayRef>, Vec<&KeyHistory>)> {
        let parser = self.converter.parser();
        let (keys, histories): (Vec<_>, Vec<_>) = self.keys.iter().map(|(k, h)| (parser.parse(k), h)).unzip();
        let columns = self.converter.convert_rows(keys)?;
        Ok((columns, histories))
    }

    /// Returns the spare capacity of every key's vectors (after a backfill or restore, whose
    /// appends leave up to half of each vector unused).
    pub fn shrink_to_fit(&mut self) {
        for history in self.keys.values_mut() {
            let Some(body) = &mut history.body else { continue };
            body.words.shrink_to_fit();
            body.others.shrink_to_fit();
            if let Some(tiles) = &mut body.tiles {
                tiles.starts.shrink_to_fit();
                tiles.ends.shrink_to_fit();
                tiles.partials.shrink_to_fit();
            }
        }
    }

    /// The state's version (see the field).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every key in its row-encoded form, with its history (for snapshots).
    pub fn encoded_keys(&self) -> impl Iterator<Item = (&[u8], &KeyHistory)> {
        self.keys.iter().map(|(k, h)| (k.as_ref(), h))
    }

    /// Appends one event to the key given in row-encoded form (snapshot restore). `other` is
    /// the value of each [`Repr::Other`](super::encoding::Repr) aggregate, whose word it sets.
    pub fn restore(
        &mut self,
        feature: &CompiledFeature,
        key: &[u8],
        event: &mut [u64],
        others: Vec<(usize, ScalarValue)>,
    ) {
        self.version += 1;
        if !self.keys.contains_key(key) {
            self.keys.insert(key.into(), KeyHistory::default());
        }
        if let Some(history) = self.keys.get_mut(key) {
            let t = event[0] as i64;
            history.first = history.first.min(t);
            if event[1] == FIRST_ONLY {
                return;
            }
            self.max_time = self.max_time.max(t);
            for (j, value) in others {
                event[HEADER + j] = history.keep(value);
            }
            history.insert(feature, event);
        }
    }

    /// (keys, events, approximate heap bytes) held.
    pub fn size(&self, feature: &CompiledFeature) -> (usize, usize, usize) {
        let events = self.keys.values().map(|h| h.len(feature)).sum();
        let bytes = self.keys.iter().map(|(k, h)| k.len() + size_of::<KeyHistory>() + 16 + h.heap_bytes()).sum();
        (self.keys.len(), events, bytes)
    }
}

/// `arg` over `batch`, where only the rows `rows_in` admits need a value (NULL elsewhere).
/// It is evaluated over the whole batch first, which is cheapest; only if that fails is it
/// evaluated again over the admitted rows alone, as `agg(x) FILTER (WHERE p)` never
/// evaluates `x` where `p` fails (`sum(a / b) FILTER (WHERE b <> 0)`).
fn evaluate_where(
    arg: &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
    batch: &RecordBatch,
    rows_in: Option<&BooleanArray>,
) -> Result<ArrayRef> {
    let rows = batch.num_rows();
    let whole = arg.evaluate(batch).and_then(|v| v.into_array(rows));
    let (Err(error), Some(rows_in)) = (&whole, rows_in) else { return Ok(whole?) };
    tracing::debug!("evaluating a feature argument over its admitted rows only, after: {error}");
    let admitted = arrow::compute::filter_record_batch(batch, rows_in)?;
    let values = arg.evaluate(&admitted)?.into_array(admitted.num_rows())?;
    let mut next = 0u32;
    let positions: arrow::array::UInt32Array = (0..rows)
        .map(|r| {
            (rows_in.is_valid(r) && rows_in.value(r)).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    Ok(arrow::compute::take(&values, &positions, None)?)
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| Error::internal("predicate did not evaluate to booleans"))
}
