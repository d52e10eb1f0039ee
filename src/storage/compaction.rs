//! Hot-tier compaction: runs of small values of a block merged into values of COPY's size.
//!
//! A single-row INSERT stores one value (an Arrow IPC stream with its schema) for one row;
//! 330K such rows took 1.05 GB on disk (issue #34). A merge takes consecutive values of one
//! block, in key order, and writes one value with their rows in the same order, keyed by the
//! last seq it holds: it sorts where its last input did, so scans still yield a block's rows
//! in arrival order, and each row keeps its own seq (`hot_value`).
//!
//! Crash safety and readers, in two atomic batches:
//! 1. the merged value, a merge record (`keys::merging`) and the merge counter. The inputs stay:
//!    a scan that began earlier reads them and not the merged value (`pending_merges`);
//! 2. once no live manifest version predates the merge, its inputs and record are deleted.
//!
//! A crash between the two leaves both; the record names the inputs, and open deletes them
//! before anything reads (`merge_records`). Merges, moves and collection are serialized by
//! the tiering lock.

use arrow::compute::concat_batches;

use super::ScanTable;
use super::cold::TierMark;
use super::events::EventStore;
use super::hot_value::{self, HotValue};
use super::keys::{self, EventKey};
use super::{KvOp, merge_records};
use crate::error::{Error, Result};

/// A merge aims at values of about this many rows (a COPY's value holds an hour of a write).
pub const MERGED_ROWS: usize = 65_536;
/// Values of at least this many bytes are left alone (only their rows are read to merge).
const LARGE_VALUE_BYTES: u64 = 256 << 10;
/// A run with fewer writes' own values than this is merged only once it holds [`MERGED_ROWS`]
/// rows: a few values cost little, and rewriting a growing merged value for every few new
/// rows would cost more.
const MIN_RUN: usize = 8;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotCompaction {
    pub merges: u64,
    pub values_merged: u64,
}

/// Values of one block being gathered into one merge.
#[derive(Default)]
struct Run {
    values: Vec<HotValue>,
    rows: usize,
    /// Values that are a write's own (not merged before).
    fresh: usize,
}

impl EventStore {
    /// Merges runs of small hot values of `table`, block by block. Blocking; serialized
    /// with other tiering work. The merges are durable when it returns; their inputs are
    /// deleted by [`EventStore::settle_merges`].
    pub fn compact_hot(&self, table: ScanTable) -> Result<HotCompaction> {
        let table_id = table.id;
        let _tiering = self.tiering.lock();
        let manifest = self.manifest();
        let mark = manifest.mark(table_id);
        // Writes from here on may not be wholly stored yet (a staged COPY moving into place).
        let visible = self.visible_seq();
        let mut report = HotCompaction::default();
        let mut run = Run::default();
        let (start, end) = (keys::events_from(table_id, i64::MIN), keys::events_until(table_id, i64::MAX));
        let mut merge_all = || -> Result<()> {
            for pair in self.kv.scan(&start, &end) {
                let (key, value) = pair?;
                let key = keys::parse_event(&key).ok_or_else(|| Error::Storage("corrupt event key".into()))?;
                if !manifest.merges.shows(&key) {
                    continue;
                }
                // Large values are merged enough; a merge whose inputs a reader still holds is
                // not taken again (each pass would rewrite it while the reader runs).
                let candidate = key.seq < visible
                    && hot_value::stored_len(&key, &value)? < LARGE_VALUE_BYTES
                    && !mark.covers_block(key.seq, key.block)
                    && !manifest.merges.is_pending(&key);
                let value = match candidate {
                    true => hot_rows(key, &value, self.kv.as_ref(), table.event_time, mark)?,
                    false => None,
                };
                let joins = value.as_ref().is_some_and(|v| {
                    run.values.first().is_none_or(|f| f.key.block == key.block && f.batch.schema() == v.batch.schema())
                });
                if !joins {
                    self.finish_run(std::mem::take(&mut run), &mut report)?;
                }
                let Some(value) = value else { continue };
                run.rows += value.batch.num_rows();
                run.fresh += usize::from(value.key.merge == 0);
                run.values.push(value);
                if run.rows >= MERGED_ROWS {
                    self.finish_run(std::mem::take(&mut run), &mut report)?;
                }
            }
            self.finish_run(std::mem::take(&mut run), &mut report)
        };
        let merged = merge_all();
        // Before any input is deleted (even after an error midway), the merges are durable.
        if report.merges > 0 {
            self.sync()?;
        }
        merged.map(|()| report)
    }

    /// Merges a run if it is worth it. Called with the tiering lock held.
    fn finish_run(&self, run: Run, report: &mut HotCompaction) -> Result<()> {
        if run.values.len() < 2 || (run.fresh < MIN_RUN && run.rows < MERGED_ROWS) {
            return Ok(());
        }
        let (first, last) = (&run.values[0], &run.values[run.values.len() - 1]);
        let merge = self.manifest().merges.epoch + 1;
        let key = EventKey { merge, ..last.key };
        let first_seq = first.first_seq();
        let batch = concat_batches(&first.batch.schema(), run.values.iter().map(|v| &v.batch))?;
        let segments = run.values.iter().flat_map(|v| v.segments.iter().copied()).collect();
        let mut ops = HotValue { key, segments, batch }.puts()?;
        // Inputs stay until settled: a merge needs room first, and frees it after.
        let bytes = ops.iter().map(|op| if let KvOp::Put(_, v) = op { v.len() as u64 } else { 0 }).sum();
        self.reserve.check_for_maintenance(bytes)?;
        ops.extend(merge_records::record(&key, first_seq));
        if self.apply_if_tables_exist(&[key.table_id], ops, |m| m.merges.add(&key, first_seq))? {
            report.merges += 1;
            report.values_merged += run.values.len() as u64;
        }
        Ok(())
    }

    /// Deletes the inputs of every merge that no live manifest version predates. Called by
    /// collection, with the tiering lock held; `oldest_epoch` is the least merge epoch of the
    /// live versions.
    pub(super) fn settle_merges(&self, oldest_epoch: u64) -> Result<()> {
        let manifest = self.manifest();
        if manifest.merges.iter().any(|(k, _)| k.merge <= oldest_epoch) {
            // `compact_hot` synced its merges, unless the sync failed: inputs never go first.
            self.sync()?;
        }
        for (merged, first_seq) in manifest.merges.iter().filter(|(k, _)| k.merge <= oldest_epoch) {
            // Without the commit lock and in slices: a merge's 65,536 deletes in one batch
            // held every commit for tens of milliseconds. Every live version reads the merged
            // value, and a concurrent DROP TABLE deletes the same keys. The record goes last,
            // so a crash midway leaves it, and open finishes the deletes.
            let ops = merge_records::input_deletes(self.kv.as_ref(), &merged, first_seq)?;
            let mut ops = ops.into_iter().peekable();
            while ops.peek().is_some() {
                self.kv.apply(ops.by_ref().take(DELETES_PER_BATCH).collect())?;
            }
            self.publish(|m| m.merges.settled(&merged))?;
        }
        Ok(())
    }
}

/// The rows of a candidate value a merge takes: those the cold tier does not hold yet (rows
/// it holds are read from there by every version that reads the merged value), if they are
/// few enough to merge.
fn hot_rows(
    key: EventKey,
    value: &[u8],
    kv: &dyn super::KvStore,
    event_time: Option<usize>,
    mark: TierMark,
) -> Result<Option<HotValue>> {
    let Some(value) = HotValue::read(key, value, kv)? else { return Ok(None) };
    let value = value.unmoved(event_time, mark)?;
    Ok(value.filter(|v| v.batch.num_rows() < MERGED_ROWS / 2))
}

/// Deletes of a merge's inputs per atomic batch.
const DELETES_PER_BATCH: usize = 4096;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
    use proptest::prelude::*;

    use super::*;
    use crate::storage::{
        Append, BLOCK_MICROS, Commit, DiskReserve, KvStore, MemoryKv, ScanTable, StoredPart, hot::SledKv,
    };

    #[derive(Debug, Clone)]
    enum Op {
        /// A write of rows at these (block, µs) times.
        Write(Vec<(i64, i64)>),
        Merge,
        /// Collection: settles merges no held scan predates.
        Collect,
        /// Starts a scan and keeps it, unread, until `ReadHeld`.
        Hold,
        ReadHeld,
        /// Reads the rows written at or after the n-th write (a feature's replay).
        ReplayFrom(usize),
        /// Closes and opens the store, as a crash between two batches would.
        Reopen,
        /// Moves rows before this (block, µs) written before the n-th write to the cold tier.
        Move(i64, i64, usize),
        /// Backs the store up, and opens the backup as a store of its own.
        Backup,
        /// Erases the rows whose id is a multiple of this (`DELETE`).
        Erase(i64),
        /// Cold-tier compaction: merges a day's files, writes those listing erased rows again.
        CompactCold,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => prop::collection::vec((0..3i64, 0..5i64), 1..4).prop_map(Op::Write),
            2 => prop::collection::vec((0..3i64, 0..5i64), 10..40).prop_map(Op::Write),
            2 => Just(Op::Merge),
            2 => Just(Op::Collect),
            1 => Just(Op::Hold),
            1 => Just(Op::ReadHeld),
            1 => (0..40usize).prop_map(Op::ReplayFrom),
            1 => Just(Op::Reopen),
            1 => (0..3i64, 0..5i64, 0..40usize).prop_map(|(b, t, n)| Op::Move(b, t, n)),
            1 => Just(Op::Backup),
            1 => (2..6i64).prop_map(Op::Erase),
            1 => Just(Op::CompactCold),
        ]
    }

    type HeldScan = Box<dyn Iterator<Item = Result<StoredPart>>>;

    const TABLE: ScanTable = ScanTable { id: 1, event_time: Some(1) };

    fn batch(ids: Vec<i64>, times: Vec<i64>) -> RecordBatch {
        let model = crate::storage::blocks::tests::rows(vec![]);
        RecordBatch::try_new(
            model.schema(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(TimestampMicrosecondArray::from(times))],
        )
        .unwrap()
    }

    /// (id, seq) of each row, in the order read.
    fn read(parts: impl Iterator<Item = Result<StoredPart>>) -> Vec<(i64, u64)> {
        let mut out = Vec::new();
        for part in parts {
            let part = part.unwrap();
            let ids = part.batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            out.extend(ids.values().iter().map(|id| (*id, part.seq)));
        }
        out
    }

    /// What a reader must see: the acknowledged rows by block, then arrival order.
    fn expected(written: &[(i64, i64, u64)], min_seq: u64) -> Vec<i64> {
        let mut rows: Vec<_> = written.iter().filter(|(_, _, seq)| *seq >= min_seq).collect();
        rows.sort_by_key(|(_, block, seq)| (*block, *seq));
        rows.iter().map(|(id, ..)| *id).collect()
    }

    /// Rows of a cold file come sorted by time, before the day's hot rows: once rows moved,
    /// only the set of rows read is compared.
    fn same_rows(mut got: Vec<i64>, mut want: Vec<i64>, moved: bool, what: &str) {
        if moved {
            got.sort_unstable();
            want.sort_unstable();
        }
        assert_eq!(got, want, "{what}");
    }

    fn run(ops: Vec<Op>, sled_dir: Option<&std::path::Path>) {
        let cold_dir = tempfile::tempdir().unwrap();
        let cold = Arc::new(crate::storage::cold::ColdStore::local(cold_dir.path().to_path_buf()).unwrap());
        let mut moved = false;
        let open_kv = || -> Arc<dyn KvStore> {
            match sled_dir {
                // A closed sled may release its file lock a moment after the last handle goes.
                Some(dir) => Arc::new(
                    (0..100)
                        .find_map(|_| {
                            SledKv::open(dir, None).ok().or_else(|| {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                None
                            })
                        })
                        .unwrap_or_else(|| SledKv::open(dir, None).unwrap()),
                ),
                None => Arc::new(MemoryKv::new()),
            }
        };
        let mut kv = open_kv();
        let mut store = Arc::new(EventStore::open(kv.clone(), Some(cold.clone()), DiskReserve::none()).unwrap());
        assert_eq!(store.allocate_table_id().unwrap(), TABLE.id);
        // (id, block, seq) of every acknowledged row; the first seq of each write.
        let (mut written, mut write_seqs) = (Vec::new(), Vec::new());
        let mut held: Option<(Vec<i64>, HeldScan)> = None;
        for op in ops {
            match op {
                Op::Write(rows) => {
                    let first = written.len() as i64;
                    let ids: Vec<i64> = (first..first + rows.len() as i64).collect();
                    let times: Vec<i64> = rows.iter().map(|(b, t)| b * BLOCK_MICROS + t).collect();
                    let append = Append { table_id: TABLE.id, event_time: Some(1), batch: batch(ids.clone(), times) };
                    let parts = store.apply(Commit { appends: vec![append], ..Default::default() }).unwrap();
                    write_seqs.push(parts[0].seq);
                    for part in parts {
                        let ids = part.batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                        for id in ids.values() {
                            written.push((*id, rows[(*id - first) as usize].0, part.seq));
                        }
                    }
                }
                Op::Merge => {
                    store.compact_hot(TABLE).unwrap();
                }
                Op::Collect => store.collect_garbage(&|_| Some(1)).unwrap(),
                Op::Hold => {
                    held = Some((expected(&written, 0), Box::new(store.scan(TABLE, (i64::MIN, i64::MAX), (0, 1)))))
                }
                Op::ReadHeld => {
                    if let Some((want, scan)) = held.take() {
                        let got: Vec<i64> = read(scan).into_iter().map(|(id, _)| id).collect();
                        same_rows(got, want, moved, "a scan held across merges");
                    }
                }
                Op::ReplayFrom(n) => {
                    let Some(&min_seq) = write_seqs.get(n) else { continue };
                    // Replays start above every moved row (features snapshot before a move).
                    if min_seq < store.manifest().mark(TABLE.id).below_seq {
                        continue;
                    }
                    let got = read(store.scan_since(TABLE, min_seq));
                    assert!(got.iter().all(|(_, seq)| *seq >= min_seq));
                    let ids: Vec<i64> = got.into_iter().map(|(id, _)| id).collect();
                    same_rows(ids, expected(&written, min_seq), moved, "a replay");
                }
                Op::Move(block, micros, n) => {
                    let Some(&below_seq) = write_seqs.get(n) else { continue };
                    let table = crate::storage::TierTable { id: TABLE.id, name: "t".into(), event_time: 1 };
                    let before_time = block * BLOCK_MICROS + micros;
                    let request = crate::storage::MoveRequest { table, before_time, below_seq };
                    moved |= store.move_to_cold(&request).unwrap().rows_moved > 0;
                }
                Op::Backup => {
                    // Merges pending under a held scan, hot copies of moved rows: the backup
                    // reads as the store does.
                    let dest = tempfile::tempdir().unwrap();
                    let report = store.backup(dest.path(), || {}).unwrap();
                    assert_eq!(report.next_seq, store.next_seq().unwrap());
                    let cold = crate::storage::cold::ColdStore::local(dest.path().join("cold")).unwrap();
                    // The backup's own check opened its hot tier: sled lets go of the file lock
                    // from a thread of its own, a moment after it is closed.
                    let mut opened = SledKv::open(&dest.path().join("hot"), None);
                    for _ in 0..200 {
                        if opened.is_ok() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        opened = SledKv::open(&dest.path().join("hot"), None);
                    }
                    let kv = Arc::new(opened.unwrap());
                    let copy = EventStore::open(kv, Some(Arc::new(cold)), DiskReserve::none()).unwrap();
                    let got = read(copy.scan(TABLE, (i64::MIN, i64::MAX), (0, 1))).into_iter().map(|(id, _)| id);
                    same_rows(got.collect(), expected(&written, 0), moved, "the backup");
                }
                Op::Erase(k) => {
                    // A scan running while an erasure lands may read rows from either side
                    // of it (docs/security.md): none is held across one.
                    held = None;
                    let matches = move |b: &RecordBatch| -> Result<arrow::array::BooleanArray> {
                        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                        Ok(ids.values().iter().map(|id| Some(id % k == 0)).collect())
                    };
                    let erasure = crate::storage::Erasure {
                        table_id: TABLE.id,
                        table_name: "t".into(),
                        event_time: Some(1),
                        matches: &matches,
                        before_time: i64::MAX,
                        catalog_deletes: Vec::new(),
                        columns: vec![0, 1],
                        row_columns: vec![0],
                    };
                    let gone = written.iter().filter(|(id, ..)| id % k == 0).count();
                    let mut seen = 0;
                    let report = store
                        .erase(&erasure, &mut |rows| {
                            seen += rows.num_rows();
                            Ok(())
                        })
                        .unwrap();
                    assert_eq!((report.rows as usize, seen), (gone, gone), "each erased row counted once");
                    written.retain(|(id, ..)| id % k != 0);
                }
                Op::CompactCold => {
                    let table = crate::storage::TierTable { id: TABLE.id, name: "t".into(), event_time: 1 };
                    store.compact(&table).unwrap();
                }
                Op::Reopen => {
                    held = None;
                    drop(store);
                    if sled_dir.is_some() {
                        drop(kv);
                        kv = open_kv();
                    }
                    store = Arc::new(EventStore::open(kv.clone(), Some(cold.clone()), DiskReserve::none()).unwrap());
                }
            }
            let now: Vec<i64> =
                read(store.scan(TABLE, (i64::MIN, i64::MAX), (0, 1))).into_iter().map(|(id, _)| id).collect();
            same_rows(now, expected(&written, 0), moved, "a scan");
        }
        drop(held);
        // With no reader left and nothing pending, a pass merges every run of 8 or more writes.
        store.collect_garbage(&|_| Some(1)).unwrap();
        store.compact_hot(TABLE).unwrap();
        store.collect_garbage(&|_| Some(1)).unwrap();
        let mut writes_left: std::collections::HashMap<i64, usize> = Default::default();
        for pair in kv.scan(&keys::events_from(TABLE.id, i64::MIN), &keys::events_until(TABLE.id, i64::MAX)) {
            let key = keys::parse_event(&pair.unwrap().0).unwrap();
            *writes_left.entry(key.block).or_default() += usize::from(key.merge == 0);
        }
        assert!(writes_left.values().all(|n| *n < MIN_RUN), "unmerged writes by block: {writes_left:?}");
        // Every merged value has its body, and no body outlives its value.
        let merged: Vec<Vec<u8>> = kv
            .scan(&keys::events_from(TABLE.id, i64::MIN), &keys::events_until(TABLE.id, i64::MAX))
            .filter_map(|pair| keys::parse_event(&pair.unwrap().0).filter(|k| k.merge != 0))
            .map(|k| keys::body(&k))
            .collect();
        let mut bodies: Vec<Vec<u8>> =
            kv.scan(keys::BODY, &keys::prefix_end(keys::BODY)).map(|pair| pair.unwrap().0[..33].to_vec()).collect();
        bodies.dedup();
        assert_eq!(bodies, merged, "bodies and merged values");
        assert_eq!(kv.scan(keys::MERGING, &keys::prefix_end(keys::MERGING)).count(), 0, "every merge settled");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn readers_see_every_acknowledged_row_once_in_arrival_order(ops in prop::collection::vec(op(), 1..80)) {
            run(ops, None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn the_same_on_sled(ops in prop::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            run(ops, Some(dir.path()));
        }
    }

    #[test]
    fn many_single_row_writes_become_one_value_per_block() {
        let ops = (0..200).map(|i| Op::Write(vec![(i % 2, i)])).chain([Op::Merge, Op::Collect]).collect();
        run(ops, None);
    }
}
