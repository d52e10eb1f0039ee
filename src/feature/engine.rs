//! The live features of a database: backfilled when created, restored from their snapshot
//! at startup, updated by every commit before it is acknowledged, and read at the table's
//! watermark.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use parking_lot::{RwLock, RwLockReadGuard};

use super::backfills::{BackfillProgress, Backfills};
use super::def::{CompiledFeature, FeatureDef};
use super::definitions::definition_entry;
use super::sharded_ingest::{self, Ingested, ingest_serial};
use super::snapshot::{self, SnapshotMeta};
use super::state::FeatureState;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::storage::{Commit, EventStore, StoredPart, decode_batch, encode_batch, keys};

/// One feature: its compiled definition and its per-key state.
pub struct LiveFeature {
    pub(super) compiled: CompiledFeature,
    pub(super) state: RwLock<FeatureState>,
    /// Writes numbered below this are in the persisted snapshot (0: no snapshot yet).
    pub(super) snapshot_seq: AtomicU64,
    /// One past the greatest write number applied to the state.
    applied_seq: AtomicU64,
    /// Set when applying a write panicked midway: the state is then incomplete, and is
    /// neither read nor snapshotted again (a restart rebuilds it from the last snapshot and
    /// the stored events). A poisoned std lock did this before the locks were parking_lot's.
    pub(super) broken: AtomicBool,
    /// How the state was obtained at startup or creation, for `asofdb.feature_state`.
    origin: String,
    /// The store holding the feature's table: ASOF joins reaching further back than the
    /// state's horizon read the events from it.
    pub(super) store: Arc<EventStore>,
    /// When the state last changed (µs since the epoch): the last write applied to it, or
    /// the backfill or load that made it (`/metrics` freshness).
    applied_at: AtomicI64,
}

impl LiveFeature {
    /// The definition as bound to its table, and what evaluating it needs.
    pub fn compiled(&self) -> &CompiledFeature {
        &self.compiled
    }

    /// Builds the feature from every stored row of its table (both tiers, in storage order).
    /// `progress(rows done, rows in the table)` is called after each stored block (from 0
    /// again if the rows are read a second time, see `FeatureState::start_from`); an error
    /// from it stops the backfill. With `checked` (CREATE FEATURE), rows its expressions fail
    /// on fail it, as a query over them would (`CompiledFeature::check`); at startup the rows
    /// are taken as they were.
    pub fn backfill(
        def: FeatureDef,
        table: Arc<TableDef>,
        store: &Arc<EventStore>,
        ctx: &SessionContext,
        checked: bool,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<Self> {
        let compiled = CompiledFeature::compile(def, table, ctx)?;
        let stats = store.stats(compiled.table.id);
        // Only the columns the feature reads are decoded from cold files.
        let scan = || store.scan_columns(compiled.table.scan_table(), (i64::MIN, i64::MAX), compiled.columns_read());
        let mut ingest = |max_time| {
            sharded_ingest::ingest(&compiled, scan(), (stats.rows, max_time), 0, checked, &mut |done| {
                progress(done, stats.rows)
            })
        };
        let mut ingested = ingest(stats.watermark)?;
        if stats.watermark.is_some_and(|w| ingested.state.max_time() < w) {
            // The watermark stays above the rows' greatest time after the latest rows are
            // erased by a DELETE of part of the table: the events let go are needed.
            ingested = ingest(None)?;
        }
        let Ingested { mut state, rows, applied, threads } = ingested;
        let origin = sharded_ingest::origin(rows, threads);
        state.shrink_to_fit();
        Ok(Self::new(compiled, state, (0, applied), origin, store.clone()))
    }

    /// Builds a feature while writes go on (CREATE OR REPLACE FEATURE): from the rows written
    /// below `hot_from` (a visible seq, above which tier moves leave rows hot meanwhile), then
    /// from those written since, up to the ones visible now. The writes made after that are
    /// applied by [`LiveFeature::catch_up`], under the commit gate. Every row is checked
    /// (`CompiledFeature::check`); `progress` as for [`LiveFeature::backfill`].
    pub fn build(
        compiled: CompiledFeature,
        store: &Arc<EventStore>,
        hot_from: u64,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<Self> {
        let scan = compiled.table.scan_table();
        let stats = store.stats(compiled.table.id);
        let total = stats.rows;
        let mut ingest = |max_time| -> Result<_> {
            let ingested = sharded_ingest::ingest(
                &compiled,
                store.scan_seqs(scan, 0..hot_from),
                (total, max_time),
                0,
                true,
                &mut |done| progress(done, total),
            )?;
            let Ingested { mut state, rows: before, threads, .. } = ingested;
            let upto = store.visible_seq().max(hot_from);
            let (meanwhile, _) =
                ingest_serial(&compiled, &mut state, store.scan_seqs(scan, hot_from..upto), 0, true, &mut |done| {
                    progress(before + done, total)
                })?;
            Ok((state, sharded_ingest::origin(before + meanwhile, threads), upto))
        };
        let mut built = ingest(stats.watermark)?;
        if stats.watermark.is_some_and(|w| built.0.max_time() < w) {
            // The watermark stays above the rows' greatest time after the latest rows are
            // erased by a DELETE of part of the table: the events let go are needed.
            built = ingest(None)?;
        }
        let (state, origin, upto) = built;
        // Every write of the table below `upto` is in the state.
        Ok(Self::new(compiled, state, (0, upto), origin, store.clone()))
    }

    /// Applies the writes stored since [`LiveFeature::build`] read (every row checked). The
    /// caller holds the commit gate, so afterwards the state holds every write. Returns the
    /// number of rows applied.
    pub fn catch_up(&mut self, store: &EventStore, progress: &BackfillProgress) -> Result<u64> {
        let from = *self.applied_seq.get_mut();
        let state = self.state.get_mut();
        let parts = store.scan_since(self.compiled.table.scan_table(), from);
        let before = progress.done();
        let (rows, applied) =
            ingest_serial(&self.compiled, state, parts, from, true, &mut |done| progress.report(before + done))?;
        state.shrink_to_fit();
        *self.applied_seq.get_mut() = applied.max(store.next_seq()?);
        Ok(rows)
    }

    fn new(
        compiled: CompiledFeature,
        state: FeatureState,
        (snapshot, applied): (u64, u64),
        origin: String,
        store: Arc<EventStore>,
    ) -> Self {
        Self {
            compiled,
            state: RwLock::new(state),
            snapshot_seq: AtomicU64::new(snapshot),
            applied_seq: AtomicU64::new(applied),
            broken: AtomicBool::new(false),
            origin,
            store,
            applied_at: AtomicI64::new(now_micros()),
        }
    }

    /// Opens a persisted feature at startup: loads its snapshot and replays the writes made
    /// after it, or backfills when there is no snapshot.
    pub fn open(def: FeatureDef, table: Arc<TableDef>, store: &Arc<EventStore>, ctx: &SessionContext) -> Result<Self> {
        let meta = SnapshotMeta::read(store, &def.name)?;
        // An older snapshot lacks what known-at joins need of a table with ingest times.
        let stale = |meta: &SnapshotMeta| table.ingest_time.is_some() && meta.format < snapshot::FORMAT;
        let Some(meta) = meta.filter(|meta| !stale(meta)) else {
            return Self::backfill(def, table, store, ctx, false, &mut |_, _| Ok(()));
        };
        let next_seq = meta.next_seq;
        let compiled = CompiledFeature::compile(def, table, ctx)?;
        let mut state = FeatureState::new(&compiled)?;
        meta.for_each_chunk(store, &compiled.def.name, |chunk| {
            snapshot::import(&compiled, &mut state, &decode_batch(chunk)?)
        })?;
        // The snapshot's events end before what its state had seen (rows its WHERE failed,
        // keys with no event left): the horizon follows the table's watermark, as it had.
        state.saw_time(store.stats(compiled.table.id).watermark);
        state.restored(&compiled);
        let parts = store.scan_since(compiled.table.scan_table(), next_seq);
        let (replayed, applied) = ingest_serial(&compiled, &mut state, parts, next_seq, false, &mut |_| Ok(()))?;
        state.evict_due(&compiled);
        state.shrink_to_fit();
        let origin = format!("restored from snapshot at seq {next_seq}, replayed {replayed} rows");
        tracing::info!(feature = %compiled.def.name, "{origin}");
        Ok(Self::new(compiled, state, (next_seq, applied), origin, store.clone()))
    }

    /// Persists the current state as a snapshot, durably. The caller holds the commit gate,
    /// so the state holds exactly the writes numbered below the store's next seq.
    pub async fn write_snapshot(&self, store: &Arc<EventStore>) -> Result<()> {
        self.write_snapshot_with(store, Vec::new()).await
    }

    /// Persists the definition with a snapshot of the state, in one durable switch: the
    /// replacement of CREATE OR REPLACE FEATURE, which a restart finds whole or not at all.
    /// The caller holds the commit gate.
    pub async fn persist_replacement(&self, store: &Arc<EventStore>) -> Result<()> {
        self.write_snapshot_with(store, vec![definition_entry(&self.compiled.def)?]).await
    }

    /// [`LiveFeature::write_snapshot`], with `also` put in the catalog by the same switch.
    ///
    /// The chunks are written under a new generation one at a time, so the snapshot is never
    /// held whole in memory (see [`SnapshotMeta`]); the durable switch to it comes last.
    async fn write_snapshot_with(&self, store: &Arc<EventStore>, also: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let name = &self.compiled.def.name;
        let next_seq = store.next_seq()?;
        let previous = SnapshotMeta::read(store, name)?;
        let generation = previous.map_or(1, |m| m.generation + 1);
        // Only a snapshot interrupted before its switch leaves chunks, all of this generation.
        let interrupted = snapshot::stored_chunk_keys(store, &keys::feature_generation(name, generation))?;
        if !interrupted.is_empty() {
            store.apply(Commit { catalog_deletes: interrupted, ..Default::default() })?;
        }
        let chunks = self.write_chunks(store, generation)?;
        let meta = SnapshotMeta { next_seq, chunks, generation, format: snapshot::FORMAT };
        let mut puts = vec![(keys::feature_snapshot(name), meta.encode())];
        puts.extend(also);
        let switch = Commit {
            catalog_puts: puts,
            catalog_deletes: previous.map(|p| p.chunk_keys(name)).unwrap_or_default(),
            ..Default::default()
        };
        store.commit(switch).await?;
        self.snapshot_seq.store(next_seq, Ordering::SeqCst);
        Ok(())
    }

    /// Writes the current state as the chunks of `generation`, not yet durably. Returns how
    /// many chunks were written.
    fn write_chunks(&self, store: &EventStore, generation: u64) -> Result<u32> {
        let name = &self.compiled.def.name;
        let state = self.state()?;
        let mut chunks = 0u32;
        snapshot::export(&self.compiled, &state, |chunk| {
            let key = keys::feature_state(name, generation, chunks);
            store.apply(Commit { catalog_puts: vec![(key, encode_batch(&chunk)?)], ..Default::default() })?;
            chunks += 1;
            Ok(())
        })?;
        Ok(chunks)
    }

    /// Takes the feature out of service after a replacement whose switch may or may not be
    /// on disk: its state is neither read nor snapshotted again (a restart loads whichever
    /// definition the disk holds).
    pub fn retire(&self) {
        self.broken.store(true, Ordering::SeqCst);
    }

    /// True when writes were applied since the last snapshot.
    pub fn changed_since_snapshot(&self) -> bool {
        let snapshot = self.snapshot_seq.load(Ordering::SeqCst);
        snapshot == 0 || self.applied_seq.load(Ordering::SeqCst) > snapshot
    }

    pub fn snapshot_seq(&self) -> u64 {
        self.snapshot_seq.load(Ordering::SeqCst)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Applies the parts of this feature's table.
    fn apply(&self, parts: &[StoredPart]) -> Result<()> {
        let mut state = self.state.write();
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for part in parts.iter().filter(|p| p.table_id == self.compiled.table.id) {
                state.ingest(&self.compiled, &part.batch, part.seq)?;
                self.applied_seq.fetch_max(part.seq + 1, Ordering::SeqCst);
            }
            Ok(())
        }));
        let applied = applied.unwrap_or_else(|panic| {
            self.broken.store(true, Ordering::SeqCst);
            std::panic::resume_unwind(panic)
        });
        if applied.is_ok() {
            self.applied_at.store(now_micros(), Ordering::Relaxed);
        }
        applied
    }

    /// When the state last changed: the last write applied, or the backfill or load that
    /// made it (µs since the epoch).
    pub fn applied_at(&self) -> i64 {
        self.applied_at.load(Ordering::Relaxed)
    }

    /// The arrival number the next write applied to the state will have.
    pub(super) fn next_seq(&self) -> u64 {
        self.applied_seq.load(Ordering::SeqCst)
    }

    /// The state, to read; an error once it is broken (see `broken`).
    pub(super) fn state(&self) -> Result<RwLockReadGuard<'_, FeatureState>> {
        self.check_whole()?;
        Ok(self.state.read())
    }

    fn check_whole(&self) -> Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(Error::internal(format!(
                "the state of feature \"{}\" is incomplete after an internal error; restart the server to rebuild it",
                self.compiled.def.name
            )));
        }
        Ok(())
    }

    /// (keys, events, approximate bytes) of the state.
    pub fn size(&self) -> (usize, usize, usize) {
        self.state.read().size(&self.compiled)
    }

    /// Values for `keys` (or every key) evaluated at the table's watermark, in the feature's
    /// table schema. Keys with no qualifying event at or before the watermark are left out.
    pub fn read(&self, store: &EventStore, key: Option<&[ScalarValue]>) -> Result<RecordBatch> {
        let schema = self.compiled.schema.clone();
        let Some(watermark) = store.stats(self.compiled.table.id).watermark else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let state = self.state()?;
        let wanted = key.map(|key| state.encode_key(key)).transpose()?;
        let (key_columns, histories): (Vec<ArrayRef>, Vec<_>) = match (key, &wanted) {
            (Some(key), Some(encoded)) => match state.encoded(encoded) {
                Some(h) => {
                    let columns = key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?;
                    (columns, vec![(encoded.as_slice(), h)])
                }
                None => return Ok(RecordBatch::new_empty(schema)),
            },
            _ => state.all()?,
        };
        let mut rows = Vec::with_capacity(histories.len());
        let mut keep = Vec::with_capacity(histories.len());
        for (i, (encoded, history)) in histories.iter().enumerate() {
            if let Some(mut values) = history.evaluate(&self.compiled, watermark, false)? {
                state.show_latest_ingest(&self.compiled, encoded, &mut values);
                rows.push(values);
                keep.push(i as u32);
            }
        }
        let indices = arrow::array::UInt32Array::from(keep);
        let keys: Vec<ArrayRef> = key_columns
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        self.compiled.batch(keys, &rows, vec![watermark; rows.len()])
    }

    /// One key's values at the table's watermark, for a point read. Unlike
    /// [`LiveFeature::read`], it does not wait while a write is being applied to the state
    /// ([`PointValue::Busy`]): the connection threads answer point reads, and a wait there would
    /// hold up every connection they serve.
    pub fn read_now(&self, store: &EventStore, key: &[ScalarValue]) -> Result<PointValue> {
        self.read_point(store, key, false)
    }

    /// [`LiveFeature::read_now`], or with `wait` the same read waiting while a write is
    /// being applied (never [`PointValue::Busy`]; call it off the connection threads).
    pub fn read_point(&self, store: &EventStore, key: &[ScalarValue], wait: bool) -> Result<PointValue> {
        let Some(watermark) = store.stats(self.compiled.table.id).watermark else {
            return Ok(PointValue::Missing);
        };
        self.check_whole()?;
        let state = match wait {
            true => self.state.read(),
            false => match self.state.try_read() {
                Some(state) => state,
                None => return Ok(PointValue::Busy),
            },
        };
        let encoded = state.encode_key(key)?;
        let Some(history) = state.encoded(&encoded) else { return Ok(PointValue::Missing) };
        Ok(match history.evaluate(&self.compiled, watermark, false)? {
            Some(mut values) => {
                state.show_latest_ingest(&self.compiled, &encoded, &mut values);
                PointValue::Row { values, time: watermark }
            }
            None => PointValue::Missing,
        })
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// One key's answer to [`LiveFeature::read_now`].
pub enum PointValue {
    /// The key's values, evaluated at `time`.
    Row { values: Vec<ScalarValue>, time: i64 },
    /// No row: the key has no qualifying event.
    Missing,
    /// A write is being applied; ask again, or read with [`LiveFeature::read`].
    Busy,
}

/// Writes of at least this many rows update features in parallel.
const PARALLEL_ROWS: usize = 10_000;

/// Every live feature, by name.
#[derive(Default)]
pub struct FeatureEngine {
    features: RwLock<BTreeMap<String, Arc<LiveFeature>>>,
    /// Counts features registered and removed (`Database::generation`).
    changes: std::sync::atomic::AtomicU64,
    backfills: Backfills,
}

impl std::fmt::Debug for FeatureEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureEngine").field("features", &self.names()).finish()
    }
}

impl FeatureEngine {
    pub fn get(&self, name: &str) -> Option<Arc<LiveFeature>> {
        self.features.read().get(name).cloned()
    }

    /// The backfills since the server started.
    pub fn backfills(&self) -> &Backfills {
        &self.backfills
    }

    /// The seq below which tier moves may take rows of `table_id`: every feature's snapshot
    /// holds them (a restart never replays a cold row), and no running replacement still
    /// reads them from the hot tier. `visible`: the store's visible seq.
    pub fn tier_bound(&self, table_id: u64, visible: u64) -> u64 {
        let snapshots = self.all().iter().filter(|f| f.compiled.table.id == table_id).map(|f| f.snapshot_seq()).min();
        [Some(visible), snapshots, self.backfills.hot_from(table_id)].into_iter().flatten().min().unwrap_or(visible)
    }

    pub fn names(&self) -> Vec<String> {
        self.features.read().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<LiveFeature>> {
        self.features.read().values().cloned().collect()
    }

    /// Names of the features reading table `table`.
    pub fn reading(&self, table: &str) -> Vec<String> {
        self.all().iter().filter(|f| f.compiled.table.name == table).map(|f| f.compiled.def.name.clone()).collect()
    }

    pub fn insert(&self, feature: LiveFeature) -> Result<()> {
        let mut features = self.features.write();
        features.insert(feature.compiled.def.name.clone(), Arc::new(feature));
        drop(features);
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.features.write().remove(name);
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many times a feature was registered or removed.
    pub fn generation(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Raises the error any feature of table `table_id` would raise on `batch`, rows about to
    /// be written to it (`CompiledFeature::check`): run before they commit.
    pub fn check(&self, table_id: u64, batch: &arrow::array::RecordBatch) -> Result<()> {
        self.all().iter().filter(|f| f.compiled.table.id == table_id).try_for_each(|f| f.compiled.check(batch))
    }

    /// Applies committed rows to every feature of their tables. Large writes (COPY) update
    /// the features in parallel, one thread each; small ones inline, as a thread would cost
    /// more than the update.
    pub fn on_commit(&self, parts: &[StoredPart]) -> Result<()> {
        let rows: usize = parts.iter().map(|p| p.batch.num_rows()).sum();
        if rows == 0 {
            return Ok(());
        }
        let features: Vec<Arc<LiveFeature>> =
            self.all().into_iter().filter(|f| parts.iter().any(|p| p.table_id == f.compiled.table.id)).collect();
        if rows < PARALLEL_ROWS || features.len() < 2 {
            return features.iter().try_for_each(|f| f.apply(parts));
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = features.iter().map(|f| scope.spawn(|| f.apply(parts))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::internal("feature update panicked"))))
                .collect::<Result<Vec<()>>>()
                .map(|_| ())
        })
    }
}
