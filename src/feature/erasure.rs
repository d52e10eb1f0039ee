//! A feature after an erasure of its table's rows: the keys whose rows went are rebuilt from
//! the rows left, and its snapshot, which may hold erased values, goes with the rows.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};

use super::engine::LiveFeature;
use super::snapshot::SnapshotMeta;
use crate::error::{Error, Result};
use crate::storage::{EventStore, ScanTable, keys};

/// Row-encoded keys of a feature.
pub type EncodedKeys = HashSet<Box<[u8]>>;

impl LiveFeature {
    /// Adds the row-encoded keys of `rows` (rows of the feature's table) to `into`.
    pub fn collect_keys(&self, rows: &RecordBatch, into: &mut EncodedKeys) -> Result<()> {
        let columns: Vec<ArrayRef> = self.compiled.key_columns.iter().map(|i| rows.column(*i).clone()).collect();
        let encoded = self.state.read().encode_keys(&columns)?;
        into.extend(encoded.iter().map(|row| Box::<[u8]>::from(row.as_ref())));
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
        let built = super::sharded_ingest::ingest(&feature.compiled, scan, total, 0, false, &mut |_| Ok(()));
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
    let wanted: Vec<_> = erased.iter().filter(|(_, keys)| !keys.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut parts: Vec<Vec<(RecordBatch, u64)>> = vec![Vec::new(); wanted.len()];
    let mut rows = 0u64;
    for part in store.scan(table, (i64::MIN, i64::MAX), (0, 1)) {
        let part = part?;
        for ((feature, keys), into) in wanted.iter().zip(&mut parts) {
            let columns: Vec<ArrayRef> =
                feature.compiled.key_columns.iter().map(|i| part.batch.column(*i).clone()).collect();
            let encoded = feature.state.read().encode_keys(&columns)?;
            let mine: BooleanArray = encoded.iter().map(|row| Some(keys.contains(row.as_ref()))).collect();
            if mine.true_count() > 0 {
                let batch = arrow::compute::filter_record_batch(&part.batch, &mine)?;
                rows += batch.num_rows() as u64;
                into.push((batch, part.seq));
            }
        }
    }
    for ((feature, keys), parts) in wanted.iter().zip(&parts) {
        let mut state = feature.state.write();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.rebuild_keys(&feature.compiled, keys, parts)
        }));
        applied.unwrap_or_else(|_| Err(Error::internal("rebuilding a feature's keys after an erasure panicked")))?;
    }
    Ok(rows)
}
