//! `DELETE FROM t [WHERE p]`: erases a table's matching events from both tiers in one atomic,
//! durable switch, and rebuilds every feature over the table for the keys whose events went,
//! all before the statement completes (spec section 8, docs/security.md).

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use sqlparser::ast::{Delete, FromTable, SetExpr, Statement as SqlStatement, TableFactor};

use super::database::{Database, SessionReads};
use super::erase::{RowMatcher, erase};
use crate::catalog::{Privilege, Securable, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::sql::names::table_name;

/// Runs a DELETE; returns the number of rows erased.
pub async fn delete(db: &Database, delete: &Delete, reads: &SessionReads<'_>) -> Result<u64> {
    let (name, alias) = target(delete)?;
    if db.features.get(&name).is_some() {
        return Err(Error::invalid_input(
            SqlState::WrongObjectType,
            format!("cannot delete from feature \"{name}\": DELETE erases a table's events, and its features follow"),
        ));
    }
    let def = db.catalog.require_table(&name)?;
    // It takes effect at once; the block's own rows would be committed after it, unerased.
    if reads.pending.contains_key(&def.id) {
        return Err(Error::invalid_input(
            SqlState::ActiveSqlTransaction,
            format!(
                "DELETE FROM \"{name}\" inside a transaction block that wrote to it: DELETE takes effect at once; COMMIT or ROLLBACK the block's rows first"
            ),
        ));
    }
    let object = Securable::Table(def.name.clone());
    db.require(reads.role, &object, Privilege::Delete)?;
    // As in PostgreSQL: a WHERE reads the table's columns.
    if delete.selection.is_some() {
        db.require(reads.role, &object, Privilege::Select)?;
    }
    let predicate = match &delete.selection {
        Some(selection) => Some(compile(db, &def, alias, selection, reads).await?),
        None => None,
    };
    let columns = predicate.iter().flat_map(|p| collect_columns(p).into_iter().map(|c| c.index())).collect();
    let matches = RowMatcher {
        columns,
        matches: Box::new(move |batch: &RecordBatch| -> Result<BooleanArray> {
            let Some(predicate) = &predicate else { return Ok(BooleanArray::from(vec![true; batch.num_rows()])) };
            let value = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
            value.as_any().downcast_ref::<BooleanArray>().cloned().ok_or_else(|| {
                Error::invalid_input(SqlState::DatatypeMismatch, "argument of WHERE must be type boolean")
            })
        }),
    };
    // The lock order of tiering passes and backups: tiering, then the commit gate.
    let _no_tiering = db.tiering.lock().await;
    Ok(erase(db, &def, matches, i64::MAX, false).await?.rows)
}

/// The table a DELETE names, and the alias its WHERE may use.
fn target(delete: &Delete) -> Result<(String, Option<&sqlparser::ast::TableAlias>)> {
    let unsupported = |what: &str| Err(Error::unsupported(format!("DELETE ... {what} is not supported")));
    if delete.using.is_some() {
        return unsupported("USING");
    }
    if delete.returning.is_some() || delete.output.is_some() {
        return unsupported("RETURNING");
    }
    if !delete.order_by.is_empty() || delete.limit.is_some() {
        return unsupported("ORDER BY / LIMIT");
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let ([only], true) = (from.as_slice(), delete.tables.is_empty()) else {
        return unsupported("with several tables");
    };
    if !only.joins.is_empty() {
        return unsupported("with a join");
    }
    let TableFactor::Table { name, alias, args: None, .. } = &only.relation else {
        return unsupported("from something other than a table");
    };
    Ok((table_name(name)?, alias.as_ref()))
}

/// The WHERE of a DELETE as an expression over the table's rows, planned as
/// `SELECT * FROM t WHERE p` is (the same functions, casts and time-zone rules).
async fn compile(
    db: &Database,
    def: &TableDef,
    alias: Option<&sqlparser::ast::TableAlias>,
    selection: &sqlparser::ast::Expr,
    reads: &SessionReads<'_>,
) -> Result<Arc<dyn PhysicalExpr>> {
    let template =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, "SELECT * FROM t WHERE true");
    let mut query = match template.map_err(|e| Error::internal(e.to_string()))?.pop() {
        Some(SqlStatement::Query(query)) => query,
        _ => return Err(Error::internal("DELETE's template is not a query")),
    };
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.selection = Some(selection.clone());
        if let TableFactor::Table { name, alias: slot, .. } = &mut select.from[0].relation {
            *name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote('"', &def.name)]);
            *slot = alias.cloned();
        }
    }
    let plan = db.plan_query(&SqlStatement::Query(query)).await?;
    let analyzed = db.analyze(plan, reads.zone)?;
    let Some((predicate, input)) = find_filter(&analyzed) else {
        return Err(Error::unsupported("this DELETE ... WHERE could not be planned as a filter of the table's rows"));
    };
    let subquery = predicate.exists(|e| {
        Ok(matches!(
            e,
            Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_) | Expr::OuterReferenceColumn(..)
        ))
    })?;
    if subquery {
        return Err(Error::unsupported(
            "DELETE ... WHERE with a subquery is not supported: name the rows by their columns",
        ));
    }
    let mut state = db.run_state.clone();
    state.execution_props_mut().query_execution_start_time = Some(reads.now);
    if !reads.zone.is_utc() {
        state.config_mut().options_mut().execution.time_zone = Some(reads.zone.arrow_name.clone());
    }
    Ok(state.create_physical_expr(predicate, input.schema())?)
}

/// The WHERE of `SELECT * FROM t WHERE p` as analyzed, with the plan it filters.
fn find_filter(plan: &LogicalPlan) -> Option<(Expr, LogicalPlan)> {
    match plan {
        LogicalPlan::Filter(filter) => {
            let mut below = filter.input.as_ref();
            while let LogicalPlan::SubqueryAlias(alias) = below {
                below = alias.input.as_ref();
            }
            matches!(below, LogicalPlan::TableScan(_))
                .then(|| (filter.predicate.clone(), filter.input.as_ref().clone()))
        }
        LogicalPlan::Projection(p) => find_filter(&p.input),
        _ => None,
    }
}
