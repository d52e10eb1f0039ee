//! Scalar subqueries correlated other than by equality, decorrelated through the set of outer
//! values (a "magic set"). DataFusion turns a correlated scalar subquery into a join only when
//! each correlation under its aggregate is an equality; `(SELECT count(*) FROM t2 WHERE t2.b <
//! t1.a)` is refused. (An `EXISTS` or `IN` outside WHERE is one of these too, once
//! `in_subquery_nulls` has made it a counting subquery.)
//!
//! This analyzer rule gives such a subquery the outer values it is correlated on as a table
//! of its own: the distinct outer values `d`, crossed with the subquery's rows under its
//! correlated filter, which then compares with `d` instead of the outer row, plus one
//! equality `d.c = outer.c` per outer column. That equality is a correlation DataFusion
//! decorrelates (grouping by `d.c`, the empty-group values of `count` included).
//!
//! The rewrite is exact when a NULL outer value makes the correlated conditions fail (then the
//! equality fails too): each conjunct naming an outer column must be a comparison of strict
//! operands (columns, constants, arithmetic, casts). Between the subquery's top and that
//! filter there may be only projections, filters and one ungrouped aggregate (anything else,
//! a LIMIT or a window, would mix the outer values' rows). The outer input is read a second
//! time for its values, so it must be deterministic (no volatile function, LIMIT or
//! sample); and the subquery must be evaluated for every row (not under CASE, COALESCE, OR
//! or AND), since the set evaluates its conditions for every outer value. Other shapes are
//! left to DataFusion, which refuses them (0A000).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Operator, Subquery, SubqueryAlias,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{evaluates_for_some_rows, rewrite_keeping_names};

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct CorrelatedSubqueries;

impl AnalyzerRule for CorrelatedSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "correlated_subqueries"
    }
}

static NEXT_SET: AtomicU64 = AtomicU64::new(1);

/// The scalar subqueries of a projection or a filter, correlated on its input.
fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let outer = match &node {
        LogicalPlan::Projection(projection) => projection.input.clone(),
        LogicalPlan::Filter(filter) => filter.input.clone(),
        _ => return Ok(Transformed::no(node)),
    };
    let mut has_subquery = false;
    node.apply_expressions(|e| {
        has_subquery |= e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_))))?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !has_subquery || !deterministic(&outer)? {
        return Ok(Transformed::no(node));
    }
    // Subqueries some rows may not evaluate: left as they are.
    let mut conditional = Vec::new();
    node.apply_expressions(|e| {
        let roots = match (&node, e) {
            (LogicalPlan::Filter(_), predicate) => split_conjunction(predicate),
            (_, e) => vec![e],
        };
        for root in roots {
            under_condition(root, false, &mut conditional);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    rewrite_keeping_names(node, |e| match e {
        Expr::ScalarSubquery(subquery) if !conditional.contains(&subquery) => with_outer_values(subquery, &outer),
        other => Ok(Transformed::no(other)),
    })
}

/// Collects the scalar subqueries of `expr` that sit under a construct evaluating its parts
/// for some rows only (`under`: `expr` itself does).
fn under_condition(expr: &Expr, under: bool, out: &mut Vec<Subquery>) {
    if let Expr::ScalarSubquery(subquery) = expr {
        if under {
            out.push(subquery.clone());
        }
        return;
    }
    let _ = expr.apply_children(|child| {
        under_condition(child, under || evaluates_for_some_rows(expr), out);
        Ok(TreeNodeRecursion::Continue)
    });
}

/// Whether reading `plan` twice gives the same rows.
fn deterministic(plan: &LogicalPlan) -> Result<bool> {
    let varies = plan.exists(|node| {
        let mut volatile = matches!(node, LogicalPlan::Limit(_));
        node.apply_expressions(|e| {
            volatile |= e.is_volatile();
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(volatile)
    })?;
    Ok(!varies)
}

/// `subquery` reading the outer values of `outer` it is correlated on as a table, when it
/// needs to and the rewrite is exact.
fn with_outer_values(subquery: Subquery, outer: &Arc<LogicalPlan>) -> Result<Transformed<Expr>> {
    let Some(filter) = correlated_filter(&subquery.subquery)? else {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    };
    let correlated: Vec<&Expr> = split_conjunction(&filter.predicate).into_iter().filter(|c| names_outer(c)).collect();
    let needed = correlated.iter().any(|c| !simple_equality(c));
    let exact = correlated.iter().all(|c| strict_comparison(c))
        && aggregated_above(&subquery.subquery, &filter) == Some(true)
        && !filter
            .predicate
            .exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_))))?;
    if !needed || !exact {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    // The outer columns, each once, with their references as written.
    let mut references: Vec<(Column, Expr)> = Vec::new();
    filter.predicate.apply(|e| {
        if let Expr::OuterReferenceColumn(_, column) = e
            && !references.iter().any(|(c, _)| c == column)
        {
            references.push((column.clone(), e.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if !references.iter().all(|(c, _)| outer.schema().has_column(c)) {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }

    let alias = format!("__outer_values_{}", NEXT_SET.fetch_add(1, Ordering::Relaxed));
    let names: Vec<String> = (0..references.len()).map(|i| format!("__outer_{i}")).collect();
    let values = LogicalPlanBuilder::from(outer.as_ref().clone())
        .project(references.iter().zip(&names).map(|((c, _), name)| Expr::Column(c.clone()).alias(name)))?
        .distinct()?
        .build()?;
    let values = LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(values), alias.as_str())?);
    let value_of = |column: &Column| -> Option<Expr> {
        let at = references.iter().position(|(c, _)| c == column)?;
        Some(Expr::Column(Column::new(Some(alias.as_str()), &names[at])))
    };
    // The filter compares with the outer values' table; each value equals its outer column.
    let local = filter
        .predicate
        .clone()
        .transform(|e| match &e {
            Expr::OuterReferenceColumn(_, column) => Ok(value_of(column).map_or(Transformed::no(e), Transformed::yes)),
            _ => Ok(Transformed::no(e)),
        })?
        .data;
    let equalities = references.iter().filter_map(|(column, reference)| Some(value_of(column)?.eq(reference.clone())));
    let predicate = conjunction(std::iter::once(local).chain(equalities)).unwrap_or(filter.predicate.clone());
    let crossed = LogicalPlanBuilder::from(values).cross_join(filter.input.as_ref().clone())?.build()?;
    let replacement = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(crossed))?);

    // The new columns pass through whatever sits above the filter: schemas are computed again.
    let plan = subquery
        .subquery
        .as_ref()
        .clone()
        .transform_up(|node| match &node {
            LogicalPlan::Filter(f) if f == &filter => Ok(Transformed::yes(replacement.clone())),
            _ => node.recompute_schema().map(Transformed::yes),
        })?
        .data;
    Ok(Transformed::yes(Expr::ScalarSubquery(Subquery { subquery: Arc::new(plan), ..subquery })))
}

/// The one filter of `plan` naming outer columns, if the plan names them nowhere else.
fn correlated_filter(plan: &LogicalPlan) -> Result<Option<Filter>> {
    let (mut filters, mut elsewhere) = (Vec::new(), false);
    plan.apply(|node| {
        let mut names = false;
        node.apply_expressions(|e| {
            names |= names_outer(e);
            Ok(TreeNodeRecursion::Continue)
        })?;
        match node {
            LogicalPlan::Filter(filter) if names => filters.push(filter.clone()),
            _ if names => elsewhere = true,
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(if filters.len() == 1 && !elsewhere { filters.pop() } else { None })
}

fn names_outer(expr: &Expr) -> bool {
    expr.exists(|e| Ok(matches!(e, Expr::OuterReferenceColumn(..)))).unwrap_or(true)
}

/// Whether `plan` reaches `filter` through projections, filters and ungrouped aggregates
/// only (None otherwise, or if it does not reach it), and passes an aggregate on the way.
fn aggregated_above(plan: &LogicalPlan, filter: &Filter) -> Option<bool> {
    if matches!(plan, LogicalPlan::Filter(f) if f == filter) {
        return Some(false);
    }
    let aggregate = match plan {
        LogicalPlan::Aggregate(aggregate) if aggregate.group_expr.is_empty() => true,
        LogicalPlan::Projection(_) | LogicalPlan::Filter(_) => false,
        _ => return None,
    };
    let [input] = plan.inputs()[..] else { return None };
    aggregated_above(input, filter).map(|below| below || aggregate)
}

/// `column = outer column` (either order, casts allowed): what DataFusion decorrelates itself.
fn simple_equality(expr: &Expr) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = expr else { return false };
    let uncast = |e: &Expr| match e {
        Expr::Cast(cast) => cast.expr.as_ref().clone(),
        other => other.clone(),
    };
    matches!(
        (uncast(left), uncast(right)),
        (Expr::Column(_), Expr::OuterReferenceColumn(..)) | (Expr::OuterReferenceColumn(..), Expr::Column(_))
    )
}

/// A comparison (or BETWEEN) whose operands are NULL when an outer column is: columns,
/// constants, arithmetic, casts and negation only.
fn strict_comparison(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq)
                && strict_operand(left)
                && strict_operand(right)
        }
        // NOT BETWEEN is an OR, true for `x NOT BETWEEN NULL AND 12` when x > 12.
        Expr::Between(between) if !between.negated => {
            [&between.expr, &between.low, &between.high].into_iter().all(|e| strict_operand(e))
        }
        _ => false,
    }
}

fn strict_operand(expr: &Expr) -> bool {
    match expr {
        Expr::Column(_) | Expr::OuterReferenceColumn(..) | Expr::Literal(..) => true,
        Expr::Cast(cast) => strict_operand(&cast.expr),
        Expr::TryCast(cast) => strict_operand(&cast.expr),
        Expr::Negative(e) => strict_operand(e),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo)
                && strict_operand(left)
                && strict_operand(right)
        }
        _ => false,
    }
}
