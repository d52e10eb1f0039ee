//! The HTTP front end (spec section 7, `--http HOST:PORT`): feature vectors for model
//! servers (`POST /v1/features`), Prometheus metrics (`GET /metrics`) and health
//! (`GET /healthz`), served beside the PostgreSQL port with its password and certificate.
//!
//! Requests enter the database through the same door as the wire protocol's statements
//! (`execute::Database`); a feature vector is read by the point read's own evaluation.
//! The listener is bound before the database opens, so `/healthz` answers 503 `starting`
//! while it recovers.

mod json;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::Result;
use crate::execute::Database;

/// How the HTTP port admits requests.
#[derive(Default, Clone)]
pub struct HttpOptions {
    /// Required as `Authorization: Bearer <password>` on every path but `/healthz`.
    pub password: Option<String>,
    /// TLS from the server's certificate (ALPN `http/1.1`).
    pub tls: Option<TlsAcceptor>,
}

/// What every request handler shares.
pub(crate) struct App {
    /// Set once the database is open; until then only `/healthz` answers (503).
    db: OnceLock<Arc<Database>>,
    password: Option<String>,
}

/// A bound HTTP listener.
pub struct HttpServer {
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port); requests are answered once the database is
    /// handed over ([`HttpServer::opener`]).
    pub async fn bind(addr: &str, options: HttpOptions) -> Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let app = Arc::new(App { db: OnceLock::new(), password: options.password });
        Ok(Self { listener, app, tls: options.tls })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// What hands the database over once it is open: from then on every path answers.
    /// Usable after [`HttpServer::serve`] took the server.
    pub fn opener(&self) -> impl Fn(Arc<Database>) + Send + Sync + 'static {
        let app = self.app.clone();
        move |db| {
            let _ = app.db.set(db);
        }
    }

    /// Serves HTTP/1.1 connections on the calling runtime until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let listener = TcpListener::from_std(self.listener.into_std()?)?;
        let router = routes::router(self.app.clone());
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let service = TowerToHyperService::new(router.clone());
                        let tls = self.tls.clone();
                        connections.spawn(async move {
                            let http = hyper::server::conn::http1::Builder::new();
                            let served = match tls {
                                // The handshake runs in the connection's task, so a slow
                                // client never holds up the accept loop.
                                Some(tls) => match tls.accept(socket).await {
                                    Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                                    Err(e) => {
                                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                                        return;
                                    }
                                },
                                None => http.serve_connection(TokioIo::new(socket), service).await,
                            };
                            if let Err(e) = served {
                                tracing::debug!(%peer, "HTTP connection ended with error: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::warn!("HTTP accept failed: {e}"),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.shutdown().await;
        Ok(())
    }
}
