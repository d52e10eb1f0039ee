//! CREATE [OR REPLACE] TEMPORARY VIEW and DROP VIEW. A view is planned once, when created, and
//! lives in memory until its session ends; features are asofdb's persistent views.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use sqlparser::ast::{CreateTableOptions, CreateView, Query, Statement as SqlStatement, visit_relations};

use super::database::Database;
use crate::error::{Error, Result, SqlState};
use crate::plan::TemporaryView;
use crate::sql::names::{ident_name, table_name};
use crate::sql::output_names::client_name;

/// What CREATE VIEW did: the view it made (name, id), and a NOTICE to send, if any.
pub struct Created {
    pub view: Option<(String, u64)>,
    pub notice: Option<String>,
}

pub async fn create_view(db: &Database, create: &CreateView) -> Result<Created> {
    // A feature replacement's switch checks the views reading the feature, and plans them
    // again after it: none is planned against the old feature in between.
    let _gate = db.commit_gate.read().await;
    if create.materialized {
        return Err(Error::unsupported(
            "CREATE MATERIALIZED VIEW is not supported: CREATE FEATURE keeps windowed aggregates up to date",
        ));
    }
    if !matches!(create.options, CreateTableOptions::None) || create.to.is_some() {
        return Err(Error::unsupported("view options are not supported"));
    }
    let name = table_name(&create.name)?;
    let columns: Vec<String> = create.columns.iter().map(|c| ident_name(&c.name)).collect();
    let (plan, reads) = plan_view(db, &create.query, &columns).await?;
    if db.catalog.table(&name).is_some() || db.features.get(&name).is_some() {
        return Err(Error::duplicate_table(&name));
    }
    let mut notice = None;
    if !create.temporary {
        // As PostgreSQL: a view of temporary objects is temporary itself.
        let temporary = |r: &String| db.views.get(r).is_some() || db.catalog.table(r).is_some_and(|t| t.temporary);
        if !reads.iter().any(temporary) {
            return Err(Error::unsupported(
                "CREATE VIEW makes only temporary views here (CREATE TEMPORARY VIEW); CREATE FEATURE is the persistent, incrementally maintained form",
            ));
        }
        notice = Some(format!("view \"{name}\" will be a temporary view"));
    }
    if let Some(existing) = db.views.get(&name) {
        if create.if_not_exists {
            let notice = Some(format!("relation \"{name}\" already exists, skipping"));
            return Ok(Created { view: None, notice });
        }
        if !create.or_replace {
            return Err(Error::duplicate_table(&name));
        }
        if reads.contains(&name) {
            return Err(Error::invalid_input(
                SqlState::InvalidTableDefinition,
                format!("view \"{name}\" cannot read itself"),
            ));
        }
        check_replaces(existing.table.logical_plan(), &plan)?;
    }
    let id = db.views.insert(&name, TemporaryView::new(plan, create.query.clone(), columns, reads));
    // Their columns stay: the new query only adds columns after the old ones.
    let dropped = replan_dependents(db, &name).await;
    if !dropped.is_empty() {
        notice = Some(format!("views dropped, as they could not be planned again: {}", dropped.join(", ")));
    }
    Ok(Created { view: Some((name, id)), notice })
}

/// Plans again, nearest first, the views that read `name` (a view or feature just replaced):
/// they inlined its old plan. The replacement kept the columns they read, so each plans; one
/// that does not all the same is dropped, with those reading it (it would read the old
/// object for ever). Returns the views dropped.
pub async fn replan_dependents(db: &Database, name: &str) -> Vec<String> {
    let mut dropped = Vec::new();
    for dependent in db.views.depending_on(&[name.to_string()]).into_iter().rev() {
        let Some(view) = db.views.get(&dependent) else { continue };
        match plan_view(db, &view.query, &view.columns).await {
            Ok((plan, reads)) => db.views.replan(
                &dependent,
                view.id,
                TemporaryView::new(plan, view.query.clone(), view.columns.clone(), reads),
            ),
            Err(e) => {
                tracing::warn!(view = %dependent, "dropped: it could not be planned again after {name} was replaced: {e}");
                for gone in db.views.depending_on(std::slice::from_ref(&dependent)).into_iter().chain([dependent]) {
                    db.views.remove(&gone, None);
                    dropped.push(gone);
                }
            }
        }
    }
    dropped
}

/// A view's query planned, its columns renamed to `columns`, and what it reads.
async fn plan_view(db: &Database, query: &Query, columns: &[String]) -> Result<(LogicalPlan, BTreeSet<String>)> {
    let plan = db.plan_query(&SqlStatement::Query(Box::new(query.clone()))).await?;
    if let Some(parameter) = plan.get_parameter_types()?.keys().next() {
        return Err(Error::invalid_input(
            SqlState::UndefinedParameter,
            format!("there is no parameter {parameter}: a view cannot take parameters"),
        ));
    }
    let plan = renamed(plan, columns)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(repeated) = plan.schema().fields().iter().map(|f| client_name(f.name())).find(|n| !seen.insert(*n)) {
        return Err(Error::invalid_input(
            SqlState::DuplicateColumn,
            format!("column \"{repeated}\" specified more than once"),
        ));
    }
    let mut reads = db.views.reads(&plan);
    reads.extend(views_named(query, db));
    Ok((plan, reads))
}

/// The temporary views `query` names (a name that a WITH clause of the query defines may
/// be counted too: a view then cannot be dropped without CASCADE while this one exists).
fn views_named(query: &Query, db: &Database) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let _ = visit_relations(query, |relation| {
        if let Ok(name) = table_name(relation)
            && db.views.get(&name).is_some()
        {
            names.insert(name);
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

/// `plan` with its first columns renamed to `names` (`CREATE VIEW v (a, b) AS ...`).
fn renamed(plan: LogicalPlan, names: &[String]) -> Result<LogicalPlan> {
    if names.is_empty() {
        return Ok(plan);
    }
    let columns = plan.schema().columns();
    if names.len() > columns.len() {
        return Err(Error::syntax("CREATE VIEW specifies more column names than columns"));
    }
    let exprs: Vec<Expr> = columns
        .into_iter()
        .enumerate()
        .map(|(i, column)| match names.get(i) {
            Some(name) => Expr::Column(column).alias(name),
            None => Expr::Column(column),
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// PostgreSQL's rule for CREATE OR REPLACE VIEW: the new query keeps the old columns, with
/// the same names and types, in the same order, and may add columns after them (42P16).
fn check_replaces(old: &LogicalPlan, new: &LogicalPlan) -> Result<()> {
    let (old, new) = (old.schema().fields(), new.schema().fields());
    let invalid = |message: String| Error::invalid_input(SqlState::InvalidTableDefinition, message);
    if new.len() < old.len() {
        return Err(invalid("cannot drop columns from view".into()));
    }
    for (before, after) in old.iter().zip(new.iter()) {
        if before.name() != after.name() {
            return Err(invalid(format!(
                "cannot change name of view column \"{}\" to \"{}\"",
                before.name(),
                after.name()
            )));
        }
        if before.data_type() != after.data_type() {
            return Err(invalid(format!(
                "cannot change data type of view column \"{}\" from {} to {}",
                before.name(),
                before.data_type(),
                after.data_type()
            )));
        }
    }
    Ok(())
}

/// DROP VIEW: checks every name first, so that nothing is dropped if one fails. Returns the
/// NOTICEs for names skipped under IF EXISTS.
pub fn drop_views(db: &Database, names: &[String], if_exists: bool, cascade: bool) -> Result<Vec<String>> {
    let mut notices = Vec::new();
    let mut dropping = Vec::new();
    for name in names {
        if db.views.get(name).is_some() {
            dropping.push(name.clone());
            continue;
        }
        let hint = if db.catalog.table(name).is_some() {
            Some("DROP TABLE")
        } else if db.features.get(name).is_some() {
            Some("DROP FEATURE")
        } else {
            None
        };
        match hint {
            Some(statement) => {
                return Err(Error::invalid_input(
                    SqlState::WrongObjectType,
                    format!("\"{name}\" is not a view (use {statement})"),
                ));
            }
            None if if_exists => notices.push(format!("view \"{name}\" does not exist, skipping")),
            None => {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedTable,
                    message: format!("view \"{name}\" does not exist"),
                });
            }
        }
    }
    let dependents: Vec<String> =
        db.views.depending_on(&dropping).into_iter().filter(|v| !dropping.contains(v)).collect();
    if !dependents.is_empty() && !cascade {
        return Err(still_needed("view", &dropping.join(", "), &dependents));
    }
    for name in dependents.iter().chain(&dropping) {
        db.views.remove(name, None);
    }
    Ok(notices)
}

/// 2BP01 for dropping `what` while `dependents` read it.
pub fn still_needed(kind: &str, what: &str, dependents: &[String]) -> Error {
    Error::Conflict {
        sqlstate: SqlState::DependentObjectsStillExist,
        message: format!(
            "cannot drop {kind} {what} because other objects depend on it: {} (use DROP ... CASCADE to drop them too)",
            dependents.join(", ")
        ),
    }
}
