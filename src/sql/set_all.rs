//! `INTERSECT ALL` and `EXCEPT ALL` with PostgreSQL's multiplicities. DataFusion plans them as
//! a semi or anti join that keeps every left duplicate: `{1, 1, 2} EXCEPT ALL {1}` gave
//! `{2}` (PostgreSQL: `{1, 2}`), `{1, 1} INTERSECT ALL {1}` gave `{1, 1}` (PostgreSQL: `{1}`).
//! Each side's rows are numbered within their group of equal rows, and the plain (DISTINCT)
//! operation on (row, number) keeps exactly min(m, n), or max(m - n, 0), copies:
//!
//! ```sql
//! SELECT c1 AS "a", ... FROM (
//!   SELECT c1, ..., row_number() OVER (PARTITION BY c1, ...) FROM (<left>) AS l(c1, ...)
//!   EXCEPT
//!   SELECT c1, ..., row_number() OVER (PARTITION BY c1, ...) FROM (<right>) AS r(c1, ...)) AS s
//! ```
//!
//! The output names come from the left SELECT list, so a side with a wildcard cannot be
//! rewritten and is refused (0A000) rather than answered wrong.

use sqlparser::ast::{Query, SelectItem, SetExpr, SetOperator, SetQuantifier, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::output_names::output_name;
use crate::error::{Error, Result};

/// Rewrites every `INTERSECT ALL` / `EXCEPT ALL` of a query statement, innermost first.
pub fn rewrite(statement: &mut Statement) -> Result<()> {
    if let Statement::Query(query) = statement {
        rewrite_query(query)?;
    }
    Ok(())
}

fn rewrite_query(query: &mut Query) -> Result<()> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            rewrite_query(&mut cte.query)?;
        }
    }
    rewrite_set_expr(&mut query.body)
}

fn rewrite_set_expr(body: &mut SetExpr) -> Result<()> {
    match body {
        SetExpr::Query(query) => rewrite_query(query),
        SetExpr::SetOperation { left, op, set_quantifier, right } => {
            rewrite_set_expr(left)?;
            rewrite_set_expr(right)?;
            let all = matches!(set_quantifier, SetQuantifier::All);
            let keyword = match op {
                SetOperator::Intersect if all => "INTERSECT",
                SetOperator::Except if all => "EXCEPT",
                _ => return Ok(()),
            };
            let names = output_names(left).ok_or_else(|| {
                Error::unsupported(format!(
                    "{keyword} ALL over a SELECT list with a wildcard is not supported; list the columns"
                ))
            })?;
            let columns: Vec<String> = (1..=names.len()).map(|i| format!("__c{i}")).collect();
            let list = columns.join(", ");
            let numbered = |side: &SetExpr, alias: &str| {
                format!("SELECT {list}, row_number() OVER (PARTITION BY {list}) FROM ({side}) AS {alias}({list})")
            };
            let outer: Vec<String> = columns
                .iter()
                .zip(&names)
                .map(|(c, name)| format!("{c} AS \"{}\"", name.replace('"', "\"\"")))
                .collect();
            let sql = format!(
                "SELECT {} FROM ({} {keyword} {}) AS __set_all",
                outer.join(", "),
                numbered(left, "__l"),
                numbered(right, "__r")
            );
            let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql)?.pop();
            let Some(Statement::Query(query)) = parsed else {
                return Err(Error::internal(format!("{keyword} ALL rewrite did not parse")));
            };
            *body = *query.body;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// PostgreSQL's output names of a set expression: its leftmost SELECT's, None with a wildcard.
fn output_names(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. } => Some(output_name(item)),
                _ => None,
            })
            .collect(),
        SetExpr::SetOperation { left, .. } => output_names(left),
        SetExpr::Query(query) => output_names(&query.body),
        _ => None,
    }
}
