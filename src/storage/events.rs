//! The event store: atomic commits of rows and catalog changes, scans by table and time.
//!
//! Every statement's effect (rows appended to one or more tables, catalog entries written or
//! removed, statistics updated) becomes one `KvStore` batch, so a crash leaves all of it or
//! none. Commits are serialized by a short in-memory lock (sequence numbers, statistics) and
//! then wait for durability outside it, where concurrent commits share flushes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak, mpsc};

use parking_lot::{Mutex, RwLock};

use arrow::array::RecordBatch;

use super::blocks::{SMALL_BATCH_ROWS, StoredPart, can_name, encode_batch, encode_named, event_times, split_by_block};
use super::cold::{ColdStore, Manifest};
use super::keys;
use super::staged_records::{self, StagedCommit};
use super::{KvOp, KvStore};
use crate::error::{Error, Result};

/// Per-table statistics kept current by every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Greatest event time ingested so far (µs since the epoch), if any row has one.
    pub watermark: Option<i64>,
    /// Number of rows stored.
    pub rows: u64,
}

impl TableStats {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(self.watermark.is_some() as u8);
        out.extend_from_slice(&self.watermark.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&self.rows.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 17 {
            return Err(Error::Storage("corrupt table statistics".into()));
        }
        let watermark = i64::from_be_bytes(bytes[1..9].try_into().unwrap_or_default());
        let rows = u64::from_be_bytes(bytes[9..17].try_into().unwrap_or_default());
        Ok(TableStats { watermark: (bytes[0] == 1).then_some(watermark), rows })
    }
}

/// The kinds of catalog entries.
#[derive(Debug, Clone, Copy)]
pub enum CatalogKind {
    Table,
    Feature,
    /// A source's definition (`catalog::SourceDef`).
    Source,
    /// Where a source is (`catalog::SourcePosition`), written with the rows it read.
    SourcePosition,
    /// A source's bad messages (`catalog::SourceError`), keyed by source name, 0, number.
    SourceError,
    /// A role (`catalog::RoleDef`).
    Role,
    /// The privileges granted on one object (`catalog::Grants`).
    Grants,
}

impl CatalogKind {
    fn prefix(self) -> &'static [u8] {
        match self {
            CatalogKind::Table => keys::CATALOG_TABLE,
            CatalogKind::Feature => keys::CATALOG_FEATURE,
            CatalogKind::Source => keys::CATALOG_SOURCE,
            CatalogKind::SourcePosition => keys::CATALOG_SOURCE_POSITION,
            CatalogKind::SourceError => keys::CATALOG_SOURCE_ERROR,
            CatalogKind::Role => keys::CATALOG_ROLE,
            CatalogKind::Grants => keys::CATALOG_GRANTS,
        }
    }

    /// The storage key of the entry named `name`.
    pub fn key(self, name: &str) -> Vec<u8> {
        [self.prefix(), name.as_bytes()].concat()
    }

    /// The key of entry `number` of a numbered family `name` (a source's errors); the
    /// family's keys sort by number and start with [`CatalogKind::numbered_prefix`].
    pub fn numbered_key(self, name: &str, number: u64) -> Vec<u8> {
        [self.numbered_prefix(name).as_slice(), &number.to_be_bytes()].concat()
    }

    pub fn numbered_prefix(self, name: &str) -> Vec<u8> {
        [self.prefix(), name.as_bytes(), &[0]].concat()
    }
}

/// Rows to append to one table.
pub struct Append {
    pub table_id: u64,
    /// Index of the event-time column, which must be a non-null µs timestamp.
    pub event_time: Option<usize>,
    pub batch: RecordBatch,
}

/// Everything one statement (or one transaction) changes, applied atomically.
#[derive(Default)]
pub struct Commit {
    pub appends: Vec<Append>,
    /// Catalog entries to write (keys from `storage::catalog_key`).
    pub catalog_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Catalog entries to remove.
    pub catalog_deletes: Vec<Vec<u8>>,
    /// Tables whose rows and statistics are removed.
    pub dropped_tables: Vec<u64>,
    /// A staged write to commit (`staging`).
    pub staged: Option<StagedCommit>,
}

pub(super) struct Counters {
    pub(super) next_seq: u64,
    next_table_id: u64,
    pub(super) next_file: u64,
}

/// Rows and catalog entries on top of a [`KvStore`], and the cold tier's files.
pub struct EventStore {
    pub(super) kv: Arc<dyn KvStore>,
    pub(super) counters: Mutex<Counters>,
    pub(super) stats: RwLock<HashMap<u64, TableStats>>,
    /// The queue of the committer thread, started by the first commit.
    pub(super) committer: OnceLock<mpsc::Sender<CommitJob>>,
    /// Where cold files go; `None` keeps everything hot (in-memory databases).
    pub(super) cold: Option<Arc<ColdStore>>,
    /// The current manifest version; scans hold the version they started with.
    manifest: RwLock<Arc<Manifest>>,
    /// Earlier versions still held by a scan: their files and hot rows must stay.
    pub(super) retired: Mutex<Vec<Weak<Manifest>>>,
    /// Serializes moves, compactions and garbage collection.
    pub(super) tiering: Mutex<()>,
    /// See [`EventStore::visible_seq`].
    pub(super) visible_seq: std::sync::atomic::AtomicU64,
    /// Checked before new rows are written (commits and staged COPY pieces).
    pub(super) reserve: super::DiskReserve,
    /// Each table's current columns, for rows stored before some were added (`widen`).
    pub(super) columns: RwLock<HashMap<u64, Arc<super::widen::TableColumns>>>,
    /// Commit times for tables with an ingest-time column.
    pub(super) ingest_clock: super::ingest_time::IngestClock,
    /// The schemas small writes name by id.
    pub(super) schema_ids: super::schema_ids::SchemaIds,
    /// The database's metrics (`crate::metrics`); the committer records its groups here.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A commit waiting for the committer thread, and where to send its outcome.
pub(super) type CommitJob = (Commit, tokio::sync::oneshot::Sender<Result<Applied>>);

/// What applying a commit wrote: the appended rows, and the (block, seq) of each piece of a
/// staged write it committed.
#[derive(Default)]
pub(super) struct Applied {
    pub parts: Vec<StoredPart>,
    pub moved: Vec<(i64, u64)>,
}

pub(super) const SEQ: &str = "seq";
const TABLE_ID: &str = "table_id";
pub(super) const FILE_NO: &str = "file_no";
/// The last commit time stamped on rows (`ingest_time`), so a restart never goes below it.
pub(super) const INGEST_CLOCK: &str = "ingest_clock";

impl EventStore {
    /// Opens the store, loading counters, statistics and the cold-tier manifest.
    pub fn open(kv: Arc<dyn KvStore>, cold: Option<Arc<ColdStore>>, reserve: super::DiskReserve) -> Result<Self> {
        staged_records::recover(kv.as_ref())?;
        let merge_epoch = super::merge_records::recover(kv.as_ref())?;
        let read_counter = |name: &str| -> Result<u64> {
            Ok(match kv.get(&keys::counter(name))? {
                Some(v) => {
                    u64::from_be_bytes(v.as_slice().try_into().map_err(|_| Error::Storage("corrupt counter".into()))?)
                }
                None => 1,
            })
        };
        let counters = Counters {
            next_seq: read_counter(SEQ)?,
            next_table_id: read_counter(TABLE_ID)?,
            next_file: read_counter(FILE_NO)?,
        };
        let ingest_clock = super::ingest_time::IngestClock::starting_at(read_counter(INGEST_CLOCK)? as i64);
        let mut stats = HashMap::new();
        for pair in kv.scan(keys::STATS, &keys::prefix_end(keys::STATS)) {
            let (key, value) = pair?;
            let id = u64::from_be_bytes(key[1..].try_into().map_err(|_| Error::Storage("corrupt stats key".into()))?);
            stats.insert(id, TableStats::decode(&value)?);
        }
        let files: Vec<Vec<u8>> = kv
            .scan(keys::COLD_FILE, &keys::prefix_end(keys::COLD_FILE))
            .map(|p| p.map(|(_, v)| v.to_vec()))
            .collect::<Result<_>>()?;
        let mut marks = Vec::new();
        for pair in kv.scan(keys::TIER_MARK, &keys::prefix_end(keys::TIER_MARK)) {
            let (key, value) = pair?;
            let id = keys::parse_tier_mark(&key).ok_or_else(|| Error::Storage("corrupt tier mark key".into()))?;
            marks.push((id, value.to_vec()));
        }
        let manifest = Manifest::load(&files, &marks, merge_epoch)?;
        let schema_ids = super::schema_ids::SchemaIds::load(kv.as_ref())?;
        let visible_seq = std::sync::atomic::AtomicU64::new(counters.next_seq);
        Ok(Self {
            kv,
            counters: Mutex::new(counters),
            stats: RwLock::new(stats),
            committer: OnceLock::new(),
            cold,
            manifest: RwLock::new(Arc::new(manifest)),
            retired: Mutex::new(Vec::new()),
            tiering: Mutex::new(()),
            visible_seq,
            reserve,
            columns: RwLock::new(HashMap::new()),
            ingest_clock,
            schema_ids,
            metrics: Arc::default(),
        })
    }

    /// The free-space reserve of the data directory's disk (for checks outside storage).
    pub fn disk_reserve(&self) -> &super::DiskReserve {
        &self.reserve
    }

    /// Where the cold tier is, if there is one.
    pub fn cold_location(&self) -> Option<String> {
        self.cold.as_ref().map(|c| c.location())
    }

    /// The directory of a local cold tier.
    pub fn cold_root(&self) -> Option<std::path::PathBuf> {
        self.cold.as_ref().and_then(|c| c.local_root().map(|p| p.to_path_buf()))
    }

    /// The current manifest version.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest.read().clone()
    }

    /// Installs a new manifest version, keeping track of the old one while scans hold it.
    pub(super) fn publish(&self, change: impl FnOnce(&mut Manifest)) -> Result<()> {
        let mut current = self.manifest.write();
        let mut next = Manifest::clone(&current);
        change(&mut next);
        let old = std::mem::replace(&mut *current, Arc::new(next));
        self.retired.lock().push(Arc::downgrade(&old));
        Ok(())
    }

    /// Applies `ops` atomically unless one of `tables` was dropped meanwhile (checked under
    /// the commit lock, so no drop interleaves). Returns whether it applied.
    pub(super) fn apply_if_tables_exist(
        &self,
        tables: &[u64],
        ops: Vec<KvOp>,
        publish: impl FnOnce(&mut Manifest),
    ) -> Result<bool> {
        let _counters = self.counters.lock();
        let stats = self.stats.read();
        if !tables.iter().all(|t| stats.contains_key(t)) {
            return Ok(false);
        }
        self.kv.apply(ops)?;
        self.publish(publish)?;
        Ok(true)
    }

    /// Makes every applied batch durable.
    pub(super) fn sync(&self) -> Result<()> {
        self.kv.sync()
    }

    /// Reserves a table id. The reservation is persisted by the next commit.
    pub fn allocate_table_id(&self) -> Result<u64> {
        let mut counters = self.counters.lock();
        let id = counters.next_table_id;
        counters.next_table_id += 1;
        Ok(id)
    }

    /// Every catalog entry of one kind, in name order.
    pub fn catalog_entries(&self, kind: CatalogKind) -> Result<Vec<Vec<u8>>> {
        let prefix = kind.prefix();
        self.kv.scan(prefix, &keys::prefix_end(prefix)).map(|pair| pair.map(|(_, v)| v.to_vec())).collect()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv.get(key)
    }

    /// Every stored pair whose key starts with `prefix`, in key order.
    pub fn entries(&self, prefix: &[u8]) -> Result<Vec<super::KvPair>> {
        self.scan_prefix(prefix).collect()
    }

    /// Every stored pair whose key starts with `prefix`, in key order, one at a time.
    pub fn scan_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Result<super::KvPair>> + use<> {
        self.kv.scan(prefix, &keys::prefix_end(prefix))
    }

    /// The sequence number the next write will get: every write so far has a smaller one.
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.counters.lock().next_seq)
    }

    /// Statistics of a table (zero if it has no rows).
    pub fn stats(&self, table_id: u64) -> TableStats {
        self.stats.read().get(&table_id).copied().unwrap_or_default()
    }

    /// Applies `commit` atomically without waiting for durability (blocking call). Returns the
    /// appended rows as stored: one part per table and block, with its arrival sequence.
    pub fn apply(&self, commit: Commit) -> Result<Vec<StoredPart>> {
        Ok(self.apply_all(commit)?.parts)
    }

    /// Seqs from this one on belong to writes not yet wholly visible (a staged write moving
    /// into place): scans skip them.
    pub fn visible_seq(&self) -> u64 {
        self.visible_seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(super) fn apply_all(&self, commit: Commit) -> Result<Applied> {
        let mut counters = self.counters.lock();
        let mut stats = self.stats.write();
        let mut ops = Vec::new();
        let mut parts = Vec::new();
        let mut new_stats: HashMap<u64, TableStats> = HashMap::new();
        let mut next_seq = counters.next_seq;
        let mut new_schemas = Vec::new();

        for append in &commit.appends {
            if append.batch.num_rows() == 0 {
                continue;
            }
            let entry = new_stats
                .entry(append.table_id)
                .or_insert_with(|| stats.get(&append.table_id).copied().unwrap_or_default());
            count_append(append, entry)?;
            self.append_ops(append, &mut next_seq, &mut ops, &mut new_schemas, &mut parts)?;
        }
        let staged = commit.staged.map(|staged| {
            let entry = new_stats
                .entry(staged.table_id)
                .or_insert_with(|| stats.get(&staged.table_id).copied().unwrap_or_default());
            entry.rows += staged.rows;
            if let Some(max) = staged.watermark {
                entry.watermark = Some(entry.watermark.map_or(max, |w| w.max(max)));
            }
            ops.push(staged_records::record(&staged, next_seq));
            let first = next_seq;
            next_seq += staged.pieces as u64;
            (staged, first)
        });
        for (key, entry) in &commit.catalog_puts {
            ops.push(KvOp::Put(key.clone(), entry.clone()));
        }
        for key in &commit.catalog_deletes {
            ops.push(KvOp::Delete(key.clone()));
        }
        for table_id in &commit.dropped_tables {
            let start = keys::events_from(*table_id, i64::MIN);
            let end = keys::events_until(*table_id, i64::MAX);
            for pair in self.kv.scan(&start, &end) {
                let (key, value) = pair?;
                ops.extend(super::hot_value::deletes(self.kv.as_ref(), key, &value)?);
            }
            ops.push(KvOp::Delete(keys::stats(*table_id)));
            let files = keys::cold_files_of(*table_id);
            for pair in self.kv.scan(&files, &keys::prefix_end(&files)) {
                ops.push(KvOp::Delete(pair?.0));
            }
            ops.push(KvOp::Delete(keys::tier_mark(*table_id)));
            let merging = keys::merging_of(*table_id);
            for pair in self.kv.scan(&merging, &keys::prefix_end(&merging)) {
                ops.push(KvOp::Delete(pair?.0));
            }
            new_stats.remove(table_id);
        }
        bookkeeping_ops(&new_stats, next_seq, &counters, &mut ops);

        self.kv.apply(ops)?;
        self.schema_ids.stored(&new_schemas);

        counters.next_seq = next_seq;
        for table_id in &commit.dropped_tables {
            stats.remove(table_id);
        }
        if !commit.dropped_tables.is_empty() {
            // The dropped tables' cold files become orphans, removed by the next collection.
            self.publish(|m| commit.dropped_tables.iter().for_each(|t| m.drop_table(*t)))?;
        }
        stats.extend(new_stats);
        drop(stats);
        drop(counters);
        // No scan reads the seqs of a staged write until all of its pieces are in place.
        let moved = match staged {
            Some((staged, first)) => staged_records::roll_forward(self.kv.as_ref(), staged.id, staged.table_id, first)?,
            None => Vec::new(),
        };
        self.visible_seq.fetch_max(next_seq, std::sync::atomic::Ordering::SeqCst);
        Ok(Applied { parts, moved })
    }
}

/// The puts that end every commit's batch: the changed tables' statistics and the counters.
pub(super) fn bookkeeping_ops(
    new_stats: &HashMap<u64, TableStats>,
    next_seq: u64,
    counters: &Counters,
    ops: &mut Vec<KvOp>,
) {
    for (table_id, s) in new_stats {
        ops.push(KvOp::Put(keys::stats(*table_id), s.encode()));
    }
    ops.push(KvOp::Put(keys::counter(SEQ), next_seq.to_be_bytes().to_vec()));
    ops.push(KvOp::Put(keys::counter(TABLE_ID), counters.next_table_id.to_be_bytes().to_vec()));
}

/// Adds an append's rows and greatest event time to its table's statistics.
pub(super) fn count_append(append: &Append, stats: &mut TableStats) -> Result<()> {
    stats.rows += append.batch.num_rows() as u64;
    if let Some(col) = append.event_time {
        let times = event_times(append.batch.column(col))?;
        if let Some(max) = times.values().iter().max() {
            stats.watermark = Some(stats.watermark.map_or(*max, |w| w.max(*max)));
        }
    }
    Ok(())
}

impl EventStore {
    /// The puts that store an append, one part per block of event time, numbered from
    /// `next_seq`; a part of a few rows names its schema (`schema_ids`), whose record joins
    /// `ops` and `new_schemas` the first time.
    pub(super) fn append_ops(
        &self,
        append: &Append,
        next_seq: &mut u64,
        ops: &mut Vec<KvOp>,
        new_schemas: &mut super::schema_ids::NewSchemas,
        parts: &mut Vec<StoredPart>,
    ) -> Result<()> {
        for (block, part) in split_by_block(&append.batch, append.event_time)? {
            let small = part.num_rows() < SMALL_BATCH_ROWS && can_name(&part.schema());
            let id = small.then(|| self.schema_ids.name(&part.schema(), ops, new_schemas)).flatten();
            let value = match id.map(|id| encode_named(&part, id)).transpose()?.flatten() {
                Some(value) => value,
                None => encode_batch(&part)?,
            };
            ops.push(KvOp::Put(keys::event(append.table_id, block, *next_seq), value));
            parts.push(StoredPart { table_id: append.table_id, seq: *next_seq, batch: part });
            *next_seq += 1;
        }
        Ok(())
    }

    /// Records table `id`'s current columns (`None` when it is dropped).
    pub fn set_columns(&self, id: u64, columns: Option<super::widen::TableColumns>) {
        let mut tables = self.columns.write();
        match columns {
            Some(columns) => tables.insert(id, Arc::new(columns)),
            None => tables.remove(&id),
        };
    }

    /// `batch` of table `id` with the columns added since it was conformed (a write whose
    /// rows were built before an ADD COLUMN, committed after it).
    pub fn widen(&self, id: u64, batch: RecordBatch) -> Result<RecordBatch> {
        super::widen::widen(&self.columns_of(id), batch)
    }

    /// What reads of table `id` widen its stored rows to.
    pub(super) fn columns_of(&self, id: u64) -> Option<Arc<super::widen::TableColumns>> {
        self.columns.read().get(&id).cloned()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::storage::blocks::tests::rows;
    use crate::storage::{BLOCK_MICROS, MemoryKv, ScanTable};

    pub(crate) fn count(store: &EventStore, table: u64) -> usize {
        store
            .scan(ScanTable { id: table, event_time: Some(1) }, (i64::MIN, i64::MAX), (0, 1))
            .map(|b| b.unwrap().batch.num_rows())
            .sum()
    }

    #[tokio::test]
    async fn commits_update_rows_stats_and_survive_reopen() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let store = Arc::new(EventStore::open(kv.clone(), None, crate::storage::DiskReserve::none()).unwrap());
        let t = store.allocate_table_id().unwrap();
        let append = |times| Append { table_id: t, event_time: Some(1), batch: rows(times) };
        store.commit(Commit { appends: vec![append(vec![5, BLOCK_MICROS * 3])], ..Default::default() }).await.unwrap();
        store.commit(Commit { appends: vec![append(vec![7])], ..Default::default() }).await.unwrap();
        assert_eq!(store.stats(t), TableStats { watermark: Some(BLOCK_MICROS * 3), rows: 3 });
        assert_eq!(count(&store, t), 3);
        let table = ScanTable { id: t, event_time: Some(1) };
        assert_eq!(store.scan(table, (1, 3), (0, 1)).count(), 1, "time range selects blocks");

        let reopened = EventStore::open(kv, None, crate::storage::DiskReserve::none()).unwrap();
        assert_eq!(reopened.stats(t).rows, 3);
        assert!(reopened.allocate_table_id().unwrap() > t);
        reopened.apply(Commit { dropped_tables: vec![t], ..Default::default() }).unwrap();
        assert_eq!(count(&reopened, t), 0);
        assert_eq!(reopened.stats(t), TableStats::default());
    }
}
