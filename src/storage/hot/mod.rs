//! The hot tier on sled: recent events, the catalog and counters, under `<data-dir>/hot`.

mod group_commit;

use std::path::Path;

use group_commit::GroupCommit;

use super::{KvOp, KvPair, KvStore};
use crate::error::Result;

pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// A [`KvStore`] backed by one sled tree.
///
/// Every batch goes through `Tree::apply_batch`, which sled applies atomically and recovers
/// atomically after a crash. Durability comes from `Db::flush`, shared between concurrent
/// writers by [`GroupCommit`].
pub struct SledKv {
    db: sled::Db,
    commits: GroupCommit,
}

impl SledKv {
    /// Opens (or creates) the store in `dir`, with a page cache of `cache_bytes` (default
    /// [`DEFAULT_CACHE_BYTES`]).
    pub fn open(dir: &Path, cache_bytes: Option<u64>) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES))
            // We flush explicitly on every commit; sled's timer flush would only add I/O.
            .flush_every_ms(None)
            .open()?;
        Ok(Self { db, commits: GroupCommit::default() })
    }
}

impl KvStore for SledKv {
    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                KvOp::Put(k, v) => batch.insert(k, v),
                KvOp::Delete(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.commits.sync(|| self.db.flush().map(|_| ()).map_err(Into::into))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<KvPair>> + Send> {
        Box::new(
            self.db
                .range(start.to_vec()..end.to_vec())
                .map(|r| r.map(|(k, v)| (k.to_vec(), bytes::Bytes::from_owner(v))).map_err(Into::into)),
        )
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::error!("flush on close failed: {e}");
        }
    }
}
