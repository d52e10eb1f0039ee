//! Privileges at work (spec section 8): who may read, write, create and change what, checked
//! on every path, and `GRANT` / `REVOKE`.
//!
//! As in PostgreSQL: a superuser may do anything; an object's owner everything on it; others
//! what was granted to them or to PUBLIC. Schema `public` grants CREATE to no one by default
//! (PostgreSQL 15's rule), so a new role creates tables, features and sources only once a
//! superuser grants it `CREATE ON SCHEMA public`.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{LogicalPlan, TableScan};

use super::Database;
use crate::catalog::{BOOTSTRAP_ROLE, PUBLIC, Privilege, Securable};
use crate::error::{Error, Result, SqlState};
use crate::plan::asof::{AsofJoinNode, AsofRight};
use crate::plan::{EventTable, FeatureTable};
use crate::sql::grant::{GrantStatement, GrantTarget};

impl Database {
    pub fn is_superuser(&self, role: &str) -> bool {
        role == BOOTSTRAP_ROLE || self.catalog.role(role).is_some_and(|r| r.superuser)
    }

    /// The role that owns `object`, if it exists (schema `public`: the bootstrap superuser).
    fn owner_of(&self, object: &Securable) -> Option<String> {
        match object {
            Securable::Table(name) => self.catalog.table(name).map(|t| t.owner.clone()),
            Securable::Feature(name) => self.features.get(name).map(|f| f.compiled().def.owner.clone()),
            Securable::Schema => Some(BOOTSTRAP_ROLE.into()),
        }
    }

    /// Ok if `role` holds `privilege` on `object`; else 42501 as PostgreSQL words it.
    pub fn require(&self, role: &str, object: &Securable, privilege: Privilege) -> Result<()> {
        if self.is_superuser(role)
            || self.owner_of(object).is_some_and(|owner| owner == role)
            || self.catalog.granted(role, object, privilege)
        {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!("permission denied for {}", object.described())))
    }

    /// Ok if `role` owns `object` or is a superuser: what DROP, ALTER and CREATE OR REPLACE
    /// need.
    pub fn require_owner(&self, role: &str, object: &Securable) -> Result<()> {
        if self.is_superuser(role) || self.owner_of(object).is_some_and(|owner| owner == role) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!("must be owner of {}", object.described())))
    }

    /// Ok if `role` may read every table and feature `plan` reads (joined features count;
    /// the tables behind them do not, as a view's do not in PostgreSQL).
    pub fn require_reads(&self, role: &str, plan: &LogicalPlan) -> Result<()> {
        if self.is_superuser(role) {
            return Ok(());
        }
        let mut outcome = Ok(());
        plan.apply_with_subqueries(|node| {
            let read = match node {
                LogicalPlan::TableScan(scan) if is_source_errors(scan) => {
                    outcome = Err(Error::PermissionDenied(
                        "permission denied for table source_errors: its payloads are rows of any table; only a superuser reads it"
                            .into(),
                    ));
                    return Ok(TreeNodeRecursion::Stop);
                }
                LogicalPlan::TableScan(scan) => securable(scan),
                LogicalPlan::Extension(extension) => match extension.node.as_any().downcast_ref::<AsofJoinNode>() {
                    Some(AsofJoinNode { right: AsofRight::Feature(feature), .. }) => {
                        Some(Securable::Feature(feature.compiled().def.name.clone()))
                    }
                    _ => None,
                },
                _ => None,
            };
            if let Some(object) = read {
                outcome = self.require(role, &object, Privilege::Select);
                if outcome.is_err() {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        outcome
    }

    /// Runs `GRANT` or `REVOKE` as `role`; `notice` sends a NOTICE.
    pub(super) async fn run_grant(
        &self,
        role: &str,
        statement: &GrantStatement,
        notice: impl Fn(String),
    ) -> Result<&'static str> {
        let objects: Vec<Securable> = match &statement.target {
            GrantTarget::Relations(names) => names
                .iter()
                .map(|name| {
                    if self.catalog.table(name).is_some() {
                        Ok(Securable::Table(name.clone()))
                    } else if self.features.get(name).is_some() {
                        Ok(Securable::Feature(name.clone()))
                    } else {
                        Err(Error::undefined_table(name))
                    }
                })
                .collect::<Result<_>>()?,
            GrantTarget::Features(names) => names
                .iter()
                .map(|name| match self.features.get(name) {
                    Some(_) => Ok(Securable::Feature(name.clone())),
                    None => Err(Error::NotFound {
                        sqlstate: SqlState::UndefinedObject,
                        message: format!("feature \"{name}\" does not exist"),
                    }),
                })
                .collect::<Result<_>>()?,
            GrantTarget::Schema(name) if name == crate::plan::SCHEMA_NAME => vec![Securable::Schema],
            GrantTarget::Schema(name) => {
                return Err(Error::NotFound {
                    sqlstate: SqlState::InvalidSchemaName,
                    message: format!("schema \"{name}\" does not exist"),
                });
            }
        };
        for grantee in &statement.grantees {
            if grantee != PUBLIC && self.catalog.role(grantee).is_none() {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedObject,
                    message: format!("role \"{grantee}\" does not exist"),
                });
            }
        }
        // Every object is checked before any changes: a GRANT is all or nothing.
        let mut changes = Vec::new();
        for object in &objects {
            let privileges = privileges_on(object, &statement.privileges)?;
            // Only the owner (or a superuser) grants: asofdb has no grant options. As in
            // PostgreSQL, a role that holds some privilege on the object is told that nothing
            // changed; one that holds none is refused.
            if self.is_superuser(role) || self.owner_of(object).as_deref() == Some(role) {
                changes.push((object, privileges));
                continue;
            }
            let holds = [Privilege::Select, Privilege::Insert, Privilege::Delete, Privilege::Create]
                .into_iter()
                .any(|p| self.catalog.granted(role, object, p));
            if !holds {
                return Err(Error::PermissionDenied(format!("permission denied for {}", object.described())));
            }
        }
        for object in &objects {
            if changes.iter().any(|(changed, _)| *changed == object) {
                continue;
            }
            let name = match object {
                Securable::Table(name) | Securable::Feature(name) => name.as_str(),
                Securable::Schema => crate::plan::SCHEMA_NAME,
            };
            notice(if statement.grant {
                format!("no privileges were granted for \"{name}\"")
            } else {
                format!("no privileges could be revoked for \"{name}\"")
            });
        }
        for (object, privileges) in changes {
            if !privileges.is_empty() {
                self.catalog.change_grants(object, &privileges, &statement.grantees, statement.grant).await?;
            }
        }
        Ok(if statement.grant { "GRANT" } else { "REVOKE" })
    }
}

/// The stored table or feature a scan reads, if it reads one (not a system table), known by
/// its provider: the name it is scanned under may be an alias (the right side of an ASOF join
/// is scanned under a placeholder).
fn securable(scan: &TableScan) -> Option<Securable> {
    let provider = source_as_provider(&scan.source).ok()?;
    let any: &dyn std::any::Any = provider.as_ref();
    if let Some(table) = any.downcast_ref::<EventTable>() {
        return Some(Securable::Table(table.def().name.clone()));
    }
    let feature = any.downcast_ref::<FeatureTable>()?;
    Some(Securable::Feature(feature.feature().compiled().def.name.clone()))
}

/// True for a scan of `asofdb.source_errors`, whose bad messages hold rows meant for any
/// table.
fn is_source_errors(scan: &TableScan) -> bool {
    scan.table_name.schema() == Some("asofdb") && scan.table_name.table() == "source_errors"
}

/// The privileges `written` names on `object` (all of them for ALL), or 0LP01 for one the
/// object does not have, as PostgreSQL answers `GRANT CREATE ON TABLE`.
fn privileges_on(object: &Securable, written: &[String]) -> Result<Vec<Privilege>> {
    let (valid, kind): (&[Privilege], &str) = match object {
        Securable::Table(_) => (&[Privilege::Select, Privilege::Insert, Privilege::Delete], "table"),
        Securable::Feature(_) => (&[Privilege::Select], "feature"),
        Securable::Schema => (&[Privilege::Create], "schema"),
    };
    if written.is_empty() {
        return Ok(valid.to_vec());
    }
    let mut out = Vec::new();
    for name in written {
        let privilege = match name.as_str() {
            "SELECT" => Privilege::Select,
            "INSERT" => Privilege::Insert,
            "CREATE" => Privilege::Create,
            "DELETE" => Privilege::Delete,
            // Schema USAGE is held by everyone: granting it changes nothing.
            "USAGE" if *object == Securable::Schema => continue,
            "UPDATE" | "TRUNCATE" | "REFERENCES" | "TRIGGER" | "MAINTAIN" if kind == "table" => {
                return Err(Error::unsupported(format!("the privilege {name} is not supported")));
            }
            _ => {
                return Err(Error::invalid_input(
                    SqlState::InvalidGrantOperation,
                    format!("invalid privilege type {name} for {kind}"),
                ));
            }
        };
        if !valid.contains(&privilege) {
            return Err(Error::invalid_input(
                SqlState::InvalidGrantOperation,
                format!("invalid privilege type {name} for {kind}"),
            ));
        }
        out.push(privilege);
    }
    Ok(out)
}

/// The privilege functions of a query, answered from the grants: `has_table_privilege([role,]
/// table, privilege)` with a literal privilege (and role) becomes `table IN (...)`, the
/// relations the role holds it on (any of a comma-separated list), named bare or
/// `public.`-qualified. A table asofdb does not have is false, not an error; a privilege it does
/// not have (UPDATE, TRUNCATE, ...) is false for everyone; a call whose privilege or role is not a
/// literal is refused (0A000) rather than answered wrongly.
pub(super) fn answer_privilege_functions(db: &Database, plan: LogicalPlan, role: &str) -> Result<LogicalPlan> {
    use datafusion::common::ScalarValue;
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Expr, lit};
    let literal = |expr: &Expr| match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::LargeUtf8(Some(text)), _) => Some(text.clone()),
        _ => None,
    };
    let rewritten = plan.transform_up_with_subqueries(|node| {
        crate::plan::rewrite_keeping_names(node, |expr| {
            let Expr::ScalarFunction(call) = &expr else { return Ok(Transformed::no(expr)) };
            if call.func.name() != "has_table_privilege" {
                return Ok(Transformed::no(expr));
            }
            let (who, table, privilege) = match call.args.as_slice() {
                [table, privilege] => (Some(role.to_string()), table, privilege),
                [who, table, privilege] => (literal(who), table, privilege),
                _ => return Ok(Transformed::no(expr)),
            };
            let (Some(who), Some(privileges)) = (who, literal(privilege)) else {
                return Err(datafusion::error::DataFusionError::External(Box::new(Error::unsupported(
                    "has_table_privilege with a role or privilege that is not a literal",
                ))));
            };
            let names = db.relations_with(&who, &privileges);
            let list: Vec<Expr> = names.iter().flat_map(|n| [lit(n.clone()), lit(format!("public.{n}"))]).collect();
            let answer = if list.is_empty() { lit(false) } else { table.clone().in_list(list, false) };
            Ok(Transformed::yes(answer))
        })
    })?;
    Ok(rewritten.data)
}

impl Database {
    /// The tables and features `role` holds any of `privileges` (`"SELECT, INSERT"`) on.
    fn relations_with(&self, role: &str, privileges: &str) -> Vec<String> {
        let wanted: Vec<Privilege> = privileges
            .split(',')
            .filter_map(|p| match p.trim().trim_end_matches(" WITH GRANT OPTION").to_ascii_uppercase().as_str() {
                "SELECT" => Some(Privilege::Select),
                "INSERT" => Some(Privilege::Insert),
                "DELETE" => Some(Privilege::Delete),
                _ => None,
            })
            .collect();
        let mut objects: Vec<Securable> = self.catalog.table_names().into_iter().map(Securable::Table).collect();
        objects.extend(self.features.names().into_iter().map(Securable::Feature));
        objects
            .into_iter()
            .filter(|object| {
                wanted.iter().any(|p| {
                    let applies = matches!(object, Securable::Table(_)) || *p == Privilege::Select;
                    applies && self.require(role, object, *p).is_ok()
                })
            })
            .map(|object| match object {
                Securable::Table(name) | Securable::Feature(name) => name,
                Securable::Schema => String::new(),
            })
            .collect()
    }
}
