//! A feature after an erasure of its table's rows: the keys whose rows went are rebuilt from
//! the rows left, and its snapshot, which may hold erased values, goes with the rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, InListExpr};

use super::def::CompiledFeature;
use super::engine::LiveFeature;
use super::snapshot::SnapshotMeta;
use super::state::FeatureState;
use crate::error::{Error, Result};
use crate::storage::blocks::{block_of, event_times};
use crate::storage::{EventStore, ScanTable, keys};

/// Row-encoded keys of a feature whose rows an erasure took, each with the earliest event
/// time among those rows.
pub type EncodedKeys = HashMap<Box<[u8]>, i64>;

impl LiveFeature {
    /// Adds the row-encoded keys of `rows` (rows of the feature's table, of which only the
    /// key and event-time columns are read) to `into`, with their earliest event times.
    pub fn collect_keys(&self, rows: &RecordBatch, into: &mut EncodedKeys) -> Result<()> {
        let columns: Vec<ArrayRef> = self.compiled.key_columns.iter().map(|i| rows.column(*i).clone()).collect();
        let encoded = self.state.read().encode_keys(&columns)?;
        let times = event_times(rows.column(self.compiled.event_time))?;
        for (row, t) in encoded.iter().zip(times.values()) {
            let earliest = into.entry(Box::from(row.as_ref())).or_insert(*t);
            *earliest = (*earliest).min(*t);
        }
        Ok(())
    }

    /// The catalog entries of the feature's persisted snapshots: an erasure removes them in
    /// its switch, so no restart loads erased values (it rebuilds from the rows left). Every
    /// stored chunk goes, an interrupted snapshot's too (it may hold erased values as well).
    pub fn snapshot_entries(&self, store: &EventStore) -> Result<Vec<Vec<u8>>> {
        let name = &self.compiled.def.name;
        let mut entries = super::snapshot::stored_chunk_keys(store, &keys::feature_state_prefix(name))?;
        if SnapshotMeta::read(store, name)?.is_some() {
            entries.push(keys::feature_snapshot(name));
        }
        Ok(entries)
    }

    /// Takes the feature out of service after an erasure whose switch may have landed while
    /// its keys were not rebuilt: neither read nor snapshotted again until a restart rebuilds
    /// it from the rows.
    pub fn break_after_erasure(&self) {
        self.snapshot_seq.store(0, Ordering::SeqCst);
        self.broken.store(true, Ordering::SeqCst);
    }
}

/// After an erasure's switch (the caller holding the commit gate): each feature's keys in its
/// set hold what their rows still stored make, read from both tiers in one scan of `table`;
/// the features have no snapshot until the next checkpoint. On an error every one of them is
/// taken out of service (a restart rebuilds them). Returns the rows read again.
pub fn rebuild_erased_keys(
    store: &EventStore,
    table: ScanTable,
    erased: &[(Arc<LiveFeature>, EncodedKeys)],
) -> Result<u64> {
    erased.iter().for_each(|(feature, _)| feature.snapshot_seq.store(0, Ordering::SeqCst));
    let rebuilt = rebuild(store, table, erased);
    if rebuilt.is_err() {
        erased.iter().for_each(|(feature, _)| feature.broken.store(true, Ordering::SeqCst));
    }
    rebuilt
}

/// After an erasure that lowered the table's watermark (the caller holding the commit gate):
/// every feature over it is built again from all of its rows, as a backfill builds it. Its
/// state had moved its horizon with the erased rows' times and dropped what windows ending
/// at the new watermark need. On an error every one is taken out of service. Returns the
/// rows read.
pub fn rebuild_whole(store: &EventStore, features: &[Arc<LiveFeature>]) -> Result<u64> {
    features.iter().for_each(|f| f.snapshot_seq.store(0, Ordering::SeqCst));
    let mut rows = 0;
    for feature in features {
        let scan = store.scan(feature.compiled.table.scan_table(), (i64::MIN, i64::MAX), (0, 1));
        let total = store.stats(feature.compiled.table.id).rows;
        let built = super::sharded_ingest::ingest(&feature.compiled, scan, (total, None), 0, false, &mut |_| Ok(()));
        match built {
            Ok(mut built) => {
                built.state.shrink_to_fit();
                rows += built.rows;
                *feature.state.write() = built.state;
            }
            Err(e) => {
                features.iter().for_each(|f| f.broken.store(true, Ordering::SeqCst));
                return Err(e);
            }
        }
    }
    Ok(rows)
}

fn rebuild(store: &EventStore, table: ScanTable, erased: &[(Arc<LiveFeature>, EncodedKeys)]) -> Result<u64> {
    let mut plans: Vec<Rebuild> = erased
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(feature, keys)| Rebuild::new(feature, keys))
        .collect::<Result<_>>()?;
    // The features that need every row share one scan; the others one from the earliest of
    // their horizons. Each reads only the columns its features read.
    let mut rows = 0u64;
    for whole in [true, false] {
        let group: Vec<usize> = (0..plans.len()).filter(|i| plans[*i].whole == whole).collect();
        let Some(from) = group.iter().map(|i| plans[*i].from).min() else { continue };
        let columns = group.iter().flat_map(|i| plans[*i].feature.compiled.columns_read()).collect();
        for part in store.scan_columns(table, (from, i64::MAX), columns) {
            let part = part?;
            for i in &group {
                let plan = &mut plans[*i];
                if let Some(batch) = plan.wanted.rows_of(&part.batch, &plan.feature.state.read())? {
                    rows += batch.num_rows() as u64;
                    plan.parts.push((batch, part.seq));
                }
            }
        }
    }
    plans.iter().try_for_each(Rebuild::apply)?;
    Ok(rows)
}

/// One feature's part of [`rebuild_erased_keys`]. Its state holds no event older than its
/// horizon, only each key's first event time: unless an erased row may have been a key's
/// first, or the state keeps every event (session and lifetime windows) or ingest times, the
/// rows older than the horizon are not read, and the keys keep the first times they had.
struct Rebuild<'a> {
    feature: &'a LiveFeature,
    keys: &'a EncodedKeys,
    /// Whether every row is read (else those from the block of `from` on).
    whole: bool,
    from: i64,
    /// The keys' first event times, kept (when not `whole`).
    firsts: Vec<(Box<[u8]>, i64)>,
    wanted: KeyFilter<'a>,
    /// The keys' rows read, with their seqs.
    parts: Vec<(RecordBatch, u64)>,
}

impl<'a> Rebuild<'a> {
    fn new(feature: &'a LiveFeature, keys: &'a EncodedKeys) -> Result<Self> {
        let compiled = &feature.compiled;
        let state = feature.state.read();
        // A key the state lacks had no row passing the feature's WHERE, and still has none.
        let first_may_go = keys.iter().any(|(key, earliest)| {
            state.encoded(key).is_some_and(|history| history.first().is_none_or(|first| first >= *earliest))
        });
        let whole = compiled.lookback().is_none() || compiled.ingest.is_some() || first_may_go;
        let firsts = match whole {
            true => Vec::new(),
            false => keys
                .keys()
                .filter_map(|key| Some((key.clone(), state.encoded(key).and_then(|history| history.first())?)))
                .collect(),
        };
        Ok(Self {
            feature,
            keys,
            whole,
            from: if whole { i64::MIN } else { block_of(state.horizon()) },
            firsts,
            wanted: KeyFilter::new(compiled, &state, keys)?,
            parts: Vec::new(),
        })
    }

    /// The feature's keys hold what their rows read make.
    fn apply(&self) -> Result<()> {
        let key_set: HashSet<Box<[u8]>> = self.keys.keys().cloned().collect();
        let mut state = self.feature.state.write();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.rebuild_keys(&self.feature.compiled, &key_set, &self.parts)?;
            // Their rows before the horizon were not read: each keeps the first time it had.
            self.firsts.iter().for_each(|(key, first)| state.add_key(key, Some(*first)));
            Ok(())
        }));
        applied.unwrap_or_else(|_| Err(Error::internal("rebuilding a feature's keys after an erasure panicked")))
    }
}

/// Picks a feature's rows of a set of keys out of batches of its table's rows: a set lookup
/// of the first key column's values sifts the rows, the row-encoded keys of those left decide.
struct KeyFilter<'a> {
    key_columns: &'a [usize],
    keys: &'a EncodedKeys,
    /// `first key column IN (the keys' values)`, built once.
    sift: Arc<dyn PhysicalExpr>,
    /// Whether some key's first column is NULL (which IN never matches).
    null_key: bool,
}

impl<'a> KeyFilter<'a> {
    fn new(compiled: &'a CompiledFeature, state: &FeatureState, keys: &'a EncodedKeys) -> Result<Self> {
        let decoded = state.decode_keys(keys.keys().map(|k| k.as_ref()))?;
        let first_values = decoded.into_iter().next().ok_or_else(|| Error::internal("a feature without keys"))?;
        let first = compiled.key_columns[0];
        let schema = compiled.table.schema();
        let column = Column::new(schema.field(first).name(), first);
        let null_key = first_values.null_count() > 0;
        let sift = Arc::new(InListExpr::try_new_from_array(Arc::new(column), first_values, false, &schema)?);
        Ok(Self { key_columns: &compiled.key_columns, keys, sift, null_key })
    }

    /// The rows of `batch` whose key is one of the set, if any.
    fn rows_of(&self, batch: &RecordBatch, state: &FeatureState) -> Result<Option<RecordBatch>> {
        let mut maybe = match self.sift.evaluate(batch)?.into_array(batch.num_rows())?.as_boolean_opt() {
            Some(maybe) if maybe.null_count() > 0 => prep_null_mask_filter(maybe),
            Some(maybe) => maybe.clone(),
            None => return Err(Error::internal("a key sift that is not boolean")),
        };
        if self.null_key {
            maybe = arrow::compute::or(&maybe, &arrow::compute::is_null(batch.column(self.key_columns[0]))?)?;
        }
        if maybe.true_count() == 0 {
            return Ok(None);
        }
        let batch = filter_record_batch(batch, &maybe)?;
        let columns: Vec<ArrayRef> = self.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        let encoded = state.encode_keys(&columns)?;
        let mine: BooleanArray = encoded.iter().map(|row| Some(self.keys.contains_key(row.as_ref()))).collect();
        Ok((mine.true_count() > 0).then(|| filter_record_batch(&batch, &mine)).transpose()?)
    }
}
