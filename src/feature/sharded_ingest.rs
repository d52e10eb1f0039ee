//! A backfill on every core: the stored writes are read and decoded once, every thread is
//! given each of them and ingests the rows of its own share of the keys into a state of its
//! own, and the states are joined at the end.
//!
//! Key-partitioned, as the events of one key must be ingested in storage order by one
//! thread. Every state sees every row's time, so each evicts by the same greatest time and
//! settles (`FeatureState::settle`) as one state of every key would: each thread settles
//! its own before they are joined, and the joined state holds what a single thread's would.
//!
//! Tiles are built once at the end, not kept up to date event by event
//! (`CompiledFeature::untiled`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use super::def::CompiledFeature;
use super::state::{FeatureState, MAX_SHARDS, ShardedWrite};
use crate::error::{Error, Result};
use crate::storage::StoredPart;

/// Below this many stored rows a backfill runs on the calling thread: threads would cost more
/// than they save. The tests set `ASOFDB_BACKFILL_SHARDED_ROWS` to 0, so that every backfill
/// of theirs takes the path a large table's does.
const SHARDED_ROWS: u64 = 200_000;

/// Ingest threads at most: a backfill holds one state per thread until they are joined, and
/// more than 8 cores is beyond what this was measured on.
const MAX_THREADS: usize = 8;

fn sharded_rows() -> u64 {
    std::env::var("ASOFDB_BACKFILL_SHARDED_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(SHARDED_ROWS)
}

/// Writes read ahead of the slowest thread: bounds the memory of decoded parts in flight.
const QUEUE: usize = 8;

/// What [`ingest`] built: the state, the rows read, one past the greatest seq seen, and
/// on how many threads.
pub struct Ingested {
    pub state: FeatureState,
    pub rows: u64,
    pub applied: u64,
    pub threads: usize,
}

/// How a backfilled state was obtained, for `asofdb.feature_state`.
pub fn origin(rows: u64, threads: usize) -> String {
    match threads {
        1 => format!("backfilled from {rows} rows"),
        n => format!("backfilled from {rows} rows on {n} threads"),
    }
}

/// Ingests stored writes into a new state, on as many threads as the machine has cores when
/// `rows_hint` (the rows expected) is at least [`SHARDED_ROWS`] (at most [`MAX_THREADS`]). `applied` is the seq
/// counted from (the result's `applied` is at least it). With `checked`, each write is
/// checked first (`CompiledFeature::check`), in storage order, so the error is the one a
/// single thread would raise. `progress` gets the running count of rows read; an error from
/// it stops the backfill. `max_time`, the greatest event time of the rows if known, lets the
/// states skip holding events older than the window will reach (`FeatureState::start_from`;
/// the caller checks the result's `max_time` reached it).
pub fn ingest(
    compiled: &CompiledFeature,
    parts: impl Iterator<Item = Result<StoredPart>>,
    (rows_hint, max_time): (u64, Option<i64>),
    applied: u64,
    checked: bool,
    progress: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Ingested> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS).min(MAX_SHARDS);
    let untiled = compiled.untiled();
    let mut state = start(compiled, max_time)?;
    if threads < 2 || rows_hint < sharded_rows() {
        let (rows, applied) = ingest_serial(&untiled, &mut state, parts, applied, checked, progress)?;
        state.settle(&untiled);
        state.build_tiles(compiled);
        Ok(Ingested { state, rows, applied, threads: 1 })
    } else {
        ingest_sharded((compiled, &untiled), (state, max_time), threads, parts, applied, checked, progress)
    }
}

/// A new state, started from `max_time` if known (`FeatureState::start_from`).
fn start(feature: &CompiledFeature, max_time: Option<i64>) -> Result<FeatureState> {
    let mut state = FeatureState::new(feature)?;
    if let Some(max_time) = max_time {
        state.start_from(feature, max_time);
    }
    Ok(state)
}

/// [`ingest`] on `threads` threads, one shard of the keys each; each settles its shard and
/// builds its tiles (`features.0`) before the shards are joined, so the last passes over
/// every key run on every thread too. `features.1` is the untiled form the writes are
/// ingested with. Each shard's state starts from `states.1` as `states.0` did.
fn ingest_sharded(
    features: (&CompiledFeature, &CompiledFeature),
    states: (FeatureState, Option<i64>),
    threads: usize,
    parts: impl Iterator<Item = Result<StoredPart>>,
    applied: u64,
    checked: bool,
    progress: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Ingested> {
    let (tiled, untiled) = features;
    let (mut state, max_time) = states;
    // Set when the read fails: the threads then skip settling, whose work would be thrown away.
    let read_failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for index in 0..threads {
            let (sender, receiver) = sync_channel::<Arc<(StoredPart, ShardedWrite)>>(QUEUE);
            senders.push(sender);
            let worker = std::thread::Builder::new().name(format!("asofdb-backfill-{index}"));
            let read_failed = &read_failed;
            let spawned = worker.spawn_scoped(scope, move || -> Result<FeatureState> {
                let mut state = start(untiled, max_time)?;
                for shared in receiver {
                    let (part, write) = &*shared;
                    state.ingest_shard(untiled, &part.batch, part.seq, write, index)?;
                }
                // Every shard saw every row's event time, so each settles as the joined
                // state would.
                if !read_failed.load(Ordering::SeqCst) {
                    state.settle(untiled);
                    state.build_tiles(tiled);
                }
                Ok(state)
            });
            workers.push(spawned.map_err(|e| Error::internal(format!("cannot start a backfill thread: {e}")))?);
        }
        let read = read_into(untiled, &state, &senders, parts, applied, checked, progress);
        read_failed.store(read.is_err(), Ordering::SeqCst);
        drop(senders);
        let mut states = Vec::with_capacity(threads);
        let mut failed = None;
        for worker in workers {
            match worker.join().unwrap_or_else(|panic| Err(Error::panicked("a backfill thread", &*panic))) {
                Ok(state) => states.push(state),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // A thread's error ends the read (its queue closes); the reader's own error otherwise.
        if let Some(e) = failed {
            return Err(e);
        }
        let (rows, applied) = read?;
        for shard in states {
            state.absorb(shard);
        }
        Ok(Ingested { state, rows, applied, threads })
    })
}

/// Reads and decodes the writes, row-encodes their keys and shares them among the threads
/// (`encoder`'s encoding), hands each to every thread; returns (rows read, one past the
/// greatest seq). Stops early, with `Ok`, when a thread has stopped: its error is the one to
/// report. Checks run here, before any thread has the write, so the error is the first in
/// storage order.
fn read_into(
    compiled: &CompiledFeature,
    encoder: &FeatureState,
    senders: &[std::sync::mpsc::SyncSender<Arc<(StoredPart, ShardedWrite)>>],
    parts: impl Iterator<Item = Result<StoredPart>>,
    applied: u64,
    checked: bool,
    progress: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<(u64, u64)> {
    read(compiled, parts, applied, checked, progress, |part| {
        let write = encoder.shard_write(compiled, &part.batch, senders.len())?;
        let shared = Arc::new((part, write));
        Ok(senders.iter().all(|sender| sender.send(shared.clone()).is_ok()))
    })
}

/// Ingests stored writes into `state` on the calling thread; returns (rows read, one past the
/// greatest seq seen, at least `applied`). As [`ingest`] for `checked` and `progress`.
pub fn ingest_serial(
    compiled: &CompiledFeature,
    state: &mut FeatureState,
    parts: impl Iterator<Item = Result<StoredPart>>,
    applied: u64,
    checked: bool,
    progress: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<(u64, u64)> {
    read(compiled, parts, applied, checked, progress, |part| {
        state.ingest(compiled, &part.batch, part.seq)?;
        Ok(true)
    })
}

/// Each stored write, checked with `checked`, to `take` (which returns false to stop), then
/// counted to `progress`; returns (rows read, one past the greatest seq, at least `applied`).
fn read(
    compiled: &CompiledFeature,
    parts: impl Iterator<Item = Result<StoredPart>>,
    mut applied: u64,
    checked: bool,
    progress: &mut dyn FnMut(u64) -> Result<()>,
    mut take: impl FnMut(StoredPart) -> Result<bool>,
) -> Result<(u64, u64)> {
    let mut rows = 0;
    for part in parts {
        let part = part?;
        if checked {
            compiled.check(&part.batch)?;
        }
        rows += part.batch.num_rows() as u64;
        applied = applied.max(part.seq + 1);
        if !take(part)? {
            break;
        }
        progress(rows)?;
    }
    Ok((rows, applied))
}
