//! The point-read fast path: a query that only selects columns of one feature where every key
//! column equals a constant (`SELECT v FROM f WHERE key = $1`, the online-serving query) is
//! answered from the feature's state directly, without DataFusion's physical planning and
//! execution, which cost two orders of magnitude more than the lookup itself. Any other shape
//! (other filters, expressions, joins, ordering) takes the normal path.

use std::any::Any;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::scalar::ScalarValue;

use super::feature_table::FeatureTable;
use crate::error::Result;

/// The rows `plan` returns, if it is a point read of a feature.
pub fn try_point_read(plan: &LogicalPlan) -> Result<Option<RecordBatch>> {
    let LogicalPlan::Projection(projection) = plan else { return Ok(None) };
    let mut input = projection.input.as_ref();
    let mut predicate = None;
    loop {
        match input {
            LogicalPlan::SubqueryAlias(alias) => input = alias.input.as_ref(),
            LogicalPlan::Filter(filter) if predicate.is_none() => {
                predicate = Some(&filter.predicate);
                input = filter.input.as_ref();
            }
            _ => break,
        }
    }
    let (LogicalPlan::TableScan(scan), Some(predicate)) = (input, predicate) else { return Ok(None) };
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Ok(None);
    }
    let Ok(provider) = source_as_provider(&scan.source) else { return Ok(None) };
    let provider: &dyn Any = provider.as_ref();
    let Some(table) = provider.downcast_ref::<FeatureTable>() else { return Ok(None) };
    let (feature, store) = table.parts();
    let compiled = &feature.compiled;

    let mut equalities = Vec::new();
    if !conjuncts(predicate, &mut equalities) || equalities.len() != compiled.def.keys.len() {
        return Ok(None);
    }
    let mut key = Vec::with_capacity(compiled.def.keys.len());
    for (name, index) in compiled.def.keys.iter().zip(&compiled.key_columns) {
        let Some((_, literal)) = equalities.iter().find(|(column, _)| column == name) else { return Ok(None) };
        // Only lossless comparisons: a float compared with an integer key goes the normal way.
        let target = compiled.table.columns[*index].ty.arrow_type();
        let source = literal.data_type();
        if source != target && !(source.is_integer() && target.is_integer()) {
            return Ok(None);
        }
        let Ok(value) = literal.cast_to(&target) else { return Ok(None) };
        key.push(value);
    }

    // Output columns: indices into the feature's full schema (through the scan's projection).
    let full = &compiled.schema;
    let mut columns = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let column = match expr {
            Expr::Column(c) => c,
            Expr::Alias(alias) => match alias.expr.as_ref() {
                Expr::Column(c) => c,
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let Ok(index) = full.index_of(&column.name) else { return Ok(None) };
        if let Some(p) = &scan.projection
            && !p.contains(&index)
        {
            return Ok(None);
        }
        columns.push(index);
    }
    let output = Arc::new(projection.schema.as_arrow().clone());
    if output.fields().iter().zip(&columns).any(|(f, i)| f.data_type() != full.field(*i).data_type()) {
        return Ok(None);
    }
    if key.iter().any(ScalarValue::is_null) {
        return Ok(Some(RecordBatch::new_empty(output)));
    }
    let batch = feature.read(store, Some(&key))?;
    let columns = columns.iter().map(|i| batch.column(*i).clone()).collect();
    Ok(Some(RecordBatch::try_new(output, columns)?))
}

/// Collects `column = literal` conjuncts; false if the predicate has anything else.
fn conjuncts<'a>(predicate: &'a Expr, out: &mut Vec<(String, &'a ScalarValue)>) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else { return false };
    match op {
        Operator::And => conjuncts(left, out) && conjuncts(right, out),
        Operator::Eq => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                out.push((c.name.clone(), v));
                true
            }
            _ => false,
        },
        _ => false,
    }
}
