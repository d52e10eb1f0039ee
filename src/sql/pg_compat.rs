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
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr,
    Statement, Subscript, Value, visit_expressions_mut, visit_relations,
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
    if reads_catalog {
        table_privileges(statement);
    }
    let _ = visit_expressions_mut(statement, |expr| {
        name_parenthesized_fields(expr);
        if let Some(replacement) = lookup_subquery(expr) {
            *expr = replacement;
        } else if let Some(replacement) = expandarray(expr) {
            *expr = replacement;
        } else if reads_catalog && let Some(empty) = role_memberships(expr) {
            *expr = empty;
        } else if reads_catalog && let Some(value) = constant_attribute(expr) {
            *expr = value;
        } else if reads_catalog && let Expr::Subquery(query) = expr {
            aggregate_single_output(query);
        } else if reads_catalog && let Some(element) = vector_element(expr) {
            *expr = element;
        } else if reads_catalog {
            regproc_zero(expr);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `information_schema.table_privileges` as `asofdb.table_privileges`, which has its rows
/// (DataFusion's information_schema has no such view, and is not extended).
fn table_privileges(statement: &mut Statement) {
    let _ = sqlparser::ast::visit_relations_mut(statement, |name| {
        let parts: Vec<String> =
            name.0.iter().filter_map(|part| part.as_ident()).map(|i| i.value.to_ascii_lowercase()).collect();
        if parts == ["information_schema", "table_privileges"] {
            *name = sqlparser::ast::ObjectName::from(vec![
                sqlparser::ast::Ident::new("asofdb"),
                sqlparser::ast::Ident::new("table_privileges"),
            ]);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `ARRAY(SELECT ... FROM pg_auth_members ...)` (psql's `\du` lists each role's
/// memberships so) as the empty `text[]` it always is: asofdb's roles have no members, and
/// DataFusion has no array-from-subquery.
fn role_memberships(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    let FunctionArguments::Subquery(query) = &function.args else { return None };
    if !function.name.to_string().eq_ignore_ascii_case("array") {
        return None;
    }
    let members = visit_relations(query.as_ref(), |name| {
        let last = name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase());
        if last.as_deref() == Some("pg_auth_members") { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    if !members.is_break() {
        return None;
    }
    Parser::new(&PostgreSqlDialect {}).try_with_sql("ARRAY[]::text[]").ok()?.parse_expr().ok()
}

/// The column `expr` names (`c` or `t.c`), in lower case.
fn column_name(expr: &Expr) -> Option<String> {
    let name = match expr {
        Expr::Identifier(ident) => ident,
        Expr::CompoundIdentifier(parts) => parts.last()?,
        _ => return None,
    };
    Some(name.value.to_ascii_lowercase())
}

/// The value of a `pg_attribute` column that is the same for every column asofdb has.
fn constant_attribute(expr: &Expr) -> Option<Expr> {
    let value = match column_name(expr)?.as_str() {
        "atthasdef" => Value::Boolean(false),
        "attidentity" => Value::SingleQuotedString(String::new()),
        "attcollation" => Value::Number("0".into(), false),
        _ => return None,
    };
    Some(Expr::value(value))
}

/// `pg_type`'s regproc columns hold function names (`'-'` for none) where PostgreSQL holds
/// oids that print as names: `typreceive != 0` (the ADBC driver's start-up query) compares
/// with the name of no function.
fn regproc_zero(expr: &mut Expr) {
    const REGPROC: [&str; 7] =
        ["typinput", "typoutput", "typreceive", "typsend", "typmodin", "typmodout", "typanalyze"];
    let Expr::BinaryOp { left, right, .. } = expr else { return };
    let is_regproc = |e: &Expr| column_name(e).is_some_and(|name| REGPROC.contains(&name.as_str()));
    let is_zero = |e: &Expr| matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "0"));
    let none = || Expr::value(Value::SingleQuotedString("-".into()));
    if is_regproc(left) && is_zero(right) {
        **right = none();
    } else if is_regproc(right) && is_zero(left) {
        **left = none();
    }
}

/// `indkey[i]`: the catalog's `int2vector` and `oidvector` columns are text (`'1 2'`), and
/// PostgreSQL subscripts them from 0 (psqlODBC's `SQLPrimaryKeys` query reads
/// `i.indkey[ia.attnum-1]`). An index past either end is NULL, as in PostgreSQL.
fn vector_element(expr: &Expr) -> Option<Expr> {
    // `i_indoption` is pgjdbc's alias of `indoption` in getIndexInfo's outer query.
    const VECTORS: [&str; 8] =
        ["indkey", "indclass", "indcollation", "indoption", "i_indoption", "proargtypes", "tgattr", "partattrs"];
    let Expr::CompoundFieldAccess { root, access_chain } = expr else { return None };
    let (Some(AccessExpr::Subscript(Subscript::Index { index })), before) =
        (access_chain.last(), &access_chain[..access_chain.len() - 1])
    else {
        return None;
    };
    let column = match (root.as_ref(), before) {
        (Expr::Identifier(name), []) => Expr::Identifier(name.clone()),
        (Expr::CompoundIdentifier(parts), []) => Expr::CompoundIdentifier(parts.clone()),
        (Expr::Identifier(table), [AccessExpr::Dot(Expr::Identifier(name))]) => {
            Expr::CompoundIdentifier(vec![table.clone(), name.clone()])
        }
        _ => return None,
    };
    if !VECTORS.contains(&column_name(&column)?.as_str()) {
        return None;
    }
    let sql = format!(
        "CASE WHEN ({index}) >= 0 THEN CAST(NULLIF(split_part(CAST({column} AS TEXT), ' ', CAST(({index}) + 1 AS INT)), '') AS BIGINT) END"
    );
    Parser::new(&PostgreSqlDialect {}).try_with_sql(&sql).ok()?.parse_expr().ok()
}

/// `(expr).field`, PostgreSQL's access to a field of a composite value: DataFusion takes the
/// field's name only as a string (`(expr).'field'`). Unquoted names fold to lower case.
fn name_parenthesized_fields(expr: &mut Expr) {
    let Expr::CompoundFieldAccess { root, access_chain } = expr else { return };
    if !matches!(root.as_ref(), Expr::Nested(_)) {
        return;
    }
    for access in access_chain {
        if let AccessExpr::Dot(Expr::Identifier(ident)) = access {
            let name = if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() };
            *access = AccessExpr::Dot(Expr::value(Value::SingleQuotedString(name)));
        }
    }
}

/// `information_schema._pg_expandarray(v)`, a set-returning function (pgjdbc's primary-key
/// and index queries), becomes `unnest(pg_expandarray_elements(v))` (`plan::pg_expandarray`):
/// one `{x, n}` row per element, as PostgreSQL returns.
fn expandarray(expr: &Expr) -> Option<Expr> {
    let Expr::Function(function) = expr else { return None };
    if !function.name.0.last()?.as_ident()?.value.eq_ignore_ascii_case("_pg_expandarray") {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else { return None };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else { return None };
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("unnest(pg_expandarray_elements({arg}))"))
        .ok()?
        .parse_expr()
        .ok()
}

/// Rewrites, before the compatibility parser sees the statement, what its own rules would
/// turn into a wrong form; true if anything changed. `'pg_catalog.array_in'::regproc`
/// (pgjdbc's type query compares `typinput` with it) becomes the function's name as the
/// regproc columns hold it, `'array_in'` (the crate would compare the text column with an oid).
pub fn before_compatibility_parser(statement: &mut Statement) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Some(name) = regproc_literal(expr) {
            *expr = name;
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// `'pg_catalog.array_in'::regproc` as `'array_in'`.
fn regproc_literal(expr: &Expr) -> Option<Expr> {
    let Expr::Cast { expr: inner, data_type: sqlparser::ast::DataType::Custom(type_name, modifiers), .. } = expr else {
        return None;
    };
    if !modifiers.is_empty() || !type_name.to_string().eq_ignore_ascii_case("regproc") {
        return None;
    }
    let Expr::Value(value) = inner.as_ref() else { return None };
    let Value::SingleQuotedString(text) = &value.value else { return None };
    let name = text.strip_prefix("pg_catalog.").unwrap_or(text);
    Some(Expr::value(Value::SingleQuotedString(name.to_string())))
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
    fn catalog_vectors_and_composite_fields_are_planned_forms() {
        assert_eq!(
            rewritten("SELECT (information_schema._pg_expandarray(i.indkey)).n, (r.Keys).X FROM pg_index i"),
            "SELECT (unnest(pg_expandarray_elements(i.indkey))).'n', (r.Keys).'x' FROM pg_index i"
        );
        assert!(
            rewritten("SELECT i.indkey[ia.attnum - 1] FROM pg_index i").contains("split_part(CAST(i.indkey AS TEXT)")
        );
        assert!(
            rewritten("SELECT tmp.I_INDOPTION[tmp.n - 1] FROM (SELECT i.indoption AS I_INDOPTION FROM pg_index i) tmp")
                .contains("split_part(CAST(tmp.I_INDOPTION AS TEXT)"),
            "{}",
            rewritten("SELECT tmp.I_INDOPTION[tmp.n - 1] FROM (SELECT i.indoption AS I_INDOPTION FROM pg_index i) tmp")
        );
        let mut statement =
            Parser::parse_sql(&PostgreSqlDialect {}, "SELECT typinput = 'pg_catalog.array_in'::regproc FROM pg_type")
                .unwrap()
                .remove(0);
        assert!(before_compatibility_parser(&mut statement));
        assert!(statement.to_string().contains("typinput = 'array_in'"));
        // An array column of a user table keeps its subscript.
        assert_eq!(rewritten("SELECT t.a[1] FROM t"), "SELECT t.a[1] FROM t");
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
