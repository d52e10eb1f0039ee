//! An in-memory [`KvStore`] with the same contract as the sled hot tier, for tests.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::{KvOp, KvPair, KvStore};
use crate::error::Result;

/// A `BTreeMap` behind a lock. Everything is "durable" at once because nothing survives anyway.
#[derive(Default)]
pub struct MemoryKv {
    map: Arc<RwLock<BTreeMap<Vec<u8>, bytes::Bytes>>>,
}

/// A scan that, like sled's, is no snapshot: each step finds the next key present now, so
/// batches applied during a scan show up in it (or vanish from it) past its position. Tests
/// of readers racing writers, merges and collection run against that.
struct LiveScan {
    map: Arc<RwLock<BTreeMap<Vec<u8>, bytes::Bytes>>>,
    from: Bound<Vec<u8>>,
    end: Vec<u8>,
}

impl Iterator for LiveScan {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        let map = self.map.read();
        let (key, value) = map.range((self.from.clone(), Bound::Excluded(self.end.clone()))).next()?;
        self.from = Bound::Excluded(key.clone());
        Some(Ok((key.clone(), value.clone())))
    }
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
        if start >= end {
            return Box::new(std::iter::empty());
        }
        Box::new(LiveScan { map: self.map.clone(), from: Bound::Included(start.to_vec()), end: end.to_vec() })
    }
}
