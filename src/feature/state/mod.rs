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

mod evaluate;
mod history;
mod ingest_chunks;
mod known_at;
mod sliding_distinct;
mod tiles;

pub use evaluate::distinct_aggregates;
use history::DistinctScratch;
pub use history::KeyHistory;
pub use sliding_distinct::SlidingDistinct;

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};
use crate::feature::accumulate::HEADER;
use crate::feature::def::CompiledFeature;
use crate::feature::encoding::{Encoded, encode};
use crate::feature::window::Span;
use crate::storage::blocks::event_times;
use evaluate::is_distinct_only;
use history::NO_FIRST;

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
    /// latest event time or later); `i64::MIN` until the first eviction (or
    /// [`FeatureState::start_from`]).
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
    /// Per key, ingest times of its events that passed WHERE (tables with an ingest-time
    /// column only).
    ingest: HashMap<Box<[u8]>, KeyIngest, ahash::RandomState>,
    /// Events added since the last eviction pass: a pass visits every key, so it waits for
    /// as many events as half the keys (see [`FeatureState::evict_due`]).
    since_eviction: u64,
    /// Events added since repeated values were last dropped, and the events held right after
    /// (features of distinct counts only): a pass visits every event held, so it waits until
    /// as many have come as it left, which keeps its cost proportional to the events ingested.
    since_repeats: u64,
    held_after_repeats: u64,
}

/// A key's ingest times beyond its held events.
#[derive(Debug, Clone, Copy)]
struct KeyIngest {
    /// The greatest, evicted or not: what reading the feature as a table shows.
    latest: i64,
    /// The least of the events no longer held (evicted, or older than the horizon when they
    /// came; [`NOT_EVICTED`] if none): a known-at evaluation at K matches on them when it
    /// is at or before K (every such event is older than any window still evaluated).
    evicted: i64,
}

/// `KeyIngest::evicted` of a key that lost no event.
const NOT_EVICTED: i64 = i64::MAX;

/// A write's keys, row-encoded once and each given one of `count` disjoint shards (by a hash
/// of the encoded key), for states that each ingest one shard of it (a backfill on several
/// threads: the reading thread encodes, the ingest threads share the result).
pub struct ShardedWrite {
    keys: Rows,
    /// Each row's key hashed: its shard is the hash modulo `count`, and its top bits order
    /// the shard's rows (`key_grouped_order`), so no thread hashes a key again.
    hashes: Vec<u64>,
    /// How many shards share the write.
    count: u64,
}

impl ShardedWrite {
    /// The rows of shard `index`, in written order.
    fn rows_of(&self, index: u8) -> Vec<usize> {
        (0..self.hashes.len()).filter(|r| self.hashes[*r] % self.count == index as u64).collect()
    }
}

/// At most this many shards (`ingest_shard` is given its shard's number as a byte).
pub const MAX_SHARDS: usize = 64;

/// Every key as key-column arrays (one row per key), with its row-encoded form and history.
pub type EveryKey<'a> = (Vec<ArrayRef>, Vec<(&'a [u8], &'a KeyHistory)>);

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
            ingest: HashMap::default(),
            since_eviction: 0,
            since_repeats: 0,
            held_after_repeats: 0,
        })
    }

    /// The greatest ingest time of the key's events (row-encoded key), if it has any.
    pub fn latest_ingest(&self, key: &[u8]) -> Option<i64> {
        self.ingest.get(key).map(|i| i.latest)
    }

    /// The least ingest time of the key's events no longer held, if it lost any.
    pub fn evicted_ingest(&self, key: &[u8]) -> Option<i64> {
        self.ingest.get(key).map(|i| i.evicted).filter(|t| *t != NOT_EVICTED)
    }

    fn note_ingest(&mut self, key: &[u8], known: i64) {
        note_ingest(&mut self.ingest, key, known);
    }

    /// A scratch state for an ASOF sweep over stored events: it keeps only the keys it is
    /// given (`add_key`) and evicts only when told to.
    pub fn scratch(feature: &CompiledFeature) -> Result<Self> {
        Ok(Self { auto_evict: false, ..Self::new(feature)? })
    }

    /// A scratch copy of the keys `batches` (rows of the source table) touch, with those rows
    /// added after every stored one (arrival numbers from `first_seq` on): what a transaction
    /// reads through the feature before it commits them.
    pub fn with_rows(&self, feature: &CompiledFeature, batches: &[RecordBatch], first_seq: u64) -> Result<Self> {
        let mut scratch = Self { horizon: self.horizon, exact_from: self.exact_from, ..Self::scratch(feature)? };
        for batch in batches {
            let keys: Vec<ArrayRef> = feature.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
            let rows = self.converter.convert_columns(&keys)?;
            for row in rows.iter() {
                let key = row.as_ref();
                if !scratch.keys.contains_key(key) {
                    let history = self.keys.get(key).cloned().unwrap_or_default();
                    scratch.keys.insert(key.into(), history);
                }
            }
        }
        for (i, batch) in batches.iter().enumerate() {
            scratch.ingest(feature, batch, first_seq + i as u64)?;
        }
        Ok(scratch)
    }

    /// Whether the key (row-encoded) has a history here.
    pub fn has_key(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// Every key's row-encoded form with its history.
    pub fn encoded_all(&self) -> impl Iterator<Item = (&[u8], &KeyHistory)> {
        self.keys.iter().map(|(k, h)| (k.as_ref(), h))
    }

    /// Key-column arrays of row-encoded keys.
    pub fn decode_keys<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        Ok(self.converter.convert_rows(keys.map(|k| parser.parse(k)))?)
    }

    /// Adds the qualifying rows of `batch` (rows of the source table stored under `seq`).
    pub fn ingest(&mut self, feature: &CompiledFeature, batch: &RecordBatch, seq: u64) -> Result<()> {
        self.ingest_rows(feature, batch, seq, !self.auto_evict, None)?;
        self.evict_due(feature);
        Ok(())
    }

    /// Row-encodes `batch`'s keys and shares them among `count` shards (at most
    /// [`MAX_SHARDS`]), for [`FeatureState::ingest_shard`].
    pub fn shard_write(&self, feature: &CompiledFeature, batch: &RecordBatch, count: usize) -> Result<ShardedWrite> {
        // Seeds other than the key map's: keys of one shard share their hash's low bits, so
        // with the map's own hasher they would crowd half of its buckets.
        const HASHER: ahash::RandomState = ahash::RandomState::with_seeds(0x51a4d, 0xbac4f11, 0xc0de, 0x7);
        assert!((1..=MAX_SHARDS).contains(&count), "{count} shards: at most {MAX_SHARDS}");
        let count = count as u64;
        let key_arrays: Vec<ArrayRef> = feature.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        let keys = self.converter.convert_columns(&key_arrays)?;
        let hashes = keys.iter().map(|key| HASHER.hash_one(key.as_ref())).collect();
        Ok(ShardedWrite { keys, hashes, count })
    }

    /// As [`FeatureState::ingest`], for the rows of `write` in shard `index` only. The
    /// greatest event time still moves with every row's, so states fed the same writes, one
    /// per shard, hold what one state fed all of them would (each may have evicted at other
    /// moments, which changes what it holds beyond the window only), and
    /// [`FeatureState::absorb`] joins them.
    pub fn ingest_shard(
        &mut self,
        feature: &CompiledFeature,
        batch: &RecordBatch,
        seq: u64,
        write: &ShardedWrite,
        index: usize,
    ) -> Result<()> {
        self.ingest_rows(feature, batch, seq, !self.auto_evict, Some((write, index as u8)))?;
        self.evict_due(feature);
        Ok(())
    }

    /// Takes in the keys of a state fed the same writes for another shard
    /// ([`FeatureState::ingest_shard`]).
    pub fn absorb(&mut self, other: FeatureState) {
        // Each shard evicted when its own keys made a pass due: the joined state claims no
        // more than the least complete of them holds (the backfill settles every shard
        // before joining them, so they agree).
        self.version = self.version.max(other.version) + 1;
        self.horizon = self.horizon.max(other.horizon);
        self.max_time = self.max_time.max(other.max_time);
        self.exact_from = self.exact_from.max(other.exact_from);
        self.since_repeats += other.since_repeats;
        self.held_after_repeats += other.held_after_repeats;
        debug_assert!(other.keys.keys().all(|key| !self.keys.contains_key(key)), "shards share a key");
        // The first shard's maps are taken as they are (each map keeps its hasher): inserting
        // its keys one by one hashed and moved a million of them again for card and merchant.
        if self.keys.is_empty() {
            self.keys = other.keys;
        } else {
            self.keys.reserve(other.keys.len());
            self.keys.extend(other.keys);
        }
        if self.ingest.is_empty() {
            self.ingest = other.ingest;
        } else {
            self.ingest.extend(other.ingest);
        }
    }

    /// Moves the live state's horizon up to `max_time - lookback` once it has fallen a step
    /// behind, and as many events as half the keys have come since the last pass: a pass
    /// visits every key, so with millions of sparse keys (a key of card and merchant) passes
    /// every step took most of a backfill. The events held beyond the window are then at most
    /// a step's, or half as many as the keys.
    /// A feature of distinct counts only also drops repeated values then, at most every day of
    /// event time and once as many events have come as the last drop left, so its keys hold
    /// about one event per distinct value of the window (at most about twice as many, plus a
    /// day's events).
    pub fn evict_due(&mut self, feature: &CompiledFeature) {
        if self.since_eviction >= self.keys.len() as u64 / 2 {
            self.evict_step(feature);
        }
    }

    /// The pass of [`FeatureState::evict_due`], once the horizon has fallen a step behind.
    fn evict_step(&mut self, feature: &CompiledFeature) {
        let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) else { return };
        let distinct_only = drops_repeats(feature);
        let step = if distinct_only { DISTINCT_EVICTION_STEP } else { (lookback / 4).max(MIN_EVICTION_STEP) };
        let target = self.max_time.saturating_sub(lookback);
        if target >= self.horizon.saturating_add(step) {
            self.evict(feature, target, &mut |_, _, _| {});
            if self.since_repeats >= self.held_after_repeats {
                self.drop_repeats(feature);
            }
        }
    }

    /// Ends a backfill: the horizon moves up to `max_time - lookback`, and every key, those
    /// of a joined shard that evicted less recently than another included, drops its events
    /// older than it (and, for a feature of distinct counts only, its repeated values), so
    /// the state holds the window and no more.
    pub fn settle(&mut self, feature: &CompiledFeature) {
        let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) else { return };
        let horizon = self.max_time.saturating_sub(lookback).max(self.horizon);
        self.horizon = horizon;
        self.drop_older(feature, horizon, &mut |_, _, _| {});
        self.drop_repeats(feature);
    }

    /// For a feature of distinct counts only: every key drops its repeated values.
    fn drop_repeats(&mut self, feature: &CompiledFeature) {
        if drops_repeats(feature) {
            let mut scratch = DistinctScratch::default();
            let mut held = 0;
            for history in self.keys.values_mut() {
                history.keep_latest_distinct(feature, &mut scratch);
                held += history.len(feature) as u64;
            }
            (self.since_repeats, self.held_after_repeats) = (0, held);
            self.exact_from = self.max_time;
        }
    }

    /// Starts a backfill's state at the horizon it will end at, given `max_time`, the greatest
    /// event time of the rows to come (the table's watermark): their events older than it are
    /// never held, only noted (a key's first event time, ingest times), so no eviction pass
    /// visits them and no key's history grows with them. A backfill over millions of sparse
    /// keys (card and merchant) spent a third of its time adding events and evicting them
    /// again. The watermark can overstate what is left (the latest rows erased or expired):
    /// the caller then ingests again without it ([`FeatureState::max_time`] tells).
    pub fn start_from(&mut self, feature: &CompiledFeature, max_time: i64) {
        if let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) {
            self.horizon = max_time.saturating_sub(lookback);
        }
    }

    /// The greatest event time ingested, of any row (`i64::MIN` before the first).
    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    /// Records that rows up to event time `t` were seen (of any key, qualifying or not).
    pub fn saw_time(&mut self, t: Option<i64>) {
        self.max_time = self.max_time.max(t.unwrap_or(i64::MIN));
    }

    /// After a snapshot is loaded: the snapshot lacks what its state had evicted or dropped
    /// (neither horizon is stored), so both are set as late as they can have been.
    pub fn restored(&mut self, feature: &CompiledFeature) {
        let Some(lookback) = feature.lookback().filter(|_| self.auto_evict) else { return };
        self.evict(feature, self.max_time.saturating_sub(lookback), &mut |_, _, _| {});
        if drops_repeats(feature) {
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
        self.horizon = horizon;
        self.drop_older(feature, horizon, before_drop);
    }

    /// The keys' events older than `horizon` go (see [`FeatureState::evict`]).
    fn drop_older(
        &mut self,
        feature: &CompiledFeature,
        horizon: i64,
        before_drop: &mut dyn FnMut(&[u8], &KeyHistory, usize),
    ) {
        self.version += 1;
        self.since_eviction = 0;
        let n = feature.def.values.len();
        for (key, history) in self.keys.iter_mut() {
            let ev = history.events(feature);
            let r = ev.from(horizon);
            if r > 0 {
                if feature.ingest.is_some()
                    && let Some(least) = (0..r).map(|i| ev.word(i, n) as i64).min()
                {
                    note_evicted(&mut self.ingest, key, least);
                }
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

    /// Events older than this are not held (`i64::MIN` until the first eviction or
    /// `start_from`).
    pub fn horizon(&self) -> i64 {
        self.horizon
    }

    /// Adds an empty history for a key (row-encoded) whose earliest event is `first`.
    pub fn add_key(&mut self, key: &[u8], first: Option<i64>) {
        self.keys.entry(key.into()).or_default().first = first.unwrap_or(NO_FIRST);
    }

    /// The key's history, by its row-encoded form.
    pub fn encoded(&self, key: &[u8]) -> Option<&KeyHistory> {
        self.keys.get(key)
    }

    /// Forgets `keys` (row-encoded) and takes in `parts` again, the rows of those keys still
    /// stored with their seqs: after an erasure, each key holds what ingesting its remaining
    /// rows would have made. The horizon stays (rows older than it leave only their times).
    pub fn rebuild_keys(
        &mut self,
        feature: &CompiledFeature,
        keys: &std::collections::HashSet<Box<[u8]>>,
        parts: &[(RecordBatch, u64)],
    ) -> Result<()> {
        self.version += 1;
        for key in keys {
            self.keys.remove(key);
            self.ingest.remove(key);
        }
        for (batch, seq) in parts {
            self.ingest_rows(feature, batch, *seq, false, None)?;
        }
        Ok(())
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
        shard: Option<(&ShardedWrite, u8)>,
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
        let converted;
        let key_rows = match shard {
            Some((write, _)) => &write.keys,
            None => {
                let key_arrays: Vec<ArrayRef> = feature.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
                converted = self.converter.convert_columns(&key_arrays)?;
                &converted
            }
        };
        let times = event_times(batch.column(feature.event_time))?;
        let ingest_times = feature.ingest.map(|i| event_times(batch.column(i))).transpose()?;
        if let Some(max) = times.values().iter().max() {
            self.max_time = self.max_time.max(*max);
        }
        let order = match shard {
            Some((write, index)) => key_grouped_order(write.rows_of(index), |r| write.hashes[r], self.keys.len()),
            None => {
                key_grouped_order((0..rows).collect(), |r| GROUPING.hash_one(key_rows.row(r).as_ref()), self.keys.len())
            }
        };
        let mut event = vec![0u64; feature.stride()];
        for row in order {
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
            // Every committed row has one (the commit fills it); a NULL would be a row known
            // as it happened (a transaction's own rows, read before they commit).
            let known = ingest_times.map(|ingest| if ingest.is_valid(row) { ingest.value(row) } else { t });
            if let Some(known) = known {
                note_ingest(&mut self.ingest, key.as_ref(), known);
            }
            if t < self.horizon {
                if let Some(known) = known {
                    note_evicted(&mut self.ingest, key.as_ref(), known);
                }
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
            if let Some(known) = known {
                event[HEADER + encoded.len()] = known as u64;
            }
            history.insert(feature, &event);
            self.since_eviction += 1;
            self.since_repeats += 1;
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
    pub fn all(&self) -> Result<EveryKey<'_>> {
        let parser = self.converter.parser();
        let (keys, histories): (Vec<_>, Vec<_>) =
            self.keys.iter().map(|(k, h)| (parser.parse(k), (k.as_ref(), h))).unzip();
        let columns = self.converter.convert_rows(keys)?;
        Ok((columns, histories))
    }

    /// The key's row-encoded form (as `encoded` and `latest_ingest` take it).
    pub fn encode_key(&self, key: &[ScalarValue]) -> Result<Vec<u8>> {
        let arrays: Vec<ArrayRef> = key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?;
        Ok(self.converter.convert_columns(&arrays)?.row(0).as_ref().to_vec())
    }

    /// For a read of the feature as a table: the ingest-time column (the last of `values`, for
    /// a table with one) shows the key's greatest ingest time over all its events.
    pub fn show_latest_ingest(&self, feature: &CompiledFeature, key: &[u8], values: &mut [ScalarValue]) {
        if feature.ingest.is_some()
            && let Some(last) = values.last_mut()
        {
            *last = ScalarValue::Int64(self.latest_ingest(key));
        }
    }

    /// Gives every key the tiles `feature` keeps for it, after ingesting with
    /// [`CompiledFeature::untiled`].
    pub fn build_tiles(&mut self, feature: &CompiledFeature) {
        self.version += 1;
        for history in self.keys.values_mut() {
            if let Some(body) = &mut history.body {
                body.build_tiles(feature);
            }
        }
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
        if feature.ingest.is_some() {
            // A FIRST_ONLY row carries the key's greatest ingest time in that word, and the
            // least of its evicted events' in the flags word (`snapshot::export`).
            self.note_ingest(key, event[HEADER + feature.def.values.len()] as i64);
            if event[1] == FIRST_ONLY && event[2] as i64 != NOT_EVICTED {
                note_evicted(&mut self.ingest, key, event[2] as i64);
            }
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

/// Writes of at least this many rows, into a state of at least this many keys, are ingested
/// in [`key_grouped_order`]. With fewer keys their histories stay in the cache whatever the
/// order, and the grouping is only a cost: at 1M events over 10,000 cards the training-set
/// sweep took 0.86–1.00 s ungrouped and 1.09–1.46 s grouped; at 10M over 100,000 grouping
/// saved a fifth.
const GROUPED_FROM_ROWS: usize = 1024;
const GROUPED_FROM_KEYS: usize = 32_768;

/// `rows` of a write (in written order, `hash` giving each its key's hash) in the order they
/// are ingested: for a large write into a large state, an order that brings each key's rows
/// near one another, each key's in their own order: a counting sort on the top bits of the
/// hash. The rows of one key go into one history
/// whatever the order between keys, and their own order is kept, so the state is the same;
/// but a key's history (and its map entry) is then fetched into the cache about once per
/// write, not once per row: in a day of events over 50,000 cards, the load of each card's
/// latest event was half of `KeyHistory::insert`'s time (a cache miss).
fn key_grouped_order(rows: Vec<usize>, hash: impl Fn(usize) -> u64, held_keys: usize) -> Vec<usize> {
    const BUCKET_BITS: u32 = 12;
    if rows.len() < GROUPED_FROM_ROWS || held_keys < GROUPED_FROM_KEYS {
        return rows;
    }
    let buckets: Vec<u16> = rows.iter().map(|r| (hash(*r) >> (64 - BUCKET_BITS)) as u16).collect();
    let mut starts = vec![0usize; (1 << BUCKET_BITS) + 1];
    buckets.iter().for_each(|b| starts[*b as usize + 1] += 1);
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut order = vec![0usize; rows.len()];
    for (row, bucket) in rows.iter().zip(&buckets) {
        let at = &mut starts[*bucket as usize];
        order[*at] = *row;
        *at += 1;
    }
    order
}

/// The hash of a key that orders a write not shared among shards (`key_grouped_order`).
const GROUPING: ahash::RandomState = ahash::RandomState::with_seeds(0x9e37, 0x79b9, 0x7f4a, 0x7c15);

fn note_ingest(ingest: &mut HashMap<Box<[u8]>, KeyIngest, ahash::RandomState>, key: &[u8], known: i64) {
    match ingest.get_mut(key) {
        Some(times) => times.latest = times.latest.max(known),
        None => {
            ingest.insert(key.into(), KeyIngest { latest: known, evicted: NOT_EVICTED });
        }
    }
}

/// Records that the key lost (or never held) an event ingested at `known`.
fn note_evicted(ingest: &mut HashMap<Box<[u8]>, KeyIngest, ahash::RandomState>, key: &[u8], known: i64) {
    match ingest.get_mut(key) {
        Some(times) => times.evicted = times.evicted.min(known),
        None => {
            ingest.insert(key.into(), KeyIngest { latest: known, evicted: known });
        }
    }
}

/// Whether the live state drops repeated values on eviction (`KeyHistory::keep_latest_distinct`):
/// for a feature of distinct counts only, unless its table has ingest times. A known-at
/// evaluation counts an earlier occurrence when the later one was not known yet, so it needs
/// every event of the window.
fn drops_repeats(feature: &CompiledFeature) -> bool {
    is_distinct_only(feature) && feature.ingest.is_none()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array};
    use arrow::row::{RowConverter, SortField};

    use super::*;

    fn rows_of(keys: &[i64]) -> Rows {
        let converter = RowConverter::new(vec![SortField::new(arrow::datatypes::DataType::Int64)]).unwrap();
        converter.convert_columns(&[Arc::new(Int64Array::from(keys.to_vec())) as ArrayRef]).unwrap()
    }

    fn hash(rows: &Rows, r: usize) -> u64 {
        GROUPING.hash_one(rows.row(r).as_ref())
    }

    #[test]
    fn the_grouped_order_keeps_each_keys_rows_in_order() {
        let keys: Vec<i64> = (0..5000i64).map(|i| (i * 7919) % 613).collect();
        let rows = rows_of(&keys);
        let order = key_grouped_order((0..keys.len()).collect(), |r| hash(&rows, r), GROUPED_FROM_KEYS);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..keys.len()).collect::<Vec<_>>(), "a permutation of the rows");
        assert_ne!(order, sorted, "grouped, not the written order");
        let mut last_of_key = HashMap::new();
        for row in &order {
            if let Some(previous) = last_of_key.insert(keys[*row], *row) {
                assert!(previous < *row, "key {}: row {row} after {previous}", keys[*row]);
            }
        }
    }

    #[test]
    fn small_writes_and_small_states_keep_the_written_order() {
        let keys: Vec<i64> = (0..5000i64).map(|i| (i * 7919) % 613).collect();
        let rows = rows_of(&keys);
        let identity: Vec<usize> = (0..keys.len()).collect();
        let hash = |r| hash(&rows, r);
        assert_eq!(key_grouped_order(identity.clone(), hash, GROUPED_FROM_KEYS - 1), identity);
        let few = identity[..GROUPED_FROM_ROWS - 1].to_vec();
        assert_eq!(key_grouped_order(few.clone(), hash, GROUPED_FROM_KEYS), few);
    }
}
