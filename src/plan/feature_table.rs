//! A feature read as a table: one row per key, evaluated at the source table's watermark.
//! An equality filter on every key column is answered from that key's state alone.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;

use super::key_filter::{KeySource, key_equality};
use crate::feature::LiveFeature;
use crate::storage::EventStore;

pub struct FeatureTable {
    feature: Arc<LiveFeature>,
    store: Arc<EventStore>,
    /// Rows of the feature's table a transaction has written and not committed: its own reads
    /// see them (`plan::pending`).
    pending: Vec<RecordBatch>,
}

impl fmt::Debug for FeatureTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureTable").field("name", &self.feature.compiled().def.name).finish()
    }
}

impl FeatureTable {
    pub fn new(feature: Arc<LiveFeature>, store: Arc<EventStore>) -> Self {
        Self { feature, store, pending: Vec::new() }
    }

    /// The same feature read with a transaction's pending rows of its table.
    pub fn with_pending(&self, pending: Vec<RecordBatch>) -> Self {
        Self { feature: self.feature.clone(), store: self.store.clone(), pending }
    }

    /// The feature and the store it reads its watermark from; `None` when it is read with
    /// pending rows (which the point-read path does not take).
    pub fn parts(&self) -> Option<(&Arc<LiveFeature>, &Arc<EventStore>)> {
        self.pending.is_empty().then_some((&self.feature, &self.store))
    }

    pub fn feature(&self) -> &Arc<LiveFeature> {
        &self.feature
    }

    /// The literal a filter compares key column `key` with, if it is `key = literal`.
    fn key_literal(&self, key: &str, filter: &Expr) -> Option<ScalarValue> {
        match key_equality(filter)? {
            (column, KeySource::Literal(value)) if column == key => Some(value),
            _ => None,
        }
    }

    /// Key values (cast to the key columns' types) when the filters pin every key column.
    fn pinned_key(&self, filters: &[Expr]) -> Option<Vec<ScalarValue>> {
        let compiled = self.feature.compiled();
        compiled
            .def
            .keys
            .iter()
            .zip(&compiled.key_columns)
            .map(|(name, index)| {
                let literal = filters.iter().find_map(|f| self.key_literal(name, f))?;
                literal.cast_to(&compiled.table.columns[*index].ty.arrow_type()).ok()
            })
            .collect()
    }
}

#[async_trait]
impl TableProvider for FeatureTable {
    fn schema(&self) -> SchemaRef {
        self.feature.compiled().schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                let on_key = self.feature.compiled().def.keys.iter().any(|k| self.key_literal(k, f).is_some());
                if on_key { TableProviderFilterPushDown::Inexact } else { TableProviderFilterPushDown::Unsupported }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let key = self.pinned_key(filters);
        let batch = self
            .feature
            .read_with_pending(&self.store, key.as_deref(), &self.pending)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?)
    }
}
