//! Tiles: per epoch-aligned interval of `tile` µs, each aggregate's partial over the tile's
//! events, so a window is merged from whole tiles plus the events of its two edge tiles.

use crate::feature::accumulate::{Acc, Events, partition};
use crate::feature::def::CompiledFeature;
use crate::feature::encoding::VALUE;
use crate::feature::window::{floor, span};

#[derive(Debug, Default, Clone)]
pub(super) struct Tiles {
    /// Start time of each non-empty tile, ascending.
    pub(super) starts: Vec<i64>,
    /// One past the index of each tile's last event.
    pub(super) ends: Vec<u32>,
    /// `aggregates` partials per tile, tile-major.
    pub(super) partials: Vec<Acc>,
    /// The greatest ingest time of each tile's events, for a feature whose table has ingest
    /// times (else empty): a known-at evaluation merges a tile whose events were all known
    /// by then, and folds the others' known events one by one (`state::known_at`).
    pub(super) max_ingest: Vec<i64>,
}

impl Tiles {
    pub(super) fn begin(&self, k: usize) -> usize {
        if k == 0 { 0 } else { self.ends[k - 1] as usize }
    }

    /// The tiles wholly inside times `from..=to`: `k0..k1` (empty when `k0 >= k1`).
    pub(super) fn inside(&self, width: i64, from: i64, to: i64) -> (usize, usize) {
        let k0 = partition(self.starts.len(), |k| self.starts[k] < from);
        let k1 = partition(self.starts.len(), |k| self.starts[k].saturating_add(width - 1) <= to);
        (k0, k1)
    }

    /// Sets tile `k`'s greatest ingest time from its events (a feature with ingest times).
    pub(super) fn measure_ingest(&mut self, feature: &CompiledFeature, ev: &Events, k: usize) {
        if feature.ingest.is_some() {
            self.max_ingest[k] = max_ingest(feature, ev, self.begin(k), self.ends[k] as usize);
        }
    }
}

/// The greatest ingest time of events `from..to` (`i64::MIN` if none).
pub(super) fn max_ingest(feature: &CompiledFeature, ev: &Events, from: usize, to: usize) -> i64 {
    let n = feature.def.values.len();
    (from..to).map(|i| ev.word(i, n) as i64).max().unwrap_or(i64::MIN)
}

/// A tile's partials over events `from..to` (picks relative to `from`).
/// A tile's distinct words are gathered, then sorted once (inserting each in order was
/// quadratic in the tile's distinct values).
pub(super) fn fold_tile(feature: &CompiledFeature, ev: &Events, from: usize, to: usize) -> Vec<Acc> {
    let aggregates = feature.def.values.iter().zip(&feature.reprs).enumerate();
    // Decayed sums refer to the tile's last instant, which no event of the tile is after.
    let last_instant = if from < to { floor(ev.time(from), feature.tile).saturating_add(feature.tile - 1) } else { 0 };
    aggregates
        .map(|(j, (v, repr))| {
            let mut acc = Acc::new(v.kind, *repr, true, last_instant);
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

pub(super) fn fold_into(
    feature: &CompiledFeature,
    ev: &Events,
    accs: &mut [Acc],
    from: usize,
    to: usize,
    offset: usize,
) {
    for i in from..to {
        for (j, acc) in accs.iter_mut().enumerate() {
            acc.add(feature.def.values[j].kind, feature.reprs[j], ev, i, j, offset);
        }
    }
}

/// Tiles pay off only for a key whose latest window holds many events; for the sparse
/// majority of keys they would cost ~50 bytes per event and save nothing.
pub(super) fn worth_tiling(feature: &CompiledFeature, ev: &Events) -> bool {
    if ev.is_empty() || ev.len() < feature.tile_min_events {
        return false;
    }
    let window = span(&feature.def.window, ev.time(ev.len() - 1), false);
    ev.len() - ev.from(window.from) >= feature.tile_min_events
}

pub(super) fn build_tiles(feature: &CompiledFeature, ev: &Events) -> Tiles {
    let mut tiles = Tiles::default();
    let mut i = 0;
    while i < ev.len() {
        let start = floor(ev.time(i), feature.tile);
        let end = ev.after(start.saturating_add(feature.tile - 1));
        tiles.starts.push(start);
        tiles.ends.push(end as u32);
        tiles.partials.extend(fold_tile(feature, ev, i, end));
        if feature.ingest.is_some() {
            tiles.max_ingest.push(max_ingest(feature, ev, i, end));
        }
        i = end;
    }
    tiles
}
