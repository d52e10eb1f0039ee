//! An event table as a DataFusion `TableProvider`: streams Arrow blocks from both tiers.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use super::coalesce::Coalesced;
use super::time_bounds::TimeBounds;
use crate::catalog::TableDef;
use crate::storage::{BLOCK_MICROS, EventStore, ScanTable};

/// Scans one event table. Filters on the event-time column prune blocks (they are still
/// applied row by row above the scan: pruning is by block, so it is inexact).
pub struct EventTable {
    def: Arc<TableDef>,
    schema: SchemaRef,
    store: Arc<EventStore>,
    /// Rows a transaction has written and not committed: its own reads see them after the
    /// stored ones (`plan::pending`).
    pending: Vec<RecordBatch>,
}

impl fmt::Debug for EventTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventTable").field("name", &self.def.name).finish()
    }
}

impl EventTable {
    pub fn new(def: Arc<TableDef>, store: Arc<EventStore>) -> Self {
        Self { schema: def.schema(), def, store, pending: Vec::new() }
    }

    /// The same table read with a transaction's pending rows.
    pub fn with_pending(&self, pending: Vec<RecordBatch>) -> Self {
        Self { def: self.def.clone(), schema: self.schema.clone(), store: self.store.clone(), pending }
    }

    pub fn def(&self) -> &Arc<TableDef> {
        &self.def
    }

    fn event_time_name(&self) -> Option<&str> {
        self.def.event_time_column().map(|c| c.name.as_str())
    }
}

#[async_trait]
impl TableProvider for EventTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.event_time_name() {
                Some(col) if TimeBounds::from_filter(col, f).is_some() => TableProviderFilterPushDown::Inexact,
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let bounds = match self.event_time_name() {
            Some(col) => TimeBounds::from_filters(col, filters),
            None => TimeBounds::ALL,
        };
        let blocks = (bounds.min.div_euclid(BLOCK_MICROS), bounds.max.div_euclid(BLOCK_MICROS));
        let parts = state.config_options().execution.target_partitions.max(1);
        // Projected before batches are joined, so columns nobody reads are never copied.
        let schema = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => self.schema.clone(),
        };
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..parts)
            .map(|part| {
                Arc::new(BlockStream {
                    schema: schema.clone(),
                    projection: projection.cloned(),
                    store: self.store.clone(),
                    table: self.def.scan_table(),
                    blocks,
                    part: (part, parts),
                    limit,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        let mut partitions = partitions;
        if !self.pending.is_empty() {
            let pending = self
                .pending
                .iter()
                .map(|batch| match projection {
                    Some(columns) => batch.project(columns),
                    None => Ok(batch.clone()),
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            partitions.push(Arc::new(PendingRows { schema: schema.clone(), batches: pending }));
        }
        let exec = StreamingTableExec::try_new(schema, partitions, None, [], false, limit)?;
        Ok(Arc::new(exec))
    }
}

/// One partition of a scan: the table's rows of every `parts`-th day within `blocks`, in
/// batches of about the session's batch size.
struct BlockStream {
    /// The projected schema.
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    store: Arc<EventStore>,
    table: ScanTable,
    blocks: (i64, i64),
    part: (usize, usize),
    /// A LIMIT pushed into the scan: batches need not be larger.
    limit: Option<usize>,
}

impl fmt::Debug for BlockStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockStream(table={}, part={}/{})", self.table.id, self.part.0, self.part.1)
    }
}

impl PartitionStream for BlockStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let projection = self.projection.clone();
        let parts = self.store.scan(self.table, self.blocks, self.part).map(move |part| {
            let batch = part.map_err(|e| DataFusionError::External(Box::new(e)))?.batch;
            match &projection {
                Some(columns) => Ok(batch.project(columns)?),
                None => Ok(batch),
            }
        });
        let size = ctx.session_config().batch_size();
        let target = self.limit.map_or(size, |limit| limit.min(size));
        let batches = Coalesced::new(parts, self.schema.clone(), target);
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(batches)))
    }
}

/// A transaction's pending rows of the table, as one more partition of its scan.
#[derive(Debug)]
struct PendingRows {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl PartitionStream for PendingRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches: Vec<Result<RecordBatch>> = self.batches.iter().cloned().map(Ok).collect();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::iter(batches)))
    }
}
