//! Privileges granted on tables, features and schema `public` (spec section 8): who besides
//! an object's owner and the superusers may read it, write it, or create in the schema.
//! Persisted with the catalog, one entry per object that has grants.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::Result;
use crate::storage::{CatalogKind, Commit};

/// The grantee that stands for every role.
pub const PUBLIC: &str = "public";

/// What a grant is on. Tables and features share one namespace (relations); a grant names
/// which it is, so a feature made under a dropped table's name inherits nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Securable {
    Table(String),
    Feature(String),
    /// Schema `public`, the only one.
    Schema,
}

impl Securable {
    fn key(&self) -> String {
        match self {
            Securable::Table(name) => format!("t{name}"),
            Securable::Feature(name) => format!("f{name}"),
            Securable::Schema => "s".into(),
        }
    }

    /// The catalog key of this object's grants: a commit that drops the object deletes it.
    pub fn grants_key(&self) -> Vec<u8> {
        CatalogKind::Grants.key(&self.key())
    }

    /// As PostgreSQL's messages name it: `table t`, `feature f`, `schema public`.
    pub fn described(&self) -> String {
        match self {
            Securable::Table(name) => format!("table {name}"),
            Securable::Feature(name) => format!("feature {name}"),
            Securable::Schema => "schema public".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Privilege {
    Select,
    Insert,
    Create,
    /// Erasing a table's events (`DELETE FROM t WHERE ...`).
    Delete,
}

impl Privilege {
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Create => "CREATE",
            Privilege::Delete => "DELETE",
        }
    }
}

/// One object's grants: grantee (a role, or [`PUBLIC`]) → privileges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grants {
    pub object: Option<Securable>,
    pub to: BTreeMap<String, BTreeSet<Privilege>>,
}

impl Catalog {
    /// True if `role` (not counting ownership or superuser) holds `privilege` on `object`,
    /// itself or through PUBLIC.
    pub fn granted(&self, role: &str, object: &Securable, privilege: Privilege) -> bool {
        let grants = self.grants.read();
        let Some(grants) = grants.get(object) else { return false };
        [role, PUBLIC].iter().any(|grantee| grants.to.get(*grantee).is_some_and(|p| p.contains(&privilege)))
    }

    /// Every grant: (object, grantee, privilege).
    pub fn all_grants(&self) -> Vec<(Securable, String, Privilege)> {
        let grants = self.grants.read();
        let mut out = Vec::new();
        for (object, grants) in grants.iter() {
            for (grantee, privileges) in &grants.to {
                out.extend(privileges.iter().map(|p| (object.clone(), grantee.clone(), *p)));
            }
        }
        out
    }

    /// GRANT (`grant`) or REVOKE `privileges` on `object` to or from `grantees`.
    pub async fn change_grants(
        &self,
        object: &Securable,
        privileges: &[Privilege],
        grantees: &[String],
        grant: bool,
    ) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut changed = self.grants.read().get(object).cloned().unwrap_or_default();
        changed.object = Some(object.clone());
        for grantee in grantees {
            let held = changed.to.entry(grantee.clone()).or_default();
            for privilege in privileges {
                if grant {
                    held.insert(*privilege);
                } else {
                    held.remove(privilege);
                }
            }
            if held.is_empty() {
                changed.to.remove(grantee);
            }
        }
        let key = object.grants_key();
        let commit = if changed.to.is_empty() {
            Commit { catalog_deletes: vec![key], ..Default::default() }
        } else {
            Commit { catalog_puts: vec![(key, serde_json::to_vec(&changed)?)], ..Default::default() }
        };
        self.store.commit(commit).await?;
        let mut grants = self.grants.write();
        if changed.to.is_empty() {
            grants.remove(object);
        } else {
            grants.insert(object.clone(), changed);
        }
        Ok(())
    }

    /// Forgets `object`'s grants once the commit that dropped it (which deleted
    /// [`Securable::grants_key`]) is durable.
    pub fn forget_grants(&self, object: &Securable) {
        self.grants.write().remove(object);
    }

    /// The grants held by `role` (for DROP ROLE, which PostgreSQL refuses while there are any).
    pub fn grants_to(&self, role: &str) -> Vec<String> {
        let grants = self.grants.read();
        grants
            .values()
            .filter(|g| g.to.contains_key(role))
            .filter_map(|g| g.object.as_ref().map(|o| format!("privileges for {}", o.described())))
            .collect()
    }

    pub(super) fn load_grants(
        store: &crate::storage::EventStore,
    ) -> Result<std::collections::HashMap<Securable, Grants>> {
        let mut all = std::collections::HashMap::new();
        for entry in store.catalog_entries(CatalogKind::Grants)? {
            let grants: Grants = serde_json::from_slice(&entry)?;
            if let Some(object) = grants.object.clone() {
                all.insert(object, grants);
            }
        }
        Ok(all)
    }
}
