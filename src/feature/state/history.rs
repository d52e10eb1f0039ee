//! One key's events, as flat words sorted by (event time, arrival), and the values that do
//! not fit a word; kept small, since a feature holds one per key ever seen.

use datafusion::scalar::ScalarValue;

use super::tiles::{Tiles, build_tiles, fold_tile, worth_tiling};
use crate::feature::accumulate::{Acc, Events, HEADER, partition};
use crate::feature::def::CompiledFeature;
use crate::feature::encoding::VALUE;
use crate::feature::window::floor;

/// One key's events. Kept small (16 bytes): a feature holds one per key ever seen, and most
/// keys of a short window hold no events, only their first time (no [`Body`] then).
#[derive(Debug, Clone)]
pub struct KeyHistory {
    pub(super) body: Option<Box<Body>>,
    /// The earliest qualifying event time ever seen for the key ([`NO_FIRST`]: none), kept when
    /// that event itself has been evicted: a key matches at T if it has any event at or before
    /// T, in memory or not.
    pub(super) first: i64,
}

const _: () = assert!(size_of::<KeyHistory>() == 16, "one per key: keep it small");

/// `KeyHistory::first` of a key with no qualifying event (greater than every time, so
/// `min` keeps the earliest).
pub(super) const NO_FIRST: i64 = i64::MAX;

impl Default for KeyHistory {
    fn default() -> Self {
        Self { body: None, first: NO_FIRST }
    }
}

/// The events a key holds (one word per event field, in time then arrival order), the
/// non-numeric values they refer to, and the tiles of their partial aggregates.
#[derive(Debug, Default, Clone)]
pub(super) struct Body {
    pub(super) words: Vec<u64>,
    pub(super) others: Others,
    pub(super) tiles: Option<Box<Tiles>>,
}

/// What [`Body::keep_latest_distinct`] works in, reused from key to key: a pass over every
/// key allocated and grew a hash set per key (15% of a distinct-count backfill).
#[derive(Default)]
pub(super) struct DistinctScratch {
    seen: Vec<std::collections::HashSet<u64, ahash::RandomState>>,
    keep: Vec<bool>,
}

/// The body of every key that holds no events.
pub(super) static NO_EVENTS: Body = Body { words: Vec::new(), others: Others(None), tiles: None };

/// The values of order-sensitive aggregates of non-numeric types, which few features have:
/// boxed, so a key without any costs one pointer.
#[derive(Debug, Default, Clone)]
#[allow(clippy::box_collection)] // the box is the point: 8 bytes per key instead of 24
pub(super) struct Others(Option<Box<Vec<ScalarValue>>>);

impl Others {
    pub(super) fn as_slice(&self) -> &[ScalarValue] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }

    pub(super) fn push(&mut self, value: ScalarValue) -> u64 {
        let values = self.0.get_or_insert_with(Box::default);
        values.push(value);
        (values.len() - 1) as u64
    }

    pub(super) fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.capacity())
    }

    pub(super) fn shrink_to_fit(&mut self) {
        match &mut self.0 {
            Some(values) if values.is_empty() => self.0 = None,
            Some(values) => values.shrink_to_fit(),
            None => {}
        }
    }
}

impl Body {
    pub(super) fn events<'a>(&'a self, feature: &CompiledFeature) -> Events<'a> {
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
        let n = ev.len();
        // Mostly an append; a late event is placed by binary search (walking back from the
        // end cost a training set over a busy key thousands of comparisons per late event).
        let p = if n == 0 || (ev.time(n - 1), ev.seq(n - 1)) <= (t, seq) {
            n
        } else {
            partition(n, |i| (ev.time(i), ev.seq(i)) <= (t, seq))
        };
        if p == n {
            self.words.extend_from_slice(event);
        } else {
            self.words.splice(p * stride..p * stride, event.iter().copied());
        }
        self.update_tiles(feature, p, t);
    }

    /// Drops the first `r` events (all older than every window still to be evaluated).
    /// Tiles wholly within the prefix go and the rest shift down; only the first kept tile,
    /// which the cut may pass through, is refolded (rebuilding every tile on each eviction
    /// took more time than the rest of an ASOF sweep over stored events).
    pub(super) fn drop_prefix(&mut self, feature: &CompiledFeature, r: usize) {
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
        tiles.max_ingest.drain(..gone.min(tiles.max_ingest.len()));
        tiles.ends.iter_mut().for_each(|e| *e -= r as u32);
        self.compact_others(feature);
        if self.len(feature) < feature.tile_min_events.max(1) {
            self.tiles = None;
        } else if let Some(tiles) = &mut self.tiles {
            let ev = Events { words: &self.words, stride: feature.stride(), others: self.others.as_slice() };
            let end = tiles.ends[0] as usize;
            tiles.partials[..n].clone_from_slice(&fold_tile(feature, &ev, 0, end));
            tiles.measure_ingest(feature, &ev, 0);
        }
        self.release_spare();
    }

    /// For a feature of distinct counts only, evaluated from now on at times at or after its
    /// latest event: drops every event whose values all occur again later. Whenever such an
    /// event is in a window ending at or after the later ones, they are in it too, so no count
    /// changes; a key then keeps one event per distinct value instead of one per occurrence.
    pub(super) fn keep_latest_distinct(&mut self, feature: &CompiledFeature, scratch: &mut DistinctScratch) {
        let stride = feature.stride();
        let n = self.words.len() / stride;
        let aggregates = feature.def.values.len();
        scratch.seen.resize_with(aggregates, Default::default);
        for set in &mut scratch.seen {
            // Clearing costs the capacity: a set grown by one busy key is not kept for the rest.
            if set.capacity() > 4 * n.max(64) {
                *set = Default::default();
            }
            set.clear();
        }
        scratch.keep.clear();
        scratch.keep.resize(n, false);
        for i in (0..n).rev() {
            let event = &self.words[i * stride..(i + 1) * stride];
            for (j, set) in scratch.seen[..aggregates].iter_mut().enumerate() {
                if (event[2] >> (2 * j)) & 3 == VALUE && set.insert(event[HEADER + j]) {
                    scratch.keep[i] = true;
                }
            }
        }
        if scratch.keep.contains(&false) {
            let mut kept = 0;
            for i in (0..n).filter(|i| scratch.keep[*i]) {
                self.words.copy_within(i * stride..(i + 1) * stride, kept * stride);
                kept += 1;
            }
            self.words.truncate(kept * stride);
            self.compacted(feature);
        }
    }

    /// Builds the tiles `feature` keeps for these events (see `FeatureState::build_tiles`).
    pub(super) fn build_tiles(&mut self, feature: &CompiledFeature) {
        let ev = self.events(feature);
        self.tiles = worth_tiling(feature, &ev).then(|| Box::new(build_tiles(feature, &ev)));
    }

    /// Restores the invariants after events were removed: `others` holds only referenced
    /// values, tiles are rebuilt, spare capacity is returned.
    pub(super) fn compacted(&mut self, feature: &CompiledFeature) {
        self.compact_others(feature);
        self.build_tiles(feature);
        self.release_spare();
    }

    /// Keeps only the `others` values still referenced, renumbering the words that index them.
    pub(super) fn compact_others(&mut self, feature: &CompiledFeature) {
        if self.others.as_slice().is_empty() {
            return;
        }
        let mut kept = Others::default();
        for event in self.words.chunks_exact_mut(feature.stride()) {
            for (j, repr) in feature.reprs.iter().enumerate() {
                if *repr == crate::feature::encoding::Repr::Other && (event[2] >> (2 * j)) & 3 == VALUE {
                    event[HEADER + j] = kept.push(self.others.as_slice()[event[HEADER + j] as usize].clone());
                }
            }
        }
        self.others = kept;
    }

    pub(super) fn release_spare(&mut self) {
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
    pub(super) fn keep(&mut self, value: ScalarValue) -> u64 {
        self.others.push(value)
    }

    pub(super) fn update_tiles(&mut self, feature: &CompiledFeature, p: usize, t: i64) {
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
            if let Some(greatest) = tiles.max_ingest.get_mut(k) {
                *greatest = (*greatest).max(ev.word(p, n) as i64);
            }
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
            if feature.ingest.is_some() {
                tiles.max_ingest.insert(k, ev.word(p, n) as i64);
            }
            tiles.ends[k + 1..].iter_mut().for_each(|e| *e += 1);
            tiles.partials.splice(k * n..k * n, fold_tile(feature, &ev, p, p + 1));
        }
    }
}

impl KeyHistory {
    pub(super) fn body(&self) -> &Body {
        self.body.as_deref().unwrap_or(&NO_EVENTS)
    }

    pub(super) fn body_mut(&mut self) -> &mut Body {
        self.body.get_or_insert_with(Box::default)
    }

    /// Frees the body of a key left without events.
    pub(super) fn release_if_empty(&mut self) {
        if self.body.as_ref().is_some_and(|b| b.words.is_empty()) {
            self.body = None;
        }
    }

    pub(super) fn events<'a>(&'a self, feature: &CompiledFeature) -> Events<'a> {
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
    pub(super) fn drop_prefix(&mut self, feature: &CompiledFeature, r: usize) {
        if let Some(body) = &mut self.body {
            body.drop_prefix(feature, r);
        }
        self.release_if_empty();
    }

    /// See [`Body::keep_latest_distinct`].
    pub(super) fn keep_latest_distinct(&mut self, feature: &CompiledFeature, scratch: &mut DistinctScratch) {
        if let Some(body) = &mut self.body {
            body.keep_latest_distinct(feature, scratch);
        }
        self.release_if_empty();
    }

    /// Stores a value of an order-sensitive aggregate of a non-numeric type; returns its word.
    pub(super) fn keep(&mut self, value: ScalarValue) -> u64 {
        self.body_mut().keep(value)
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

    /// Approximate heap bytes held (for `asofdb.features` and the memory figures).
    pub fn heap_bytes(&self) -> usize {
        let Some(body) = &self.body else { return 0 };
        let tiles = body.tiles.as_ref().map_or(0, |t| {
            t.starts.capacity() * 8
                + t.ends.capacity() * 4
                + t.partials.capacity() * size_of::<Acc>()
                + t.max_ingest.capacity() * 8
        });
        size_of::<Body>() + body.words.capacity() * 8 + body.others.capacity() * size_of::<ScalarValue>() + tiles
    }
}
