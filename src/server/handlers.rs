//! Wires asofdb's handlers into pgwire: authentication, cancellation, queries, COPY.

use std::sync::Arc;

use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::error::PgWireError;

use super::auth::Security;
use super::cancel::{CancelRequests, Cancellations};
use super::connection::abort_transaction_after_error;
use super::errors::{fatal, to_pgwire};
use super::executor::Executor;
use super::prepare::StatementParser;
use super::query_handler::QueryHandler;
use crate::error::{Error, SqlState};
use crate::execute::Database;

/// The handler set shared by every connection.
pub struct Handlers {
    db: Arc<Database>,
    parser: Arc<StatementParser>,
    executor: Executor,
    security: Arc<Security>,
    connections: Arc<ConnectionManager>,
    cancel: Arc<CancelRequests>,
    cancellations: Arc<Cancellations>,
    log_slow: std::time::Duration,
}

impl Handlers {
    pub fn new(db: Arc<Database>, security: Arc<Security>, executor: Executor, log_slow: std::time::Duration) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        let cancellations = Arc::new(Cancellations::default());
        Self {
            parser: Arc::new(StatementParser::new(db.clone(), executor.clone())),
            db,
            executor,
            security,
            cancel: Arc::new(CancelRequests { manager: connections.clone(), registry: cancellations.clone() }),
            connections,
            cancellations,
            log_slow,
        }
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        self.db.metrics()
    }

    pub fn tls_acceptor(&self) -> Option<pgwire::tokio::TlsAcceptor> {
        self.security.tls_acceptor()
    }

    /// The handlers of one accepted connection; `admitted` is false past `--max-connections`.
    pub fn for_connection(self: &Arc<Self>, admitted: bool) -> ConnectionHandlers {
        ConnectionHandlers { shared: self.clone(), admitted }
    }
}

/// The handlers pgwire asks for on one connection: the shared ones, plus a startup handler of
/// its own (SCRAM keeps per-connection state, and a refused connection gets a refusing one).
pub struct ConnectionHandlers {
    shared: Arc<Handlers>,
    admitted: bool,
}

/// Sees every error pgwire sends: logs it, aborts the session's open transaction (an error at
/// Parse or Bind never reached the session), and words pgwire's own authentication failure as
/// PostgreSQL does. Other errors' text and SQLSTATE were decided in `errors`.
pub struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        if let PgWireError::PortalNotFound(name) = error {
            // pgwire says 26000 (no such statement); PostgreSQL's is invalid_cursor_name.
            let message = format!("portal \"{name}\" does not exist");
            *error = to_pgwire(Error::NotFound { sqlstate: SqlState::InvalidCursorName, message });
        }
        if let PgWireError::InvalidPassword(_) = error {
            // pgwire names the SCRAM user, which libpq leaves empty; the startup user is meant.
            let user = client.metadata().get(pgwire::api::METADATA_USER).cloned().unwrap_or_default();
            *error = fatal(SqlState::InvalidPassword, format!("password authentication failed for user \"{user}\""));
            super::audit::login_failed(client, SqlState::InvalidPassword.code(), "wrong password");
        }
        abort_transaction_after_error(client);
        tracing::debug!(peer = %client.socket_addr(), "sending error: {error}");
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::new(self.shared.query_handler())
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::new(self.shared.query_handler())
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(self.shared.security.startup(&self.shared.connections, self.admitted, &self.shared.db))
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(self.shared.query_handler())
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.shared.cancel.clone()
    }
}

impl Handlers {
    fn query_handler(&self) -> QueryHandler {
        QueryHandler {
            db: self.db.clone(),
            parser: self.parser.clone(),
            executor: self.executor.clone(),
            cancellations: self.cancellations.clone(),
            log_slow: self.log_slow,
        }
    }
}
