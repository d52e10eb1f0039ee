//! Logins: the checks a connection's role passes before its session starts (LOGIN, the
//! role's connection limit), and each role's count of open sessions.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::{Catalog, RoleDef};
use crate::error::{Error, Result, SqlState};

/// How many sessions each role has open (for `CONNECTION LIMIT`).
#[derive(Debug, Default)]
pub struct RoleConnections(Arc<Mutex<HashMap<String, usize>>>);

/// A login that passed its role's checks: the role it acts as, counted in its role's
/// connections until dropped (with the connection).
#[derive(Debug)]
pub struct Login {
    pub role: Arc<RoleDef>,
    counted: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Login {
    fn drop(&mut self) {
        let mut counts = self.counted.lock();
        if let Some(count) = counts.get_mut(&self.role.name) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.role.name);
            }
        }
    }
}

impl RoleConnections {
    /// The role a connection logging in as `user` acts as, or why it may not log in now.
    /// `trusted`: no password is asked (no `--password`); then a user name that names no
    /// role acts as the bootstrap superuser, as every trusted client did before roles.
    /// Asked before the password exchange, so a role without LOGIN or at its limit is
    /// refused without one.
    pub fn admit(&self, catalog: &Catalog, user: &str, trusted: bool) -> Result<Login> {
        let role = match catalog.role(user) {
            Some(role) => role,
            None if trusted => Arc::new(RoleDef::bootstrap()),
            None => return Err(wrong_password(user)),
        };
        if !role.login {
            return Err(Error::invalid_input(
                SqlState::InvalidAuthorizationSpecification,
                format!("role \"{}\" is not permitted to log in", role.name),
            ));
        }
        let mut counts = self.0.lock();
        let count = counts.entry(role.name.clone()).or_default();
        // As in PostgreSQL, superusers are not held to their limit.
        if !role.superuser && role.connection_limit >= 0 && *count >= role.connection_limit as usize {
            return Err(Error::invalid_input(
                SqlState::TooManyConnections,
                format!("too many connections for role \"{}\"", role.name),
            ));
        }
        *count += 1;
        Ok(Login { role, counted: self.0.clone() })
    }
}

fn wrong_password(user: &str) -> Error {
    Error::invalid_input(SqlState::InvalidPassword, format!("password authentication failed for user \"{user}\""))
}
