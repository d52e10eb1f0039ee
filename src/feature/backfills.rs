//! The backfills of CREATE [OR REPLACE] FEATURE since the server started, for
//! `asofdb.backfills`, and the hot rows a running replacement still has to read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result, SqlState};

/// Finished backfills kept for `asofdb.backfills`; older ones are forgotten.
const FINISHED_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillKind {
    Create,
    Replace,
}

impl BackfillKind {
    pub fn name(self) -> &'static str {
        match self {
            BackfillKind::Create => "create",
            BackfillKind::Replace => "replace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillState {
    Running,
    Done,
    Failed,
    /// Its feature was dropped meanwhile, or its statement was dropped before it ended.
    Cancelled,
}

impl BackfillState {
    pub fn name(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Done => "done",
            BackfillState::Failed => "failed",
            BackfillState::Cancelled => "cancelled",
        }
    }
}

/// One backfill: what it builds, how far it got.
#[derive(Debug)]
pub struct Backfill {
    pub feature: String,
    pub kind: BackfillKind,
    /// The table it reads.
    table_id: u64,
    /// A replacement reads the rows written while it ran from the hot tier, from this seq on:
    /// tier moves leave them there until it ends (`Backfills::hot_from`). `None` for a
    /// CREATE, which holds writes off while it runs.
    hot_from: Option<u64>,
    done: AtomicU64,
    total: AtomicU64,
    /// Microseconds since the epoch.
    pub started_at: i64,
    /// (state, microseconds since the epoch when it left `Running`).
    outcome: Mutex<(BackfillState, Option<i64>)>,
    /// Set when the statement is gone: the building thread stops at its next progress report.
    abandoned: AtomicBool,
}

impl Backfill {
    /// (rows read, rows the table held when it began; more if rows arrived meanwhile).
    pub fn progress(&self) -> (u64, u64) {
        let done = self.done.load(Ordering::Relaxed);
        (done, self.total.load(Ordering::Relaxed).max(done))
    }

    pub fn outcome(&self) -> (BackfillState, Option<i64>) {
        *self.outcome.lock()
    }

    fn running(&self) -> bool {
        self.outcome.lock().0 == BackfillState::Running
    }

    fn end(&self, state: BackfillState) {
        let mut outcome = self.outcome.lock();
        if outcome.0 == BackfillState::Running {
            *outcome = (state, Some(now_micros()));
        }
    }
}

/// Every backfill since the server started.
#[derive(Debug, Default)]
pub struct Backfills {
    all: Mutex<Vec<Arc<Backfill>>>,
}

impl Backfills {
    /// Records a backfill of `feature` starting now. Fails with 55006 while another one of
    /// the same feature runs: two replacements of one feature would race to their switch.
    pub fn start(
        &self,
        feature: &str,
        kind: BackfillKind,
        table_id: u64,
        hot_from: Option<u64>,
        total: u64,
    ) -> Result<BackfillGuard> {
        let mut all = self.all.lock();
        if all.iter().any(|b| b.feature == feature && b.running()) {
            return Err(Error::Conflict {
                sqlstate: SqlState::ObjectInUse,
                message: format!(
                    "feature \"{feature}\" is being backfilled by another statement; try again when it ends"
                ),
            });
        }
        let finished = all.iter().filter(|b| !b.running()).count();
        if finished >= FINISHED_KEPT
            && let Some(oldest) = all.iter().position(|b| !b.running())
        {
            all.remove(oldest);
        }
        let backfill = Arc::new(Backfill {
            feature: feature.to_string(),
            kind,
            table_id,
            hot_from,
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
            started_at: now_micros(),
            outcome: Mutex::new((BackfillState::Running, None)),
            abandoned: AtomicBool::new(false),
        });
        all.push(backfill.clone());
        Ok(BackfillGuard(backfill))
    }

    /// Every backfill, oldest first.
    pub fn list(&self) -> Vec<Arc<Backfill>> {
        self.all.lock().clone()
    }

    /// Stops the running backfill of `feature`, if any (its feature was dropped): it is
    /// `cancelled`, and its building thread stops at its next progress report.
    pub fn abandon(&self, feature: &str) {
        for backfill in self.all.lock().iter().filter(|b| b.feature == feature) {
            backfill.abandoned.store(true, Ordering::Relaxed);
            backfill.end(BackfillState::Cancelled);
        }
    }

    /// The lowest seq a running replacement of a feature of `table_id` still reads from the
    /// hot tier: tier moves take no row at or above it.
    pub fn hot_from(&self, table_id: u64) -> Option<u64> {
        self.all.lock().iter().filter(|b| b.table_id == table_id && b.running()).filter_map(|b| b.hot_from).min()
    }
}

/// A running backfill, held by its statement. Dropped while still running (the statement was
/// dropped with its connection), it is `cancelled` and its building thread stops.
pub struct BackfillGuard(Arc<Backfill>);

impl BackfillGuard {
    /// Ends it as `done` (Ok) or `failed`.
    pub fn finish<T>(&self, outcome: &Result<T>) {
        self.0.end(if outcome.is_ok() { BackfillState::Done } else { BackfillState::Failed });
    }

    /// A handle for the building thread (which may outlive the statement).
    pub fn progress(&self) -> BackfillProgress {
        BackfillProgress(self.0.clone())
    }
}

impl Drop for BackfillGuard {
    fn drop(&mut self) {
        self.0.abandoned.store(true, Ordering::Relaxed);
        self.0.end(BackfillState::Cancelled);
    }
}

/// The building thread's side of a backfill: reports rows read, learns whether to stop.
pub struct BackfillProgress(Arc<Backfill>);

impl BackfillProgress {
    /// Rows read so far.
    pub fn done(&self) -> u64 {
        self.0.done.load(Ordering::Relaxed)
    }

    /// Records `done` rows read; fails with 55006 once the backfill was abandoned (its
    /// feature dropped, or its statement gone).
    pub fn report(&self, done: u64) -> Result<()> {
        self.0.done.store(done, Ordering::Relaxed);
        if self.0.abandoned.load(Ordering::Relaxed) {
            return Err(Error::Conflict {
                sqlstate: SqlState::ObjectInUse,
                message: format!(
                    "the backfill of feature \"{}\" stopped: the feature was dropped meanwhile",
                    self.0.feature
                ),
            });
        }
        Ok(())
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backfill_per_feature_at_a_time_and_a_dropped_one_is_cancelled() {
        let backfills = Backfills::default();
        let first = backfills.start("f", BackfillKind::Replace, 7, Some(40), 100).unwrap();
        assert_eq!(
            backfills.start("f", BackfillKind::Replace, 7, Some(50), 100).err().map(|e| e.sqlstate()),
            Some("55006")
        );
        let other = backfills.start("g", BackfillKind::Create, 7, None, 10).unwrap();
        assert_eq!(backfills.hot_from(7), Some(40));
        assert_eq!(backfills.hot_from(8), None);
        let thread = first.progress();
        thread.report(30).unwrap();
        drop(first);
        assert_eq!(thread.report(31).err().map(|e| e.sqlstate()), Some("55006"));
        assert_eq!(backfills.hot_from(7), None);
        other.finish(&Ok(()));
        let states: Vec<_> =
            backfills.list().iter().map(|b| (b.feature.clone(), b.outcome().0, b.progress())).collect();
        assert_eq!(
            states,
            vec![
                ("f".to_string(), BackfillState::Cancelled, (31, 100)),
                ("g".to_string(), BackfillState::Done, (0, 10))
            ]
        );
        // A new backfill of f may start now.
        backfills.start("f", BackfillKind::Replace, 7, Some(60), 100).unwrap().finish(&Err::<(), _>(Error::Cancelled));
        assert_eq!(backfills.list()[2].outcome().0, BackfillState::Failed);
        // Dropping the feature stops its running backfill at once.
        let running = backfills.start("f", BackfillKind::Replace, 7, Some(70), 100).unwrap();
        backfills.abandon("f");
        assert_eq!(backfills.list()[3].outcome().0, BackfillState::Cancelled);
        assert!(running.progress().report(1).is_err());
        running.finish(&Ok(()));
        assert_eq!(backfills.list()[3].outcome().0, BackfillState::Cancelled, "the first end stays");
    }
}
