//! Per-connection state, kept in pgwire's session extensions.

use std::sync::Arc;

use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;
use tokio::sync::Mutex;

use super::cancel::{CancelFlag, Cancellations};
use crate::execute::{Database, Session};

/// What one connection carries between messages.
pub struct Connection {
    pub session: Session,
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

/// The connection state of `client`, created on first use.
/// Refused (FATAL 28000) before the client has logged in.
pub fn connection_of<C: ClientInfo + ?Sized>(
    client: &C,
    db: &Arc<Database>,
    cancellations: &Arc<Cancellations>,
) -> PgWireResult<Arc<Mutex<Connection>>> {
    super::auth::require_login(client)?;
    // Read before the slot is made: the extensions' lock is held while it is.
    let login = client.session_extensions().get::<crate::execute::Login>().ok_or_else(|| {
        super::errors::fatal(crate::error::SqlState::InvalidAuthorizationSpecification, "the connection has no role")
    })?;
    let slot = client.session_extensions().get_or_insert_with(|| {
        let (pid, key) = client.pid_and_secret_key();
        let cancel = cancellations.register(pid, key);
        let role = login.role.clone();
        let mut session = Session::for_role(db.clone(), &role.name);
        session.settings.apply_startup(&role, client.metadata());
        let state = Connection { session, cancel, timer: None };
        ConnectionSlot { state: Arc::new(Mutex::new(state)), pid, registry: cancellations.clone() }
    });
    Ok(slot.state.clone())
}

/// What the session's results are shown with: its time zone, and the flag that ends them.
pub fn output_context(connection: &Connection) -> (arrow::array::timezone::Tz, Arc<CancelFlag>) {
    (connection.session.settings.zone().tz(), connection.cancel.clone())
}

/// An error reached `client` outside the session (Parse, Bind): its open transaction, if any,
/// is aborted, so later statements get 25P02 as in PostgreSQL. Errors are sent after the
/// statement released the connection, so the lock is free; if not, the session saw the error.
pub fn abort_transaction_after_error<C: ClientInfo + ?Sized>(client: &C) {
    if let Some(slot) = client.session_extensions().get::<ConnectionSlot>()
        && let Ok(mut connection) = slot.state.try_lock()
    {
        connection.session.abort_transaction();
    }
}
