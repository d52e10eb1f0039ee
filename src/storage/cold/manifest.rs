//! The manifest: which cold files exist and which hot rows they replaced, kept in the hot tier.
//!
//! A move writes its Parquet files first, then records them, together with the table's new
//! [`TierMark`], in one atomic hot-tier batch. Until that batch the files are orphans (removed
//! at the next collection); after it, the rows the mark covers are read from the files and
//! skipped in the hot tier, whether or not their hot copies have been deleted yet. So a crash
//! at any point of a move leaves every row exactly once.
//!
//! A version also carries the hot tier's merges still in progress
//! ([`PendingMerges`](crate::storage::pending_merges::PendingMerges)): a reader's version is
//! the one view of both tiers it reads from start to end.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::blocks::BLOCK_MICROS;

/// One Parquet file of the cold tier: rows of one table and one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColdFile {
    pub table_id: u64,
    /// Days since 1970-01-01 of every row's event time.
    pub day: i64,
    /// Unique number of the file (names it; orders files of one day with the same seq).
    pub file_no: u64,
    /// Path inside the cold store.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    /// Smallest and greatest event time in the file (µs).
    pub min_time: i64,
    pub max_time: i64,
    /// The arrival sequence number its rows take when read: greater than every earlier file of
    /// the day and smaller than every hot row that remains, so ties keep their arrival order.
    pub seq: u64,
    /// Positions (file row numbers, ascending) of rows erased since the file was written:
    /// every read skips them, and the next compaction writes the file again without them.
    /// Bounded by [`ERASED_MAX`]: an erasure that would pass it rewrites the file at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<u32>,
}

/// The most erased rows a file's entry lists: beyond it, an erasure rewrites the file.
pub const ERASED_MAX: usize = 4096;

impl ColdFile {
    /// The rows a read returns: those written, less those erased since.
    pub fn live_rows(&self) -> u64 {
        self.rows.saturating_sub(self.erased.len() as u64)
    }
}

/// Which hot rows of a table live in the cold tier: those written with a sequence number below
/// `below_seq` whose event time is before `before_time`. Both only grow, so the latest mark
/// alone describes every move so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMark {
    pub below_seq: u64,
    pub before_time: i64,
}

impl TierMark {
    pub const NONE: TierMark = TierMark { below_seq: 0, before_time: i64::MIN };

    /// The rows both marks cover.
    pub fn meet(self, other: TierMark) -> TierMark {
        TierMark {
            below_seq: self.below_seq.min(other.below_seq),
            before_time: self.before_time.min(other.before_time),
        }
    }

    /// Whether the rows of a hot value with `seq` in `block` all live in the cold tier.
    pub fn covers_block(&self, seq: u64, block: i64) -> bool {
        seq < self.below_seq && block.saturating_add(1).saturating_mul(BLOCK_MICROS) <= self.before_time
    }

    /// Whether some rows of a hot value with `seq` in `block` live in the cold tier.
    pub fn touches_block(&self, seq: u64, block: i64) -> bool {
        seq < self.below_seq && block.saturating_mul(BLOCK_MICROS) < self.before_time
    }
}

pub const DAY_MICROS: i64 = 24 * BLOCK_MICROS;

/// The day (since the epoch) of an event time.
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS)
}

/// One version of the manifest. Readers hold an `Arc` of the version they started with.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Files by (table, day, file number).
    /// Files by (table, day, seq, file number): a day's files in the order their rows arrived,
    /// which a file rewritten by an erasure (a new number, its old seq) keeps.
    files: BTreeMap<(u64, i64, u64, u64), ColdFile>,
    marks: HashMap<u64, TierMark>,
    /// Hot-tier merges this version knows and which of them still have inputs stored.
    pub merges: crate::storage::pending_merges::PendingMerges,
}

impl Manifest {
    pub fn mark(&self, table_id: u64) -> TierMark {
        self.marks.get(&table_id).copied().unwrap_or(TierMark::NONE)
    }

    /// A table's files, by day then by the order their rows arrived.
    pub fn files(&self, table_id: u64) -> impl Iterator<Item = &ColdFile> {
        self.files.range((table_id, i64::MIN, 0, 0)..=(table_id, i64::MAX, u64::MAX, u64::MAX)).map(|(_, f)| f)
    }

    pub fn all_files(&self) -> impl Iterator<Item = &ColdFile> {
        self.files.values()
    }

    pub fn contains_path(&self, path: &str) -> bool {
        self.files.values().any(|f| f.path == path)
    }

    pub fn add(&mut self, file: ColdFile) {
        self.files.insert((file.table_id, file.day, file.seq, file.file_no), file);
    }

    pub fn remove(&mut self, file: &ColdFile) {
        self.files.remove(&(file.table_id, file.day, file.seq, file.file_no));
    }

    pub fn set_mark(&mut self, table_id: u64, mark: TierMark) {
        self.marks.insert(table_id, mark);
    }

    pub fn drop_table(&mut self, table_id: u64) {
        self.files.retain(|(t, ..), _| *t != table_id);
        self.marks.remove(&table_id);
        self.merges.drop_table(table_id);
    }

    /// Rebuilds a manifest from its stored entries (`keys::COLD_FILE` / `keys::TIER_MARK`).
    /// `merge_epoch` is the number of the last hot-tier merge made (none is pending at open).
    pub fn load(files: &[Vec<u8>], marks: &[(u64, Vec<u8>)], merge_epoch: u64) -> Result<Self> {
        let mut manifest =
            Manifest { merges: crate::storage::pending_merges::PendingMerges::new(merge_epoch), ..Manifest::default() };
        for entry in files {
            manifest.add(serde_json::from_slice(entry).map_err(|e| Error::Storage(format!("corrupt manifest: {e}")))?);
        }
        for (table_id, entry) in marks {
            let mark = serde_json::from_slice(entry).map_err(|e| Error::Storage(format!("corrupt tier mark: {e}")))?;
            manifest.set_mark(*table_id, mark);
        }
        Ok(manifest)
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::internal(format!("manifest encoding: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_cover_whole_and_partial_blocks() {
        let mark = TierMark { below_seq: 10, before_time: 2 * BLOCK_MICROS + 5 };
        assert!(mark.covers_block(9, 1));
        assert!(!mark.covers_block(9, 2) && mark.touches_block(9, 2));
        assert!(!mark.touches_block(10, 0), "later writes stay hot");
        assert!(!mark.touches_block(9, 3));
        assert!(!TierMark::NONE.touches_block(0, i64::MIN));
        assert_eq!(day_of(-1), -1);
    }
}
