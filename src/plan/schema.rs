//! The `public` schema as DataFusion sees it: a live view of the catalog's event tables.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::event_table::EventTable;
use crate::catalog::Catalog;

/// Resolves table names against the catalog at planning time, so DDL from any connection is
/// seen by the next statement of every other connection without re-registration.
#[derive(Debug)]
pub struct EventSchema {
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("tables", &self.table_names()).finish()
    }
}

impl EventSchema {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl SchemaProvider for EventSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .catalog
            .table(name)
            .map(|def| Arc::new(EventTable::new(def, self.catalog.store().clone())) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table(name).is_some()
    }

    fn register_table(&self, name: String, _table: Arc<dyn TableProvider>) -> Result<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot register \"{name}\": tables are created with CREATE TABLE"
        )))
    }
}
