//! Wires asofdb's handlers into pgwire: trust authentication, cancellation, queries, COPY.

use std::sync::Arc;

use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::error::PgWireError;

use super::cancel::{CancelRequests, Cancellations};
use super::extended::StatementParser;
use crate::execute::Database;

/// The handler set shared by every connection.
pub struct Handlers {
    pub(super) db: Arc<Database>,
    pub(super) parser: Arc<StatementParser>,
    startup: Arc<TrustStartup>,
    cancel: Arc<CancelRequests>,
    cancellations: Arc<Cancellations>,
}

impl Handlers {
    pub fn new(db: Arc<Database>) -> Self {
        let connections = Arc::new(ConnectionManager::new());
        let cancellations = Arc::new(Cancellations::default());
        Self {
            parser: Arc::new(StatementParser::new(db.clone())),
            db,
            startup: Arc::new(TrustStartup { connections: connections.clone() }),
            cancel: Arc::new(CancelRequests { manager: connections, registry: cancellations.clone() }),
            cancellations,
        }
    }
}

/// Accepts every client without a password (loopback trust, the default of spec section 4).
/// Registers each connection so CancelRequests can find its running statement.
pub struct TrustStartup {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for TrustStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// Logs errors sent to clients; their text and SQLSTATE were decided in `errors`.
pub struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        tracing::debug!(peer = %client.socket_addr(), "sending error: {error}");
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::new(self.query_handler())
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::new(self.query_handler())
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(self.query_handler())
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// Answers queries and COPY data for one connection at a time; its state lives in the
/// connection (see `connection`), so one instance serves all.
#[derive(Clone)]
pub struct QueryHandler {
    pub(super) db: Arc<Database>,
    pub(super) parser: Arc<StatementParser>,
    pub(super) cancellations: Arc<Cancellations>,
}

impl Handlers {
    fn query_handler(&self) -> QueryHandler {
        QueryHandler { db: self.db.clone(), parser: self.parser.clone(), cancellations: self.cancellations.clone() }
    }
}
