//! The HTTP paths and their handlers: `POST /v1/features`, `GET /metrics`, `GET /healthz`,
//! with the bearer password checked on every path but `/healthz`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::App;
use super::json::{VectorRequest, write_results};
use crate::error::{Error, Result, SqlState};
use crate::execute::{Database, VectorValue};

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/features", post(features))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(app)
}

/// `{"error": ..., "sqlstate": ...}` with the error's HTTP status.
fn error_response(error: Error) -> Response {
    if matches!(error, Error::Internal(_) | Error::Storage(_)) {
        tracing::error!("HTTP request failed: {error:?}");
    }
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": error.to_string(), "sqlstate": error.sqlstate()}).to_string();
    let mut response = (status, json_headers(), body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))]
}

impl App {
    /// The database, once the request's password is checked and the database is open.
    fn admit(&self, headers: &HeaderMap) -> Result<&Arc<Database>> {
        if let Some(password) = &self.password {
            let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let token = given.and_then(|v| v.strip_prefix("Bearer "));
            if !token.is_some_and(|token| same_secret(token.as_bytes(), password.as_bytes())) {
                let message = match given {
                    None => "password required: send Authorization: Bearer <password>",
                    Some(_) => "password authentication failed",
                };
                return Err(Error::invalid_input(SqlState::InvalidPassword, message));
            }
        }
        self.db.get().ok_or_else(|| Error::invalid_input(SqlState::CannotConnectNow, "the database is starting up"))
    }
}

/// Equal secrets, compared in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn features(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let db = match app.admit(&headers) {
        Ok(db) => db.clone(),
        Err(e) => return error_response(e),
    };
    let answered = feature_vectors(&db, &body).await;
    db.metrics().point_read_seconds.observe(started.elapsed().as_secs_f64());
    match answered {
        Ok(body) => (StatusCode::OK, json_headers(), body).into_response(),
        Err(e) => error_response(e),
    }
}

/// The answer to a feature-vector request: every entity's values, read without waiting
/// where no write is being applied; the rest are read again, waiting, off this thread.
async fn feature_vectors(db: &Arc<Database>, body: &[u8]) -> Result<String> {
    let request = VectorRequest::parse(body)?;
    let vectors = Arc::new(db.feature_vectors(&request.features)?);
    let keys = request.keys(&vectors)?;
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

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let db = match app.admit(&headers) {
        Ok(db) => db.clone(),
        Err(e) => return error_response(e),
    };
    // Reading tier sizes walks the hot tier's keys: not on a thread serving requests.
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
        None => Some("starting".to_string()),
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

async fn not_found(headers: HeaderMap, State(app): State<Arc<App>>) -> Response {
    if let Err(e) = app.admit(&headers) {
        return error_response(e);
    }
    let body = r#"{"error":"no such path: POST /v1/features, GET /metrics and GET /healthz are served"}"#;
    (StatusCode::NOT_FOUND, json_headers(), body).into_response()
}
