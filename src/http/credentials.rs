//! Who an HTTP request acts as: `Authorization: Bearer <--password>` is the bootstrap
//! superuser, `Authorization: Basic base64(role:password)` is that role, its password checked
//! against the role's SCRAM-SHA-256 verifier as a PostgreSQL login is. A check costs PBKDF2's
//! 4096 rounds (milliseconds), so what was verified is kept: a SHA-256 of the role and the
//! password with the verifier it matched (a changed password or a dropped role misses).

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::catalog::BOOTSTRAP_ROLE;
use crate::error::{Error, Result, SqlState};
use crate::execute::Database;

/// Verified credentials kept at most; the cache starts again past it.
const KEPT: usize = 4096;

/// What the HTTP port verified.
#[derive(Default)]
pub(super) struct Credentials {
    verified: Mutex<HashMap<[u8; 32], String>>,
}

impl Credentials {
    /// The role a request with `headers` acts as. `password` is the server's (`--password`;
    /// without one, clients are trusted as on the PostgreSQL port: a role is named, not proven).
    /// `db` is `None` while the database opens (only the bootstrap superuser is known then).
    pub fn role(&self, headers: &HeaderMap, password: Option<&str>, db: Option<&Database>) -> Result<String> {
        let failed = |role: &str| {
            Error::invalid_input(
                SqlState::InvalidPassword,
                format!("password authentication failed for user \"{role}\""),
            )
        };
        let Some(given) = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes) else {
            return match password {
                None => Ok(BOOTSTRAP_ROLE.into()),
                Some(_) => Err(Error::invalid_input(
                    SqlState::InvalidPassword,
                    "password required: send Authorization: Bearer <password>, or Basic with a role's name and password",
                )),
            };
        };
        let (scheme, token) = match given.iter().position(|b| *b == b' ') {
            Some(space) => (&given[..space], &given[space + 1..]),
            None => (given, &b""[..]),
        };
        if scheme.eq_ignore_ascii_case(b"Bearer") {
            return match password {
                Some(password) if !same_secret(token, password.as_bytes()) => Err(failed(BOOTSTRAP_ROLE)),
                _ => Ok(BOOTSTRAP_ROLE.into()),
            };
        }
        if !scheme.eq_ignore_ascii_case(b"Basic") {
            return Err(Error::invalid_input(SqlState::InvalidPassword, "send Authorization: Bearer or Basic"));
        }
        let decoded = STANDARD.decode(token.trim_ascii()).ok().and_then(|d| String::from_utf8(d).ok());
        let Some((role, given_password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
            return Err(Error::invalid_input(SqlState::InvalidPassword, "malformed Basic credentials"));
        };
        if role == BOOTSTRAP_ROLE {
            return match password {
                Some(password) if !same_secret(given_password.as_bytes(), password.as_bytes()) => Err(failed(role)),
                _ => Ok(role.into()),
            };
        }
        let db = db.ok_or_else(|| Error::invalid_input(SqlState::CannotConnectNow, "the database is starting up"))?;
        let Some(def) = db.role(role) else { return Err(failed(role)) };
        if !def.login {
            return Err(Error::invalid_input(
                SqlState::InvalidAuthorizationSpecification,
                format!("role \"{role}\" is not permitted to log in"),
            ));
        }
        if password.is_none() {
            return Ok(role.into());
        }
        let Some(verifier) = &def.password else { return Err(failed(role)) };
        let key: [u8; 32] =
            Sha256::new().chain_update(role).chain_update([0]).chain_update(given_password).finalize().into();
        let text = verifier.text();
        if self.verified.lock().get(&key) == Some(&text) {
            return Ok(role.into());
        }
        if !verifier.matches(given_password) {
            return Err(failed(role));
        }
        let mut verified = self.verified.lock();
        if verified.len() >= KEPT {
            verified.clear();
        }
        verified.insert(key, text);
        Ok(role.into())
    }
}

/// Equal secrets, compared in time that does not depend on where they differ.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
