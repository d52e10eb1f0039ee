//! Storage: the durable home of event rows, catalog entries and counters.
//!
//! Two layers. [`KvStore`] is the small contract every backend meets (atomic multi-key
//! batches, ordered scans, a durability barrier); [`sled`](hot::SledKv) is the real hot tier
//! and [`MemoryKv`] mirrors it in memory for tests. [`EventStore`] sits on top of any
//! `KvStore` and knows the key layout (see `keys`), how rows are grouped into Arrow blocks by
//! event time, and the per-table statistics (watermark, row count).

pub mod backup;
pub mod blocks;
pub mod cold;
mod committer;
mod compaction;
mod disk_reserve;
mod erasure;
mod events;
pub mod hot;
mod hot_value;
mod ingest_time;
pub mod keys;
mod memory;
mod merge_records;
mod pending_merges;
mod scan;
mod schema_ids;
mod segments;
mod staged_records;
mod staging;
mod tiering;
mod widen;

pub use blocks::{BLOCK_MICROS, StoredPart, decode_batch, encode_batch};
pub use compaction::{HotCompaction, MERGED_ROWS};
pub use disk_reserve::DiskReserve;
pub use erasure::{Erased, Erasure};
pub use events::{Append, CatalogKind, Commit, EventStore, TableStats};
pub use memory::MemoryKv;
pub use scan::{Scan, ScanTable};
pub use staging::StagedWrite;
pub use tiering::{MoveRequest, TierReport, TierTable, TierUsage};
pub use widen::TableColumns;

use crate::error::Result;

/// One change in an atomic batch.
#[derive(Debug, Clone)]
pub enum KvOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// A key and its value, as returned by scans. Values are shared, not copied.
pub type KvPair = (Vec<u8>, bytes::Bytes);

/// An ordered key-value store with atomic batches.
///
/// Contract:
/// - `apply` is atomic: after a crash at any moment, either every op of the batch is present
///   or none is. Once `apply` returns, the batch is visible to every later read.
/// - `apply` alone does not make a batch durable. A batch is durable once a call to `sync`
///   that started after `apply` returned has returned `Ok`. Concurrent `sync` callers share
///   one physical flush (group commit).
/// - Scans return keys in ascending byte order and see every batch applied before they began.
pub trait KvStore: Send + Sync + 'static {
    fn apply(&self, ops: Vec<KvOp>) -> Result<()>;
    fn sync(&self) -> Result<()>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// All pairs with `start <= key < end`, in key order.
    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<KvPair>> + Send>;
}
