//! The HTTP front end (spec section 7, `--http HOST:PORT`): feature vectors for model
//! servers (`POST /v1/features`), Prometheus metrics (`GET /metrics`) and health
//! (`GET /healthz`), served beside the PostgreSQL port with its password and certificate.
//!
//! Requests enter the database through the same door as the wire protocol's statements
//! (`execute::Database`); a feature vector is read by the point read's own evaluation.
//! The listener is bound before the database opens, so `/healthz` answers 503 `starting`
//! while it recovers.

mod credentials;
mod json;
mod listener;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::error::Result;
use crate::execute::Database;

/// How the HTTP port admits requests.
#[derive(Default, Clone)]
pub struct HttpOptions {
    /// Required as `Authorization: Bearer <password>` (the bootstrap superuser) on every path
    /// but `/healthz`, or a role's `Basic` name and password (`http::credentials`).
    pub password: Option<String>,
    /// TLS from the server's certificate (ALPN `http/1.1`).
    pub tls: Option<TlsAcceptor>,
}

/// What every request handler shares.
pub(crate) struct App {
    /// Set once the database is open; until then only `/healthz` answers (503).
    db: OnceLock<Arc<Database>>,
    password: Option<String>,
    /// Roles' Basic credentials verified so far.
    credentials: credentials::Credentials,
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
        let app = Arc::new(App { db: OnceLock::new(), password: options.password, credentials: Default::default() });
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
        listener::serve(self.listener, routes::router(self.app), self.tls, shutdown).await
    }
}
