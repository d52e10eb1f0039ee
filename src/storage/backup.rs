//! Online backup of the store: a copy of it as it was at one seq, taken while commits go on,
//! and restoring a backup into a new data directory.
//!
//! A backup is a data directory of its own (`hot/`, a sled tree; `cold/`, the cold files its
//! manifest names) plus `backup.json`, written last: a directory without it is not a backup,
//! and [`restore`] refuses it.
//!
//! Consistency, in two steps:
//! 1. With the counters lock held, no commit is between taking its seqs and writing its batch
//!    (both happen under it). Everything that is not an event row is copied then (catalog,
//!    statistics, counters, feature snapshots, source positions, the cold manifest), and the
//!    next seq S is taken: the backup is the store as it was after the commits below S.
//! 2. Then the event rows with a seq below S are copied, while new commits (seq S and up) go
//!    on. Nothing may change a stored row below S meanwhile: the tiering lock, held for the
//!    whole backup, keeps moves, merges and collection out, and the caller keeps out DROP
//!    TABLE (which deletes rows). Staged writes move into place under seqs from S on.
//!
//! Staged pieces of writes not yet committed are not copied. A merge whose inputs were not yet
//! deleted is copied with its inputs and record, and the restored store finishes it at open.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::cold::{ColdFile, ColdStore};
use super::events::{EventStore, SEQ};
use super::hot::SledKv;
use super::{KvOp, KvStore, keys};
use crate::error::{Error, Result, SqlState};

/// The file that marks a finished backup.
pub const MARKER: &str = "backup.json";
/// The layout version `backup.json` names; [`restore`] refuses others.
const FORMAT: u32 = 1;
/// Bytes of values gathered into one batch of the backup's hot tier.
const BATCH_BYTES: usize = 8 << 20;

/// What a backup holds (the contents of `backup.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    pub format: u32,
    /// Every commit with a seq below this is in the backup; none from it on.
    pub next_seq: u64,
    /// Entries of the hot tier copied (event values, their bodies, catalog and state).
    pub hot_entries: u64,
    pub hot_bytes: u64,
    pub cold_files: u64,
    pub cold_bytes: u64,
    /// The version of asofdb that wrote it.
    pub version: String,
    /// When it finished, RFC 3339.
    pub finished_at: String,
    pub seconds: f64,
}

/// Writes entries into the backup's hot tier in batches.
struct Copier {
    kv: SledKv,
    batch: Vec<KvOp>,
    batch_bytes: usize,
    entries: u64,
    bytes: u64,
}

impl Copier {
    fn put(&mut self, key: Vec<u8>, value: &[u8]) -> Result<()> {
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
        self.batch_bytes += key.len() + value.len();
        self.batch.push(KvOp::Put(key, value.to_vec()));
        if self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.batch_bytes = 0;
        self.kv.apply(std::mem::take(&mut self.batch))
    }

    /// Copies every pair of `source` in `start..end` that `keep` accepts.
    fn copy_range(
        &mut self,
        source: &dyn KvStore,
        (start, end): (&[u8], &[u8]),
        keep: impl Fn(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        for pair in source.scan(start, end) {
            let (key, value) = pair?;
            if keep(&key)? {
                self.put(key, &value)?;
            }
        }
        Ok(())
    }
}

/// The key ranges copied in step 1: everything but event values, their bodies and staging.
fn state_ranges() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (Vec::new(), keys::BODY.to_vec()),
        (keys::prefix_end(keys::BODY), keys::EVENTS.to_vec()),
        (keys::prefix_end(keys::EVENTS), keys::ROLLING.to_vec()),
        (keys::prefix_end(keys::ROLLING), keys::STAGED.to_vec()),
        (keys::prefix_end(keys::STAGED), vec![u8::MAX; 4]),
    ]
}

impl EventStore {
    /// Copies the store into `dest` (an empty directory) as it is now; `captured` is called
    /// once the seq the backup stops at is fixed, and from then on commits may go on. The
    /// caller keeps DROP TABLE out for the whole call, and holds commits (so no staged write
    /// is moving into place) until `captured`. Blocking.
    pub fn backup(&self, dest: &Path, captured: impl FnOnce()) -> Result<BackupReport> {
        let started = Instant::now();
        let _tiering = self.tiering.lock();
        let kv = SledKv::open(&dest.join("hot"), Some(64 << 20))?;
        let mut copier = Copier { kv, batch: Vec::new(), batch_bytes: 0, entries: 0, bytes: 0 };
        let (next_seq, manifest) = {
            let counters = self.counters.lock();
            // A staged write's record is written with its seqs and removed once its rows are
            // in place. The caller's commit gate keeps one from moving now: a record is left
            // only by a failed write, whose rows the next open moves.
            if self.kv.scan(keys::ROLLING, &keys::prefix_end(keys::ROLLING)).next().is_some() {
                return Err(Error::Storage(
                    "a COPY's rows are not all in place after an earlier failure: restart the server, then back up"
                        .into(),
                ));
            }
            for (start, end) in state_ranges() {
                copier.copy_range(self.kv.as_ref(), (&start, &end), |_| Ok(true))?;
            }
            (counters.next_seq, self.manifest())
        };
        // What the backup holds is durable here too before anyone hears of it.
        self.sync()?;
        captured();
        let below = |key: &[u8]| -> Result<bool> {
            let parsed = keys::parse_event(key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
            Ok(parsed.seq < next_seq)
        };
        let events_end = keys::prefix_end(keys::EVENTS);
        copier.copy_range(self.kv.as_ref(), (keys::EVENTS, &events_end), below)?;
        // A body's key is its merged value's key with `b` for `e` (33 bytes), then a chunk
        // number, if any.
        let bodies_end = keys::prefix_end(keys::BODY);
        copier.copy_range(self.kv.as_ref(), (keys::BODY, &bodies_end), |key| {
            below(&[keys::EVENTS, key.get(1..33).unwrap_or_default()].concat())
        })?;
        copier.flush()?;
        copier.kv.sync()?;
        let (hot_entries, hot_bytes) = (copier.entries, copier.bytes);
        drop(copier);
        let (cold_files, cold_bytes) = self.copy_cold_files(manifest.all_files(), &dest.join("cold"))?;
        // The files are synced; their directory entries too, before the marker says so.
        sync_tree(dest)?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        let report = BackupReport {
            format: FORMAT,
            next_seq,
            hot_entries,
            hot_bytes,
            cold_files,
            cold_bytes,
            version: env!("CARGO_PKG_VERSION").to_string(),
            finished_at: chrono::Utc::now().to_rfc3339(),
            seconds: started.elapsed().as_secs_f64(),
        };
        write_durably(&dest.join(MARKER), &serde_json::to_vec_pretty(&report)?)?;
        Ok(report)
    }

    /// Copies `files` from the cold tier into a local cold tier at `to`, under the same
    /// paths (stored as the original's local tier would store them), durably.
    fn copy_cold_files<'a>(&self, files: impl Iterator<Item = &'a ColdFile>, to: &Path) -> Result<(u64, u64)> {
        let target = ColdStore::local(to.to_path_buf())?;
        let (mut count, mut bytes) = (0, 0);
        for file in files {
            let cold = self.cold.as_ref().ok_or_else(|| Error::Storage("cold files but no cold tier".into()))?;
            let data = cold.get(&file.path)?;
            bytes += data.len() as u64;
            target.put(&file.path, data.to_vec())?;
            count += 1;
        }
        Ok((count, bytes))
    }
}

/// Writes `bytes` to `path` (creating its directory) through a temporary name, fsynced, so
/// a crash leaves the whole file or none.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::internal("a file path without a directory"))?;
    std::fs::create_dir_all(dir)?;
    let staging = path.with_extension("partial");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&staging, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Fsyncs `dir` and every directory below it (their entries; files are synced when written).
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}

/// Whether `dir` may receive a backup or a restore: missing, or an empty directory.
pub fn check_empty(dir: &Path) -> Result<()> {
    let refuse = |why: &str| Err(Error::invalid_input(SqlState::DuplicateFile, format!("\"{}\" {why}", dir.display())));
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => refuse("exists and is not empty"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => refuse("exists and is not a directory"),
        Err(e) => Err(e.into()),
    }
}

/// What `from/backup.json` says, or why `from` is not a finished backup.
pub fn read_marker(from: &Path) -> Result<BackupReport> {
    let marker = from.join(MARKER);
    let text = std::fs::read(&marker).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => format!("it has no {MARKER}: the backup did not finish"),
            _ => format!("cannot read {}: {e}", marker.display()),
        };
        Error::invalid_input(SqlState::UndefinedFile, format!("\"{}\" is not a backup: {why}", from.display()))
    })?;
    let report: BackupReport = serde_json::from_slice(&text)
        .map_err(|e| Error::Storage(format!("{} is not a backup marker: {e}", marker.display())))?;
    if report.format != FORMAT {
        return Err(Error::unsupported(format!(
            "backup format {} (written by asofdb {}) is not format {FORMAT}, which this asofdb reads",
            report.format, report.version
        )));
    }
    Ok(report)
}

/// Makes the data directory `data_dir` (missing or empty) from the finished backup `from`:
/// its hot tier and cold files, copied durably and checked against `backup.json`. The backup
/// is left as it was; a restore that fails removes what it made.
pub fn restore(from: &Path, data_dir: &Path) -> Result<BackupReport> {
    let report = read_marker(from)?;
    if !from.join("hot").is_dir() {
        let message = format!("\"{}\" is not a backup: it has no hot/ directory", from.display());
        return Err(Error::invalid_input(SqlState::UndefinedFile, message));
    }
    check_empty(data_dir)?;
    let existed = data_dir.exists();
    let made = copy_backup(from, data_dir, &report);
    if made.is_err() {
        for tier in ["hot", "cold"] {
            let _ = std::fs::remove_dir_all(data_dir.join(tier));
        }
        if !existed {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    made.map(|()| report)
}

fn copy_backup(from: &Path, data_dir: &Path, report: &BackupReport) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    copy_tree(&from.join("hot"), &data_dir.join("hot"))?;
    let cold = from.join("cold");
    if cold.exists() {
        copy_tree(&cold, &data_dir.join("cold"))?;
    }
    sync_dir(data_dir)?;
    if let Some(parent) = data_dir.parent() {
        sync_dir(parent)?;
    }
    // What was copied is what the backup wrote.
    let kv = SledKv::open(&data_dir.join("hot"), Some(16 << 20))?;
    let entries = kv.scan(&[], &[u8::MAX; 4]).try_fold(0u64, |n, pair| pair.map(|_| n + 1))?;
    let seq = kv.get(&keys::counter(SEQ))?.and_then(|v| keys::be_u64(&v, 0)).unwrap_or(1);
    let cold_files = count_files(&data_dir.join("cold"), ".parquet")?;
    if (entries, seq, cold_files) != (report.hot_entries, report.next_seq, report.cold_files) {
        return Err(Error::Storage(format!(
            "the restored copy holds {entries} hot entries up to seq {seq} and {cold_files} cold files, \
             but {MARKER} says {} up to seq {} and {}",
            report.hot_entries, report.next_seq, report.cold_files
        )));
    }
    Ok(())
}

/// Files below `dir` whose name ends with `suffix` (0 if `dir` is missing).
fn count_files(dir: &Path, suffix: &str) -> Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut count = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            count += count_files(&entry.path(), suffix)?;
        } else if entry.file_name().to_string_lossy().ends_with(suffix) {
            count += 1;
        }
    }
    Ok(count)
}

/// Copies the directory tree `from` to `to`, fsyncing every file and directory.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        }
    }
    sync_dir(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_ranges_leave_out_exactly_rows_bodies_and_staging() {
        let copied = |key: &[u8]| state_ranges().iter().any(|(s, e)| key >= s.as_slice() && key < e.as_slice());
        for kept in [keys::schema(1), keys::counter("seq"), keys::stats(3), keys::feature_snapshot("f")] {
            assert!(copied(&kept), "{kept:?}");
        }
        let merging = keys::merging(&keys::EventKey { table_id: 1, block: 0, seq: 5, merge: 1 });
        assert!(copied(&merging) && copied(&keys::cold_file(1, 0, 1)) && copied(&keys::tier_mark(1)));
        for left in [keys::event(1, 0, 5), keys::body(&keys::EventKey { table_id: 1, block: 0, seq: 5, merge: 1 })] {
            assert!(!copied(&left), "{left:?}");
        }
        assert!(!copied(&keys::staged(1, 0)) && !copied(&keys::rolling(1)));
    }

    #[test]
    fn a_backup_holds_exactly_the_writes_before_its_seq_while_writes_go_on() {
        use crate::storage::blocks::tests::rows;
        use crate::storage::{Append, Commit, DiskReserve, MemoryKv, ScanTable};
        use arrow::array::{Array, Int64Array};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        let store = Arc::new(EventStore::open(Arc::new(MemoryKv::new()), None, DiskReserve::none()).unwrap());
        let t = store.allocate_table_id().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // (value, seq) of every write, one row each, by a writer that runs throughout.
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut written = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) && written.len() > 2000 {
                        break;
                    }
                    let append = Append { table_id: t, event_time: Some(1), batch: rows(vec![i * 1_000_000]) };
                    let parts = store.apply(Commit { appends: vec![append], ..Default::default() }).unwrap();
                    written.push((i * 1_000_000, parts[0].seq));
                }
                written
            })
        };
        while store.next_seq().unwrap() < 1000 {
            std::thread::yield_now();
        }
        let dest = tempfile::tempdir().unwrap();
        let report = store.backup(dest.path(), || {}).unwrap();
        stop.store(true, Ordering::SeqCst);
        let written = writer.join().unwrap();

        let restored = tempfile::tempdir().unwrap();
        restore(dest.path(), &restored.path().join("data")).unwrap();
        let kv = Arc::new(SledKv::open(&restored.path().join("data/hot"), None).unwrap());
        let copy = EventStore::open(kv, None, DiskReserve::none()).unwrap();
        let mut got = Vec::new();
        for part in copy.scan(ScanTable { id: t, event_time: Some(1) }, (i64::MIN, i64::MAX), (0, 1)) {
            let batch = part.unwrap().batch;
            let values = batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
            got.extend((0..values.len()).map(|i| values.value(i)));
        }
        got.sort_unstable();
        let want: Vec<i64> = written.iter().filter(|(_, seq)| *seq < report.next_seq).map(|(v, _)| *v).collect();
        assert!(want.len() >= 1000 && want.len() < written.len(), "{} of {}", want.len(), written.len());
        assert_eq!(got, want);
        assert_eq!(copy.next_seq().unwrap(), report.next_seq);
    }

    #[test]
    fn a_directory_that_holds_anything_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_empty(dir.path()).is_ok() && check_empty(&dir.path().join("new")).is_ok());
        std::fs::write(dir.path().join("x"), b"").unwrap();
        assert_eq!(check_empty(dir.path()).unwrap_err().sqlstate(), "58P02");
        assert_eq!(check_empty(&dir.path().join("x")).unwrap_err().sqlstate(), "58P02");
        assert_eq!(read_marker(dir.path()).unwrap_err().sqlstate(), "58P01");
    }
}
