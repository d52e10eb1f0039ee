//! A feature after an erasure of its table's rows: the keys whose rows went are rebuilt from
//! the rows left, and its snapshot, which may hold erased values, goes with the rows.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};

use super::engine::LiveFeature;
use super::snapshot::SnapshotMeta;
use crate::error::{Error, Result};
use crate::storage::{EventStore, keys};

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

    /// The catalog entries of the feature's persisted snapshot: an erasure removes them in
    /// its switch, so no restart loads erased values (it rebuilds from the rows left).
    pub fn snapshot_entries(&self, store: &EventStore) -> Result<Vec<Vec<u8>>> {
        let name = &self.compiled.def.name;
        Ok(match SnapshotMeta::read(store, name)? {
            Some(meta) => [vec![keys::feature_snapshot(name)], meta.chunk_keys(name)].concat(),
            None => Vec::new(),
        })
    }

    /// After an erasure's switch (the caller holding the commit gate): the keys in `erased`
    /// hold what their rows still stored make, read from both tiers; the feature has no
    /// snapshot until the next checkpoint. On an error the feature is taken out of service
    /// (a restart rebuilds it). Returns the rows read again.
    pub fn rebuild_erased_keys(&self, store: &EventStore, erased: &EncodedKeys) -> Result<u64> {
        self.snapshot_seq.store(0, Ordering::SeqCst);
        let rebuilt = self.rebuild(store, erased);
        if rebuilt.is_err() {
            self.broken.store(true, Ordering::SeqCst);
        }
        rebuilt
    }

    fn rebuild(&self, store: &EventStore, erased: &EncodedKeys) -> Result<u64> {
        if erased.is_empty() {
            return Ok(0);
        }
        let mut parts = Vec::new();
        let mut rows = 0u64;
        let scan = store.scan(self.compiled.table.scan_table(), (i64::MIN, i64::MAX), (0, 1));
        for part in scan {
            let part = part?;
            let columns: Vec<ArrayRef> =
                self.compiled.key_columns.iter().map(|i| part.batch.column(*i).clone()).collect();
            let encoded = self.state.read().encode_keys(&columns)?;
            let wanted: BooleanArray = encoded.iter().map(|row| Some(erased.contains(row.as_ref()))).collect();
            if wanted.true_count() == 0 {
                continue;
            }
            let batch = arrow::compute::filter_record_batch(&part.batch, &wanted)?;
            rows += batch.num_rows() as u64;
            parts.push((batch, part.seq));
        }
        let mut state = self.state.write();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            state.rebuild_keys(&self.compiled, erased, &parts)
        }));
        applied.unwrap_or_else(|_| Err(Error::internal("rebuilding a feature's keys after an erasure panicked")))?;
        Ok(rows)
    }
}
