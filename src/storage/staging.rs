//! Large writes (COPY) staged piece by piece, then committed as one statement.
//!
//! A COPY writes its rows as they arrive, under staging keys no scan reads, so the statement
//! never holds all its rows in memory. Its commit goes through the committer (no other write
//! interleaves): it numbers the staged pieces with consecutive seqs and writes a roll-forward
//! record together with the table's statistics in one atomic batch; then it moves the pieces to
//! their event keys in batches and removes the record. Scans see the rows once the move is done
//! (`EventStore::visible_seq`).
//!
//! A crash before the record leaves only staging keys, which the next open deletes: the COPY
//! never happened. A crash after it leaves the record, and the next open finishes the move.
//!
//! ```text
//!  staged  'x' 's' <copy id u64> <piece u32>  -> table id u64 | block i64 | Arrow IPC batch
//!  record  'x' 'r' <copy id u64>              -> table id u64 | first seq u64
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;

use super::blocks::{encode_batch, event_times, split_by_block};
use super::events::{Commit, EventStore, StoredPart};
use super::{KvOp, KvStore, decode_batch, keys};
use crate::error::{Error, Result};

const STAGED: &[u8] = b"xs";
const RECORD: &[u8] = b"xr";

/// Bytes of values moved per atomic batch during a roll-forward.
const MOVE_BATCH_BYTES: usize = 32 << 20;

/// Staging ids are unique within a process; a restart deletes every staged piece anyway.
static NEXT_STAGING_ID: AtomicU64 = AtomicU64::new(1);

fn staged_prefix(id: u64) -> Vec<u8> {
    [STAGED, &id.to_be_bytes()[..]].concat()
}

fn record_key(id: u64) -> Vec<u8> {
    [RECORD, &id.to_be_bytes()[..]].concat()
}

/// What a staged write's commit needs to know.
#[derive(Debug, Clone, Copy)]
pub struct StagedCommit {
    pub id: u64,
    pub table_id: u64,
    pub pieces: u32,
    pub rows: u64,
    pub watermark: Option<i64>,
}

/// One statement's rows, written piece by piece; nothing is visible until [`commit`](Self::commit).
/// Dropped uncommitted (an error, a lost connection), its pieces are deleted.
pub struct StagedWrite {
    store: Arc<EventStore>,
    event_time: Option<usize>,
    staged: StagedCommit,
    committed: bool,
}

impl StagedWrite {
    pub fn new(store: &Arc<EventStore>, table_id: u64, event_time: Option<usize>) -> Self {
        let id = NEXT_STAGING_ID.fetch_add(1, Ordering::Relaxed);
        let staged = StagedCommit { id, table_id, pieces: 0, rows: 0, watermark: None };
        Self { store: store.clone(), event_time, staged, committed: false }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.staged.rows
    }

    /// Writes `batch` (conformed to the table) to the staging area, not durably yet.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(col) = self.event_time
            && let Some(max) = event_times(batch.column(col))?.values().iter().max()
        {
            self.staged.watermark = Some(self.staged.watermark.map_or(*max, |w| w.max(*max)));
        }
        let mut ops = Vec::new();
        for (block, part) in split_by_block(batch, self.event_time)? {
            let key = [staged_prefix(self.staged.id), self.staged.pieces.to_be_bytes().to_vec()].concat();
            let value = [&self.staged.table_id.to_be_bytes()[..], &block.to_be_bytes(), &encode_batch(&part)?].concat();
            ops.push(KvOp::Put(key, value));
            self.staged.pieces =
                self.staged.pieces.checked_add(1).ok_or_else(|| Error::internal("too many pieces in one write"))?;
        }
        self.staged.rows += batch.num_rows() as u64;
        self.store.kv.apply(ops)
    }

    /// Commits every staged row durably and atomically; returns the event keys' (block, seq)
    /// of the pieces, in order, to read them back (`EventStore::read_parts`).
    pub async fn commit(mut self) -> Result<Vec<(i64, u64)>> {
        self.committed = true;
        let commit = Commit { staged: Some(self.staged), ..Default::default() };
        Ok(self.store.commit_applied(commit).await?.moved)
    }
}

impl Drop for StagedWrite {
    fn drop(&mut self) {
        if !self.committed
            && let Err(e) = delete_prefix(self.store.kv.as_ref(), &staged_prefix(self.staged.id))
        {
            tracing::warn!("could not delete the staged rows of an aborted write (the next start will): {e}");
        }
    }
}

fn delete_prefix(kv: &dyn KvStore, prefix: &[u8]) -> Result<()> {
    let mut ops = Vec::new();
    for pair in kv.scan(prefix, &keys::prefix_end(prefix)) {
        ops.push(KvOp::Delete(pair?.0));
        if ops.len() == 4096 {
            kv.apply(std::mem::take(&mut ops))?;
        }
    }
    kv.apply(ops)
}

/// The roll-forward record of a staged commit whose pieces get seqs from `first_seq` on.
pub(super) fn record(staged: &StagedCommit, first_seq: u64) -> KvOp {
    let value = [staged.table_id.to_be_bytes(), first_seq.to_be_bytes()].concat();
    KvOp::Put(record_key(staged.id), value)
}

/// Moves a committed write's pieces to their event keys and removes its record; returns the
/// (block, seq) of each piece moved. Idempotent: a crash midway is finished by running it again.
pub(super) fn roll_forward(kv: &dyn KvStore, id: u64, table_id: u64, first_seq: u64) -> Result<Vec<(i64, u64)>> {
    let prefix = staged_prefix(id);
    let (mut ops, mut bytes, mut moved) = (Vec::new(), 0, Vec::new());
    for pair in kv.scan(&prefix, &keys::prefix_end(&prefix)) {
        let (key, value) = pair?;
        let corrupt = || Error::Storage("corrupt staged piece".into());
        let piece =
            key.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(corrupt)?;
        let block = value.get(8..16).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes).ok_or_else(corrupt)?;
        let seq = first_seq + piece as u64;
        bytes += value.len();
        ops.push(KvOp::Put(keys::event(table_id, block, seq), value[16..].to_vec()));
        ops.push(KvOp::Delete(key));
        moved.push((block, seq));
        if bytes >= MOVE_BATCH_BYTES {
            kv.apply(std::mem::take(&mut ops))?;
            bytes = 0;
        }
    }
    ops.push(KvOp::Delete(record_key(id)));
    kv.apply(ops)?;
    Ok(moved)
}

/// At open: finishes the moves of committed writes, then deletes what aborted ones staged.
pub(super) fn recover(kv: &dyn KvStore) -> Result<()> {
    let records: Vec<_> = kv.scan(RECORD, &keys::prefix_end(RECORD)).collect::<Result<_>>()?;
    for (key, value) in records {
        let corrupt = || Error::Storage("corrupt roll-forward record".into());
        let id = key.get(2..10).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
        let table_id = value.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
        let first = value.get(8..16).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
        let moved = roll_forward(kv, id, table_id, first)?;
        tracing::info!(pieces = moved.len(), "finished committing a staged write interrupted by a crash");
    }
    delete_prefix(kv, STAGED)
}

impl EventStore {
    /// The stored rows of `table_id` under the given (block, seq) event keys.
    pub fn read_parts(&self, table_id: u64, locations: &[(i64, u64)]) -> Result<Vec<StoredPart>> {
        locations
            .iter()
            .filter_map(|(block, seq)| match self.kv.get(&keys::event(table_id, *block, *seq)) {
                Ok(Some(value)) => Some(decode_batch(&value).map(|batch| StoredPart { table_id, seq: *seq, batch })),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BLOCK_MICROS, MemoryKv, ScanTable};
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn rows(times: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        let v = Int64Array::from(times.clone());
        RecordBatch::try_new(schema, vec![Arc::new(v), Arc::new(TimestampMicrosecondArray::from(times))]).unwrap()
    }

    fn count(store: &EventStore, table: u64) -> usize {
        let table = ScanTable { id: table, event_time: Some(1) };
        store.scan(table, (i64::MIN, i64::MAX), (0, 1)).map(|b| b.unwrap().batch.num_rows()).sum()
    }

    fn staged_keys(kv: &dyn KvStore) -> usize {
        kv.scan(STAGED, &keys::prefix_end(STAGED)).count()
    }

    #[tokio::test]
    async fn staged_rows_appear_only_when_committed() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let store = Arc::new(EventStore::open(kv.clone(), None).unwrap());
        let t = store.allocate_table_id().unwrap();
        let mut write = StagedWrite::new(&store, t, Some(1));
        write.add(&rows(vec![5, BLOCK_MICROS * 3])).unwrap();
        write.add(&rows(vec![7])).unwrap();
        assert_eq!(count(&store, t), 0, "staged rows are invisible");
        let moved = write.commit().await.unwrap();
        assert_eq!(moved.len(), 3, "one piece per chunk and block");
        assert_eq!(count(&store, t), 3);
        assert_eq!(store.stats(t).rows, 3);
        assert_eq!(store.stats(t).watermark, Some(BLOCK_MICROS * 3));
        assert_eq!(store.read_parts(t, &moved).unwrap().iter().map(|p| p.batch.num_rows()).sum::<usize>(), 3);
        assert_eq!(staged_keys(kv.as_ref()), 0);

        // Dropped without a commit (bad data, a lost connection): nothing stays.
        let mut aborted = StagedWrite::new(&store, t, Some(1));
        aborted.add(&rows(vec![9, 10])).unwrap();
        drop(aborted);
        assert_eq!(count(&store, t), 3);
        assert_eq!(staged_keys(kv.as_ref()), 0);
    }

    #[tokio::test]
    async fn a_crash_before_the_record_drops_the_write_and_after_it_finishes_it() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let store = Arc::new(EventStore::open(kv.clone(), None).unwrap());
        let t = store.allocate_table_id().unwrap();
        // Crash mid-COPY: pieces staged, no record.
        let mut lost = StagedWrite::new(&store, t, Some(1));
        lost.add(&rows(vec![1, 2, 3])).unwrap();
        std::mem::forget(lost);
        // Crash mid-move: pieces staged and the record written (as the commit batch does).
        let mut rolling = StagedWrite::new(&store, t, Some(1));
        rolling.add(&rows(vec![4, BLOCK_MICROS * 2])).unwrap();
        let first = store.next_seq().unwrap();
        let next = (first + rolling.staged.pieces as u64).to_be_bytes().to_vec();
        kv.apply(vec![record(&rolling.staged, first), KvOp::Put(keys::counter("seq"), next)]).unwrap();
        std::mem::forget(rolling);
        assert!(staged_keys(kv.as_ref()) > 0);

        let reopened = EventStore::open(kv.clone(), None).unwrap();
        assert_eq!(count(&reopened, t), 2, "the committed write is finished, the other dropped");
        assert_eq!(staged_keys(kv.as_ref()), 0);
        assert_eq!(kv.scan(RECORD, &keys::prefix_end(RECORD)).count(), 0);
    }
}
