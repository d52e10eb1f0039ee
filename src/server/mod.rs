//! The PostgreSQL wire protocol front end (pgwire): connections, simple and extended query
//! protocol, COPY, cancellation, and the translation of errors into ErrorResponses.

mod array_text;
mod audit;
mod auth;
mod binary_tuples;
mod cancel;
mod coalesce;
mod connection;
mod copy_frames;
mod copy_out;
mod encode;
mod errors;
mod executor;
mod handlers;
mod infinite;
mod interval;
mod notices;
mod numeric;
mod pg_text;
mod prepare;
mod query_handler;
mod results;
mod statement_log;
mod text_tuples;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use auth::Security;

use crate::error::Result;
use crate::execute::Database;
use executor::Executor;
use handlers::Handlers;

/// PostgreSQL's default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// How the server admits clients.
pub struct ServerOptions {
    pub security: Security,
    /// Connections served at once; more are refused with 53300.
    pub max_connections: usize,
    /// The runtime statements run on (`executor`); connections are served on the runtime
    /// that runs [`Server::serve`]. Default: the runtime that calls [`Server::bind_with`].
    pub execution: Option<Handle>,
    /// Statements taking longer are logged at INFO (`--log-slow-ms`).
    pub log_slow: std::time::Duration,
}

/// `--log-slow-ms`'s default.
pub const DEFAULT_LOG_SLOW: std::time::Duration = std::time::Duration::from_secs(1);

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            security: Security::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            execution: None,
            log_slow: DEFAULT_LOG_SLOW,
        }
    }
}

/// A bound listener serving one database.
pub struct Server {
    listener: TcpListener,
    handlers: Arc<Handlers>,
    slots: Arc<Semaphore>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]) with trust
    /// authentication, no TLS and the default connection limit.
    pub async fn bind(addr: &str, db: Arc<Database>) -> Result<Self> {
        Self::bind_with(addr, db, ServerOptions::default()).await
    }

    pub async fn bind_with(addr: &str, db: Arc<Database>, options: ServerOptions) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let executor = Executor::new(options.execution.unwrap_or_else(Handle::current));
        Ok(Self {
            listener,
            handlers: Arc::new(Handlers::new(db, Arc::new(options.security), executor, options.log_slow)),
            slots: Arc::new(Semaphore::new(options.max_connections)),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves connections on the calling runtime until `shutdown` resolves, then closes them;
    /// every acknowledged write is already durable.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        // Sockets are driven by the runtime that registered them: the listener, and through it
        // every accepted connection, moves to this one.
        let listener = TcpListener::from_std(self.listener.into_std()?)?;
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        // Held for the connection's life. Only the startup message of a
                        // connection without one is refused: a CancelRequest, which comes on a
                        // connection of its own, is still served when the server is full.
                        let slot = self.slots.clone().try_acquire_owned().ok();
                        let handlers = self.handlers.for_connection(slot.is_some());
                        let tls = self.handlers.tls_acceptor();
                        // Counted while admitted, down again however the task ends.
                        let open = slot.as_ref().map(|_| OpenConnection::new(&self.handlers.metrics().connections));
                        connections.spawn(async move {
                            tracing::info!(%peer, "connection opened");
                            let served = pgwire::tokio::process_socket(socket, tls, handlers).await;
                            drop(open);
                            match served {
                                Ok(()) => tracing::info!(%peer, "connection closed"),
                                Err(e) => tracing::info!(%peer, "connection closed: {e}"),
                            }
                            drop(slot);
                        });
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // A fast shutdown, as PostgreSQL's on SIGTERM: open transactions are rolled back and
        // clients disconnected. A commit already handed to storage still completes (it runs on
        // a blocking thread the runtime waits for), it just goes unacknowledged.
        tracing::info!(connections = connections.len(), "shutting down: closing connections");
        connections.shutdown().await;
        Ok(())
    }
}

/// One admitted connection in `asofdb_connections`, for as long as it lives.
struct OpenConnection(prometheus::IntGauge);

impl OpenConnection {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
