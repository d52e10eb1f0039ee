//! Moving rows from the hot tier to cold Parquet files, compacting files, collecting garbage.
//!
//! A move (one table): read the hot rows the new [`TierMark`] covers and the old one did not,
//! write one Parquet file per day, fsync them, then record the files and the new mark in one
//! atomic, synced hot-tier batch, and publish the new manifest version. Hot copies of moved
//! rows are deleted later, once every live version's mark covers them. A crash before the batch
//! leaves orphan files (deleted by the next collection) and every row still hot; after it,
//! every moved row is read from its file and skipped in the hot tier. See docs/storage.md.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};

use arrow::array::RecordBatch;

use super::blocks::block_of;
use super::cold::file::FileWriter;
use super::cold::{ColdFile, ColdStore, Manifest, TierMark, day_of, file, merge};
use super::events::{EventStore, FILE_NO};
use super::hot_value::{self, HotValue};
use super::{KvOp, keys};
use crate::error::{Error, Result};

/// What tiering needs to know about a table.
#[derive(Debug, Clone)]
pub struct TierTable {
    pub id: u64,
    /// The table's name: its directory in the cold tier.
    pub name: String,
    pub event_time: usize,
}

/// A table to move, and up to where.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub table: TierTable,
    /// Rows with an earlier event time go cold ...
    pub before_time: i64,
    /// ... if they were written with a smaller sequence number (every feature's snapshot
    /// holds them, so no restart ever needs to replay a cold row).
    pub below_seq: u64,
}

/// What a move or compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierReport {
    pub rows_moved: u64,
    pub files_written: u64,
    pub files_compacted: u64,
    /// Hot values merged into larger ones (`compaction`).
    pub hot_values_merged: u64,
    /// Rows erased because their table's retention expired them (`execute::retention`).
    pub rows_expired: u64,
}

/// Per tier: rows, files (hot: stored values) and bytes of a table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierUsage {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Compaction merges a day's files while together they hold at most this many rows.
const COMPACT_MAX_ROWS: u64 = 4 << 20;

/// `YYYY-MM-DD` of a day number.
fn date_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map_or_else(|| format!("day{day}"), |t| t.format("%Y-%m-%d").to_string())
}

/// What [`EventStore::merge_files`] did.
enum Merged {
    /// The files were replaced by this many (0 or 1).
    Installed(u64),
    /// The files store different columns (from before and after an ADD COLUMN): untouched.
    SchemasDiffer,
    /// The table was dropped meanwhile.
    TableDropped,
}

impl EventStore {
    /// Moves the rows `request` assigns to the cold tier there. Blocking; serialized with other
    /// tiering work. A table without a cold tier configured, or with nothing to move, is a no-op.
    pub fn move_to_cold(&self, request: &MoveRequest) -> Result<TierReport> {
        let Some(cold) = self.cold.clone() else { return Ok(TierReport::default()) };
        let _tiering = self.tiering.lock();
        let table = &request.table;
        let old = self.manifest().mark(table.id);
        let new = TierMark { below_seq: request.below_seq, before_time: request.before_time };
        if new.below_seq < old.below_seq || new.before_time < old.before_time || new == old {
            // Marks only grow (the latest mark must describe every move so far).
            return Ok(TierReport::default());
        }

        let mut files = Vec::new();
        // Keys sort by block (an hour of event time), and a block holds only its hour's rows:
        // rows are sorted a block at a time and added to their day's file, which is written
        // once the scan leaves the day. One block's rows and one encoded file are held.
        let mut day_file: Option<(i64, FileWriter)> = None;
        let mut block_rows: Option<(i64, Vec<RecordBatch>)> = None;
        let mut add_block = |(block, batches): (i64, Vec<RecordBatch>)| -> Result<()> {
            let day = day_of(block * super::BLOCK_MICROS);
            if let Some((done, writer)) = day_file.take_if(|(current, _)| *current != day) {
                // Rows of a file take a sequence number below every row left hot and above
                // every earlier file of the day (module docs of storage::cold::manifest).
                files.push(self.install_file(&cold, table, done, new.below_seq - 1, writer)?);
            }
            let (_, writer) = match &mut day_file {
                Some(open) => open,
                None => day_file.insert((day, FileWriter::new(batches[0].schema(), table.event_time)?)),
            };
            writer.add_sorting(&batches)
        };
        let (start, end) =
            (keys::events_from(table.id, i64::MIN), keys::events_until(table.id, block_of(new.before_time - 1)));
        let manifest = self.manifest();
        // Blocks may hold rows from before and after an ADD COLUMN: a file has one schema.
        let columns = self.columns_of(table.id);
        for pair in self.kv.scan(&start, &end) {
            let (key, value) = pair?;
            let key = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
            if !manifest.merges.shows(&key)
                || !new.touches_block(hot_value::first_seq(&key, &value)?, key.block)
                || old.covers_block(key.seq, key.block)
            {
                continue;
            }
            // Gone: the table was dropped meanwhile (collection runs under the tiering lock).
            let Some(value) = HotValue::read(key, &value, self.kv.as_ref())? else { continue };
            let (newly, before) = (value.moved_rows(table.event_time, new)?, value.moved_rows(table.event_time, old)?);
            let rows = match value.filter(&arrow::compute::and_not(&newly, &before)?)? {
                Some(rows) => super::widen::widen(&columns, rows.batch)?,
                None => continue,
            };
            let block = key.block;
            if let Some(done) = block_rows.take_if(|(current, _)| *current != block) {
                add_block(done)?;
            }
            block_rows.get_or_insert_with(|| (block, Vec::new())).1.push(rows);
        }
        if let Some(done) = block_rows.take() {
            add_block(done)?;
        }
        if let Some((day, writer)) = day_file.take() {
            files.push(self.install_file(&cold, table, day, new.below_seq - 1, writer)?);
        }
        let report = TierReport {
            rows_moved: files.iter().map(|f| f.rows).sum(),
            files_written: files.len() as u64,
            ..TierReport::default()
        };

        let mut ops: Vec<KvOp> = files
            .iter()
            .map(|f| Ok(KvOp::Put(keys::cold_file(f.table_id, f.day, f.file_no), super::cold::encode(f)?)))
            .collect::<Result<_>>()?;
        ops.push(KvOp::Put(keys::tier_mark(table.id), super::cold::encode(&new)?));
        ops.push(self.file_counter()?);
        let installed = self.apply_if_tables_exist(&[table.id], ops, |m| {
            files.iter().for_each(|f| m.add(f.clone()));
            m.set_mark(table.id, new);
        })?;
        if !installed {
            // Dropped meanwhile: the files are orphans already.
            return Ok(TierReport::default());
        }
        self.sync()?;
        Ok(report)
    }

    /// Finishes `writer`'s file of `table`'s rows of `day` and stores it as a new cold file,
    /// durably (not yet named by the manifest).
    pub(super) fn install_file(
        &self,
        cold: &super::cold::ColdStore,
        table: &TierTable,
        day: i64,
        seq: u64,
        writer: FileWriter,
    ) -> Result<ColdFile> {
        let encoded = writer.finish()?;
        let size = encoded.bytes.len() as u64;
        // A local cold tier shares the disk with sled, which must never find it full.
        if cold.is_local() {
            self.reserve.check_for_maintenance(size)?;
        }
        let file_no = {
            let mut counters = self.counters.lock();
            counters.next_file += 1;
            counters.next_file - 1
        };
        let path = format!("{}/{}/{file_no:020}.parquet", table.name, date_of(day));
        cold.put(&path, encoded.bytes)?;
        Ok(ColdFile {
            table_id: table.id,
            day,
            file_no,
            path,
            rows: encoded.rows,
            bytes: size,
            min_time: encoded.min_time,
            max_time: encoded.max_time,
            seq,
            erased: Vec::new(),
        })
    }

    /// The write that persists the file-number counter (after files were numbered).
    fn file_counter(&self) -> Result<KvOp> {
        let next = self.counters.lock().next_file;
        Ok(KvOp::Put(keys::counter(FILE_NO), next.to_be_bytes().to_vec()))
    }

    /// Merges the files of each day that has several into one (late rows make small files),
    /// and writes each file holding erased rows again without them.
    pub fn compact(&self, table: &TierTable) -> Result<TierReport> {
        self.rewrite_files(table, true)
    }

    /// Writes each file of `table` holding erased rows again without them (a backup's first
    /// step: it copies no erased row).
    pub fn purge_erased(&self, table: &TierTable) -> Result<TierReport> {
        self.rewrite_files(table, false)
    }

    fn rewrite_files(&self, table: &TierTable, merge_days: bool) -> Result<TierReport> {
        let Some(cold) = self.cold.clone() else { return Ok(TierReport::default()) };
        let _tiering = self.tiering.lock();
        let manifest = self.manifest();
        let mut days: BTreeMap<i64, Vec<ColdFile>> = BTreeMap::new();
        for f in manifest.files(table.id) {
            days.entry(f.day).or_default().push(f.clone());
        }
        let mut report = TierReport::default();
        for (day, group) in days {
            if merge_days && group.len() >= 2 && group.iter().map(|f| f.rows).sum::<u64>() <= COMPACT_MAX_ROWS {
                match self.merge_files(&cold, table, day, &group)? {
                    Merged::Installed(written) => {
                        report.files_compacted += group.len() as u64;
                        report.files_written += written;
                        continue;
                    }
                    Merged::TableDropped => return Ok(report),
                    Merged::SchemasDiffer => {}
                }
            }
            for f in group.into_iter().filter(|f| !f.erased.is_empty()) {
                match self.merge_files(&cold, table, day, std::slice::from_ref(&f))? {
                    Merged::Installed(written) => {
                        report.files_compacted += 1;
                        report.files_written += written;
                    }
                    Merged::TableDropped => return Ok(report),
                    Merged::SchemasDiffer => {}
                }
            }
        }
        Ok(report)
    }

    /// Writes the rows of `group` (files of one day, in arrival order), less their erased
    /// rows, as one file in their place (none if no row is left). The caller holds the
    /// tiering lock.
    fn merge_files(&self, cold: &ColdStore, table: &TierTable, day: i64, group: &[ColdFile]) -> Result<Merged> {
        // Each file is sorted by time: a merge holds one slice of each, not the files whole.
        let (schemas, inputs): (Vec<_>, Vec<_>) = group
            .iter()
            .map(|f| file::read(cold.get(&f.path)?, &f.erased))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        if schemas.iter().any(|s| s.fields().len() != schemas[0].fields().len()) {
            // Files from before and after an ADD COLUMN stay apart (reads widen each).
            return Ok(Merged::SchemasDiffer);
        }
        let mut writer = FileWriter::new(schemas[0].clone(), table.event_time)?;
        merge::merge_sorted(inputs, table.event_time, &mut writer)?;
        let seq = group.iter().map(|f| f.seq).max().unwrap_or(0);
        let merged = match writer.is_empty() {
            true => None,
            false => Some(self.install_file(cold, table, day, seq, writer)?),
        };
        let mut ops: Vec<KvOp> =
            group.iter().map(|f| KvOp::Delete(keys::cold_file(f.table_id, f.day, f.file_no))).collect();
        if let Some(merged) = &merged {
            ops.push(KvOp::Put(keys::cold_file(table.id, day, merged.file_no), super::cold::encode(merged)?));
        }
        ops.push(self.file_counter()?);
        let installed = self.apply_if_tables_exist(&[table.id], ops, |m| {
            group.iter().for_each(|f| m.remove(f));
            if let Some(merged) = &merged {
                m.add(merged.clone());
            }
        })?;
        if !installed {
            return Ok(Merged::TableDropped);
        }
        self.sync()?;
        Ok(Merged::Installed(u64::from(merged.is_some())))
    }

    /// Deletes what no reader can need any more: hot copies of rows that every live manifest
    /// version holds in its files, and files no live version names. Scans of older versions
    /// keep what they read: a hot row goes only once the oldest live version's mark covers it.
    /// `event_time_of` gives the event-time column of a table (partly moved values are trimmed).
    pub fn collect_garbage(&self, event_time_of: &dyn Fn(u64) -> Option<usize>) -> Result<()> {
        let _tiering = self.tiering.lock();
        // The current version first, then the retired ones: with the tiering lock held, a
        // version published in between can only remove files (a drop), and the version it
        // retires is the one read here, so no version a scan may hold is missed.
        let manifest = self.manifest();
        let older: Vec<Arc<Manifest>> = {
            let mut retired = self.retired.lock();
            retired.retain(|v| v.strong_count() > 0);
            retired.iter().filter_map(Weak::upgrade).collect()
        };
        // Inputs of merges every live version knows.
        let oldest_epoch = older.iter().map(|v| v.merges.epoch).fold(manifest.merges.epoch, u64::min);
        self.settle_merges(oldest_epoch)?;
        // Hot copies of moved rows, table by table.
        let tables: HashSet<u64> = manifest.all_files().map(|f| f.table_id).collect();
        for table_id in tables {
            // Marks only grow, so what the oldest live version covers, every live one does.
            let mark = older.iter().map(|v| v.mark(table_id)).fold(manifest.mark(table_id), TierMark::meet);
            let Some(col) = event_time_of(table_id) else { continue };
            let mut ops = Vec::new();
            let end = keys::events_until(table_id, block_of(mark.before_time.saturating_sub(1)));
            for pair in self.kv.scan(&keys::events_from(table_id, i64::MIN), &end) {
                let (key, value) = pair?;
                let parsed = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
                if mark.covers_block(parsed.seq, parsed.block) {
                    ops.extend(hot_value::deletes(self.kv.as_ref(), key, &value)?);
                } else if mark.touches_block(hot_value::first_seq(&parsed, &value)?, parsed.block) {
                    ops.extend(trimmed(parsed, &value, self.kv.as_ref(), col, mark)?);
                }
            }
            if !ops.is_empty() {
                self.apply_if_tables_exist(&[table_id], ops, |_| {})?;
            }
        }
        // Files no live version names (crashed moves, compacted or dropped files).
        if let Some(cold) = &self.cold {
            let named: HashSet<&str> =
                std::iter::once(&manifest).chain(&older).flat_map(|v| v.all_files()).map(|f| f.path.as_str()).collect();
            for path in cold.list()? {
                if path.ends_with(".parquet") && !named.contains(path.as_str()) {
                    cold.delete(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Rows, files and bytes of a table in each tier: (hot, cold).
    pub fn tier_usage(&self, table_id: u64) -> Result<(TierUsage, TierUsage)> {
        let manifest = self.manifest();
        let mut cold = TierUsage::default();
        for f in manifest.files(table_id) {
            cold.rows += f.live_rows();
            cold.files += 1;
            cold.bytes += f.bytes;
        }
        let mark = manifest.mark(table_id);
        let mut hot = TierUsage { rows: self.stats(table_id).rows.saturating_sub(cold.rows), ..Default::default() };
        let (start, end) = (keys::events_from(table_id, i64::MIN), keys::events_until(table_id, i64::MAX));
        for pair in self.kv.scan(&start, &end) {
            let (key, value) = pair?;
            let key = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
            if manifest.merges.shows(&key) && !mark.covers_block(key.seq, key.block) {
                hot.files += 1;
                hot.bytes += hot_value::stored_len(&key, &value)?;
            }
        }
        Ok((hot, cold))
    }
}

/// The operations that drop the moved rows of a partly moved hot value (none if it has none).
fn trimmed(
    key: keys::EventKey,
    value: &[u8],
    kv: &dyn super::KvStore,
    event_time: usize,
    mark: TierMark,
) -> Result<Vec<KvOp>> {
    let Some(decoded) = HotValue::read(key, value, kv)? else { return Ok(Vec::new()) };
    Ok(match decoded.still_hot(event_time, mark)? {
        Some(kept) if kept.batch.num_rows() == decoded.batch.num_rows() => Vec::new(),
        // A shorter body has fewer chunks: the old ones go, and the puts after replace the rest.
        Some(kept) => [hot_value::deletes(kv, key.encode(), value)?, kept.puts()?].concat(),
        None => hot_value::deletes(kv, key.encode(), value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blocks::tests::rows;
    use crate::storage::cold::ColdStore;
    use crate::storage::events::tests::count;
    use crate::storage::events::{Append, Commit};
    use crate::storage::{BLOCK_MICROS, DiskReserve, KvStore, MemoryKv, ScanTable};

    const DAY: i64 = 24 * BLOCK_MICROS;

    /// Stored hot values of a table, whether or not a mark covers them.
    fn hot_values(store: &EventStore, t: u64) -> usize {
        store.kv.scan(&keys::events_from(t, i64::MIN), &keys::events_until(t, i64::MAX)).count()
    }

    #[tokio::test]
    async fn collection_keeps_what_held_versions_read_and_frees_the_rest() {
        // A table's name is its files' folder; object_store encodes some of its characters.
        for name in ["t", "a~b%c#d"] {
            collection_case(name).await;
        }
    }

    async fn collection_case(name: &str) {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let cold = Arc::new(ColdStore::local(dir.path().to_path_buf()).unwrap());
        let store = Arc::new(EventStore::open(kv, Some(cold), DiskReserve::none()).unwrap());
        let t = store.allocate_table_id().unwrap();
        // One write per day, days 0 to 3.
        for day in 0..4 {
            let batch = rows(vec![day * DAY + 1, day * DAY + 2]);
            store
                .commit(Commit {
                    appends: vec![Append { table_id: t, event_time: Some(1), batch }],
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let table = TierTable { id: t, name: name.into(), event_time: 1 };
        let move_before = |days: i64| {
            let request = MoveRequest { table: table.clone(), before_time: days * DAY, below_seq: store.visible_seq() };
            store.move_to_cold(&request).unwrap()
        };
        let scan = || store.scan(ScanTable { id: t, event_time: Some(1) }, (i64::MIN, i64::MAX), (0, 1));
        let gc = || store.collect_garbage(&|_| Some(1)).unwrap();

        // A scan from before any move holds everything hot.
        let held = scan();
        assert_eq!(move_before(1).rows_moved, 2);
        gc();
        assert_eq!(hot_values(&store, t), 4);
        assert_eq!(held.map(|p| p.unwrap().batch.num_rows()).sum::<usize>(), 8);

        // A scan of the first move's version holds days 1 to 3 hot, not day 0.
        let held = scan();
        assert_eq!(move_before(3).rows_moved, 4);
        gc();
        assert_eq!(hot_values(&store, t), 3, "day 0 collected while an older scan runs");
        assert_eq!(held.map(|p| p.unwrap().batch.num_rows()).sum::<usize>(), 8);

        gc();
        assert_eq!(hot_values(&store, t), 1, "only day 3 left once no scan holds an old version");
        assert_eq!(count(&store, t), 8);
    }
}
