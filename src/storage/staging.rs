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
//! The staged and rolling keys are laid out in `keys`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;

use super::blocks::StoredPart;
use super::blocks::{encode_batch, event_times, split_by_block};
use super::events::{Commit, EventStore};
use super::staged_records::{StagedCommit, delete_prefix};
use super::{KvOp, decode_batch, keys};
use crate::error::{Error, Result};

/// Staging ids are unique within a process; a restart deletes every staged piece anyway.
static NEXT_STAGING_ID: AtomicU64 = AtomicU64::new(1);

/// One statement's rows, written piece by piece; nothing is visible until [`commit`](Self::commit).
/// Dropped uncommitted (an error, a lost connection), its pieces are deleted.
pub struct StagedWrite {
    store: Arc<EventStore>,
    event_time: Option<usize>,
    staged: StagedCommit,
    committed: bool,
    /// The ingest time stamped on this write's rows, once its first chunk is staged.
    ingest_at: Option<i64>,
}

impl StagedWrite {
    pub fn new(store: &Arc<EventStore>, table_id: u64, event_time: Option<usize>) -> Self {
        let id = NEXT_STAGING_ID.fetch_add(1, Ordering::Relaxed);
        let staged = StagedCommit { id, table_id, pieces: 0, rows: 0, watermark: None };
        Self { store: store.clone(), event_time, staged, committed: false, ingest_at: None }
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
        self.store.reserve.check(batch.get_array_memory_size() as u64)?;
        if let Some(col) = self.event_time
            && let Some(max) = event_times(batch.column(col))?.values().iter().max()
        {
            self.staged.watermark = Some(self.staged.watermark.map_or(*max, |w| w.max(*max)));
        }
        // Missing ingest times take the time of the first chunk (module docs of `ingest_time`).
        let stamped;
        let batch = match self.store.columns_of(self.staged.table_id).and_then(|c| c.ingest_time) {
            Some(column) => {
                let at = *self.ingest_at.get_or_insert_with(|| self.store.ingest_clock.tick());
                stamped = super::ingest_time::stamp(batch.clone(), column, at)?;
                &stamped
            }
            None => batch,
        };
        let mut ops = Vec::new();
        for (block, part) in split_by_block(batch, self.event_time)? {
            let key = keys::staged(self.staged.id, self.staged.pieces);
            let value = [&self.staged.table_id.to_be_bytes()[..], &block.to_be_bytes(), &encode_batch(&part)?].concat();
            ops.push(KvOp::Put(key, value));
            self.staged.pieces =
                self.staged.pieces.checked_add(1).ok_or_else(|| Error::internal("too many pieces in one write"))?;
        }
        self.staged.rows += batch.num_rows() as u64;
        self.store.kv.apply(ops)
    }

    /// Commits every staged row durably and atomically; returns where its pieces are, to
    /// read them back ([`CommittedPieces::read`]).
    pub async fn commit(mut self) -> Result<CommittedPieces> {
        self.committed = true;
        // Held until the pieces are read back: a merge may take them meanwhile, but its
        // inputs stay while a version from before it lives (`compaction`).
        let held = self.store.manifest();
        let commit = Commit { staged: Some(self.staged), ..Default::default() };
        let locations = self.store.commit_applied(commit).await?.moved;
        Ok(CommittedPieces { locations, store: self.store.clone(), table_id: self.staged.table_id, _held: held })
    }
}

/// The pieces of a committed staged write, where features read them back.
pub struct CommittedPieces {
    /// (block, seq) of each piece's events key, in order.
    pub locations: Vec<(i64, u64)>,
    store: Arc<EventStore>,
    table_id: u64,
    _held: Arc<super::cold::Manifest>,
}

impl CommittedPieces {
    /// The stored rows of the pieces at `locations` (a slice of [`Self::locations`]).
    pub fn read(&self, locations: &[(i64, u64)]) -> Result<Vec<StoredPart>> {
        locations
            .iter()
            .map(|(block, seq)| match self.store.kv.get(&keys::event(self.table_id, *block, *seq))? {
                Some(value) => Ok(StoredPart { table_id: self.table_id, seq: *seq, batch: decode_batch(&value)? }),
                None => Err(Error::internal("a committed piece is missing")),
            })
            .collect()
    }
}

impl Drop for StagedWrite {
    fn drop(&mut self) {
        if !self.committed
            && let Err(e) = delete_prefix(self.store.kv.as_ref(), &keys::staged_of(self.staged.id))
        {
            tracing::warn!("could not delete the staged rows of an aborted write (the next start will): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::blocks::tests::rows;
    use crate::storage::events::tests::count;
    use crate::storage::staged_records::record;
    use crate::storage::{BLOCK_MICROS, KvStore, MemoryKv};

    /// A store in memory with one table.
    fn new_table() -> (Arc<dyn KvStore>, Arc<EventStore>, u64) {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::new());
        let store = Arc::new(EventStore::open(kv.clone(), None, crate::storage::DiskReserve::none()).unwrap());
        let t = store.allocate_table_id().unwrap();
        (kv, store, t)
    }

    fn staged_keys(kv: &dyn KvStore) -> usize {
        kv.scan(keys::STAGED, &keys::prefix_end(keys::STAGED)).count()
    }

    #[tokio::test]
    async fn staged_rows_appear_only_when_committed() {
        let (kv, store, t) = new_table();
        let mut write = StagedWrite::new(&store, t, Some(1));
        write.add(&rows(vec![5, BLOCK_MICROS * 3])).unwrap();
        write.add(&rows(vec![7])).unwrap();
        assert_eq!(count(&store, t), 0, "staged rows are invisible");
        let moved = write.commit().await.unwrap();
        assert_eq!(moved.locations.len(), 3, "one piece per chunk and block");
        assert_eq!(count(&store, t), 3);
        assert_eq!(store.stats(t).rows, 3);
        assert_eq!(store.stats(t).watermark, Some(BLOCK_MICROS * 3));
        assert_eq!(moved.read(&moved.locations).unwrap().iter().map(|p| p.batch.num_rows()).sum::<usize>(), 3);
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
        let (kv, store, t) = new_table();
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

        let reopened = EventStore::open(kv.clone(), None, crate::storage::DiskReserve::none()).unwrap();
        assert_eq!(count(&reopened, t), 2, "the committed write is finished, the other dropped");
        assert_eq!(staged_keys(kv.as_ref()), 0);
        assert_eq!(kv.scan(keys::ROLLING, &keys::prefix_end(keys::ROLLING)).count(), 0);
    }
}
