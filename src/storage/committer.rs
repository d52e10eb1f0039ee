//! The committer thread: group commit. It takes every commit queued at a moment, writes the
//! plain ones (appends and catalog entries) as one atomic batch, makes the group durable
//! with one sync, then answers each commit.
//!
//! One batch per group, not per commit: sled rolls its log buffer twice for every batch
//! (`PageCache::pin_log`), two writes and a dozen thread wake-ups each, which was the largest
//! cost of a single-row INSERT (docs/benchmarks.md, issue #24). A group's commits become
//! visible together and durable together; each still gets its own outcome, and one that
//! fails before the batch is written (a bad event time) fails alone.

use std::collections::HashMap;
use std::sync::{Arc, Weak, mpsc};

use super::blocks::StoredPart;
use super::events::{Applied, Commit, CommitJob, EventStore, TableStats, bookkeeping_ops, count_append};
use super::{KvOp, keys};
use crate::error::{Error, Result};

/// Commits taken into one group at most.
const MAX_GROUP: usize = 4096;

impl EventStore {
    /// Applies `commit` atomically and waits until it is durable.
    ///
    /// Commits go through one committer thread (`storage::committer`): it takes every commit
    /// queued at that moment, applies them in one atomic batch, makes them durable with one
    /// `sync`, then answers each. A batch becomes visible when applied, a moment before it
    /// is durable; the caller acknowledges the statement only after this returns.
    pub async fn commit(self: &Arc<Self>, commit: Commit) -> Result<Vec<StoredPart>> {
        Ok(self.commit_applied(commit).await?.parts)
    }

    pub(super) async fn commit_applied(self: &Arc<Self>, commit: Commit) -> Result<Applied> {
        // A staged COPY's commit rewrites its pieces under their final keys.
        let bytes: usize = commit.appends.iter().map(|a| a.batch.get_array_memory_size()).sum();
        if bytes > 0 || commit.staged.is_some() {
            self.reserve.check(bytes as u64)?;
        }
        let queue = self.committer.get_or_init(|| start(Arc::downgrade(self)));
        let (reply, outcome) = tokio::sync::oneshot::channel();
        queue.send((commit, reply)).map_err(|_| Error::internal("the committer thread has stopped"))?;
        outcome.await.map_err(|_| Error::internal("the committer thread has stopped"))?
    }
}

/// Starts the committer loop on its own thread; it ends when the store is dropped.
pub(super) fn start(store: Weak<EventStore>) -> mpsc::Sender<CommitJob> {
    let (queue, jobs) = mpsc::channel::<CommitJob>();
    let spawned = std::thread::Builder::new().name("asofdb-commit".into()).spawn(move || {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP
                && let Ok(next) = jobs.try_recv()
            {
                group.push(next);
            }
            let Some(store) = store.upgrade() else { break };
            commit_group(&store, group);
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the committer thread: {e}");
    }
    queue
}

/// Applies a group in order (runs of plain commits as one batch each, any other commit on
/// its own), syncs once, and answers every commit.
fn commit_group(store: &EventStore, group: Vec<CommitJob>) {
    let mut applied: Vec<(Result<Applied>, _)> = Vec::with_capacity(group.len());
    let mut run: Vec<CommitJob> = Vec::new();
    for (commit, reply) in group {
        if is_plain(&commit) {
            run.push((commit, reply));
            continue;
        }
        apply_run(store, std::mem::take(&mut run), &mut applied);
        applied.push((store.apply_all(commit), reply));
    }
    apply_run(store, run, &mut applied);
    let synced = if applied.iter().any(|(outcome, _)| outcome.is_ok()) {
        let started = std::time::Instant::now();
        let synced = store.sync();
        store.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        // Commits that failed alone (a bad value) made nothing durable.
        store.metrics.commit_group_size.observe(applied.iter().filter(|(outcome, _)| outcome.is_ok()).count() as f64);
        synced
    } else {
        Ok(())
    };
    for (outcome, reply) in applied {
        let outcome = match (&synced, outcome) {
            (Err(e), Ok(_)) => Err(not_durable(e)),
            (_, outcome) => outcome,
        };
        let _ = reply.send(outcome);
    }
}

/// A commit that only appends rows and writes or removes catalog entries.
fn is_plain(commit: &Commit) -> bool {
    commit.staged.is_none() && commit.dropped_tables.is_empty()
}

/// Writes a run of plain commits as one atomic batch. A commit whose rows cannot be encoded
/// fails alone; if the batch cannot be written, every commit of the run fails.
fn apply_run(
    store: &EventStore,
    run: Vec<CommitJob>,
    applied: &mut Vec<(Result<Applied>, tokio::sync::oneshot::Sender<Result<Applied>>)>,
) {
    if run.is_empty() {
        return;
    }
    let mut counters = store.counters.lock();
    let mut stats = store.stats.write();
    let mut next_seq = counters.next_seq;
    let mut new_stats: HashMap<u64, TableStats> = HashMap::new();
    let mut ops = Vec::new();
    let mut new_schemas = Vec::new();
    let mut outcomes = Vec::with_capacity(run.len());
    let clock_before = store.ingest_clock.last();
    for (commit, reply) in run {
        let mut written =
            Written { next_seq: &mut next_seq, stats: &mut new_stats, ops: &mut ops, schemas: &mut new_schemas };
        let outcome = stamped(store, commit).and_then(|commit| prepare(store, &commit, &stats, &mut written));
        outcomes.push((outcome, reply));
    }
    if outcomes.iter().all(|(outcome, _)| outcome.is_err()) {
        applied.extend(outcomes.into_iter().map(|(outcome, reply)| (outcome.map(|_| Applied::default()), reply)));
        return;
    }
    bookkeeping_ops(&new_stats, next_seq, &counters, &mut ops);
    if store.ingest_clock.last() != clock_before {
        let last = store.ingest_clock.last().to_be_bytes().to_vec();
        ops.push(KvOp::Put(keys::counter(super::events::INGEST_CLOCK), last));
    }
    match store.kv.apply(ops) {
        Ok(()) => {
            store.schema_ids.stored(&new_schemas);
            counters.next_seq = next_seq;
            stats.extend(new_stats);
            drop(stats);
            drop(counters);
            store.visible_seq.fetch_max(next_seq, std::sync::atomic::Ordering::SeqCst);
            for (outcome, reply) in outcomes {
                applied.push((outcome.map(|parts| Applied { parts, moved: Vec::new() }), reply));
            }
        }
        Err(e) => {
            for (outcome, reply) in outcomes {
                applied.push((outcome.and_then(|_| Err(same_failure(&e))), reply));
            }
        }
    }
}

/// `commit` with its rows' missing ingest times set to its commit time (tables with an
/// `ingest_time` column only; see `ingest_time`).
fn stamped(store: &EventStore, mut commit: Commit) -> Result<Commit> {
    let mut at = None;
    for append in &mut commit.appends {
        let Some(column) = store.columns_of(append.table_id).and_then(|c| c.ingest_time) else { continue };
        let at = *at.get_or_insert_with(|| store.ingest_clock.tick());
        append.batch = super::ingest_time::stamp(append.batch.clone(), column, at)?;
    }
    Ok(commit)
}

/// What a run of commits writes so far: the next seq, the changed statistics, the batch's
/// ops and the schema records among them.
struct Written<'a> {
    next_seq: &'a mut u64,
    stats: &'a mut HashMap<u64, TableStats>,
    ops: &'a mut Vec<KvOp>,
    schemas: &'a mut Vec<u64>,
}

/// Adds one commit's writes to the run's, numbering its parts from the next seq and counting
/// its rows. On error nothing of it is added.
fn prepare(
    store: &EventStore,
    commit: &Commit,
    stats: &HashMap<u64, TableStats>,
    run: &mut Written,
) -> Result<Vec<StoredPart>> {
    let (mut seq, mut counted) = (*run.next_seq, HashMap::new());
    let (mut own_ops, mut own_schemas, mut parts) = (Vec::new(), run.schemas.clone(), Vec::new());
    for append in commit.appends.iter().filter(|a| a.batch.num_rows() > 0) {
        let entry = counted.entry(append.table_id).or_insert_with(|| {
            run.stats.get(&append.table_id).or_else(|| stats.get(&append.table_id)).copied().unwrap_or_default()
        });
        count_append(append, entry)?;
        store.append_ops(append, &mut seq, &mut own_ops, &mut own_schemas, &mut parts)?;
    }
    own_ops.extend(commit.catalog_puts.iter().map(|(key, entry)| KvOp::Put(key.clone(), entry.clone())));
    own_ops.extend(commit.catalog_deletes.iter().map(|key| KvOp::Delete(key.clone())));
    *run.next_seq = seq;
    run.stats.extend(counted);
    run.ops.append(&mut own_ops);
    *run.schemas = own_schemas;
    Ok(parts)
}

/// The error of a batch that could not be written, for each commit it carried.
fn same_failure(e: &Error) -> Error {
    match e {
        Error::DiskFull(cause) => Error::DiskFull(cause.clone()),
        Error::Storage(cause) => Error::Storage(cause.clone()),
        e => Error::Storage(e.to_string()),
    }
}

/// The error of a commit applied but not synced: its statement is not acknowledged, and
/// after a restart it is present whole or not at all, as after a crash.
fn not_durable(e: &Error) -> Error {
    match e {
        Error::DiskFull(cause) => Error::DiskFull(format!("commit not durable, {cause}")),
        e => Error::Storage(format!("commit not durable: {e}")),
    }
}
