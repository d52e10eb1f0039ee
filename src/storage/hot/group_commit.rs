//! Group commit: many writers waiting for durability share one physical flush.
//!
//! ```text
//!  writer A: apply ─ ticket 1 ─┐            ┌─ done ≥ 1: return
//!  writer B: apply ─ ticket 2 ─┼─ flush (covers tickets ≤ 3) ─┤
//!  writer C: apply ─ ticket 3 ─┘            └─ done ≥ 3: return
//!  writer D: apply ─ ticket 4 ─── waits for the flush above, then starts the next one
//! ```
//! A writer takes its ticket after its batch is applied, so a flush that starts after the
//! ticket was issued covers the batch. Only one flush runs at a time; whoever finds no flush
//! running starts one covering every ticket issued so far.

use parking_lot::{Condvar, Mutex};

use crate::error::Result;

#[derive(Default)]
struct State {
    issued: u64,
    durable: u64,
    flushing: bool,
}

/// Coordinates flushes between writer threads. `sync` blocks; call it from a blocking thread.
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

impl GroupCommit {
    /// Returns once a flush that started after this call has completed.
    pub fn sync(&self, flush: impl Fn() -> Result<()>) -> Result<()> {
        let mut state = self.state.lock();
        state.issued += 1;
        let ticket = state.issued;
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if state.flushing {
                self.flushed.wait(&mut state);
                continue;
            }
            state.flushing = true;
            let covers = state.issued;
            drop(state);
            let outcome = flush();
            state = self.state.lock();
            state.flushing = false;
            if outcome.is_ok() {
                state.durable = state.durable.max(covers);
            }
            self.flushed.notify_all();
            outcome?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_writers_share_flushes() {
        let commits = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let commits = commits.clone();
                let flushes = flushes.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        commits
                            .sync(|| {
                                std::thread::sleep(std::time::Duration::from_millis(1));
                                flushes.fetch_add(1, Ordering::SeqCst);
                                Ok(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = flushes.load(Ordering::SeqCst);
        assert!(total >= 1);
        assert!(total < 800, "every sync flushed on its own: {total} flushes");
    }

    #[test]
    fn a_failed_flush_is_reported_and_not_counted() {
        let commits = GroupCommit::default();
        assert!(commits.sync(|| Err(Error::Storage("disk full".into()))).is_err());
        commits.sync(|| Ok(())).unwrap();
    }
}
