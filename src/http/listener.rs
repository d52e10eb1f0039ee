//! The HTTP port's accept loop: each connection in a task of its own (its TLS handshake
//! too, so a slow client never holds up the others), HTTP/1.1 with keep-alive, with bounds
//! on how many connections are open and how long a client may take to send a request.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::Result;

/// HTTP connections open at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to complete a TLS handshake, or to send a request's headers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    // A socket is driven by the runtime that registered it: the listener, and through it
    // every accepted connection, moves to the one that serves.
    let listener = TcpListener::from_std(listener.into_std()?)?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "HTTP connection refused: {MAX_CONNECTIONS} are open");
                        continue;
                    };
                    let _ = socket.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let mut http = hyper::server::conn::http1::Builder::new();
                        http.timer(TokioTimer::new()).header_read_timeout(CLIENT_TIMEOUT);
                        let served = match tls {
                            Some(tls) => match tokio::time::timeout(CLIENT_TIMEOUT, tls.accept(socket)).await {
                                Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            },
                            None => http.serve_connection(TokioIo::new(socket), service).await,
                        };
                        if let Err(e) = served {
                            tracing::debug!(%peer, "HTTP connection ended with error: {e}");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    Ok(())
}
