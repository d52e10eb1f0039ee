//! Rewrites for the catalog functions client drivers call that neither DataFusion nor
//! datafusion-pg-catalog provide: `to_regtype(name)` and `to_regclass(name)` (psycopg's
//! `TypeInfo.fetch`, SQLAlchemy's type and table lookups) become scalar subqueries over
//! `pg_type` and `pg_class`, which return NULL for an unknown name as PostgreSQL does.
//!
//! DataFusion also refuses a correlated scalar subquery that is not an aggregate, which
//! SQLAlchemy's column inspection uses four times (defaults, identity, collations). In
//! statements that read `pg_catalog`, such a subquery's one output is wrapped in `max()`:
//! catalog lookups by key return at most one row, where the two mean the same. It cannot
//! decorrelate a subquery inside CASE at all, so the `pg_attribute` columns those CASEs test
//! and that are the same for every asofdb column (no defaults, identities or collations) are
//! replaced by their values, which lets the planner fold the branches away.

use std::ops::ControlFlow;

use datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr, Statement, Value,
    visit_expressions_mut, visit_relations,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// True if `statement` reads the system catalogs: a relation in `pg_catalog` or
/// `information_schema` (or an unqualified one named like a `pg_catalog` table, which
/// PostgreSQL's search path finds there first), or a cast to an oid alias type (`'t'::regclass`). Only such statements get
/// the compatibility rewrites (`SqlParser`).
pub fn reads_catalog(statement: &Statement) -> bool {
    let relation = visit_relations(statement, |name| {
        let parts: Vec<_> =
            name.0.iter().filter_map(|part| part.as_ident()).map(|i| i.value.to_ascii_lowercase()).collect();
        let system = match parts.as_slice() {
            [one] => PG_CATALOG_TABLES.iter().any(|t| t.eq_ignore_ascii_case(one)),
            [schema, ..] => schema == "pg_catalog" || schema == "information_schema",
            [] => false,
        };
        if system { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    let reg_cast = sqlparser::ast::visit_expressions(statement, |expr| {
        let Expr::Cast { data_type, .. } = expr else { return ControlFlow::Continue(()) };
        let oid_alias = match data_type {
            sqlparser::ast::DataType::Regclass => true,
            sqlparser::ast::DataType::Custom(name, _) => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.to_ascii_lowercase().starts_with("reg")),
            _ => false,
        };
        if oid_alias { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    relation.is_break() || reg_cast.is_break()
}

/// Applies every rewrite to `statement` in place.
pub fn rewrite(statement: &mut Statement) {
    let reads_catalog = reads_catalog(statement);
    let _ = visit_expressions_mut(statement, |expr| {
        if let Some(replacement) = lookup_subquery(expr) {
            *expr = replacement;
        } else if reads_catalog && let Some(value) = constant_attribute(expr) {
            *expr = value;
        } else if reads_catalog && let Expr::Subquery(query) = expr {
            aggregate_single_output(query);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The value of a `pg_attribute` column that is the same for every column asofdb has.
fn constant_attribute(expr: &Expr) -> Option<Expr> {
    let name = match expr {
        Expr::Identifier(ident) => &ident.value,
        Expr::CompoundIdentifier(parts) => &parts.last()?.value,
        _ => return None,
    };
    let value = match name.to_ascii_lowercase().as_str() {
        "atthasdef" => Value::Boolean(false),
        "attidentity" => Value::SingleQuotedString(String::new()),
        "attcollation" => Value::Number("0".into(), false),
        _ => return None,
    };
    Some(Expr::value(value))
}

/// Wraps the one output of a plain `SELECT` subquery (no aggregate, GROUP BY or LIMIT yet) in `max()`.
fn aggregate_single_output(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    let has_group_by = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
    if select.projection.len() != 1 || has_group_by || query.limit_clause.is_some() {
        return;
    }
    let (SelectItem::UnnamedExpr(output) | SelectItem::ExprWithAlias { expr: output, .. }) = &mut select.projection[0]
    else {
        return;
    };
    if let Expr::Function(f) = output
        && f.name.to_string().eq_ignore_ascii_case("count")
    {
        return;
    }
    let Ok(wrapped) =
        Parser::new(&PostgreSqlDialect {}).try_with_sql(&format!("max({output})")).and_then(|mut p| p.parse_expr())
    else {
        return;
    };
    *output = wrapped;
}

/// `to_regtype(x)` / `to_regclass(x)` (optionally `pg_catalog.`-qualified) with one argument.
fn lookup_subquery(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    let name = function.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let FunctionArguments::List(list) = &function.args else { return None };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else { return None };
    let template = match name.as_str() {
        "to_regtype" => "(SELECT oid FROM pg_catalog.pg_type WHERE typname = ARG LIMIT 1)",
        "to_regclass" => "(SELECT oid FROM pg_catalog.pg_class WHERE relname = ARG LIMIT 1)",
        _ => return None,
    };
    let sql = template.replace("ARG", &format!("CAST({arg} AS TEXT)"));
    Parser::new(&PostgreSqlDialect {}).try_with_sql(&sql).ok()?.parse_expr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        rewrite(&mut statement);
        statement.to_string()
    }

    #[test]
    fn regtype_lookups_become_subqueries() {
        assert_eq!(
            rewritten("SELECT oid FROM pg_type t WHERE t.oid = to_regtype($1)"),
            "SELECT oid FROM pg_type t WHERE t.oid = (SELECT oid FROM pg_catalog.pg_type WHERE typname = CAST($1 AS TEXT) LIMIT 1)"
        );
        assert!(
            rewritten("SELECT pg_catalog.to_regclass('tx')").contains("pg_class WHERE relname = CAST('tx' AS TEXT)")
        );
        assert_eq!(rewritten("SELECT upper('x')"), "SELECT upper('x')");
    }

    #[test]
    fn only_catalog_relations_make_a_catalog_query() {
        let reads = |sql: &str| reads_catalog(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0));
        assert!(reads("SELECT relname FROM pg_class"));
        assert!(reads("SELECT * FROM pg_catalog.pg_type"));
        assert!(reads("SELECT * FROM information_schema.columns"));
        assert!(reads("SELECT 'tx'::regclass"));
        assert!(!reads("SELECT (SELECT max(v) FROM pg_events) FROM t"));
        assert!(!reads("SELECT * FROM t"));
    }

    #[test]
    fn correlated_catalog_subqueries_are_aggregated() {
        let sql = "SELECT a.attname, (SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) \
                   FROM pg_catalog.pg_attribute a";
        assert!(rewritten(sql).contains("(SELECT max(t.typcollation) FROM"), "{}", rewritten(sql));
        // Outside the catalog, a query keeps PostgreSQL's semantics (and DataFusion's error).
        let user = "SELECT (SELECT v FROM t2 WHERE t2.k = t1.k) FROM t1";
        assert_eq!(rewritten(user), user);
    }
}
