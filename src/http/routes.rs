//! The HTTP paths and their handlers: `POST /v1/features`, `GET /metrics`, `GET /healthz`,
//! with the credentials checked on every path but `/healthz` (`http::credentials`), and the
//! role they name held to its privileges.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::App;
use super::json::{VectorRequest, write_results};
use crate::error::{Error, Result, SqlState};
use crate::execute::{Database, VectorValue};

pub(super) fn router(app: Arc<App>) -> Router {
    // Every path but /healthz asks for the password first, even one that does not exist or
    // a wrong method, so nothing about the port is learnt without it; before the body is read.
    let guarded = Router::new()
        .route("/v1/features", post(features))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new().route("/healthz", get(healthz)).merge(guarded).with_state(app)
}

/// The largest request body read.
const MAX_BODY: usize = 16 << 20;
/// A request reading more keys than this is read on a blocking thread: the threads that
/// serve requests also serve the PostgreSQL connections.
const INLINE_READS: usize = 256;

/// `{"error": ..., "sqlstate": ...}` with the error's HTTP status.
fn error_response(error: Error) -> Response {
    if matches!(error, Error::Internal(_) | Error::Storage(_)) {
        tracing::error!("HTTP request failed: {error:?}");
    } else if matches!(error, Error::DiskFull(_)) {
        tracing::warn!("{error}");
    }
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": error.to_string(), "sqlstate": error.sqlstate()}).to_string();
    let mut response = (status, json_headers(), body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"asofdb\""));
    }
    response
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))]
}

impl App {
    /// The database, once it is open.
    fn database(&self) -> Result<Arc<Database>> {
        let starting = || Error::invalid_input(SqlState::CannotConnectNow, "the database is starting up");
        self.db.get().cloned().ok_or_else(starting)
    }
}

/// The role a request acts as, once its credentials are checked.
#[derive(Clone)]
struct ActingRole(String);

async fn authorize(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let db = app.db.get().cloned();
    match app.credentials.role(request.headers(), app.password.as_deref(), db.as_deref()) {
        Ok(role) => {
            request.extensions_mut().insert(ActingRole(role));
            next.run(request).await
        }
        Err(e) => error_response(e),
    }
}

async fn features(State(app): State<Arc<App>>, Extension(role): Extension<ActingRole>, body: Body) -> Response {
    let started = Instant::now();
    let db = match app.database() {
        Ok(db) => db,
        Err(e) => return error_response(e),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            let message = format!("the request body is over {} MiB, or was not received whole", MAX_BODY >> 20);
            return error_response(Error::invalid_input(SqlState::ProgramLimitExceeded, message));
        }
    };
    match feature_vectors(&db, &role.0, &body).await {
        Ok(body) => {
            db.metrics().point_read_seconds.observe(started.elapsed().as_secs_f64());
            (StatusCode::OK, json_headers(), body).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// The answer to a feature-vector request: every entity's values, read without waiting
/// where no write is being applied; the rest are read again, waiting, off this thread.
async fn feature_vectors(db: &Arc<Database>, role: &str, body: &[u8]) -> Result<String> {
    let request = VectorRequest::parse(body)?;
    let vectors = Arc::new(db.feature_vectors(role, &request.features)?);
    let keys = request.keys(&vectors)?;
    if keys.len() * vectors.len() > INLINE_READS {
        let read = vectors.clone();
        let values = tokio::task::spawn_blocking(move || {
            keys.iter()
                .map(|per_feature| {
                    per_feature.iter().enumerate().map(|(i, key)| read.read(i, key, true)).collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::internal(format!("feature read task: {e}")))??;
        return Ok(write_results(&vectors, &values));
    }
    let mut values = Vec::with_capacity(keys.len());
    let mut busy = Vec::new();
    for (entity, per_feature) in keys.iter().enumerate() {
        let mut row = Vec::with_capacity(per_feature.len());
        for (i, key) in per_feature.iter().enumerate() {
            let value = vectors.read(i, key, false)?;
            if matches!(value, VectorValue::Busy) {
                busy.push((entity, i));
            }
            row.push(value);
        }
        values.push(row);
    }
    if !busy.is_empty() {
        let read = vectors.clone();
        let keys: Vec<_> = busy.iter().map(|&(entity, i)| (i, keys[entity][i].clone())).collect();
        let waited = tokio::task::spawn_blocking(move || {
            keys.iter().map(|(i, key)| read.read(*i, key, true)).collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(|e| Error::internal(format!("feature read task: {e}")))??;
        for ((entity, i), value) in busy.into_iter().zip(waited) {
            values[entity][i] = value;
        }
    }
    Ok(write_results(&vectors, &values))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let db = match app.database() {
        Ok(db) => db,
        Err(e) => return error_response(e),
    };
    // Reading tier sizes reads the hot tier's values: not on a thread serving requests.
    let text = tokio::task::spawn_blocking(move || db.metrics_text()).await;
    match text.map_err(|e| Error::internal(format!("metrics task: {e}"))).and_then(|text| text) {
        Ok(text) => {
            let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text).into_response()
        }
        Err(e) => error_response(e),
    }
}

/// 200 while the server accepts queries and writes; 503 with the reason otherwise. No
/// password: load balancers and orchestrators probe it.
async fn healthz(State(app): State<Arc<App>>) -> Response {
    let unavailable = match app.db.get() {
        None => Some("starting"),
        Some(db) => db.health().err(),
    };
    match unavailable {
        None => (StatusCode::OK, json_headers(), r#"{"status":"ok"}"#).into_response(),
        Some(reason) => {
            let body = serde_json::json!({"status": "unavailable", "reason": reason}).to_string();
            (StatusCode::SERVICE_UNAVAILABLE, json_headers(), body).into_response()
        }
    }
}

async fn not_found() -> Response {
    let body = r#"{"error":"no such path: POST /v1/features, GET /metrics and GET /healthz are served"}"#;
    (StatusCode::NOT_FOUND, json_headers(), body).into_response()
}

async fn method_not_allowed() -> Response {
    let body = r#"{"error":"method not allowed: POST /v1/features, GET /metrics and GET /healthz are served"}"#;
    (StatusCode::METHOD_NOT_ALLOWED, json_headers(), body).into_response()
}
