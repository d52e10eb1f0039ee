//! The `public` schema as DataFusion sees it: a live view of the catalog's event tables and
//! the live features.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::event_table::EventTable;
use super::feature_table::FeatureTable;
use crate::catalog::Catalog;
use crate::feature::FeatureEngine;

/// Resolves table names against the catalog at planning time, so DDL from any connection is
/// seen by the next statement of every other connection without re-registration.
#[derive(Debug)]
pub struct EventSchema {
    catalog: Arc<Catalog>,
    features: Arc<FeatureEngine>,
}

impl EventSchema {
    pub fn new(catalog: Arc<Catalog>, features: Arc<FeatureEngine>) -> Self {
        Self { catalog, features }
    }
}

#[async_trait]
impl SchemaProvider for EventSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.catalog.table_names();
        names.extend(self.features.names());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let store = self.catalog.store().clone();
        if let Some(def) = self.catalog.table(name) {
            return Ok(Some(Arc::new(EventTable::new(def, store))));
        }
        Ok(self.features.get(name).map(|f| Arc::new(FeatureTable::new(f, store)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table(name).is_some() || self.features.get(name).is_some()
    }

    fn register_table(&self, name: String, _table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot register \"{name}\": tables are created with CREATE TABLE"
        )))
    }
}
