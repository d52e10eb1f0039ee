//! Query cancellation: a CancelRequest (sent on a separate connection with the target's
//! process id and secret key) stops the statement running on the target connection.
//!
//! pgwire cancels the part of a statement that runs before the response is returned; result
//! rows are produced lazily afterwards, so each connection also has a [`CancelFlag`] that the
//! row streams watch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use pgwire::api::ConnectionManager;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;

use crate::error::Error;

/// Set when a cancel request arrives for the connection's running statement, or when it runs
/// past `statement_timeout`.
#[derive(Default)]
pub struct CancelFlag {
    requested: AtomicBool,
    timed_out: AtomicBool,
    /// Whether the running statement may be abandoned mid-way (it only reads).
    interruptible: AtomicBool,
    /// Counts statements, so a timer armed for one cannot stop a later one.
    statement: AtomicU64,
    notify: Notify,
}

impl CancelFlag {
    /// Called as a statement starts: a cancel aimed at an earlier statement does not apply.
    /// Returns the statement's number, for its timer.
    pub fn begin(&self, interruptible: bool) -> u64 {
        let number = self.statement.fetch_add(1, Ordering::SeqCst) + 1;
        self.requested.store(false, Ordering::SeqCst);
        self.timed_out.store(false, Ordering::SeqCst);
        self.interruptible.store(interruptible, Ordering::SeqCst);
        number
    }

    fn cancel(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Statement `number` ran out of time; nothing happens if another has started since.
    pub fn time_out(&self, number: u64) {
        if self.statement.load(Ordering::SeqCst) == number {
            self.timed_out.store(true, Ordering::SeqCst);
            self.cancel();
        }
    }

    /// Why the statement was stopped.
    pub fn error(&self) -> Error {
        if self.timed_out.load(Ordering::SeqCst) { Error::StatementTimeout } else { Error::Cancelled }
    }

    /// Resolves once the statement is cancelled or times out.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.requested.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Ends `stream` with a 57014 error as soon as a cancel is requested.
    pub fn guard<S, T, E>(self: Arc<Self>, stream: S) -> impl Stream<Item = Result<T, E>> + Send + use<S, T, E>
    where
        S: Stream<Item = Result<T, E>> + Send + Unpin + 'static,
        E: From<Error> + Send + 'static,
        T: Send + 'static,
    {
        futures::stream::unfold((stream, self, false), |(mut stream, flag, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                biased;
                _ = flag.cancelled() => Some((Err(E::from(flag.error())), (stream, flag, true))),
                item = stream.next() => item.map(|item| (item, (stream, flag, false))),
            }
        })
    }
}

/// A connection's secret key (as bytes) and its flag.
type Registered = (Vec<u8>, Arc<CancelFlag>);

/// Connections that can be cancelled, by process id.
#[derive(Default)]
pub struct Cancellations {
    connections: Mutex<HashMap<i32, Registered>>,
}

impl Cancellations {
    pub fn register(&self, pid: i32, key: SecretKey) -> Arc<CancelFlag> {
        let flag = Arc::new(CancelFlag::default());
        self.connections.lock().insert(pid, (key_bytes(&key), flag.clone()));
        flag
    }

    pub fn unregister(&self, pid: i32) {
        self.connections.lock().remove(&pid);
    }

    /// Raises the flag of connection `pid`; true if its running statement may also be
    /// abandoned where it waits (it only reads).
    fn cancel(&self, pid: i32, key: &SecretKey) -> bool {
        let flag = self.connections.lock().get(&pid).filter(|(k, _)| *k == key_bytes(key)).map(|(_, f)| f.clone());
        flag.is_some_and(|flag| {
            flag.cancel();
            flag.interruptible.load(Ordering::SeqCst)
        })
    }
}

/// The key's bytes: a CancelRequest decodes a protocol-3.0 key as bytes even though the
/// connection was given it as an `I32`, so keys are compared as bytes.
fn key_bytes(key: &SecretKey) -> Vec<u8> {
    match key {
        SecretKey::I32(v) => v.to_be_bytes().to_vec(),
        SecretKey::Bytes(b) => b.to_vec(),
    }
}

/// Cancels a statement's row stream (our flag) and, for a statement that only reads, the part
/// before its response too (pgwire drops that future). A write is never dropped half-way: it
/// completes, and its rows, if any, stop streaming.
pub struct CancelRequests {
    pub manager: Arc<ConnectionManager>,
    pub registry: Arc<Cancellations>,
}

#[async_trait]
impl CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: CancelRequest) {
        if self.registry.cancel(request.pid, &request.secret_key) {
            self.manager.cancel(request.pid, &request.secret_key).await;
        }
    }
}
