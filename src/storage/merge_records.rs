//! The durable side of a hot-tier merge (`compaction`): the record its batch writes, the
//! deletes of its inputs, and finishing merges a crash interrupted, at open.

use super::keys::{self, EventKey};
use super::{KvOp, KvStore};
use crate::error::{Error, Result};

const MERGE_COUNTER: &str = "merge";

/// The puts that go with a merged value: its record (naming its inputs) and the counter.
pub(super) fn record(merged: &EventKey, first_seq: u64) -> [KvOp; 2] {
    [
        KvOp::Put(keys::merging(merged), first_seq.to_be_bytes().to_vec()),
        KvOp::Put(keys::counter(MERGE_COUNTER), merged.merge.to_be_bytes().to_vec()),
    ]
}

/// The deletes of a merge's inputs and of its record: every value of its block from its first
/// seq up to its merged value (later merges never take part of an earlier one's range).
pub(super) fn input_deletes(kv: &dyn KvStore, merged: &EventKey, first_seq: u64) -> Result<Vec<KvOp>> {
    let start = keys::event(merged.table_id, merged.block, first_seq);
    let mut ops = Vec::new();
    for pair in kv.scan(&start, &merged.encode()) {
        let (key, value) = pair?;
        ops.extend(super::hot_value::deletes(kv, key, &value)?);
    }
    ops.push(KvOp::Delete(keys::merging(merged)));
    Ok(ops)
}

/// At open, before anything reads: deletes the inputs of merges a crash interrupted, and
/// returns the number of the last merge made.
pub(super) fn recover(kv: &dyn KvStore) -> Result<u64> {
    let records: Vec<_> = kv.scan(keys::MERGING, &keys::prefix_end(keys::MERGING)).collect::<Result<_>>()?;
    for (key, value) in records {
        let corrupt = || Error::Storage("corrupt merge record".into());
        let merged = keys::parse_merging(&key).ok_or_else(corrupt)?;
        let first_seq = keys::be_u64(&value, 0).ok_or_else(corrupt)?;
        kv.apply(input_deletes(kv, &merged, first_seq)?)?;
    }
    kv.sync()?;
    Ok(match kv.get(&keys::counter(MERGE_COUNTER))? {
        Some(v) => keys::be_u64(&v, 0).ok_or_else(|| Error::Storage("corrupt merge counter".into()))?,
        None => 0,
    })
}
