//! The PostgreSQL wire protocol front end (pgwire): connections, simple and extended query
//! protocol, COPY, cancellation, and the translation of errors into ErrorResponses.

mod cancel;
mod connection;
mod copy;
mod errors;
mod extended;
mod handlers;
mod notices;
mod pg_text;
mod results;
mod simple;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::Result;
use crate::execute::Database;
use handlers::Handlers;

/// A bound listener serving one database.
pub struct Server {
    listener: TcpListener,
    handlers: Arc<Handlers>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(addr: &str, db: Arc<Database>) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, handlers: Arc::new(Handlers::new(db)) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves connections until `shutdown` resolves, then closes them; every acknowledged
    /// write is already durable.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let handlers = self.handlers.clone();
                        connections.spawn(async move {
                            tracing::debug!(%peer, "connection opened");
                            if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                                tracing::debug!(%peer, "connection ended with error: {e}");
                            }
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
