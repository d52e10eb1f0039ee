//! Feature state snapshots: a feature's per-key events written to the hot tier as Arrow IPC
//! chunks, so a restart loads the state instead of recomputing it from the source table.
//!
//! A snapshot records `next_seq`, the store's sequence number when it was taken (under the
//! commit gate, so it holds exactly the writes numbered below it). Restoring loads the chunks,
//! then replays the source table's writes numbered `next_seq` or above (`EventStore::scan_since`).
//!
//! ```text
//!  chunk = key (binary, row-encoded) | time | seq | flags | one column per aggregate
//!          (UInt64 words; an order-sensitive aggregate of another type keeps its value)
//! ```
//! A key whose earliest events were evicted (older than every window still evaluated) gets
//! one more row with arrival number `FIRST_ONLY` and that earliest time: it still matches.
//! For a table with ingest times, that row's ingest word is the key's greatest ingest time and
//! its flags word the least ingest time of its evicted events (`i64::MAX`: none).
//! Tiles are not stored: restoring appends each key's events in order, which builds the tiles
//! incrementally at the cost of one fold per event.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::scalar::ScalarValue;

use super::accumulate::HEADER;
use super::def::CompiledFeature;
use super::encoding::{Repr, VALUE};
use super::state::{FIRST_ONLY, FeatureState};
use crate::error::{Error, Result};
use crate::storage::{EventStore, keys};

/// A snapshot's description: it holds the writes numbered below `next_seq`, in `chunks` chunks
/// stored under `generation`.
///
/// Each snapshot writes its chunks under a new generation, one stored value at a time and not
/// durably, then switches to them by writing this description in a durable commit (whose sync
/// makes the chunks durable too) that also deletes the previous generation's chunks. A crash
/// before the switch leaves the previous snapshot in force, and stray chunks only under the
/// next generation, which the next snapshot deletes before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub next_seq: u64,
    pub chunks: u32,
    /// 0 for snapshots written before generations (chunk keys without one).
    pub generation: u64,
    /// What the chunks hold ([`FORMAT`] now; 0 for snapshots written before formats).
    pub format: u32,
}

/// The snapshot format written now. 1: a key's first-time row of a feature over a table with
/// ingest times holds the least ingest time of its evicted events in its flags word, and such
/// a feature keeps repeated distinct values. A feature over a table with ingest times whose
/// snapshot is older is rebuilt from the table instead (`LiveFeature::open`).
pub const FORMAT: u32 = 1;

impl SnapshotMeta {
    /// The description of feature `name`'s snapshot, if it has one.
    pub fn read(store: &EventStore, name: &str) -> Result<Option<Self>> {
        store.get(&keys::feature_snapshot(name))?.map(|bytes| Self::decode(name, &bytes)).transpose()
    }

    /// A stored description (value of `keys::feature_snapshot(name)`).
    pub fn decode(name: &str, bytes: &[u8]) -> Result<Self> {
        let corrupt = || Error::Storage(format!("feature \"{name}\": corrupt snapshot description"));
        let next_seq = bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?;
        let chunks = bytes.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(corrupt)?;
        let generation = match bytes.len() {
            12 => 0,
            20 | 24 => bytes.get(12..20).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt)?,
            _ => return Err(corrupt()),
        };
        let format = match bytes.len() {
            24 => bytes.get(20..24).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(corrupt)?,
            _ => 0,
        };
        Ok(Self { next_seq, chunks, generation, format })
    }

    pub fn encode(&self) -> Vec<u8> {
        [
            &self.next_seq.to_be_bytes()[..],
            &self.chunks.to_be_bytes(),
            &self.generation.to_be_bytes(),
            &self.format.to_be_bytes(),
        ]
        .concat()
    }

    /// The keys of this snapshot's chunks.
    pub fn chunk_keys(&self, name: &str) -> Vec<Vec<u8>> {
        (0..self.chunks).map(|i| keys::feature_state(name, self.generation, i)).collect()
    }

    /// The prefix of this snapshot's chunk keys.
    pub fn chunk_prefix(&self, name: &str) -> Vec<u8> {
        keys::feature_generation(name, self.generation)
    }

    /// True when `key` is one of this snapshot's chunk keys.
    pub fn owns(&self, name: &str, key: &[u8]) -> bool {
        let prefix = self.chunk_prefix(name);
        // Under generation 0's prefix (every chunk's) only keys with just a chunk number are its.
        key.starts_with(&prefix) && key.len() == prefix.len() + 4
    }

    /// Calls `each` with this snapshot's stored chunks in order, one at a time.
    pub fn for_each_chunk(
        &self,
        store: &EventStore,
        name: &str,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut found = 0u32;
        for pair in store.scan_prefix(&self.chunk_prefix(name)) {
            let (key, chunk) = pair?;
            if self.owns(name, &key) {
                each(&chunk)?;
                found += 1;
            }
        }
        if found != self.chunks {
            return Err(Error::Storage(format!(
                "feature \"{name}\": snapshot has {found} of its {} chunks",
                self.chunks
            )));
        }
        Ok(())
    }
}

/// The keys of every stored chunk under `prefix` (a feature's, or one generation's).
pub fn stored_chunk_keys(store: &EventStore, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
    store.scan_prefix(prefix).map(|pair| pair.map(|(key, _)| key)).collect()
}

/// Events per chunk: bounds the size of one stored value.
const CHUNK_EVENTS: usize = 65_536;

/// The state as batches of at most [`CHUNK_EVENTS`] events, each handed to `sink` as soon as
/// it is full, so the whole state is never held a second time as Arrow arrays.
pub fn export(
    feature: &CompiledFeature,
    state: &FeatureState,
    mut sink: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let stride = feature.stride();
    let mut pending = Pending::default();
    for (key, history) in state.encoded_keys() {
        let evicted_ingest = state.evicted_ingest(key);
        if let Some(first) = history.evicted_first(feature).or(evicted_ingest.and(history.first())) {
            // The key's earliest event was evicted: a row records its time only.
            pending.keys.append_value(key);
            let start = pending.words.len();
            pending.words.extend([first as u64, FIRST_ONLY]);
            pending.words.resize(start + stride, 0);
            if feature.ingest.is_some() {
                // The ingest word of a FIRST_ONLY row: the key's greatest ingest time, which
                // evicted events may hold; its flags word, the least of its evicted events'.
                pending.words[start + stride - 1] = state.latest_ingest(key).unwrap_or(0) as u64;
                pending.words[start + 2] = evicted_ingest.unwrap_or(i64::MAX) as u64;
            }
            let others = feature.reprs.iter().enumerate().filter(|(_, r)| **r == Repr::Other).map(|(j, _)| (j, None));
            pending.others.push(others.collect());
            if pending.others.len() == CHUNK_EVENTS {
                sink(pending.finish(feature)?)?;
            }
        }
        let (words, others) = history.raw();
        for event in words.chunks_exact(stride) {
            pending.keys.append_value(key);
            pending.words.extend_from_slice(event);
            let flags = event[2];
            let values = feature.reprs.iter().enumerate().filter(|(_, r)| **r == Repr::Other).map(|(j, _)| {
                let value = ((flags >> (2 * j)) & 3 == VALUE).then(|| others.get(event[HEADER + j] as usize)).flatten();
                (j, value.cloned())
            });
            pending.others.push(values.collect());
            if pending.others.len() == CHUNK_EVENTS {
                sink(pending.finish(feature)?)?;
            }
        }
    }
    if !pending.others.is_empty() {
        sink(pending.finish(feature)?)?;
    }
    Ok(())
}

#[derive(Default)]
struct Pending {
    keys: BinaryBuilder,
    words: Vec<u64>,
    others: Vec<Vec<(usize, Option<ScalarValue>)>>,
}

impl Pending {
    fn finish(&mut self, feature: &CompiledFeature) -> Result<RecordBatch> {
        let stride = feature.stride();
        let mut fields = vec![Field::new("key", DataType::Binary, false)];
        let mut columns: Vec<ArrayRef> = vec![Arc::new(self.keys.finish())];
        for w in 0..stride {
            let j = w.checked_sub(HEADER);
            let other = j.filter(|j| feature.reprs.get(*j) == Some(&Repr::Other));
            let column: ArrayRef = match other {
                Some(j) => {
                    let position = feature.reprs[..j].iter().filter(|r| **r == Repr::Other).count();
                    let null = ScalarValue::try_from(&feature.arg_types[j])?;
                    let values = self.others.iter().map(|o| o[position].1.clone().unwrap_or_else(|| null.clone()));
                    super::def::array_of(values, &feature.arg_types[j])?
                }
                None => Arc::new(UInt64Array::from_iter_values(self.words.iter().skip(w).step_by(stride).copied())),
            };
            fields.push(Field::new(format!("w{w}"), column.data_type().clone(), true));
            columns.push(column);
        }
        self.words.clear();
        self.others.clear();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}

/// Adds the events of one exported chunk to `state`.
pub fn import(feature: &CompiledFeature, state: &mut FeatureState, chunk: &RecordBatch) -> Result<()> {
    let stride = feature.stride();
    if chunk.num_columns() != stride + 1 {
        return Err(Error::Storage(format!("feature \"{}\": snapshot chunk has the wrong shape", feature.def.name)));
    }
    let keys = chunk.column(0).as_binary_opt::<i32>().ok_or_else(|| Error::Storage("snapshot key column".into()))?;
    let mut words: Vec<Option<&UInt64Array>> = Vec::with_capacity(stride);
    for w in 0..stride {
        let other = w >= HEADER && feature.reprs.get(w - HEADER) == Some(&Repr::Other);
        words.push(if other {
            None
        } else {
            Some(
                chunk
                    .column(w + 1)
                    .as_primitive_opt::<UInt64Type>()
                    .ok_or_else(|| Error::Storage("snapshot word column".into()))?,
            )
        });
    }
    let mut event = vec![0u64; stride];
    for row in 0..chunk.num_rows() {
        let mut others = Vec::new();
        for (w, column) in words.iter().enumerate() {
            match column {
                Some(c) => event[w] = c.value(row),
                None => {
                    event[w] = 0;
                    let array = chunk.column(w + 1);
                    if array.is_valid(row) {
                        others.push((w - HEADER, ScalarValue::try_from_array(array, row)?));
                    }
                }
            }
        }
        state.restore(feature, keys.value(row), &mut event, others);
    }
    Ok(())
}
