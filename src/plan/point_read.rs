//! The point-read fast path: a query that only selects columns of one feature where every key
//! column equals a constant (`SELECT v FROM f WHERE key = $1`, the online-serving query) is
//! answered from the feature's state directly, without DataFusion's physical planning and
//! execution, which cost two orders of magnitude more than the lookup itself. Any other shape
//! (other filters, expressions, joins, ordering) takes the normal path. A prepared statement
//! of that shape is recognised once, at Parse ([`PointRead`]).

use std::any::Any;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::scalar::ScalarValue;

use super::feature_table::FeatureTable;
use super::key_filter::{KeySource, key_equalities};
use crate::error::Result;
use crate::feature::{LiveFeature, PointValue};
use crate::storage::EventStore;

/// A point read recognised in a plan, ready to answer for any parameter values: prepared once
/// at Parse, so Execute does not clone and rewrite the plan to answer.
#[derive(Clone)]
pub struct PointRead {
    feature: Arc<LiveFeature>,
    store: Arc<EventStore>,
    /// One per key column of the feature, in its order, with the key column's type.
    keys: Vec<(KeySource, DataType)>,
    /// Indices into the feature's full schema.
    columns: Vec<usize>,
    output: SchemaRef,
    /// The answer for a key without a row.
    empty: RecordBatch,
}

impl PointRead {
    /// The feature it reads.
    pub fn feature_name(&self) -> &str {
        &self.feature.compiled().def.name
    }

    /// The point read `plan` is, if it is one.
    pub fn recognise(plan: &LogicalPlan) -> Option<PointRead> {
        let LogicalPlan::Projection(projection) = plan else { return None };
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
        let (LogicalPlan::TableScan(scan), Some(predicate)) = (input, predicate) else { return None };
        if !scan.filters.is_empty() || scan.fetch.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let provider: &dyn Any = provider.as_ref();
        let table = provider.downcast_ref::<FeatureTable>()?;
        let (feature, store) = table.parts()?;
        let compiled = feature.compiled();

        let equalities = key_equalities(predicate)?;
        if equalities.len() != compiled.def.keys.len() {
            return None;
        }
        let mut keys = Vec::with_capacity(compiled.def.keys.len());
        for (name, index) in compiled.def.keys.iter().zip(&compiled.key_columns) {
            let (_, source) = equalities.iter().find(|(column, _)| column == name)?;
            let target = compiled.table.columns[*index].ty.arrow_type();
            if let KeySource::Literal(literal) = source
                && !lossless(&literal.data_type(), &target)
            {
                return None;
            }
            keys.push((source.clone(), target));
        }

        // Output columns: indices into the feature's full schema (through the scan's projection).
        let full = &compiled.schema;
        let mut columns = Vec::with_capacity(projection.expr.len());
        for expr in &projection.expr {
            let column = match expr {
                Expr::Column(c) => c,
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(c) => c,
                    _ => return None,
                },
                _ => return None,
            };
            let index = full.index_of(&column.name).ok()?;
            if let Some(p) = &scan.projection
                && !p.contains(&index)
            {
                return None;
            }
            columns.push(index);
        }
        let output = Arc::new(projection.schema.as_arrow().clone());
        if output.fields().iter().zip(&columns).any(|(f, i)| f.data_type() != full.field(*i).data_type()) {
            return None;
        }
        let empty = RecordBatch::new_empty(output.clone());
        Some(PointRead { feature: feature.clone(), store: store.clone(), keys, columns, output, empty })
    }

    /// The rows for these parameter values; None if a value cannot be compared losslessly
    /// with its key column, or a write is being applied to the feature (the caller then takes
    /// the normal path, which waits for it).
    pub fn read(&self, parameters: &[ScalarValue]) -> Result<Option<RecordBatch>> {
        let mut key = Vec::with_capacity(self.keys.len());
        for (source, target) in &self.keys {
            let value = match source {
                KeySource::Literal(value) => value,
                KeySource::Parameter(i) => match parameters.get(*i) {
                    Some(value) => value,
                    None => return Ok(None),
                },
            };
            let source_type = value.data_type();
            if source_type == *target {
                key.push(value.clone());
                continue;
            }
            if !lossless(&source_type, target) {
                return Ok(None);
            }
            let Ok(value) = value.cast_to(target) else { return Ok(None) };
            key.push(value);
        }
        if key.iter().any(ScalarValue::is_null) {
            return Ok(Some(self.empty.clone()));
        }
        match self.feature.read_now(&self.store, &key)? {
            PointValue::Row { values, time } => {
                let columns = self.feature.compiled().row_columns(&key, &values, time, &self.columns)?;
                Ok(Some(RecordBatch::try_new(self.output.clone(), columns)?))
            }
            PointValue::Missing => Ok(Some(self.empty.clone())),
            PointValue::Busy => Ok(None),
        }
    }
}

/// Only lossless comparisons: a float compared with an integer key goes the normal way.
fn lossless(source: &DataType, target: &DataType) -> bool {
    source == target || source.is_null() || (source.is_integer() && target.is_integer())
}

/// The rows `plan` returns, if it is a point read of a feature with constant keys.
pub fn try_point_read(plan: &LogicalPlan) -> Result<Option<RecordBatch>> {
    match PointRead::recognise(plan) {
        Some(read) if read.keys.iter().all(|(source, _)| matches!(source, KeySource::Literal(_))) => read.read(&[]),
        _ => Ok(None),
    }
}
