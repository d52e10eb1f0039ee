//! Marking the ASOF joins of a statement before DataFusion plans it.
//!
//! 1. [`mark`] rewrites each `L ASOF [kind] JOIN R ON ...` of the statement (in CTEs, set
//!    operations, FROM and expression subqueries alike) into `L [kind] JOIN <placeholder> AS R
//!    ON <the same conditions>` (kind: LEFT, RIGHT, FULL, SEMI or ANTI), where the placeholder
//!    is `R`'s table provider under a fresh name in a catalog of the statement's own
//!    ([`Placeholders`]), which only that statement's planning sees;
//! 2. DataFusion plans the statement, resolving every name and expression;
//! 3. `plan::asof::lower` replaces those joins by `AsofJoinNode`s, which its extension planner
//!    turns into its table or feature operator.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider, TableProvider,
};
use sqlparser::ast::{
    BinaryOperator, Cte, Expr, Join, JoinConstraint, JoinOperator, Query, SetExpr, Statement as SqlStatement,
    TableFactor, TableWithJoins, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::{AsofSpec, AsofTarget};
use crate::error::{Error, Result, SqlState};
use crate::sql::asof_syntax::{ANTI_MARKER, FULL_MARKER, INNER_MARKER, LEFT_MARKER, RIGHT_MARKER, SEMI_MARKER};
use crate::sql::names::{ident_name, table_name};

/// The catalog, and its one schema, holding a statement's placeholder tables while it is
/// planned: `asof_tmp.placeholders.__asof_N`.
const PLACEHOLDER_CATALOG: &str = "asof_tmp";
const PLACEHOLDER_SCHEMA: &str = "placeholders";

static NEXT_PLACEHOLDER: AtomicU64 = AtomicU64::new(1);

/// True if the statement has an ASOF join anywhere.
pub fn has_asof(statement: &SqlStatement) -> bool {
    matches!(statement, SqlStatement::Query(_) | SqlStatement::Explain { .. }) && holds_asof_join(statement)
}

/// A statement's placeholders: what each ASOF join reads, by placeholder name, and the
/// providers planning resolves the names to.
#[derive(Default)]
pub struct Placeholders {
    pub specs: HashMap<String, AsofSpec>,
    schema: Arc<MemorySchemaProvider>,
}

impl Placeholders {
    /// Placeholder `name` reads `provider`, a table or a feature (`target`).
    pub fn add(&mut self, name: String, provider: Arc<dyn TableProvider>, target: AsofTarget) -> Result<()> {
        self.schema.register_table(name.clone(), provider)?;
        self.specs.insert(name, AsofSpec { target });
        Ok(())
    }

    /// The catalogs `state` plans with, plus this statement's placeholders: the catalogs are
    /// shared, only the list is new, so no other statement sees the placeholders.
    pub fn catalogs_with(&self, state: &datafusion::execution::SessionState) -> Arc<dyn CatalogProviderList> {
        let base = state.catalog_list();
        let catalogs = MemoryCatalogProviderList::new();
        for name in base.catalog_names() {
            if let Some(catalog) = base.catalog(&name) {
                catalogs.register_catalog(name, catalog);
            }
        }
        let placeholders = MemoryCatalogProvider::new();
        // Registering a schema in a new in-memory catalog cannot fail.
        let _ = placeholders.register_schema(PLACEHOLDER_SCHEMA, self.schema.clone());
        catalogs.register_catalog(PLACEHOLDER_CATALOG.to_string(), Arc::new(placeholders));
        Arc::new(catalogs)
    }
}

/// Marks every ASOF join of `statement` (see the module doc): each now reads a placeholder
/// table, returned with what it stands for. The caller gives each a provider
/// ([`Placeholders::add`]) and plans the statement with them ([`Placeholders::catalogs_with`]).
pub fn mark(statement: &mut SqlStatement) -> Result<Vec<(String, RightSide)>> {
    let mut marker = Marker { joins: Vec::new(), ctes: Vec::new(), error: None };
    let _ = statement.visit(&mut marker);
    match marker.error {
        Some(e) => Err(e),
        None => Ok(marker.joins),
    }
}

/// Visits every query of a statement and rewrites the ASOF joins of its SELECTs.
struct Marker {
    /// (placeholder name, what the right side reads)
    joins: Vec<(String, RightSide)>,
    /// The CTEs in scope, one list per enclosing query.
    ctes: Vec<Vec<Cte>>,
    error: Option<Error>,
}

impl VisitorMut for Marker {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let ctes = query.with.iter().flat_map(|w| w.cte_tables.iter().cloned()).collect();
        self.ctes.push(ctes);
        if let Err(e) = self.mark_set_expr(&mut query.body) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }
}

impl Marker {
    /// Nested `Query`s are visited on their own; this walks set operations down to SELECTs.
    fn mark_set_expr(&mut self, body: &mut SetExpr) -> Result<()> {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.mark_set_expr(left)?;
                self.mark_set_expr(right)
            }
            SetExpr::Select(select) => {
                for from in select.from.iter_mut() {
                    for i in 0..from.joins.len() {
                        if matches!(from.joins[i].join_operator, JoinOperator::AsOf { .. }) {
                            let left =
                                TableWithJoins { relation: from.relation.clone(), joins: from.joins[..i].to_vec() };
                            self.mark_join(&left, &mut from.joins[i])?;
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn mark_join(&mut self, left: &TableWithJoins, join: &mut Join) -> Result<()> {
        let (right, right_alias) = self.right_side(&join.relation)?;
        let JoinOperator::AsOf { match_condition, constraint } = &join.join_operator else {
            return Err(Error::internal("not an ASOF join"));
        };
        let (kind, on) = conditions(match_condition, constraint, left, &right_alias)?;
        let placeholder = format!("__asof_{}", NEXT_PLACEHOLDER.fetch_add(1, Ordering::Relaxed));
        join.relation = parse_relation(&format!(
            "{PLACEHOLDER_CATALOG}.{PLACEHOLDER_SCHEMA}.{placeholder} AS \"{}\"",
            right_alias.replace('"', "\"\"")
        ))?;
        let constraint = JoinConstraint::On(on);
        // SEMI and ANTI keep the left columns only; `plan::asof::lower` runs them as an
        // inner and a LEFT ASOF join.
        join.join_operator = match kind {
            LEFT_MARKER => JoinOperator::LeftOuter(constraint),
            RIGHT_MARKER => JoinOperator::RightOuter(constraint),
            FULL_MARKER => JoinOperator::FullOuter(constraint),
            SEMI_MARKER => JoinOperator::LeftSemi(constraint),
            ANTI_MARKER => JoinOperator::LeftAnti(constraint),
            _ => JoinOperator::Inner(constraint),
        };
        self.joins.push((placeholder, right));
        Ok(())
    }

    /// What the right side of an ASOF join reads, and the name its columns go by: a stored
    /// table or feature; or a query (a CTE in scope, a subquery, a table function), planned
    /// on its own and read as a view.
    fn right_side(&self, relation: &TableFactor) -> Result<(RightSide, String)> {
        let alias_of = |alias: &Option<sqlparser::ast::TableAlias>| alias.as_ref().map(|a| ident_name(&a.name));
        match relation {
            TableFactor::Table { name, alias, args: None, .. } => {
                let right = table_name(name)?;
                let alias = alias_of(alias).unwrap_or_else(|| right.clone());
                // A CTE in scope shadows a stored table of the same name: the innermost WITH
                // defining it, and there the CTEs up to it (those it can read).
                let found = (name.0.len() == 1).then(|| {
                    self.ctes.iter().rev().find_map(|level| {
                        level.iter().position(|c| ident_name(&c.alias.name) == right).map(|i| &level[..=i])
                    })
                });
                match found.flatten() {
                    Some(visible) => {
                        if visible.iter().any(contains_asof) {
                            return Err(Error::unsupported(format!(
                                "ASOF JOIN against the CTE \"{right}\" when it or a CTE before it holds an ASOF JOIN"
                            )));
                        }
                        let query = with_ctes(visible.iter(), &format!("SELECT * FROM {name}"))?;
                        Ok((RightSide::Query(query), alias))
                    }
                    None => Ok((RightSide::Stored(right), alias)),
                }
            }
            TableFactor::Derived { lateral: false, subquery, alias: Some(alias), .. } => {
                if alias.columns.is_empty() {
                    let query = with_ctes(self.plain_ctes(), &subquery.to_string())?;
                    Ok((RightSide::Query(query), ident_name(&alias.name)))
                } else {
                    let query = with_ctes(self.plain_ctes(), &format!("SELECT * FROM ({subquery}) AS {alias}"))?;
                    Ok((RightSide::Query(query), ident_name(&alias.name)))
                }
            }
            TableFactor::Table { args: Some(_), alias: Some(alias), .. }
            | TableFactor::Function { alias: Some(alias), .. }
            | TableFactor::TableFunction { alias: Some(alias), .. } => {
                let query = with_ctes(self.plain_ctes(), &format!("SELECT * FROM {relation}"))?;
                Ok((RightSide::Query(query), ident_name(&alias.name)))
            }
            _ => Err(Error::unsupported(
                "the right side of an ASOF JOIN must be a table, a feature, a CTE, or an aliased subquery or table function",
            )),
        }
    }

    /// The CTEs in scope that hold no ASOF join, innermost definition of a name only: what a
    /// subquery on the right side may read. (One holding an ASOF join may be the CTE this
    /// join is in; planning it again would never end.)
    fn plain_ctes(&self) -> impl Iterator<Item = &Cte> {
        let all: Vec<&Cte> = self.ctes.iter().flatten().collect();
        let innermost: Vec<bool> =
            (0..all.len()).map(|i| all[i + 1..].iter().all(|later| later.alias.name != all[i].alias.name)).collect();
        all.into_iter().zip(innermost).filter(|(c, innermost)| *innermost && !contains_asof(c)).map(|(c, _)| c)
    }
}

/// True if the CTE's query has an ASOF join.
fn contains_asof(cte: &Cte) -> bool {
    holds_asof_join(&cte.query)
}

/// True if some query inside `syntax` (subqueries and CTEs included) joins with ASOF.
fn holds_asof_join(syntax: &impl Visit) -> bool {
    struct Finder;
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if set_has_asof(&query.body) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
    }
    fn set_has_asof(body: &SetExpr) -> bool {
        match body {
            SetExpr::SetOperation { left, right, .. } => set_has_asof(left) || set_has_asof(right),
            SetExpr::Select(select) => select
                .from
                .iter()
                .any(|from| from.joins.iter().any(|j| matches!(j.join_operator, JoinOperator::AsOf { .. }))),
            _ => false,
        }
    }
    syntax.visit(&mut Finder).is_break()
}

/// `sql` as a query with these CTEs before it.
fn with_ctes<'a>(ctes: impl Iterator<Item = &'a Cte>, sql: &str) -> Result<Box<Query>> {
    let ctes: Vec<String> = ctes.map(|c| c.to_string()).collect();
    let text = if ctes.is_empty() { sql.to_string() } else { format!("WITH {} {sql}", ctes.join(", ")) };
    match Parser::parse_sql(&PostgreSqlDialect {}, &text)?.pop() {
        Some(SqlStatement::Query(query)) => Ok(query),
        _ => Err(Error::internal("the right side of an ASOF JOIN did not parse as a query")),
    }
}

/// What the right side of one ASOF join reads.
pub enum RightSide {
    /// A stored table or feature, by name.
    Stored(String),
    /// A query, planned on its own.
    Query(Box<Query>),
}

/// The join's kind (one of `sql::asof_syntax`'s markers), and its whole condition as one ON
/// expression: DuckDB's `ON`, `USING (keys..., time)` (equalities, then `>=` on the last
/// column), or Snowflake's `MATCH_CONDITION (...) ON ...` (inner).
fn conditions(
    match_condition: &Expr,
    constraint: &JoinConstraint,
    left: &TableWithJoins,
    right_alias: &str,
) -> Result<(&'static str, Expr)> {
    let marker = match match_condition {
        Expr::Identifier(i) => [INNER_MARKER, LEFT_MARKER, SEMI_MARKER, ANTI_MARKER, RIGHT_MARKER, FULL_MARKER]
            .into_iter()
            .find(|m| i.value == *m),
        _ => None,
    };
    let mut conjuncts = Vec::new();
    match constraint {
        JoinConstraint::On(on) => conjuncts.push(on.clone()),
        JoinConstraint::Using(columns) => {
            let left_alias = relation_alias(&left.relation)?;
            let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            for (i, c) in names.iter().enumerate() {
                let op = if i + 1 == names.len() { ">=" } else { "=" };
                conjuncts.push(parse_expr(&format!("\"{left_alias}\".{c} {op} \"{right_alias}\".{c}"))?);
            }
        }
        JoinConstraint::None => {}
        _ => return Err(Error::unsupported("ASOF JOIN needs ON or USING")),
    }
    if marker.is_none() {
        conjuncts.push(match_condition.clone());
    }
    let on = conjuncts
        .into_iter()
        .map(|c| Expr::Nested(Box::new(c)))
        .reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) })
        .ok_or_else(|| {
            Error::invalid_input(
                SqlState::SyntaxError,
                "an ASOF JOIN needs one inequality (>=, >, <=, <) between the time columns",
            )
        })?;
    Ok((marker.unwrap_or(INNER_MARKER), on))
}

fn relation_alias(relation: &TableFactor) -> Result<String> {
    match relation {
        TableFactor::Table { alias: Some(a), .. } => Ok(ident_name(&a.name)),
        TableFactor::Table { name, .. } => table_name(name),
        TableFactor::Derived { alias: Some(a), .. } => Ok(ident_name(&a.name)),
        _ => Err(Error::unsupported("ASOF JOIN ... USING needs a named left relation")),
    }
}

fn parse_expr(sql: &str) -> Result<Expr> {
    Ok(Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?.parse_expr()?)
}

fn parse_relation(sql: &str) -> Result<TableFactor> {
    Ok(Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?.parse_table_factor()?)
}
