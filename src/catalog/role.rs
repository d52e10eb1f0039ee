//! Roles (spec section 8): who may log in, with which SCRAM-SHA-256 verifier, how many
//! connections at once, and with which settings; persisted with the catalog.
//!
//! The bootstrap superuser `asofdb` is not stored: it always exists, and its password is
//! `--password`'s (the server's `auth` holds it), so a data directory never locks its
//! operator out.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result, SqlState};
use crate::storage::{CatalogKind, Commit};

/// The bootstrap superuser's name.
pub const BOOTSTRAP_ROLE: &str = "asofdb";

/// The owner of objects made before roles existed.
pub(super) fn bootstrap_name() -> String {
    BOOTSTRAP_ROLE.into()
}

/// The iterations of every verifier asofdb makes and accepts: libpq's and PostgreSQL's.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A password as PostgreSQL keeps it: a SCRAM-SHA-256 verifier, from which the password
/// cannot be recovered and with which nobody can log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl Verifier {
    /// The verifier of `password` with a fresh random salt.
    pub fn of_password(password: &str) -> Self {
        use pgwire::api::auth::sasl::scram::{gen_salted_password, scram_keys};
        let salt: [u8; 16] = rand_salt();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS as usize);
        let (stored_key, server_key) = scram_keys(&salted);
        Self { salt: salt.to_vec(), stored_key, server_key }
    }

    /// A `PASSWORD '...'` value: a verifier as psql's `\password` and PostgreSQL's
    /// `pg_authid` write one (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`) is taken as
    /// it is; any other text is a password.
    pub fn from_password_text(text: &str) -> Result<Self> {
        match text.strip_prefix("SCRAM-SHA-256$") {
            Some(rest) => Self::parse(rest).ok_or_else(|| {
                Error::invalid_input(
                    SqlState::InvalidParameterValue,
                    format!("invalid SCRAM-SHA-256 verifier (asofdb takes those of {SCRAM_ITERATIONS} iterations)"),
                )
            }),
            None if text.starts_with("md5") && text.len() == 35 => {
                Err(Error::unsupported("MD5 password hashes are not supported: give the password or a SCRAM verifier"))
            }
            None => Ok(Self::of_password(text)),
        }
    }

    fn parse(rest: &str) -> Option<Self> {
        let (head, keys) = rest.split_once('$')?;
        let (iterations, salt) = head.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        if iterations.parse::<u32>().ok()? != SCRAM_ITERATIONS {
            return None;
        }
        let decode = |text: &str| STANDARD.decode(text).ok();
        let (salt, stored_key, server_key) = (decode(salt)?, decode(stored)?, decode(server)?);
        (!salt.is_empty() && stored_key.len() == 32 && server_key.len() == 32).then_some(Self {
            salt,
            stored_key,
            server_key,
        })
    }

    /// Whether `password` is the one this verifier was made from: PBKDF2 of 4096 rounds,
    /// milliseconds (the HTTP port caches what it verified).
    pub fn matches(&self, password: &str) -> bool {
        use pgwire::api::auth::sasl::scram::{gen_salted_password, scram_keys};
        let salted = gen_salted_password(password, &self.salt, SCRAM_ITERATIONS as usize);
        let (stored_key, _) = scram_keys(&salted);
        stored_key.len() == self.stored_key.len()
            && stored_key.iter().zip(&self.stored_key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// As `pg_authid.rolpassword` shows it.
    pub fn text(&self) -> String {
        format!(
            "SCRAM-SHA-256${SCRAM_ITERATIONS}:{}${}:{}",
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

fn rand_salt() -> [u8; 16] {
    // pgwire's nonce is 18 random bytes, base64: random, which is all a salt must be.
    let nonce = pgwire::api::auth::sasl::scram::random_nonce();
    let bytes = STANDARD.decode(nonce).unwrap_or_default();
    let mut salt = [0u8; 16];
    for (to, from) in salt.iter_mut().zip(bytes) {
        *to = from;
    }
    salt
}

impl Serialize for Verifier {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for Verifier {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.strip_prefix("SCRAM-SHA-256$")
            .and_then(Self::parse)
            .ok_or_else(|| serde::de::Error::custom("a stored role's verifier does not parse"))
    }
}

/// A role as created and altered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    /// Stable identity (`pg_roles.oid`).
    pub oid: u32,
    pub superuser: bool,
    pub login: bool,
    pub password: Option<Verifier>,
    /// -1: no limit.
    pub connection_limit: i32,
    /// `ALTER ROLE ... SET name = value`: applied at each login before the client's own
    /// startup parameters.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl RoleDef {
    /// The bootstrap superuser (its password is the server's, not stored here).
    pub fn bootstrap() -> Self {
        RoleDef {
            name: BOOTSTRAP_ROLE.into(),
            oid: 10,
            superuser: true,
            login: true,
            password: None,
            connection_limit: -1,
            settings: BTreeMap::new(),
        }
    }
}

/// A change to a role's attributes (CREATE takes the same, over a role's defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleChange {
    pub superuser: Option<bool>,
    pub login: Option<bool>,
    /// `Some(None)`: `PASSWORD NULL`.
    pub password: Option<Option<Verifier>>,
    pub connection_limit: Option<i32>,
    /// `SET name = value` (Some) or `RESET name` (None); `RESET ALL` clears all first.
    pub settings: Vec<(String, Option<String>)>,
    pub reset_all: bool,
}

impl RoleChange {
    fn apply(&self, role: &mut RoleDef) {
        if let Some(superuser) = self.superuser {
            role.superuser = superuser;
        }
        if let Some(login) = self.login {
            role.login = login;
        }
        if let Some(password) = &self.password {
            role.password = password.clone();
        }
        if let Some(limit) = self.connection_limit {
            role.connection_limit = limit;
        }
        if self.reset_all {
            role.settings.clear();
        }
        for (name, value) in &self.settings {
            match value {
                Some(value) => role.settings.insert(name.clone(), value.clone()),
                None => role.settings.remove(name),
            };
        }
    }
}

fn undefined_role(name: &str) -> Error {
    Error::NotFound { sqlstate: SqlState::UndefinedObject, message: format!("role \"{name}\" does not exist") }
}

impl Catalog {
    /// Every role, the bootstrap superuser first.
    pub fn roles(&self) -> Vec<Arc<RoleDef>> {
        let mut all = vec![Arc::new(RoleDef::bootstrap())];
        all.extend(self.roles.read().values().cloned());
        all
    }

    pub fn role(&self, name: &str) -> Option<Arc<RoleDef>> {
        if name == BOOTSTRAP_ROLE {
            return Some(Arc::new(RoleDef::bootstrap()));
        }
        self.roles.read().get(name).cloned()
    }

    /// `CREATE ROLE name` with `change` over the defaults (no login unless `login`).
    pub async fn create_role(&self, name: &str, change: &RoleChange) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        if self.role(name).is_some() {
            return Err(Error::Conflict {
                sqlstate: SqlState::DuplicateObject,
                message: format!("role \"{name}\" already exists"),
            });
        }
        if name == super::PUBLIC || name == "none" {
            return Err(Error::invalid_input(SqlState::ReservedName, format!("role name \"{name}\" is reserved")));
        }
        if name.starts_with("pg_") {
            return Err(Error::invalid_input(
                SqlState::ReservedName,
                format!("role name \"{name}\" is reserved: names starting with \"pg_\" are PostgreSQL's"),
            ));
        }
        let oid = u32::try_from(self.store.allocate_table_id()? + 16_384)
            .map_err(|_| Error::internal("role oids exhausted"))?;
        let mut role = RoleDef { name: name.into(), oid, ..RoleDef::bootstrap() };
        role.superuser = false;
        role.login = false;
        change.apply(&mut role);
        self.put_role(role).await
    }

    /// `ALTER ROLE name ...`.
    pub async fn alter_role(&self, name: &str, change: &RoleChange) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut role = (*self.roles.read().get(name).cloned().ok_or_else(|| undefined_role(name))?).clone();
        change.apply(&mut role);
        self.put_role(role).await
    }

    async fn put_role(&self, role: RoleDef) -> Result<()> {
        let entry = serde_json::to_vec(&role)?;
        self.store
            .commit(Commit { catalog_puts: vec![(CatalogKind::Role.key(&role.name), entry)], ..Default::default() })
            .await?;
        self.roles.write().insert(role.name.clone(), Arc::new(role));
        Ok(())
    }

    /// `DROP ROLE name`: `owned` says what it still owns (asked under the DDL lock), which
    /// refuses the drop. False if it did not exist and `if_exists` was given.
    pub async fn drop_role(
        &self,
        name: &str,
        if_exists: bool,
        owned: impl FnOnce(&str) -> Vec<String>,
    ) -> Result<bool> {
        let _ddl = self.ddl.lock().await;
        if self.roles.read().get(name).is_none() {
            return if if_exists { Ok(false) } else { Err(undefined_role(name)) };
        }
        let owned = owned(name);
        if !owned.is_empty() {
            return Err(Error::Conflict {
                sqlstate: SqlState::DependentObjectsStillExist,
                message: format!(
                    "role \"{name}\" cannot be dropped because some objects depend on it: {}",
                    owned.join(", ")
                ),
            });
        }
        self.store.commit(Commit { catalog_deletes: vec![CatalogKind::Role.key(name)], ..Default::default() }).await?;
        self.roles.write().remove(name);
        Ok(true)
    }

    pub(super) fn load_roles(store: &crate::storage::EventStore) -> Result<BTreeMap<String, Arc<RoleDef>>> {
        let mut roles = BTreeMap::new();
        for entry in store.catalog_entries(CatalogKind::Role)? {
            let role: RoleDef = serde_json::from_slice(&entry)?;
            roles.insert(role.name.clone(), Arc::new(role));
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_reads_back_as_written_and_checks_its_password() {
        let verifier = Verifier::of_password("s3cret");
        let text = verifier.text();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"), "{text}");
        assert_eq!(Verifier::from_password_text(&text).unwrap(), verifier);
        let again = Verifier::from_password_text("s3cret").unwrap();
        assert_ne!(again.salt, verifier.salt, "every verifier has its own salt");
        for bad in ["SCRAM-SHA-256$10000:AAAA$AAAA:AAAA", "SCRAM-SHA-256$4096:x", "SCRAM-SHA-256$"] {
            assert_eq!(Verifier::from_password_text(bad).unwrap_err().sqlstate(), "22023", "{bad}");
        }
    }
}
