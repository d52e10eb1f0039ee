//! ASOF join against a table, as an execution plan: the right side is indexed once
//! (`time_index`), shared by every partition, and the left side streams through it, so it is
//! never materialized and its order is kept; a RIGHT or FULL join then adds the right rows
//! no left row matched.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::{EmbeddedProjection, ProjectionExec, try_embed_projection};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use super::probe::{JoinSide, properties};
use super::residual::Residual;
use super::time_index::{Output, TimeIndex};

/// The comparison and outer-ness of one ASOF join.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    /// `left_time op right_time`.
    pub op: Operator,
    /// Unmatched left rows are kept (LEFT, FULL).
    pub left_join: bool,
    /// Unmatched right rows are kept (RIGHT, FULL), after every left row is probed.
    pub right_join: bool,
}

pub struct AsofTableExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    left_on: JoinSide,
    right_on: JoinSide,
    matching: Match,
    /// Conditions across both sides a match must pass as well (`None`: every candidate does).
    residual: Option<Arc<Residual>>,
    /// Output columns, as indices into the left columns then the right ones (a projection
    /// above the join embedded, so columns nobody reads are never gathered).
    output: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Built by the first partition that needs it, shared by the others.
    index: Arc<OnceCell<Arc<TimeIndex>>>,
}

impl AsofTableExec {
    pub fn new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        (left_on, right_on): (JoinSide, JoinSide),
        (matching, residual): (Match, Option<Arc<dyn PhysicalExpr>>),
        schema: SchemaRef,
    ) -> Self {
        let output = (0..schema.fields().len()).collect();
        let residual = residual.map(|e| Arc::new(Residual::new(e, &left.schema(), &right.schema())));
        Self::with_output(left, right, (left_on, right_on), (matching, residual), output, schema)
    }

    /// The join giving `output` (indices into the left columns, then the right ones) as `schema`.
    fn with_output(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        (left_on, right_on): (JoinSide, JoinSide),
        (matching, residual): (Match, Option<Arc<Residual>>),
        output: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        // Left columns that move or go: a hash partitioning on them would no longer name them.
        let left_in_place = (0..left.schema().fields().len()).all(|c| output.get(c) == Some(&c));
        let partitioning = match left.output_partitioning() {
            // Which right rows no left row matched is known once the whole left side is read:
            // a RIGHT or FULL join reads it as one partition.
            _ if matching.right_join => Partitioning::UnknownPartitioning(1),
            p if left_in_place => p.clone(),
            p => Partitioning::UnknownPartitioning(p.partition_count()),
        };
        let properties = properties(partitioning, schema.clone());
        let index = Arc::new(OnceCell::new());
        Self { left, right, left_on, right_on, matching, residual, output, schema, properties, index }
    }

    /// This join over other inputs or with other output columns (a new, unbuilt index).
    fn rebuilt(
        &self,
        (left, right): (Arc<dyn ExecutionPlan>, Arc<dyn ExecutionPlan>),
        output: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        let on = (self.left_on.clone(), self.right_on.clone());
        Self::with_output(left, right, on, (self.matching, self.residual.clone()), output, schema)
    }

    fn is_projected(&self) -> bool {
        self.output.len() != self.left.schema().fields().len() + self.right.schema().fields().len()
            || self.output.iter().enumerate().any(|(i, c)| i != *c)
    }
}

impl EmbeddedProjection for AsofTableExec {
    fn with_projection(&self, projection: Option<Vec<usize>>) -> Result<Self> {
        let children = (self.left.clone(), self.right.clone());
        let Some(columns) = projection else {
            return Ok(self.rebuilt(children, self.output.clone(), self.schema.clone()));
        };
        let output: Vec<usize> = columns.iter().map(|c| self.output[*c]).collect();
        Ok(self.rebuilt(children, output, Arc::new(self.schema.project(&columns)?)))
    }
}

impl fmt::Debug for AsofTableExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsofTableExec({:?})", self.matching)
    }
}

impl DisplayAs for AsofTableExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match (self.matching.left_join, self.matching.right_join) {
            (false, false) => "AsofTableExec:",
            (true, false) => "AsofTableExec: LEFT",
            (false, true) => "AsofTableExec: RIGHT",
            (true, true) => "AsofTableExec: FULL",
        };
        write!(
            f,
            "{kind} keys {:?} = {:?}, {} {} {}",
            self.left_on.keys, self.right_on.keys, self.left_on.time, self.matching.op, self.right_on.time
        )?;
        if let Some(residual) = &self.residual {
            write!(f, ", passing {}", residual.expr())?;
        }
        if self.is_projected() {
            write!(f, ", output columns {:?}", self.output)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for AsofTableExec {
    fn name(&self) -> &str {
        "AsofTableExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        let left = match self.matching.right_join {
            true => Distribution::SinglePartition,
            false => Distribution::UnspecifiedDistribution,
        };
        vec![left, Distribution::UnspecifiedDistribution]
    }

    /// The right side's partitions are indexed as they come: splitting them further would
    /// only scatter rows of equal time whose arrival order breaks ties.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![!self.matching.right_join, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let residual = self.residual.iter().map(|r| r.expr());
        for e in self.left_on.expressions().chain(self.right_on.expressions()).chain(residual) {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 2 {
            return Err(DataFusionError::Internal("AsofTableExec has two children".into()));
        }
        let right = children.pop().unwrap_or_else(|| self.right.clone());
        let left = children.pop().unwrap_or_else(|| self.left.clone());
        Ok(Arc::new(self.rebuilt((left, right), self.output.clone(), self.schema.clone())))
    }

    fn try_swapping_with_projection(&self, projection: &ProjectionExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if self.is_projected() {
            return Ok(None);
        }
        try_embed_projection(projection, self)
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let left = self.left.execute(partition, ctx.clone())?;
        let (cell, right, right_on) = (self.index.clone(), self.right.clone(), self.right_on.clone());
        let (left_on, matching, schema) = (self.left_on.clone(), self.matching, self.schema.clone());
        let output = Output { columns: self.output.clone(), left_width: self.left.schema().fields().len() };
        let residual = self.residual.clone();
        let read = residual.iter().flat_map(|r| r.right_columns(output.left_width));
        let needed: Vec<usize> =
            output.columns.iter().filter_map(|c| c.checked_sub(output.left_width)).chain(read).collect();
        let (pool, batch_size) = (ctx.memory_pool().clone(), ctx.session_config().batch_size());
        let probed = async move {
            let index = cell.get_or_try_init(|| TimeIndex::build(right, right_on, needed, ctx)).await?.clone();
            let groups = index.groups();
            let matched_rows = if matching.right_join { index.rows() } else { 0 };
            let reservation = MemoryConsumer::new(format!("AsofTableExec[probe {partition}]")).register(&pool);
            reservation.try_grow(groups * 4 + matched_rows)?;
            let probing = Probing {
                left,
                index,
                left_on,
                matching,
                residual,
                output,
                schema,
                hints: vec![0u32; groups],
                matched: vec![false; matched_rows],
                emitted: 0,
                batch_size,
                _reservation: reservation,
            };
            Ok::<_, DataFusionError>(futures::stream::unfold(probing, |mut probing| async move {
                probing.next().await.map(|batch| (batch, probing))
            }))
        };
        let stream = futures::stream::once(probed).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// One partition's probing: its left batches joined as they come, then (RIGHT and FULL) the
/// right rows none of them matched.
struct Probing {
    left: SendableRecordBatchStream,
    index: Arc<TimeIndex>,
    left_on: JoinSide,
    matching: Match,
    residual: Option<Arc<Residual>>,
    output: Output,
    schema: SchemaRef,
    /// Where each group's last search ended: the next batch's searches start there.
    hints: Vec<u32>,
    /// RIGHT and FULL: which right rows a left row matched (empty otherwise).
    matched: Vec<bool>,
    /// How many right rows the unmatched ones have been looked for among.
    emitted: usize,
    batch_size: usize,
    _reservation: MemoryReservation,
}

impl Probing {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        if let Some(batch) = self.left.next().await {
            let index = &self.index;
            return Some(batch.and_then(|batch| {
                let residual = self.residual.as_deref();
                let found = index.probe(&batch, &self.left_on, (self.matching.op, residual), &mut self.hints)?;
                if self.matching.right_join {
                    found.iter().flatten().for_each(|row| self.matched[*row as usize] = true);
                }
                index.joined(&batch, found, self.matching.left_join, &self.output, &self.schema)
            }));
        }
        let mut unmatched = Vec::new();
        while self.emitted < self.matched.len() && unmatched.len() < self.batch_size {
            if !self.matched[self.emitted] {
                unmatched.push(self.emitted as u32);
            }
            self.emitted += 1;
        }
        (!unmatched.is_empty()).then(|| self.index.unmatched(&unmatched.into(), &self.output, &self.schema))
    }
}
