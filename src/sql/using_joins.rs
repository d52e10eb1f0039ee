//! Joins `USING (c)` as PostgreSQL has them, where DataFusion differs: `SELECT *` lists the
//! join columns first, then the left side's other columns, then the right side's (DataFusion
//! keeps the left side's order: `v, id, w` for PostgreSQL's `id, v, w`), and an unqualified
//! `c` is the merged column: the right side's in a RIGHT JOIN and `COALESCE(left.c, right.c)`
//! in a FULL JOIN (DataFusion takes the left side's, NULL for rows only the right side has).
//!
//! Rewritten in the syntax tree for a FROM of one USING join between two named relations:
//! `*` becomes `<merged c> AS c, left.* EXCLUDE (c), right.* EXCLUDE (c)`, and an unqualified
//! `c` of the SELECT itself (not of its subqueries: WHERE, GROUP BY, HAVING, DISTINCT ON,
//! named windows, and ORDER BY unless an output has that name) the merged expression (which
//! also spares DataFusion's "ambiguous reference" for `WHERE c` beside such a join). Each
//! branch of a UNION, INTERSECT or EXCEPT is a SELECT of its own. A RIGHT or FULL
//! USING join or NATURAL join in any other shape is 0A000 rather than a wrong value; an inner
//! or LEFT one in a longer chain keeps DataFusion's column order (docs/sql.md).

use std::ops::ControlFlow;

use sqlparser::ast::{
    ExcludeSelectItem, Expr, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, VisitMut, VisitorMut, WildcardAdditionalOptions,
};

use crate::error::{Error, Result};

/// Rewrites every SELECT of `statement` with such a join.
pub fn rewrite(statement: &mut Statement) -> Result<()> {
    match statement.visit(&mut Queries) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Queries;

impl VisitorMut for Queries {
    type Break = Error;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Error> {
        let merged = match rewrite_body(query.body.as_mut()) {
            Ok(merged) => merged,
            Err(error) => return ControlFlow::Break(error),
        };
        // ORDER BY names an output column first: only a name no output has is the merged one.
        if let (SetExpr::Select(select), Some(merged)) = (query.body.as_ref(), merged)
            && let Some(order_by) = query.order_by.as_mut()
            && let sqlparser::ast::OrderByKind::Expressions(exprs) = &mut order_by.kind
        {
            let outputs: Vec<Ident> = select.projection.iter().filter_map(output_name).collect();
            let unnamed: Vec<Merged> =
                merged.into_iter().filter(|m| !outputs.iter().any(|o| same_name(o, &m.name))).collect();
            for item in exprs {
                replace_names(&mut item.expr, &unnamed);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites the SELECTs of a query's body, the branches of a UNION, INTERSECT or EXCEPT
/// included (a nested query is visited as its own); the merged columns of a body that is
/// one SELECT.
fn rewrite_body(body: &mut SetExpr) -> Result<Option<Vec<Merged>>> {
    match body {
        SetExpr::Select(select) => Ok(merged_columns(select)?.map(|join| {
            rewrite_select(select, &join);
            join.merged
        })),
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_body(left)?;
            rewrite_body(right)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// A USING join's columns and the names its two sides' columns are qualified with.
struct UsingJoin {
    merged: Vec<Merged>,
    left: ObjectName,
    right: ObjectName,
}

/// A join column and what an unqualified reference to it means.
#[derive(Clone)]
struct Merged {
    name: Ident,
    value: Expr,
}

/// The join columns of `select`'s FROM when it is one USING join of two named relations;
/// `None` when there is nothing to rewrite; 0A000 for a RIGHT or FULL USING or NATURAL join
/// in another shape.
fn merged_columns(select: &Select) -> Result<Option<UsingJoin>> {
    let joins: Vec<_> = select.from.iter().flat_map(|from| &from.joins).collect();
    let outer = |op: &JoinOperator| matches!(side(op), Some(Side::Right | Side::Full));
    let unsupported = |what: &str| Err(Error::unsupported(format!("{what} is not supported; write the join with ON")));
    if joins
        .iter()
        .any(|j| outer(&j.join_operator) && matches!(constraint(&j.join_operator), Some(JoinConstraint::Natural)))
    {
        return unsupported("NATURAL RIGHT or FULL JOIN");
    }
    let using = |op: &JoinOperator| matches!(constraint(op), Some(JoinConstraint::Using(_)));
    let relations = select
        .from
        .iter()
        .flat_map(|from| std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)));
    for relation in relations {
        if let TableFactor::NestedJoin { table_with_joins, .. } = relation
            && table_with_joins.joins.iter().any(|j| {
                outer(&j.join_operator) && !matches!(constraint(&j.join_operator), Some(JoinConstraint::On(_)) | None)
            })
        {
            return unsupported("a RIGHT or FULL JOIN with USING or NATURAL in parentheses");
        }
    }
    if !joins.iter().any(|j| using(&j.join_operator)) {
        return Ok(None);
    }
    let simple = select.from.len() == 1 && joins.len() == 1;
    let named = simple.then(|| (qualifier(&select.from[0].relation), qualifier(&joins[0].relation)));
    let (Some((Some(left), Some(right))), Some(JoinConstraint::Using(columns)), Some(side)) =
        (named, constraint(&joins[0].join_operator), side(&joins[0].join_operator))
    else {
        if joins.iter().any(|j| outer(&j.join_operator) && using(&j.join_operator)) {
            return unsupported("RIGHT or FULL JOIN ... USING beside other joins or with an unnamed side");
        }
        return Ok(None);
    };
    let mut merged = Vec::new();
    for column in columns {
        let [name] = column.0.as_slice() else { return Ok(None) };
        let Some(name) = name.as_ident().cloned() else { return Ok(None) };
        let of = |side: &ObjectName| {
            let mut parts: Vec<Ident> = side.0.iter().filter_map(|p| p.as_ident().cloned()).collect();
            parts.push(name.clone());
            Expr::CompoundIdentifier(parts)
        };
        let value = match side {
            Side::Left => of(&left),
            Side::Right => of(&right),
            Side::Full => coalesce(of(&left), of(&right)),
        };
        merged.push(Merged { name, value });
    }
    Ok((!merged.is_empty()).then_some(UsingJoin { merged, left, right }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Full,
}

/// Which side's rows a join keeps all of, for the joins whose USING column can be merged.
fn side(op: &JoinOperator) -> Option<Side> {
    match op {
        JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => {
            Some(Side::Left)
        }
        JoinOperator::Right(_) | JoinOperator::RightOuter(_) => Some(Side::Right),
        JoinOperator::FullOuter(_) => Some(Side::Full),
        _ => None,
    }
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => Some(c),
        _ => None,
    }
}

/// The name a relation's columns are qualified with: its alias, else a table's name.
fn qualifier(relation: &TableFactor) -> Option<ObjectName> {
    match relation {
        TableFactor::Table { alias: Some(alias), .. } | TableFactor::Derived { alias: Some(alias), .. } => {
            Some(ObjectName::from(vec![alias.name.clone()]))
        }
        TableFactor::Table { name, alias: None, .. } => Some(name.clone()),
        _ => None,
    }
}

fn coalesce(a: Expr, b: Expr) -> Expr {
    super::function_spellings::call("coalesce", vec![a, b])
}

fn rewrite_select(select: &mut Select, join: &UsingJoin) {
    let UsingJoin { merged, left, right } = join;
    let mut projection = Vec::with_capacity(select.projection.len() + merged.len() + 1);
    for item in std::mem::take(&mut select.projection) {
        match item {
            SelectItem::Wildcard(options) if is_plain(&options) => {
                let exclude = || {
                    let names = merged.iter().map(|m| ObjectName::from(vec![m.name.clone()])).collect();
                    WildcardAdditionalOptions {
                        opt_exclude: Some(ExcludeSelectItem::Multiple(names)),
                        ..options.clone()
                    }
                };
                projection.extend(
                    merged.iter().map(|m| SelectItem::ExprWithAlias { expr: m.value.clone(), alias: m.name.clone() }),
                );
                for side in [left, right] {
                    projection.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(side.clone()),
                        exclude(),
                    ));
                }
            }
            // `c` alone keeps its name.
            SelectItem::UnnamedExpr(Expr::Identifier(ident)) if let Some(m) = named(merged, &ident) => {
                projection.push(SelectItem::ExprWithAlias { expr: m.value.clone(), alias: ident });
            }
            SelectItem::UnnamedExpr(mut expr) => {
                replace_names(&mut expr, merged);
                projection.push(SelectItem::UnnamedExpr(expr));
            }
            SelectItem::ExprWithAlias { mut expr, alias } => {
                replace_names(&mut expr, merged);
                projection.push(SelectItem::ExprWithAlias { expr, alias });
            }
            other => projection.push(other),
        }
    }
    select.projection = projection;
    if let Some(selection) = select.selection.as_mut() {
        replace_names(selection, merged);
    }
    if let Some(having) = select.having.as_mut() {
        replace_names(having, merged);
    }
    if let sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        exprs.iter_mut().for_each(|e| replace_names(e, merged));
    }
    if let Some(sqlparser::ast::Distinct::On(exprs)) = &mut select.distinct {
        exprs.iter_mut().for_each(|e| replace_names(e, merged));
    }
    for sqlparser::ast::NamedWindowDefinition(_, window) in &mut select.named_window {
        if let sqlparser::ast::NamedWindowExpr::WindowSpec(spec) = window {
            spec.partition_by.iter_mut().for_each(|e| replace_names(e, merged));
            spec.order_by.iter_mut().for_each(|o| replace_names(&mut o.expr, merged));
        }
    }
}

fn is_plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

fn named<'a>(merged: &'a [Merged], ident: &Ident) -> Option<&'a Merged> {
    merged.iter().find(|m| same_name(&m.name, ident))
}

/// PostgreSQL's identifier matching: quoted names exactly, others folded to lower case.
fn same_name(a: &Ident, b: &Ident) -> bool {
    let fold = |i: &Ident| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() };
    fold(a) == fold(b)
}

/// The name PostgreSQL gives an output column, where ORDER BY could mean it: an alias, a
/// column (`a.id` is `id`), or a column under casts (`id::text` is `id`).
fn output_name(item: &SelectItem) -> Option<Ident> {
    fn of(expr: &Expr) -> Option<Ident> {
        match expr {
            Expr::Identifier(ident) => Some(ident.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().cloned(),
            Expr::Cast { expr, .. } | Expr::Nested(expr) => of(expr),
            _ => None,
        }
    }
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.clone()),
        SelectItem::UnnamedExpr(expr) => of(expr),
        _ => None,
    }
}

/// Replaces unqualified references to `merged` columns in `expr`, not inside its subqueries
/// (there a name may be a column of the subquery's own tables).
fn replace_names(expr: &mut Expr, merged: &[Merged]) {
    if merged.is_empty() {
        return;
    }
    let mut names = Names { merged, depth: 0 };
    let _ = expr.visit(&mut names);
}

struct Names<'a> {
    merged: &'a [Merged],
    depth: usize,
}

impl VisitorMut for Names<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth == 0
            && let Expr::Identifier(ident) = expr
            && let Some(m) = named(self.merged, ident)
        {
            *expr = m.value.clone();
        }
        ControlFlow::Continue(())
    }
}
