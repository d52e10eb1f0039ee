//! The `public` schema as DataFusion sees it: a live view of the catalog's event tables, the
//! live features and the temporary views.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::event_table::EventTable;
use super::feature_table::FeatureTable;
use super::views::TemporaryViews;
use crate::catalog::Catalog;
use crate::feature::FeatureEngine;

/// Resolves table names against the catalog at planning time, so DDL from any connection is
/// seen by the next statement of every other connection without re-registration.
#[derive(Debug)]
pub struct EventSchema {
    catalog: Arc<Catalog>,
    features: Arc<FeatureEngine>,
    views: Arc<TemporaryViews>,
}

impl EventSchema {
    pub fn new(catalog: Arc<Catalog>, features: Arc<FeatureEngine>, views: Arc<TemporaryViews>) -> Self {
        Self { catalog, features, views }
    }
}

#[async_trait]
impl SchemaProvider for EventSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.catalog.table_names();
        names.extend(self.features.names());
        names.extend(self.views.names());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let store = self.catalog.store().clone();
        if let Some(def) = self.catalog.table(name) {
            return Ok(Some(Arc::new(EventTable::new(def, store))));
        }
        if let Some(feature) = self.features.get(name) {
            return Ok(Some(Arc::new(FeatureTable::new(feature, store))));
        }
        Ok(self.views.get(name).map(|v| v.table.clone() as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table(name).is_some() || self.features.get(name).is_some() || self.views.get(name).is_some()
    }

    fn register_table(&self, name: String, _table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot register \"{name}\": tables are created with CREATE TABLE"
        )))
    }
}
