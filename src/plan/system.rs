//! The `asofdb` schema: system tables describing the database (`asofdb.features`).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use crate::catalog::Catalog;

#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<Catalog>,
}

impl SystemSchema {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    /// `asofdb.features`: name, source table, keys, window, definition SQL.
    pub fn features(catalog: &Catalog) -> Result<RecordBatch> {
        let features = catalog.features.all();
        let column = |f: &dyn Fn(&crate::feature::FeatureDef) -> String| -> Arc<StringArray> {
            Arc::new(StringArray::from(features.iter().map(|l| f(&l.compiled.def)).collect::<Vec<_>>()))
        };
        let schema = Arc::new(Schema::new(
            ["name", "source_table", "keys", "window", "definition"]
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        Ok(RecordBatch::try_new(
            schema,
            vec![
                column(&|d| d.name.clone()),
                column(&|d| d.table.clone()),
                column(&|d| d.keys.join(", ")),
                column(&|d| d.window_sql()),
                column(&|d| d.sql.clone()),
            ],
        )?)
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec!["features".into()]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if name != "features" {
            return Ok(None);
        }
        let batch = Self::features(&self.catalog)?;
        Ok(Some(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?)))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == "features"
    }
}
