//! Where statements run. Connections are served on their own thread(s) (`--io-threads`),
//! which only move protocol messages and answer feature point reads; planning, execution,
//! writes and the encoding of result rows are handed to the execution runtime. A long
//! statement on one connection therefore never holds up the point reads of another, and the
//! serving threads stay few: with clients on the same cores, every extra runnable thread
//! lengthens the wait of a request (docs/benchmarks.md, session 13).

use std::future::Future;

use futures::{Stream, StreamExt};
use tokio::runtime::Handle;
use tokio_util::task::AbortOnDropHandle;

use crate::error::{Error, Result, panic_text};

/// Result sets are produced this many batches ahead of the client.
const BATCHES_AHEAD: usize = 2;

/// The runtime statements run on.
#[derive(Clone)]
pub struct Executor {
    runtime: Handle,
}

impl Executor {
    pub fn new(runtime: Handle) -> Self {
        Self { runtime }
    }

    /// Runs `work` on the execution runtime. Dropping the returned future (the client left,
    /// or the statement was cancelled) aborts `work` where it waits.
    pub async fn run<T: Send + 'static>(&self, work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let task = AbortOnDropHandle::new(self.runtime.spawn(work));
        match task.await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => {
                Err(Error::internal(format!("statement failed: {}", panic_text(&*e.into_panic()))))
            }
            Err(e) => Err(Error::internal(format!("statement task ended: {e}"))),
        }
    }

    /// The items of `stream`, pulled on the execution runtime a few ahead of the consumer.
    /// Dropping the returned stream stops `stream`.
    pub fn stream<S>(&self, stream: S) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream + Send + 'static,
        S::Item: Send + 'static,
    {
        let (sender, receiver) = tokio::sync::mpsc::channel(BATCHES_AHEAD);
        let task = AbortOnDropHandle::new(self.runtime.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                if sender.send(item).await.is_err() {
                    break;
                }
            }
        }));
        // The task lives as long as the stream that reads from it.
        futures::stream::unfold((receiver, task), |(mut receiver, task)| async move {
            let item = receiver.recv().await?;
            Some((item, (receiver, task)))
        })
    }
}
