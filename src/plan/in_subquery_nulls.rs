//! PostgreSQL's three-valued `x [NOT] IN (subquery)` wherever its value is seen. When no row
//! matches, PostgreSQL's `x IN (subquery)` is NULL, not false, if `x` is NULL (and the
//! subquery has rows) or the subquery yields a NULL. DataFusion gets this right for an
//! `IN`/`NOT IN` that is a whole conjunct of WHERE (a semi or null-aware anti join), but
//! inside OR, under NOT or in the SELECT list it joins with a true/false mark, so
//! `a NOT IN (...) OR p` kept rows where `a` is NULL.
//!
//! This analyzer rule rewrites each such `x IN (q)` into
//! `(x IN (q)) OR (NULL AND ((x IS NULL AND EXISTS (q)) OR EXISTS (q WHERE y IS NULL)))`:
//! true on a match; otherwise NULL exactly when PostgreSQL's is, else false. `NOT IN` is the
//! negation of that. Operands that cannot be NULL are left as they are.
//!
//! DataFusion cannot run `EXISTS` or `IN (subquery)` outside a filter at all (in a SELECT
//! list, say). There each becomes counting scalar subqueries, which it decorrelates into
//! joins: `EXISTS (q)` is `(SELECT count(*) FROM q) > 0`, and `x IN (q)`, for a column `x`,
//! is `match OR (NULL AND ((x IS NULL AND any) OR nulls))` with `match`, `any` and `nulls`
//! counting the rows of `q` equal to `x`, all of them, and the NULL ones.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::functions_aggregate::count::count_all;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
use datafusion::logical_expr::{
    Expr, ExprSchemable, Filter, LogicalPlan, LogicalPlanBuilder, Projection, Subquery, lit, out_ref_col,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{evaluates_for_some_rows, input_schema, rewrite_keeping_names};

/// The analyzer rule; see the module's doc.
#[derive(Debug)]
pub struct InSubqueryNulls;

impl AnalyzerRule for InSubqueryNulls {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite_node).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "in_subquery_nulls"
    }
}

fn rewrite_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let schema = input_schema(&node);
    if let LogicalPlan::Filter(filter) = node {
        // A whole conjunct of WHERE is exact already: NULL and false both drop the row.
        let mut changed = false;
        let mut conjuncts = Vec::new();
        for conjunct in split_conjunction_owned(filter.predicate.clone()) {
            if matches!(conjunct, Expr::InSubquery(_)) {
                conjuncts.push(conjunct);
            } else {
                let rewritten = conjunct.transform_up(|e| rewrite_expr(e, &schema))?;
                changed |= rewritten.transformed;
                conjuncts.push(rewritten.data);
            }
        }
        if !changed {
            return Ok(Transformed::no(LogicalPlan::Filter(filter)));
        }
        let predicate = conjunction(conjuncts).unwrap_or_else(|| lit(true));
        return Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(predicate, filter.input)?)));
    }
    let node = values_as_columns(node)?;
    let schema = input_schema(&node.data);
    let mut counted_node = rewrite_keeping_names(node.data, |e| counted(e, &schema))?;
    counted_node.transformed |= node.transformed;
    Ok(counted_node)
}

/// A SELECT list's `expr IN (q)` whose `expr` is not a column: `expr` is computed as a column
/// by a projection below, since a counting subquery can only be correlated on a column.
fn values_as_columns(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Projection(projection) = node else {
        return Ok(Transformed::no(node));
    };
    let mut values: Vec<Expr> = Vec::new();
    let names = NamePreserver::new_for_projection();
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in projection.expr.iter().cloned() {
        // Under a condition the value may be one PostgreSQL never computes
        // (`CASE WHEN b <> 0 THEN a / b IN (...) END`): left as it is (0A000).
        if conditional(&expr) {
            exprs.push(expr);
            continue;
        }
        let name = names.save(&expr);
        let rewritten = expr.transform_up(|e| match e {
            Expr::InSubquery(mut in_subquery) if !matches!(in_subquery.expr.as_ref(), Expr::Column(_)) => {
                let column = format!("__in_value_{}", values.len());
                values.push(in_subquery.expr.as_ref().clone().alias(&column));
                in_subquery.expr = Box::new(Expr::Column(Column::new_unqualified(column)));
                Ok(Transformed::yes(Expr::InSubquery(in_subquery)))
            }
            other => Ok(Transformed::no(other)),
        })?;
        exprs.push(name.restore(rewritten.data));
    }
    if values.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Projection(projection)));
    }
    let mut below: Vec<Expr> = projection.input.schema().columns().into_iter().map(Expr::Column).collect();
    below.extend(values);
    let input = LogicalPlan::Projection(Projection::try_new(below, projection.input)?);
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(input))?)))
}

/// `EXISTS` and `IN (subquery)` outside a filter, as counting scalar subqueries.
fn counted(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::Exists(Exists { subquery, negated }) => {
            let any = count(subquery.subquery.clone(), &subquery, None)?;
            Transformed::yes(if negated { any.eq(lit(0i64)) } else { any.gt(lit(0i64)) })
        }
        Expr::InSubquery(InSubquery { expr: value, subquery, negated }) => {
            let Expr::Column(outer) = value.as_ref() else {
                return Ok(Transformed::no(Expr::InSubquery(InSubquery { expr: value, subquery, negated })));
            };
            let data_type = value.get_type(schema)?;
            let reference = out_ref_col(data_type, outer.clone());
            let output = Expr::Column(Column::from(subquery.subquery.schema().qualified_field(0)));
            let plan = &subquery.subquery;
            let filtered = |predicate: Expr| -> Result<Arc<LogicalPlan>> {
                Ok(Arc::new(LogicalPlan::Filter(Filter::try_new(predicate, plan.clone())?)))
            };
            let matched =
                count(filtered(output.clone().eq(reference.clone()))?, &subquery, Some(reference))?.gt(lit(0i64));
            let any = count(plan.clone(), &subquery, None)?.gt(lit(0i64));
            let nulls = count(filtered(output.is_null())?, &subquery, None)?.gt(lit(0i64));
            let null = Expr::Literal(ScalarValue::Boolean(None), None);
            let three_valued = matched.or(null.and(value.clone().is_null().and(any).or(nulls)));
            Transformed::yes(if negated { !three_valued } else { three_valued })
        }
        other => Transformed::no(other),
    })
}

/// Whether `expr` evaluates some part of itself only for some rows.
fn conditional(expr: &Expr) -> bool {
    expr.exists(|e| Ok(evaluates_for_some_rows(e))).unwrap_or(true)
}

/// `(SELECT count(*) FROM plan)`, correlated as `like` is (and on `extra`).
fn count(plan: Arc<LogicalPlan>, like: &Subquery, extra: Option<Expr>) -> Result<Expr> {
    let counted = LogicalPlanBuilder::from(plan).aggregate(Vec::<Expr>::new(), vec![count_all()])?.build()?;
    let mut outer_ref_columns = like.outer_ref_columns.clone();
    outer_ref_columns.extend(extra);
    Ok(Expr::ScalarSubquery(Subquery { subquery: Arc::new(counted), outer_ref_columns, spans: like.spans.clone() }))
}

fn rewrite_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::InSubquery(InSubquery { expr: value, subquery, negated }) = expr else {
        return Ok(Transformed::no(expr));
    };
    let output = subquery.subquery.schema().qualified_field(0);
    let value_nullable = value.nullable(schema).unwrap_or(true);
    if !value_nullable && !output.1.is_nullable() {
        return Ok(Transformed::no(Expr::InSubquery(InSubquery { expr: value, subquery, negated })));
    }
    let exists = |plan: Arc<LogicalPlan>| {
        Expr::Exists(Exists { subquery: Subquery { subquery: plan, ..subquery.clone() }, negated: false })
    };
    let column = Expr::Column(Column::from(output));
    let with_null = Arc::new(LogicalPlan::Filter(Filter::try_new(column.is_null(), subquery.subquery.clone())?));
    let unknown = value.clone().is_null().and(exists(subquery.subquery.clone())).or(exists(with_null));
    let null = Expr::Literal(ScalarValue::Boolean(None), None);
    let matched = Expr::InSubquery(InSubquery { expr: value, subquery, negated: false });
    let three_valued = matched.or(null.and(unknown));
    Ok(Transformed::yes(if negated { !three_valued } else { three_valued }))
}
