//! Role statements at work (spec section 8): `CREATE | ALTER | DROP ROLE`, who may run
//! them, and what a role owns.

use super::Database;
use super::session::Output;
use crate::catalog::{BOOTSTRAP_ROLE, RoleChange, Verifier};
use crate::error::{Error, Result, SqlState};
use crate::sql::role::{RoleOptions, RoleStatement};

impl Database {
    /// The stored verifier of role `user`, if it has one (the bootstrap superuser's is the
    /// server's `--password`, not stored).
    pub fn verifier(&self, user: &str) -> Option<Verifier> {
        self.catalog.role(user).and_then(|role| role.password.clone())
    }

    /// Runs a role statement as role `current`; `notice` sends a NOTICE.
    pub(super) async fn run_role_statement(
        &self,
        current: &str,
        statement: &RoleStatement,
        notice: impl Fn(String),
    ) -> Result<Output> {
        let acting = self.catalog.role(current);
        let superuser = acting.as_ref().is_some_and(|r| r.superuser);
        match statement {
            RoleStatement::Create { name, user, options } => {
                if !superuser {
                    return Err(Error::PermissionDenied("permission denied to create role".into()));
                }
                let mut change = role_change(options)?;
                change.login = change.login.or(Some(*user));
                self.catalog.create_role(name, &change).await?;
                Ok(Output::Command { tag: "CREATE ROLE", rows: None })
            }
            RoleStatement::Alter { name, options } => {
                if name == BOOTSTRAP_ROLE {
                    return Err(Error::unsupported(
                        "the bootstrap superuser asofdb is changed only by the server's options (--password)",
                    ));
                }
                let own_password = *name == current
                    && *options == RoleOptions { password: options.password.clone(), ..Default::default() };
                if !superuser && !own_password {
                    return Err(Error::PermissionDenied(format!("permission denied to alter role \"{name}\"")));
                }
                self.catalog.alter_role(name, &role_change(options)?).await?;
                Ok(Output::Command { tag: "ALTER ROLE", rows: None })
            }
            RoleStatement::Drop { names, if_exists } => {
                if !superuser {
                    return Err(Error::PermissionDenied("permission denied to drop role".into()));
                }
                for name in names {
                    if name == BOOTSTRAP_ROLE {
                        return Err(Error::Conflict {
                            sqlstate: SqlState::DependentObjectsStillExist,
                            message: format!("cannot drop role {name} because it is required by the database system"),
                        });
                    }
                    if name == current {
                        return Err(Error::Conflict {
                            sqlstate: SqlState::ObjectInUse,
                            message: "current user cannot be dropped".into(),
                        });
                    }
                }
                for name in names {
                    if !self.catalog.drop_role(name, *if_exists, |role| self.owned_by(role)).await? {
                        notice(format!("role \"{name}\" does not exist, skipping"));
                    }
                }
                Ok(Output::Command { tag: "DROP ROLE", rows: None })
            }
        }
    }

    /// What `role` owns and was granted, as DROP ROLE names it.
    fn owned_by(&self, role: &str) -> Vec<String> {
        let mut owned = Vec::new();
        for name in self.catalog.table_names() {
            if self.catalog.table(&name).is_some_and(|t| t.owner == role) {
                owned.push(format!("owner of table {name}"));
            }
        }
        for feature in self.features.all() {
            let def = &feature.compiled().def;
            if def.owner == role {
                owned.push(format!("owner of feature {}", def.name));
            }
        }
        for source in self.catalog.sources() {
            if source.def.owner == role {
                owned.push(format!("owner of source {}", source.def.name));
            }
        }
        owned.extend(self.catalog.grants_to(role));
        owned
    }
}

/// The catalog's change for `options`: passwords become verifiers, settings are checked as
/// `SET` checks them.
fn role_change(options: &RoleOptions) -> Result<RoleChange> {
    let password = match &options.password {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) if text.is_empty() => {
            return Err(Error::invalid_input(SqlState::InvalidParameterValue, "empty password: give PASSWORD NULL"));
        }
        Some(Some(text)) => Some(Some(Verifier::from_password_text(text)?)),
    };
    for (name, value) in &options.settings {
        if let Some(value) = value {
            super::settings::Settings::default().set_named(name, value)?;
        }
    }
    Ok(RoleChange {
        superuser: options.superuser,
        login: options.login,
        password,
        connection_limit: options.connection_limit,
        settings: options.settings.clone(),
        reset_all: options.reset_all,
    })
}
