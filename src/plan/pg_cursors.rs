//! `pg_catalog.pg_cursors`: the open cursors of the session that reads it (psycopg looks a
//! cursor up there before it closes it). Planned as any table; its rows come from the state
//! that executes the plan, which carries the session's [`OpenCursors`] (`execute::Database::run`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// One row of `pg_cursors`.
#[derive(Debug, Clone)]
pub struct CursorRow {
    pub name: String,
    /// The DECLARE statement's text.
    pub statement: String,
    pub is_holdable: bool,
    pub is_binary: bool,
    /// Microseconds since 1970 (UTC).
    pub creation_time: i64,
}

/// The cursors a session has open, for its statements' reads of `pg_cursors`.
#[derive(Debug, Default)]
pub struct OpenCursors(pub Vec<CursorRow>);

#[derive(Debug)]
pub struct PgCursors {
    schema: SchemaRef,
}

impl Default for PgCursors {
    fn default() -> Self {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let flag = |name: &str| Field::new(name, DataType::Boolean, true);
        let schema = Schema::new(vec![
            text("name"),
            text("statement"),
            flag("is_holdable"),
            flag("is_binary"),
            flag("is_scrollable"),
            Field::new("creation_time", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), true),
        ]);
        Self { schema: Arc::new(schema) }
    }
}

#[async_trait]
impl TableProvider for PgCursors {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let open = state.config().get_extension::<OpenCursors>().unwrap_or_default();
        let rows = &open.0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.name.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.statement.as_str()))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.is_holdable)))),
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.is_binary)))),
            // Cursors here move forward only.
            Arc::new(BooleanArray::from_iter(rows.iter().map(|_| Some(false)))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.creation_time))
                    .with_timezone("+00:00"),
            ),
        ];
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}
