//! Erasure: the rows of a table a predicate matches leave both tiers in one atomic switch
//! (`DELETE FROM t WHERE ...`, retention).
//!
//! 1. Every cold file of the table holding a matching row, read with only the columns the
//!    predicate needs, gets a new entry listing the rows' positions, which every read skips
//!    (at most [`ERASED_MAX`]; the next compaction writes the file again without them, as
//!    CHECKPOINT and a BACKUP's first step do). One that would list more is written again
//!    without them now, as a new file (same day and seq), durably; the old file stays named
//!    until step 2.
//! 2. One atomic, synced hot-tier batch: the old files' entries out and the new ones in, every
//!    hot value holding a matching row rewritten without it (or deleted), the table's row
//!    count lowered, and the catalog entries the caller names removed (feature snapshots,
//!    which may hold erased values). Then the new manifest version is published.
//!
//! A crash before the batch leaves every row (the new files are orphans, deleted by the next
//! collection); after it, none of the matching rows. Hot values are rewritten whatever any
//! manifest version reads of them (moved copies, a pending merge's inputs), so no stored value
//! keeps an erased row; the old files go at the next collection once no scan holds a version
//! naming them (CHECKPOINT collects). A query running while the switch lands may read a hot
//! value before it and another after it (docs/security.md).
//!
//! The caller keeps commits out (the database's commit gate), so every row it means to erase
//! is stored and visible; the tiering lock keeps moves, merges, collection and backups out.

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{and_not, filter_record_batch, not, or, prep_null_mask_filter};

use super::cold::file::{self, FileWriter};
use super::cold::{ColdFile, ColdStore, ERASED_MAX};
use super::events::EventStore;
use super::hot_value::{self, HotValue};
use super::tiering::TierTable;
use super::{KvOp, keys};
use crate::error::{Error, Result};

/// Which rows of a table go, and what else goes with them.
pub struct Erasure<'a> {
    pub table_id: u64,
    /// The table's name: its directory in the cold tier.
    pub table_name: String,
    pub event_time: Option<usize>,
    /// Per batch of the table's rows (widened to its current columns): the rows to erase
    /// (NULL keeps the row, as a WHERE that is not true does).
    pub matches: &'a (dyn Fn(&RecordBatch) -> Result<BooleanArray> + Sync),
    /// Only rows with an event time before this can match: files and blocks wholly at or after
    /// it are not read (retention). `i64::MAX` reads everything.
    pub before_time: i64,
    /// Catalog entries removed by the same switch.
    pub catalog_deletes: Vec<Vec<u8>>,
    /// The columns `matches` reads (table column numbers): the only ones its batches from
    /// cold files hold; the others are NULL there (hot rows come whole).
    pub columns: Vec<usize>,
    /// The same for the erased rows the `erased` callback of [`EventStore::erase`] sees.
    pub row_columns: Vec<usize>,
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Rows erased (each stored row once, though a moved row may have had a hot copy too).
    pub rows: u64,
    /// Cold files written again without their erased rows (or deleted, none left).
    pub files_rewritten: u64,
    /// Cold files whose entries now list erased rows (rewritten at the next compaction).
    pub files_marked: u64,
    pub hot_values_rewritten: u64,
    /// The table's watermark went down: the greatest event time was among the erased rows
    /// (a whole-table erasure only; it is then the greatest of the rows left).
    pub watermark_lowered: bool,
}

impl Erased {
    /// Whether no stored row was touched.
    pub fn changed_nothing(&self) -> bool {
        self.files_rewritten + self.files_marked + self.hot_values_rewritten == 0
    }
}

impl EventStore {
    /// Erases the rows `erasure` matches (module docs). `erased(rows)` sees each erased row
    /// once, widened, before the switch; an error from it stops the erasure with nothing
    /// changed. Blocking; serialized with tiering work.
    pub fn erase(&self, erasure: &Erasure, erased: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<Erased> {
        let _tiering = self.tiering.lock();
        let table_id = erasure.table_id;
        let manifest = self.manifest();
        let mark = manifest.mark(table_id);
        let columns = self.columns_of(table_id);
        let matches = |batch: &RecordBatch| -> Result<BooleanArray> {
            let widened = super::widen::widen(&columns, batch.clone())?;
            let found = (erasure.matches)(&widened)?;
            if found.len() != batch.num_rows() {
                return Err(Error::internal("an erasure predicate returned the wrong number of rows"));
            }
            Ok(if found.null_count() > 0 { prep_null_mask_filter(&found) } else { found })
        };
        // The predicate over the rows of `batch` not erased before (`before`): rows nobody can
        // see must not make it fail (a division by zero, a cast).
        let matches_live = |batch: &RecordBatch, before: &BooleanArray| -> Result<BooleanArray> {
            if before.true_count() == 0 {
                return matches(batch);
            }
            let live = matches(&filter_record_batch(batch, &not(before)?)?)?;
            let mut live = live.values().iter();
            Ok((0..batch.num_rows()).map(|i| Some(!before.value(i) && live.next().unwrap_or(false))).collect())
        };
        let mut report = Erased::default();
        let mut ops = Vec::new();
        // The greatest event time of the rows left, when every row is read.
        let whole = erasure.before_time == i64::MAX;
        let mut kept_max: Option<i64> = None;
        let mut keep_max = |batch: &RecordBatch, found: Option<&BooleanArray>| -> Result<()> {
            let (Some(col), true) = (erasure.event_time, whole) else { return Ok(()) };
            let times = super::blocks::event_times(batch.column(col))?;
            let left = (0..times.len()).filter(|i| found.is_none_or(|f| !f.value(*i))).map(|i| times.value(i)).max();
            kept_max = kept_max.max(left);
            Ok(())
        };

        // Cold files first: a failure here leaves only orphan files. A first pass reads only
        // the columns the predicate needs, a second only the matching rows, in the columns the
        // caller reads of them; a file's few erased rows are listed in its entry (reads skip
        // them, the next compaction drops them), many rewrite it at once.
        let mut replaced: Vec<(ColdFile, Option<ColdFile>)> = Vec::new();
        let with_time = |wanted: &[usize]| -> Option<Vec<usize>> {
            columns.as_ref()?;
            let mut read: Vec<usize> = wanted.iter().copied().chain(erasure.event_time).collect();
            read.sort_unstable();
            read.dedup();
            Some(read)
        };
        let (match_read, row_read) = (with_time(&erasure.columns), with_time(&erasure.row_columns));
        let sparse = |batch: RecordBatch, read: &Option<Vec<usize>>, stored: usize| match (&columns, read) {
            (Some(columns), Some(read)) => columns.sparse(batch, read, stored),
            _ => Ok(batch),
        };
        if let Some(cold) = &self.cold {
            for f in manifest.files(table_id) {
                if f.min_time >= erasure.before_time {
                    continue;
                }
                if f.rows > u64::from(u32::MAX) {
                    return Err(Error::unsupported("erasing from a cold file of more than 2^32 rows"));
                }
                let bytes = cold.get(&f.path)?;
                let (stored, batches) = file::read_columns(bytes.clone(), match_read.as_deref())?;
                let mut positions: Vec<u32> = Vec::new();
                let mut offset = 0usize;
                // The event times of the rows left, for the file's new entry.
                let mut left: Option<(i64, i64)> = None;
                for batch in batches {
                    let batch = sparse(batch?, &match_read, stored)?;
                    let rows = batch.num_rows();
                    let before: BooleanArray =
                        (offset..offset + rows).map(|i| Some(f.erased.binary_search(&(i as u32)).is_ok())).collect();
                    let found = matches_live(&batch, &before)?;
                    let gone = or(&found, &before)?;
                    keep_max(&batch, Some(&gone))?;
                    if let Some(col) = erasure.event_time {
                        let times = super::blocks::event_times(batch.column(col))?;
                        for i in (0..rows).filter(|i| !gone.value(*i)) {
                            let t = times.value(i);
                            left = Some(left.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
                        }
                    }
                    positions.extend(found.values().set_indices().map(|i| (offset + i) as u32));
                    offset += rows;
                }
                if positions.is_empty() {
                    continue;
                }
                report.rows += positions.len() as u64;
                let (stored, gone) = file::read_rows(bytes.clone(), &positions, row_read.as_deref())?;
                for batch in gone {
                    erased(&sparse(batch, &row_read, stored)?)?;
                }
                let mut all = f.erased.clone();
                all.extend(positions);
                all.sort_unstable();
                // A file left without rows just goes; one with few erased lists them.
                let changed = if all.len() <= ERASED_MAX && (all.len() as u64) < f.rows {
                    report.files_marked += 1;
                    // Its times span the rows left, so retention and time-bounded reads skip it
                    // as they would the file written again.
                    let (min_time, max_time) = left.unwrap_or((f.min_time, f.max_time));
                    Some(ColdFile { erased: all, min_time, max_time, ..f.clone() })
                } else {
                    report.files_rewritten += 1;
                    ops.push(KvOp::Delete(keys::cold_file(f.table_id, f.day, f.file_no)));
                    self.rewrite_file(cold, erasure, f, bytes, &all)?
                };
                if let Some(changed) = &changed {
                    let key = keys::cold_file(changed.table_id, changed.day, changed.file_no);
                    ops.push(KvOp::Put(key, super::cold::encode(changed)?));
                }
                replaced.push((f.clone(), changed));
            }
        }

        // Every stored hot value of the table, read or not by the current version.
        let end = match erasure.before_time {
            i64::MAX => keys::events_until(table_id, i64::MAX),
            before => keys::events_until(table_id, super::blocks::block_of(before.saturating_sub(1))),
        };
        for pair in self.kv.scan(&keys::events_from(table_id, i64::MIN), &end) {
            let (key, value) = pair?;
            let parsed = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
            let Some(decoded) = HotValue::read(parsed, &value, self.kv.as_ref())? else { continue };
            let found = matches(&decoded.batch)?;
            keep_max(&decoded.batch, Some(&found))?;
            if found.true_count() == 0 {
                continue;
            }
            // Rows a reader of the current version reads here, not in a file or a merge.
            if manifest.merges.shows(&parsed) && !mark.covers_block(parsed.seq, parsed.block) {
                let counted = match erasure.event_time {
                    Some(col) => and_not(&found, &decoded.moved_rows(col, mark)?)?,
                    None => found.clone(),
                };
                if counted.true_count() > 0 {
                    report.rows += counted.true_count() as u64;
                    erased(&super::widen::widen(&columns, filter_record_batch(&decoded.batch, &counted)?)?)?;
                }
            }
            ops.extend(hot_value::deletes(self.kv.as_ref(), key, &value)?);
            if let Some(kept) = decoded.filter(&not(&found)?)? {
                ops.extend(kept.puts()?);
            }
            report.hot_values_rewritten += 1;
        }
        if report.changed_nothing() {
            return Ok(report);
        }
        ops.extend(erasure.catalog_deletes.iter().cloned().map(KvOp::Delete));
        let watermark = match (whole, erasure.event_time) {
            (true, Some(_)) => Some(kept_max),
            _ => None,
        };
        match self.switch(table_id, report.rows, watermark, ops, &replaced)? {
            Some(lowered) => Ok(Erased { watermark_lowered: lowered, ..report }),
            None => Ok(Erased::default()),
        }
    }

    /// Whether table `table_id` stores a row with an event time before `before_time` (column
    /// `event_time`), in either tier: what a retention pass has to erase. Reads only the hot
    /// values of the block `before_time` falls in.
    pub fn has_rows_before(&self, table_id: u64, event_time: usize, before_time: i64) -> Result<bool> {
        let manifest = self.manifest();
        if manifest.files(table_id).any(|f| f.min_time < before_time) {
            return Ok(true);
        }
        let last = super::blocks::block_of(before_time.saturating_sub(1));
        for pair in self.kv.scan(&keys::events_from(table_id, i64::MIN), &keys::events_until(table_id, last)) {
            let (key, value) = pair?;
            let parsed = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
            if parsed.block < last {
                return Ok(true);
            }
            let Some(decoded) = HotValue::read(parsed, &value, self.kv.as_ref())? else { continue };
            let times = super::blocks::event_times(decoded.batch.column(event_time))?;
            if times.values().iter().any(|t| *t < before_time) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `f` (its `bytes`) without the rows at positions `erased`, as a new durable file; `None`
    /// when no row is left.
    fn rewrite_file(
        &self,
        cold: &ColdStore,
        erasure: &Erasure,
        f: &ColdFile,
        bytes: bytes::Bytes,
        erased: &[u32],
    ) -> Result<Option<ColdFile>> {
        let Some(event_time) = erasure.event_time else {
            return Err(Error::Storage("a cold file of a table without an event time".into()));
        };
        if erased.len() as u64 >= f.rows {
            return Ok(None);
        }
        let (schema, batches) = file::read(bytes, erased)?;
        let mut writer = FileWriter::new(schema, event_time)?;
        batches.into_iter().try_for_each(|batch| writer.add_sorted(&batch?))?;
        let table = TierTable { id: erasure.table_id, name: erasure.table_name.clone(), event_time };
        self.install_file(cold, &table, f.day, f.seq, writer).map(Some)
    }

    /// Applies the erasure's batch with the table's lowered row count (and, given, the
    /// watermark of the rows left), durably, and publishes the manifest without the replaced
    /// files. `None` if the table was dropped meanwhile, else whether the watermark went down.
    fn switch(
        &self,
        table_id: u64,
        rows: u64,
        watermark: Option<Option<i64>>,
        mut ops: Vec<KvOp>,
        replaced: &[(ColdFile, Option<ColdFile>)],
    ) -> Result<Option<bool>> {
        let went_down;
        {
            let counters = self.counters.lock();
            let mut stats = self.stats.write();
            let Some(current) = stats.get(&table_id).copied() else { return Ok(None) };
            let watermark = watermark.unwrap_or(current.watermark);
            went_down = watermark < current.watermark;
            let lowered = super::TableStats { rows: current.rows.saturating_sub(rows), watermark };
            ops.push(KvOp::Put(keys::stats(table_id), lowered.encode()));
            ops.push(KvOp::Put(keys::counter(super::events::FILE_NO), counters.next_file.to_be_bytes().to_vec()));
            self.kv.apply(ops)?;
            stats.insert(table_id, lowered);
            self.publish(|m| {
                for (old, new) in replaced {
                    m.remove(old);
                    if let Some(new) = new {
                        m.add(new.clone());
                    }
                }
            })?;
        }
        self.sync()?;
        Ok(Some(went_down))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, BooleanArray};
    use arrow::datatypes::Int64Type;

    use super::*;
    use crate::storage::blocks::tests::rows;
    use crate::storage::cold::ColdStore;
    use crate::storage::events::{Append, Commit};
    use crate::storage::{BLOCK_MICROS, DiskReserve, KvStore, MemoryKv, MoveRequest, ScanTable, TierTable};

    const DAY: i64 = 24 * BLOCK_MICROS;

    /// The `v` of every row a scan reads, sorted.
    fn scanned(store: &EventStore, t: u64) -> Vec<i64> {
        let mut out: Vec<i64> = store
            .scan(ScanTable { id: t, event_time: Some(1) }, (i64::MIN, i64::MAX), (0, 1))
            .flat_map(|p| p.unwrap().batch.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        out.sort_unstable();
        out
    }

    /// The `v` of every row any stored hot value holds, read or not (moved copies, merge inputs).
    fn hot_values(store: &EventStore, t: u64) -> Vec<i64> {
        let mut out = Vec::new();
        for pair in store.kv.scan(&keys::events_from(t, i64::MIN), &keys::events_until(t, i64::MAX)) {
            let (key, value) = pair.unwrap();
            let parsed = keys::parse_event(&key).unwrap();
            if let Some(decoded) = HotValue::read(parsed, &value, store.kv.as_ref()).unwrap() {
                out.extend(decoded.batch.column(0).as_primitive::<Int64Type>().values().iter().copied());
            }
        }
        out
    }

    /// The `v` of every row of every Parquet file under `dir`.
    fn cold_values(dir: &std::path::Path) -> Vec<i64> {
        let mut out = Vec::new();
        for day in std::fs::read_dir(dir.join("t")).unwrap() {
            for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
                let (_, batches) =
                    file::read(bytes::Bytes::from(std::fs::read(file.unwrap().path()).unwrap()), &[]).unwrap();
                for batch in batches {
                    out.extend(batch.unwrap().column(0).as_primitive::<Int64Type>().values().iter().copied());
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn erasure_takes_matching_rows_from_every_stored_place_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let cold = Arc::new(ColdStore::local(dir.path().to_path_buf()).unwrap());
        let store = EventStore::open(kv.clone(), Some(cold.clone()), DiskReserve::none()).unwrap();
        let t = store.allocate_table_id().unwrap();
        let commit = |times: Vec<i64>| {
            store.apply(Commit {
                appends: vec![Append { table_id: t, event_time: Some(1), batch: rows(times) }],
                ..Default::default()
            })
        };
        // v is the event time (µs): four days of writes, then single-row writes into day 3
        // (merged below), and late rows into day 0 after its move.
        for day in 0..4 {
            commit((0..7).map(|i| day * DAY + 1 + i * 1_000).collect()).unwrap();
        }
        // Enough rows in day 1 that erasing most of them passes ERASED_MAX.
        commit((0..8_000).map(|i| DAY + 10_000 + i).collect()).unwrap();
        for i in 0..12 {
            commit(vec![3 * DAY + 500_000 + i]).unwrap();
        }
        let table = TierTable { id: t, name: "t".into(), event_time: 1 };
        let request = MoveRequest { table: table.clone(), before_time: 2 * DAY, below_seq: store.visible_seq() };
        assert!(store.move_to_cold(&request).unwrap().rows_moved > 0);
        assert!(store.compact_hot(ScanTable { id: t, event_time: Some(1) }).unwrap().merges > 0);
        commit(vec![7_002, 9_003]).unwrap();
        let before = scanned(&store, t);

        // Every third value goes (rows of every day, both tiers, moved copies, merge inputs).
        let matches = |batch: &RecordBatch| -> Result<BooleanArray> {
            Ok(batch.column(0).as_primitive::<Int64Type>().values().iter().map(|v| Some(v % 3 == 0)).collect())
        };
        let erasure = Erasure {
            table_id: t,
            table_name: "t".into(),
            event_time: Some(1),
            matches: &matches,
            before_time: i64::MAX,
            catalog_deletes: Vec::new(),
            columns: vec![0, 1],
            row_columns: vec![0, 1],
        };
        let mut seen = Vec::new();
        let report = store
            .erase(&erasure, &mut |rows| {
                seen.extend(rows.column(0).as_primitive::<Int64Type>().values().iter().copied());
                Ok(())
            })
            .unwrap();
        let kept: Vec<i64> = before.iter().copied().filter(|v| v % 3 != 0).collect();
        let mut gone: Vec<i64> = before.iter().copied().filter(|v| v % 3 == 0).collect();
        seen.sort_unstable();
        gone.sort_unstable();
        assert_eq!(seen, gone, "each erased row is seen once");
        assert_eq!(report.rows as usize, gone.len());
        assert!(report.files_marked > 0 && report.hot_values_rewritten > 0, "{report:?}");
        assert_eq!(scanned(&store, t), kept);
        assert_eq!(store.stats(t).rows as usize, kept.len());
        assert!(hot_values(&store, t).iter().all(|v| v % 3 != 0), "no stored hot value keeps an erased row");

        // A second erasure adds to the files' erased rows; reopened, the store reads the same.
        // It fails on a row erased before, as `100 / x` would on one erased for `x = 0`: it
        // must never see one.
        let fifths = |batch: &RecordBatch| -> Result<BooleanArray> {
            let values = batch.column(0).as_primitive::<Int64Type>().values();
            if values.iter().any(|v| v % 3 == 0) {
                return Err(Error::internal("the predicate saw a row erased before"));
            }
            Ok(values.iter().map(|v| Some(v % 5 == 0)).collect())
        };
        let again = Erasure { matches: &fifths, ..erasure };
        let mut seen = Vec::new();
        let report = store
            .erase(&again, &mut |rows| {
                seen.extend(rows.column(0).as_primitive::<Int64Type>().values().iter().copied());
                Ok(())
            })
            .unwrap();
        let kept: Vec<i64> = kept.into_iter().filter(|v| v % 5 != 0).collect();
        assert!(seen.iter().all(|v| v % 5 == 0 && v % 3 != 0), "a row erased before is not seen again");
        assert_eq!(report.rows as usize, seen.len());
        assert!(report.files_marked > 0, "{report:?}");
        drop(store);
        let store = EventStore::open(kv.clone(), Some(cold.clone()), DiskReserve::none()).unwrap();
        assert_eq!(scanned(&store, t), kept);
        assert_eq!(store.stats(t).rows as usize, kept.len());

        // Compacted and collected, no file on disk holds an erased row.
        assert!(store.purge_erased(&table).unwrap().files_compacted > 0);
        assert!(store.manifest().files(t).all(|f| f.erased.is_empty()));
        store.collect_garbage(&|_| Some(1)).unwrap();
        assert!(cold_values(dir.path()).iter().all(|v| v % 3 != 0 && v % 5 != 0), "no cold file keeps an erased row");
        assert_eq!(scanned(&store, t), kept);

        // Many rows of a file at once: it is written again without them at once.
        let most = |batch: &RecordBatch| -> Result<BooleanArray> {
            Ok(batch.column(0).as_primitive::<Int64Type>().values().iter().map(|v| Some(v % 97 != 0)).collect())
        };
        let most = Erasure { matches: &most, ..again };
        let report = store.erase(&most, &mut |_| Ok(())).unwrap();
        let kept: Vec<i64> = kept.into_iter().filter(|v| v % 97 == 0).collect();
        assert!(report.files_rewritten > 0, "{report:?}");
        assert_eq!(scanned(&store, t), kept);
        let reopened = store;

        // Nothing matches: nothing is rewritten.
        let none = Erasure { matches: &|b: &RecordBatch| Ok(BooleanArray::from(vec![false; b.num_rows()])), ..most };
        assert_eq!(reopened.erase(&none, &mut |_| Ok(())).unwrap(), Erased::default());
    }
}
