//! An in-memory [`KvStore`] with the same contract as the sled hot tier, for tests.

use parking_lot::RwLock;
use std::collections::BTreeMap;

use super::{KvOp, KvPair, KvStore};
use crate::error::Result;

/// A `BTreeMap` behind a lock. Everything is "durable" at once because nothing survives anyway.
#[derive(Default)]
pub struct MemoryKv {
    map: RwLock<BTreeMap<Vec<u8>, bytes::Bytes>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvStore for MemoryKv {
    fn apply(&self, ops: Vec<KvOp>) -> Result<()> {
        let mut map = self.map.write();
        for op in ops {
            match op {
                KvOp::Put(k, v) => {
                    map.insert(k, bytes::Bytes::from(v));
                }
                KvOp::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let map = self.map.read();
        Ok(map.get(key).map(|v| v.to_vec()))
    }

    fn scan(&self, start: &[u8], end: &[u8]) -> Box<dyn Iterator<Item = Result<KvPair>> + Send> {
        // A snapshot keeps the iterator independent of the lock; tests hold little data.
        let pairs: Vec<Result<KvPair>> =
            self.map.read().range(start.to_vec()..end.to_vec()).map(|(k, v)| Ok((k.clone(), v.clone()))).collect();
        Box::new(pairs.into_iter())
    }
}
