//! A source's commits on a thread of their own, one after another in reading order, so the
//! runner reads and decodes the next batch while the last one is committed and applied to
//! the features. Reading and committing in turn left one of two cores idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use super::batch::PendingBatch;
use super::{RunContext, commit_batch};
use crate::catalog::{SourcePosition, TableDef};
use crate::error::{Error, Result};
use crate::execute::database::Database;

/// Moves the stored position past a batch (each partition's next offset, or the LSN).
pub(super) type Advance = Box<dyn FnOnce(&mut SourcePosition) + Send>;

/// The commit thread of one session. A failed commit ends it, and every batch queued after
/// the failed one is dropped, never committed: its position would skip the failed batch's
/// messages. The session then starts over from the stored position.
pub(super) struct Committer<'scope> {
    queue: Option<SyncSender<(PendingBatch, Advance)>>,
    thread: Option<ScopedJoinHandle<'scope, Result<()>>>,
    committed: Arc<AtomicBool>,
}

impl<'scope> Committer<'scope> {
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        context: &'env RunContext,
        db: &'env Arc<Database>,
        def: &'env TableDef,
    ) -> Result<Self> {
        // One batch waits while another commits (and a third is being read): reading runs
        // at most two batches ahead.
        let (queue, batches) = sync_channel::<(PendingBatch, Advance)>(1);
        let committed = Arc::new(AtomicBool::new(false));
        let flag = committed.clone();
        let thread = std::thread::Builder::new()
            .name(format!("commit-{}", context.source.def.name))
            .spawn_scoped(scope, move || {
                for (batch, advance) in batches {
                    // A stopped source writes nothing more (DROP SOURCE waits for this thread).
                    if context.stopped() {
                        break;
                    }
                    commit_batch(context, db, def, batch, advance)?;
                    flag.store(true, Ordering::SeqCst);
                    context.source.report.lock().running();
                }
                Ok(())
            })
            .map_err(|e| Error::internal(format!("cannot start a source's commit thread: {e}")))?;
        Ok(Committer { queue: Some(queue), thread: Some(thread), committed })
    }

    /// Queues `batch` behind the ones before it; the error of an earlier commit, if one failed.
    /// Once the thread has ended without one (the source was stopped), `batch` is dropped:
    /// a stopped source writes nothing more, and its runner ends at its next look at the flag.
    pub fn send(&mut self, batch: PendingBatch, advance: Advance) -> Result<()> {
        let Some(queue) = &self.queue else { return Ok(()) };
        if queue.send((batch, advance)).is_err() {
            // The thread ended: a commit failed, or the source was stopped.
            self.finish()?;
        }
        Ok(())
    }

    /// The error of a failed commit, as soon as the thread has ended on one (checked by the
    /// runner at every message, so an idle source does not wait for its next batch to learn
    /// it must start over).
    pub fn check(&mut self) -> Result<()> {
        match &self.thread {
            Some(thread) if thread.is_finished() => self.finish(),
            _ => Ok(()),
        }
    }

    /// Waits until every queued batch is committed (or the first failure), and returns that
    /// failure. A panic of the commit thread goes on as the runner's own.
    pub fn finish(&mut self) -> Result<()> {
        self.queue = None;
        match self.thread.take().map(|thread| thread.join()) {
            None => Ok(()),
            Some(Ok(outcome)) => outcome,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether any batch of this session was committed.
    pub fn committed_any(&self) -> bool {
        self.committed.load(Ordering::SeqCst)
    }
}
