//! The durable side of a staged write (`staging`): the roll-forward record its commit writes,
//! moving its pieces to their event keys, and finishing or dropping staged writes at open.

use super::{KvOp, KvStore, keys};
use crate::error::{Error, Result};

/// Bytes of values moved per atomic batch during a roll-forward.
const MOVE_BATCH_BYTES: usize = 32 << 20;

/// What a staged write's commit needs to know.
#[derive(Debug, Clone, Copy)]
pub struct StagedCommit {
    pub id: u64,
    pub table_id: u64,
    pub pieces: u32,
    pub rows: u64,
    pub watermark: Option<i64>,
}

pub(super) fn delete_prefix(kv: &dyn KvStore, prefix: &[u8]) -> Result<()> {
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
    KvOp::Put(keys::rolling(staged.id), value)
}

/// Moves a committed write's pieces to their event keys and removes its record; returns the
/// (block, seq) of each piece moved. Idempotent: a crash midway is finished by running it again.
pub(super) fn roll_forward(kv: &dyn KvStore, id: u64, table_id: u64, first_seq: u64) -> Result<Vec<(i64, u64)>> {
    let prefix = keys::staged_of(id);
    let (mut ops, mut bytes, mut moved) = (Vec::new(), 0, Vec::new());
    for pair in kv.scan(&prefix, &keys::prefix_end(&prefix)) {
        let (key, value) = pair?;
        let corrupt = || Error::Storage("corrupt staged piece".into());
        let piece =
            key.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(corrupt)?;
        let block = keys::be_u64(&value, 8).ok_or_else(corrupt)? as i64;
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
    ops.push(KvOp::Delete(keys::rolling(id)));
    kv.apply(ops)?;
    Ok(moved)
}

/// At open: finishes the moves of committed writes, then deletes what aborted ones staged.
pub(super) fn recover(kv: &dyn KvStore) -> Result<()> {
    let records: Vec<_> = kv.scan(keys::ROLLING, &keys::prefix_end(keys::ROLLING)).collect::<Result<_>>()?;
    for (key, value) in records {
        let corrupt = || Error::Storage("corrupt roll-forward record".into());
        let id = keys::be_u64(&key, keys::ROLLING.len()).ok_or_else(corrupt)?;
        let table_id = keys::be_u64(&value, 0).ok_or_else(corrupt)?;
        let first = keys::be_u64(&value, 8).ok_or_else(corrupt)?;
        let moved = roll_forward(kv, id, table_id, first)?;
        tracing::info!(pieces = moved.len(), "finished committing a staged write interrupted by a crash");
    }
    delete_prefix(kv, keys::STAGED)
}
