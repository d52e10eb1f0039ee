//! Per-connection state, kept in pgwire's session extensions.

use std::sync::Arc;

use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;
use tokio::sync::Mutex;

use super::cancel::{CancelFlag, Cancellations};
use super::handlers::QueryHandler;
use crate::execute::{CopyIn, Session};

/// What one connection carries between messages.
pub struct Connection {
    pub session: Session,
    /// A COPY FROM STDIN in progress and the data received so far.
    pub copy_in: Option<CopyIn>,
    /// Raised by a CancelRequest for this connection, or by the statement timer.
    pub cancel: Arc<CancelFlag>,
    /// Raises `cancel` when the running statement passes `statement_timeout`.
    timer: Option<tokio::task::AbortHandle>,
}

impl Connection {
    /// Called as each statement starts: clears an earlier cancel, and arms the statement
    /// timer if the session has a `statement_timeout`. `read_only`: the statement may be
    /// abandoned mid-way when cancelled (see `Statement::is_read_only`).
    pub fn start_statement(&mut self, read_only: bool) {
        let number = self.cancel.begin(read_only);
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        if let Some(timeout) = self.session.settings.statement_timeout() {
            let flag = self.cancel.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                flag.time_out(number);
            });
            self.timer = Some(timer.abort_handle());
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

/// Runs `work` unless the connection's statement is cancelled or times out first. Only for
/// statements that only read: `work` is dropped where it waits.
pub async fn until_cancelled<T>(
    flag: &CancelFlag,
    work: impl std::future::Future<Output = crate::error::Result<T>>,
) -> crate::error::Result<T> {
    tokio::select! {
        outcome = work => outcome,
        _ = flag.cancelled() => Err(flag.error()),
    }
}

/// Owns the connection state; dropped with pgwire's client when the connection closes.
struct ConnectionSlot {
    state: Arc<Mutex<Connection>>,
    pid: i32,
    registry: Arc<Cancellations>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.registry.unregister(self.pid);
    }
}

impl QueryHandler {
    /// The connection state of `client`, created on first use. Each statement starts with a
    /// fresh cancel flag state.
    /// Refused (FATAL 28000) before the client has logged in.
    pub(super) fn connection<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<Mutex<Connection>>> {
        super::auth::require_login(client)?;
        let slot = client.session_extensions().get_or_insert_with(|| {
            let (pid, key) = client.pid_and_secret_key();
            let cancel = self.cancellations.register(pid, key);
            let mut session = Session::new(self.db.clone());
            session.settings.apply_startup(client.metadata());
            let state = Connection { session, copy_in: None, cancel, timer: None };
            ConnectionSlot { state: Arc::new(Mutex::new(state)), pid, registry: self.cancellations.clone() }
        });
        Ok(slot.state.clone())
    }
}

/// An error reached `client` outside the session (Parse, Bind): its open transaction, if any,
/// is aborted, so later statements get 25P02 as in PostgreSQL. Errors are sent after the
/// statement released the connection, so the lock is free; if not, the session saw the error.
pub(super) fn abort_transaction_after_error<C: ClientInfo + ?Sized>(client: &C) {
    if let Some(slot) = client.session_extensions().get::<ConnectionSlot>()
        && let Ok(mut connection) = slot.state.try_lock()
    {
        connection.session.abort_transaction();
    }
}
