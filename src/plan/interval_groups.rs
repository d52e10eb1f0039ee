//! PostgreSQL's equality of intervals wherever values are grouped or matched: `GROUP BY`,
//! `DISTINCT` (and so `UNION`), window partitions, join keys (and so `INTERSECT`/`EXCEPT`),
//! `IN (subquery)` and `count(DISTINCT ...)`. Arrow's equality is field by field, so
//! `'1 day'` and `'24 hours'` were two groups; PostgreSQL's is by length (a month as 30
//! days), so they are one. Keys become `interval_length(x)`; a group shows the first of its
//! values it met (`first_value`), as PostgreSQL's hash aggregation does.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::InSubquery;
use datafusion::logical_expr::{
    Aggregate, Distinct, Expr, LogicalPlan, LogicalPlanBuilder, Projection, ScalarUDF, Subquery,
};
use datafusion::optimizer::AnalyzerRule;

use super::expr_rules::{input_schema, rewrite_keeping_names};
use super::interval_order::{by_length, is_interval, length_udf};

/// The analyzer rule; see the module's doc. Runs after [`super::interval_order`].
#[derive(Debug)]
pub struct IntervalGroups;

impl AnalyzerRule for IntervalGroups {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let length = length_udf();
        plan.transform_up_with_subqueries(|node| group_node(node, &length)).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "interval_groups"
    }
}

fn group_node(node: LogicalPlan, length: &Arc<ScalarUDF>) -> Result<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::Distinct(Distinct::All(input)) if has_interval_column(input.schema()) => {
            // DISTINCT is a GROUP BY of every column with no aggregate.
            let columns: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
            let grouped =
                LogicalPlanBuilder::from(Arc::unwrap_or_clone(input)).aggregate(columns, Vec::<Expr>::new())?;
            match grouped.build()? {
                LogicalPlan::Aggregate(aggregate) => group_by_length(aggregate, length).map(Transformed::yes),
                other => Ok(Transformed::yes(other)),
            }
        }
        LogicalPlan::Distinct(Distinct::On(on)) if on.on_expr.iter().any(|e| is_interval(e, on.input.schema())) => {
            Err(refused("DISTINCT ON an interval"))
        }
        LogicalPlan::Aggregate(_) => {
            // Its aggregates first (`count(DISTINCT interval)`), then its keys.
            let schema = input_schema(&node);
            let rewritten = rewrite_keeping_names(node, |e| group_expr(e, &schema, length))?;
            match rewritten.data {
                LogicalPlan::Aggregate(aggregate) if groups_intervals(&aggregate)? => {
                    group_by_length(aggregate, length).map(Transformed::yes)
                }
                other => Ok(Transformed::new_transformed(other, rewritten.transformed)),
            }
        }
        LogicalPlan::Join(mut join) => {
            let mut changed = false;
            for (left, right) in &mut join.on {
                if is_interval(left, join.left.schema()) && is_interval(right, join.right.schema()) {
                    *left = by_length(left.clone(), join.left.schema(), length);
                    *right = by_length(right.clone(), join.right.schema(), length);
                    changed = true;
                }
            }
            Ok(Transformed::new_transformed(LogicalPlan::Join(join), changed))
        }
        other => {
            let schema = input_schema(&other);
            rewrite_keeping_names(other, |e| group_expr(e, &schema, length))
        }
    }
}

fn has_interval_column(schema: &DFSchema) -> bool {
    schema.fields().iter().any(|f| matches!(f.data_type(), arrow::datatypes::DataType::Interval(_)))
}

/// Whether a plain `GROUP BY` key is an interval; an interval in a grouping set is refused.
fn groups_intervals(aggregate: &Aggregate) -> Result<bool> {
    let schema = aggregate.input.schema();
    let mut plain = false;
    for key in &aggregate.group_expr {
        match key {
            Expr::GroupingSet(set) if set.distinct_expr().iter().any(|e| is_interval(e, schema)) => {
                return Err(refused("ROLLUP, CUBE or GROUPING SETS of an interval"));
            }
            Expr::GroupingSet(_) => {}
            key => plain |= is_interval(key, schema),
        }
    }
    Ok(plain)
}

/// The aggregate grouped by the lengths of its interval keys, under a projection that gives
/// each such key's column the first value of its group, with the name and qualifier it had.
fn group_by_length(aggregate: Aggregate, length: &Arc<ScalarUDF>) -> Result<LogicalPlan> {
    let input_schema = Arc::clone(aggregate.input.schema());
    let output = Arc::clone(&aggregate.schema);
    let mut group = Vec::with_capacity(aggregate.group_expr.len());
    let mut aggr = aggregate.aggr_expr.clone();
    let mut columns = Vec::with_capacity(output.fields().len());
    for (i, key) in aggregate.group_expr.iter().enumerate() {
        let (qualifier, field) = output.qualified_field(i);
        if is_interval(key, &input_schema) {
            let shown = format!("__interval_group_{i}");
            group.push(by_length(key.clone(), &input_schema, length).alias(format!("__interval_key_{i}")));
            aggr.push(datafusion::functions_aggregate::first_last::first_value(key.clone(), vec![]).alias(&shown));
            columns
                .push(Expr::Column(Column::new_unqualified(shown)).alias_qualified(qualifier.cloned(), field.name()));
        } else {
            group.push(key.clone());
            columns.push(Expr::Column(Column::from((qualifier, field))));
        }
    }
    for i in aggregate.group_expr.len()..output.fields().len() {
        columns.push(Expr::Column(Column::from(output.qualified_field(i))));
    }
    let regrouped = Aggregate::try_new(aggregate.input, group, aggr)?;
    Ok(LogicalPlan::Projection(Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(regrouped)))?))
}

fn group_expr(expr: Expr, schema: &DFSchema, length: &Arc<ScalarUDF>) -> Result<Transformed<Expr>> {
    Ok(match expr {
        Expr::WindowFunction(mut window) => {
            let mut changed = false;
            for key in &mut window.params.partition_by {
                if is_interval(key, schema) {
                    *key = by_length(key.clone(), schema, length);
                    changed = true;
                }
            }
            Transformed::new_transformed(Expr::WindowFunction(window), changed)
        }
        Expr::InSubquery(InSubquery { expr, subquery, negated })
            if is_interval(&expr, schema) && has_interval_column(subquery.subquery.schema()) =>
        {
            let inner = subquery.subquery.schema();
            let lengths: Vec<Expr> =
                inner.columns().into_iter().map(|c| by_length(Expr::Column(c), inner, length)).collect();
            let projected = Projection::try_new(lengths, Arc::clone(&subquery.subquery))?;
            let subquery = Subquery {
                subquery: Arc::new(LogicalPlan::Projection(projected)),
                outer_ref_columns: subquery.outer_ref_columns,
                spans: subquery.spans,
            };
            Transformed::yes(Expr::InSubquery(InSubquery {
                expr: Box::new(by_length(*expr, schema, length)),
                subquery,
                negated,
            }))
        }
        Expr::AggregateFunction(mut aggregate)
            if aggregate.params.distinct && aggregate.params.args.iter().any(|a| is_interval(a, schema)) =>
        {
            if aggregate.func.name() != "count" {
                return Err(refused(&format!("{}(DISTINCT ...) of intervals", aggregate.func.name())));
            }
            aggregate.params.args = aggregate.params.args.into_iter().map(|a| by_length(a, schema, length)).collect();
            Transformed::yes(Expr::AggregateFunction(aggregate))
        }
        other => Transformed::no(other),
    })
}

fn refused(form: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!(
        "{form} is not supported (intervals would be grouped field by field, not by length)"
    ))
}
