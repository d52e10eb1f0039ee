//! Scans over both tiers: a table's cold files and hot values, merged day by day.
//!
//! A scan holds the manifest version it started with, so a move or a hot-tier merge that
//! finishes meanwhile changes nothing for it: the hot copies of moved rows stay until the mark
//! of every version still held covers them (`tiering::collect_garbage`), and the scan skips,
//! by the version's [`TierMark`], exactly the hot rows its version's files hold; a merge's
//! inputs stay until no held version predates it, and the version says whether the scan reads
//! the inputs or the merged value (`pending_merges`).

use std::collections::VecDeque;
use std::sync::Arc;

use super::blocks::StoredPart;
use super::blocks::{BLOCK_MICROS, decode_batch};
use super::cold::{ColdFile, ColdStore, Manifest, TierMark, file};
use super::events::EventStore;
use super::hot_value::HotValue;
use super::widen::{TableColumns, widen};
use super::{KvPair, keys};
use crate::error::{Error, Result};

const BLOCKS_PER_DAY: i64 = 24;

type HotPairs = Box<dyn Iterator<Item = Result<KvPair>> + Send>;

/// What a scan needs to know about its table.
#[derive(Debug, Clone, Copy)]
pub struct ScanTable {
    pub id: u64,
    /// Index of the event-time column, if the table has one.
    pub event_time: Option<usize>,
}

impl EventStore {
    /// The stored writes of a table with a sequence number of at least `min_seq` (replay after
    /// a snapshot), from the hot tier: moves never take rows a feature snapshot lacks.
    /// Older values are skipped by key, without decoding them.
    pub fn scan_since(
        &self,
        table: ScanTable,
        min_seq: u64,
    ) -> impl Iterator<Item = Result<StoredPart>> + Send + use<> {
        self.scan_seqs(table, min_seq..u64::MAX)
    }

    /// The stored writes of a table with a sequence number in `seqs`, in storage order (a
    /// feature built while writes go on: `feature::LiveFeature::build`). The cold tier holds
    /// only rows below the tier mark, which such a build keeps at or below `seqs.start` when it
    /// is not 0 (`feature::Backfills::hot_from`), so only hot rows are bounded by `seqs.end`.
    pub fn scan_seqs(
        &self,
        table: ScanTable,
        seqs: std::ops::Range<u64>,
    ) -> impl Iterator<Item = Result<StoredPart>> + Send + use<> {
        Scan::new(self, table, (i64::MIN, i64::MAX), (0, 1), seqs)
    }

    /// The stored rows of a table whose event-time block lies in `first..=last`, from both
    /// tiers, decoded lazily as the iterator advances.
    ///
    /// `part` of `parts` selects the days whose number is `part` modulo `parts`, so `parts`
    /// iterators together read each row exactly once, in parallel. Within a day, cold files
    /// come first (oldest first, rows sorted by event time), then the hot values; so every row
    /// of a given event time comes from one iterator, in arrival order.
    pub fn scan(
        &self,
        table: ScanTable,
        blocks: (i64, i64),
        part: (usize, usize),
    ) -> impl Iterator<Item = Result<StoredPart>> + Send + use<> {
        Scan::new(self, table, blocks, part, 0..u64::MAX)
    }

    /// [`EventStore::scan`] of one part that reads only `columns` of cold files
    /// ([`Scan::only_columns`]).
    pub fn scan_columns(&self, table: ScanTable, blocks: (i64, i64), columns: Vec<usize>) -> Scan {
        Scan::new(self, table, blocks, (0, 1), 0..u64::MAX).only_columns(columns)
    }
}

impl Scan {
    /// Reads only `columns` (table column numbers) of cold files; the others are NULL where
    /// the scan returns cold rows (hot rows come whole). Cheaper when a reader needs few.
    pub fn only_columns(mut self, mut columns: Vec<usize>) -> Self {
        columns.sort_unstable();
        columns.dedup();
        self.read = Some(columns.into());
        self
    }
}

pub struct Scan {
    table: ScanTable,
    /// The table's columns now, for rows stored before some were added.
    columns: Option<Arc<TableColumns>>,
    cold: Option<Arc<ColdStore>>,
    /// Held for the scan's lifetime (see the module comment).
    manifest: Arc<Manifest>,
    mark: TierMark,
    times: (i64, i64),
    part: (usize, usize),
    /// The seqs read: every write numbered from `end` on was asked not to be read, or was not
    /// wholly visible when the scan began.
    seqs: std::ops::Range<u64>,
    files: VecDeque<ColdFile>,
    ready: VecDeque<StoredPart>,
    hot: HotPairs,
    /// Where merged values' bodies are read from.
    kv: std::sync::Arc<dyn super::KvStore>,
    /// The columns read from cold files (table column numbers, ascending), if not all: the
    /// others are NULL in what the scan returns of them (`TableColumns::sparse`).
    read: Option<Arc<[usize]>>,
    /// The next hot part and its day, read ahead to know which cold files go before it.
    next_hot: Option<(i64, StoredPart)>,
    hot_done: bool,
}

impl Scan {
    pub(super) fn new(
        store: &EventStore,
        table: ScanTable,
        (first, last): (i64, i64),
        (part, parts): (usize, usize),
        seqs: std::ops::Range<u64>,
    ) -> Self {
        let min_seq = seqs.start;
        let parts = parts.max(1);
        let manifest = store.manifest();
        let mark = manifest.mark(table.id);
        let times =
            (first.saturating_mul(BLOCK_MICROS), last.saturating_add(1).saturating_mul(BLOCK_MICROS).saturating_sub(1));
        // Replays start above every moved row, so they read only the hot tier.
        let files = if min_seq > 0 && min_seq >= mark.below_seq {
            VecDeque::new()
        } else {
            manifest
                .files(table.id)
                .filter(|f| f.max_time >= times.0 && f.min_time <= times.1 && f.seq >= min_seq)
                .filter(|f| f.day.rem_euclid(parts as i64) as usize == part)
                .cloned()
                .collect()
        };
        let hot = store.kv.scan(&keys::events_from(table.id, first), &keys::events_until(table.id, last));
        Scan {
            table,
            columns: store.columns_of(table.id),
            cold: store.cold.clone(),
            manifest,
            mark,
            times,
            part: (part, parts),
            seqs: min_seq..seqs.end.min(store.visible_seq()),
            files,
            ready: VecDeque::new(),
            hot,
            kv: store.kv.clone(),
            read: None,
            next_hot: None,
            hot_done: false,
        }
    }

    /// The next hot value of this partition that the cold tier does not hold, decoded and
    /// trimmed of the rows that it does.
    fn read_hot(&mut self) -> Option<Result<(i64, StoredPart)>> {
        for pair in self.hot.by_ref() {
            let (key, value) = match pair {
                Ok(pair) => pair,
                Err(e) => return Some(Err(e)),
            };
            let Some(key) = keys::parse_event(&key) else {
                return Some(Err(Error::Storage("corrupt event key".into())));
            };
            let day = key.block.div_euclid(BLOCKS_PER_DAY);
            // A merged value's key has its last row's seq: it may hold rows below `seqs.start`
            // (and above `seqs.end`, when `end` is below the visible seq: `hot_rows` trims it).
            if key.seq < self.seqs.start
                || (key.merge == 0 && key.seq >= self.seqs.end)
                || day.rem_euclid(self.part.1 as i64) as usize != self.part.0
                || self.mark.covers_block(key.seq, key.block)
                || !self.manifest.merges.shows(&key)
            {
                continue;
            }
            match hot_rows(key, &value, self.kv.as_ref(), self.seqs.clone(), self.mark, self.table.event_time)
                .and_then(|rows| rows.map(|batch| widen(&self.columns, batch)).transpose())
            {
                Ok(Some(batch)) => {
                    return Some(Ok((day, StoredPart { table_id: key.table_id, seq: key.seq, batch })));
                }
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    fn read_file(&self, f: &ColdFile) -> Result<Vec<StoredPart>> {
        let cold = self.cold.as_ref().ok_or_else(|| Error::Storage("cold files but no cold tier configured".into()))?;
        let bytes = cold.get(&f.path)?;
        let read = self.read.as_deref().filter(|_| self.columns.is_some());
        let (stored, batches) = file::decode(bytes, self.table.event_time, self.times, &f.erased, read)?;
        batches
            .into_iter()
            .map(|batch| {
                let batch = match (read, &self.columns) {
                    (Some(read), Some(columns)) => columns.sparse(batch, read, stored)?,
                    _ => widen(&self.columns, batch)?,
                };
                Ok(StoredPart { table_id: f.table_id, seq: f.seq, batch })
            })
            .collect()
    }
}

impl Iterator for Scan {
    type Item = Result<StoredPart>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(part) = self.ready.pop_front() {
                return Some(Ok(part));
            }
            if self.next_hot.is_none() && !self.hot_done {
                match self.read_hot() {
                    Some(Ok(next)) => self.next_hot = Some(next),
                    Some(Err(e)) => return Some(Err(e)),
                    None => self.hot_done = true,
                }
            }
            let hot_day = self.next_hot.as_ref().map(|(day, _)| *day);
            if self.files.front().is_some_and(|f| hot_day.is_none_or(|d| f.day <= d)) {
                let f = self.files.pop_front()?;
                match self.read_file(&f) {
                    Ok(parts) => self.ready.extend(parts),
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            return self.next_hot.take().map(|(_, part)| Ok(part));
        }
    }
}

/// The rows of a hot value a scan reads: written with a seq in `seqs`, not moved by `mark`.
fn hot_rows(
    key: keys::EventKey,
    value: &[u8],
    kv: &dyn super::KvStore,
    seqs: std::ops::Range<u64>,
    mark: TierMark,
    event_time: Option<usize>,
) -> Result<Option<arrow::array::RecordBatch>> {
    if key.merge == 0 && !mark.touches_block(key.seq, key.block) {
        return decode_batch(value).map(Some);
    }
    let Some(value) = HotValue::read(key, value, kv)?.and_then(|v| v.within(seqs)) else { return Ok(None) };
    Ok(value.unmoved(event_time, mark)?.map(|v| v.batch))
}
