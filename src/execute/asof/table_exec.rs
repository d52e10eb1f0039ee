//! ASOF join against a table: the right side is indexed once, the left side streams through.
//!
//! The index keeps the right rows, and per key their `(time, row)` pairs sorted by time (rows
//! of equal time in arrival order). Each left row is answered by a binary search in its key's
//! pairs, so the left side is never materialized and its order is kept. The index is charged
//! to DataFusion's memory pool: a right side larger than the pool fails with 53200.

use std::fmt;
use std::sync::Arc;

use arrow::array::new_empty_array;
use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
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

use super::groups::GroupKeys;
use super::probe::{JoinSide, assemble, evaluate_as, micros, properties};

/// The comparison and outer-ness of one ASOF join.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    /// `left_time op right_time`.
    pub op: Operator,
    pub left_join: bool,
}

pub struct AsofTableExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    left_on: JoinSide,
    right_on: JoinSide,
    matching: Match,
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
        matching: Match,
        schema: SchemaRef,
    ) -> Self {
        let output = (0..schema.fields().len()).collect();
        Self::with_output(left, right, (left_on, right_on), matching, output, schema)
    }

    /// The join giving `output` (indices into the left columns, then the right ones) as `schema`.
    fn with_output(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        (left_on, right_on): (JoinSide, JoinSide),
        matching: Match,
        output: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        // Left columns that move or go: a hash partitioning on them would no longer name them.
        let left_in_place = (0..left.schema().fields().len()).all(|c| output.get(c) == Some(&c));
        let partitioning = match left.output_partitioning() {
            p if left_in_place => p.clone(),
            p => Partitioning::UnknownPartitioning(p.partition_count()),
        };
        let properties = properties(partitioning, schema.clone());
        let index = Arc::new(OnceCell::new());
        Self { left, right, left_on, right_on, matching, output, schema, properties, index }
    }

    /// This join over other inputs or with other output columns (a new, unbuilt index).
    fn rebuilt(
        &self,
        (left, right): (Arc<dyn ExecutionPlan>, Arc<dyn ExecutionPlan>),
        output: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        Self::with_output(left, right, (self.left_on.clone(), self.right_on.clone()), self.matching, output, schema)
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
        let kind = if self.matching.left_join { "AsofTableExec: LEFT" } else { "AsofTableExec:" };
        write!(
            f,
            "{kind} keys {:?} = {:?}, {} {} {}",
            self.left_on.keys, self.right_on.keys, self.left_on.time, self.matching.op, self.right_on.time
        )?;
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
        vec![Distribution::UnspecifiedDistribution, Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in self.left_on.expressions().chain(self.right_on.expressions()) {
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
        let needed: Vec<usize> = output.columns.iter().filter_map(|c| c.checked_sub(output.left_width)).collect();
        let probed = async move {
            let index = cell.get_or_try_init(|| TimeIndex::build(right, right_on, needed, ctx)).await?.clone();
            let probe = move |batch: RecordBatch| index.probe(&batch, &left_on, matching, &output, &schema);
            Ok::<_, DataFusionError>(left.map(move |batch| batch.and_then(&probe)))
        };
        let stream = futures::stream::once(probed).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// Which columns of left ++ right a join outputs.
struct Output {
    columns: Vec<usize>,
    left_width: usize,
}

/// The right side: its rows, and per key the `(time, row)` pairs sorted by time.
struct TimeIndex {
    /// The right side's columns the join outputs (`None` for the others).
    columns: Vec<Option<ArrayRef>>,
    key_types: Vec<DataType>,
    groups: GroupKeys,
    /// Times and rows of group `g` are `times[offsets[g]..offsets[g + 1]]` (ascending) and
    /// the same range of `row_ids`; apart, so a search touches only the times.
    offsets: Vec<u32>,
    times: Vec<i64>,
    row_ids: Vec<u32>,
    _reservation: MemoryReservation,
}

impl TimeIndex {
    /// Reads the right side and indexes it. Only the `needed` right columns are kept as rows
    /// (those the join outputs); keys and times are read batch by batch.
    async fn build(
        right: Arc<dyn ExecutionPlan>,
        JoinSide { keys, time }: JoinSide,
        needed: Vec<usize>,
        ctx: Arc<TaskContext>,
    ) -> Result<Arc<TimeIndex>> {
        let started = std::time::Instant::now();
        let threads = ctx.session_config().target_partitions().max(1);
        let reservation = MemoryConsumer::new("AsofTableExec[index]").register(ctx.memory_pool());
        let schema = right.schema();
        let key_types: Vec<DataType> = keys.iter().map(|k| k.data_type(&schema)).collect::<Result<_>>()?;
        let mut groups = GroupKeys::new(&key_types)?;
        let mut stream = right.execute(0, ctx)?;
        let (mut batches, mut group_of, mut all_times) = (Vec::new(), Vec::<u32>::new(), Vec::<i64>::new());
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            reservation.try_grow(batch.get_array_memory_size() + n * 12)?;
            let key_arrays: Vec<ArrayRef> =
                keys.iter().zip(&key_types).map(|(k, t)| evaluate_as(k, &batch, t)).collect::<Result<_>>()?;
            let times = micros(&time, &batch)?;
            // NULL keys and times never match.
            for (row, g) in groups.assign(&key_arrays, n)?.into_iter().enumerate() {
                group_of.push(g.filter(|_| times.is_valid(row)).unwrap_or(u32::MAX));
            }
            all_times.extend_from_slice(times.values());
            batches.push(batch);
        }
        let n = group_of.len();
        if n > u32::MAX as usize {
            return Err(DataFusionError::ResourcesExhausted("ASOF JOIN right side over 4G rows".into()));
        }
        let columns: Vec<Option<ArrayRef>> = (0..schema.fields().len())
            .map(|c| {
                if !needed.contains(&c) {
                    return Ok(None);
                }
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
                let column =
                    if parts.is_empty() { new_empty_array(schema.field(c).data_type()) } else { concat(&parts)? };
                reservation.try_grow(column.get_array_memory_size())?;
                Ok(Some(column))
            })
            .collect::<Result<_>>()?;
        reservation.shrink(batches.iter().map(|b| b.get_array_memory_size()).sum());
        drop(batches);
        let read = started.elapsed();

        reservation.try_grow(n * 16)?;
        let (offsets, mut pairs) = bucket_by_group(groups.len(), n, |row| {
            let g = group_of[row];
            (g != u32::MAX).then(|| (g, (all_times[row], row as u32)))
        });
        drop((group_of, all_times));
        reservation.shrink(n * 12);
        sort_groups(&mut pairs, &offsets, threads);
        let (times, row_ids): (Vec<i64>, Vec<u32>) = pairs.into_iter().unzip();
        tracing::debug!(rows = n, groups = groups.len(), read = ?read, built = ?(started.elapsed() - read), "ASOF index");
        Ok(Arc::new(TimeIndex { columns, key_types, groups, offsets, times, row_ids, _reservation: reservation }))
    }

    /// The right row matching each left row of `batch`, joined to it.
    fn probe(
        &self,
        batch: &RecordBatch,
        left_on: &JoinSide,
        matching: Match,
        output: &Output,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let keys: Vec<ArrayRef> =
            left_on.keys.iter().zip(&self.key_types).map(|(k, t)| evaluate_as(k, batch, t)).collect::<Result<_>>()?;
        let groups = self.groups.find(&keys, batch.num_rows())?;
        let times = micros(&left_on.time, batch)?;
        // Rows ordered by (key group, time), so each group's searches move forward through
        // its times from the previous answer (galloping) instead of starting cold.
        let mut probes: Vec<(u32, i64, u32)> = Vec::with_capacity(batch.num_rows());
        for (row, group) in groups.into_iter().enumerate() {
            if let Some(g) = group.filter(|_| times.is_valid(row)) {
                probes.push((g, times.value(row), row as u32));
            }
        }
        self.order_probes(&mut probes);
        let mut found: Vec<Option<u32>> = vec![None; batch.num_rows()];
        let mut cursor = (u32::MAX, 0usize);
        for (g, t, row) in probes {
            let from = if cursor.0 == g { cursor.1 } else { 0 };
            let (point, answer) = self.closest(g, t, matching.op, from);
            cursor = (g, point);
            found[row as usize] = answer;
        }
        // Only the output columns are gathered: left rows kept (all of them for LEFT), right
        // rows by their match (NULL where none).
        let (keep, right_rows): (Option<UInt32Array>, UInt32Array) = if matching.left_join {
            (None, found.iter().copied().collect())
        } else {
            let keep = found.iter().enumerate().filter_map(|(i, f)| f.map(|_| i as u32)).collect();
            (Some(keep), found.iter().filter_map(|f| *f).collect())
        };
        let columns = output
            .columns
            .iter()
            .map(|&c| match c.checked_sub(output.left_width) {
                None => match &keep {
                    Some(keep) => take(batch.column(c), keep, None),
                    None => Ok(batch.column(c).clone()),
                },
                Some(r) => match self.columns.get(r) {
                    Some(Some(column)) => take(column, &right_rows, None),
                    _ => Err(ArrowError::InvalidArgumentError(format!("ASOF index lacks right column {r}"))),
                },
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        assemble(schema, right_rows.len(), columns)
    }

    /// Orders probes by (group, time). Left sides usually arrive close to time order, so with
    /// few groups a counting sort by group keeps that order and a run-adaptive stable sort
    /// by time finishes each group cheaply.
    fn order_probes(&self, probes: &mut Vec<(u32, i64, u32)>) {
        let groups = self.offsets.len().saturating_sub(1);
        if groups > 4 * probes.len().max(1024) {
            probes.sort_unstable();
            return;
        }
        let (bounds, mut ordered) = bucket_by_group(groups, probes.len(), |i| Some((probes[i].0, probes[i])));
        for g in 0..groups {
            ordered[bounds[g] as usize..bounds[g + 1] as usize].sort_by_key(|p| p.1);
        }
        *probes = ordered;
    }

    /// The row of group `g` whose time is closest to `t` satisfying `t op time`, and the
    /// search's partition point, which never decreases as `t` grows: the next search of the
    /// group starts `from` it. Ties: the last-arrived for `>=`/`>`, the first-arrived for
    /// `<=`/`<`.
    fn closest(&self, g: u32, t: i64, op: Operator, from: usize) -> (usize, Option<u32>) {
        let range = self.offsets[g as usize] as usize..self.offsets[g as usize + 1] as usize;
        let (times, rows) = (&self.times[range.clone()], &self.row_ids[range]);
        // Times `<= t` (or `< t`) come first: find where they end.
        let inclusive = matches!(op, Operator::GtEq | Operator::Lt);
        let before = |e: i64| if inclusive { e <= t } else { e < t };
        let point = gallop(times, from, before);
        let i = match op {
            Operator::GtEq | Operator::Gt => point.checked_sub(1),
            Operator::LtEq | Operator::Lt => Some(point).filter(|i| *i < times.len()),
            _ => None,
        };
        (point, i.map(|i| rows[i]))
    }
}

/// A stable counting sort of `len` items into `groups` buckets: the bucket bounds (`groups + 1`
/// offsets) and the items, bucket by bucket, each in its original order. `item(i)` is the i-th
/// item with its group, or `None` to leave it out; it is called twice per item.
fn bucket_by_group<T: Copy + Default>(
    groups: usize,
    len: usize,
    item: impl Fn(usize) -> Option<(u32, T)>,
) -> (Vec<u32>, Vec<T>) {
    let mut offsets = vec![0u32; groups + 1];
    for (g, _) in (0..len).filter_map(&item) {
        offsets[g as usize + 1] += 1;
    }
    for g in 0..groups {
        offsets[g + 1] += offsets[g];
    }
    let mut fill = offsets[..groups].to_vec();
    let mut items = vec![T::default(); offsets[groups] as usize];
    for (g, t) in (0..len).filter_map(&item) {
        let slot = &mut fill[g as usize];
        items[*slot as usize] = t;
        *slot += 1;
    }
    (offsets, items)
}

/// Sorts each group's `(time, row)` pairs by time, stably (rows of equal time stay in arrival
/// order), on up to `threads` threads, each taking whole groups.
fn sort_groups(pairs: &mut [(i64, u32)], offsets: &[u32], threads: usize) {
    let sort = |pairs: &mut [(i64, u32)], offsets: &[u32]| {
        let base = offsets.first().copied().unwrap_or(0) as usize;
        for w in offsets.windows(2) {
            pairs[w[0] as usize - base..w[1] as usize - base].sort_by_key(|(t, _)| *t);
        }
    };
    let groups = offsets.len().saturating_sub(1);
    if threads < 2 || groups < 2 || pairs.len() < 1 << 16 {
        return sort(pairs, offsets);
    }
    // Cut at group boundaries into about equal shares of pairs.
    let share = pairs.len().div_ceil(threads);
    let mut cuts = vec![0usize];
    for (g, start) in offsets.iter().enumerate().take(groups).skip(1) {
        if *start as usize >= share * cuts.len() {
            cuts.push(g);
        }
    }
    cuts.push(groups);
    std::thread::scope(|scope| {
        let mut rest = pairs;
        for w in cuts.windows(2) {
            let len = (offsets[w[1]] - offsets[w[0]]) as usize;
            let (mine, tail) = rest.split_at_mut(len);
            rest = tail;
            let offsets = &offsets[w[0]..=w[1]];
            scope.spawn(move || sort(mine, offsets));
        }
    });
}

/// The partition point of `pred` in `times` (all of `times[..from]` satisfy it): doubling
/// steps from `from`, then a binary search in the last step.
fn gallop(times: &[i64], from: usize, pred: impl Fn(i64) -> bool) -> usize {
    let from = from.min(times.len());
    let mut step = 1;
    let mut lo = from;
    while lo + step <= times.len() && pred(times[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(times.len());
    lo + times[lo..hi].partition_point(|e| pred(*e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_sorted_on_threads_equal_one_stable_sort() {
        // Uneven groups, many equal times (stability shows in the row order).
        let sizes = [1u32, 70_000, 3, 0, 40_000, 25_000, 2];
        let mut offsets = vec![0u32];
        for s in sizes {
            offsets.push(offsets.last().unwrap() + s);
        }
        let n = *offsets.last().unwrap();
        let pairs: Vec<(i64, u32)> = (0..n).map(|row| ((row as i64 * 7919) % 1000, row)).collect();
        let mut one = pairs.clone();
        sort_groups(&mut one, &offsets, 1);
        for threads in [2, 3, 8] {
            let mut many = pairs.clone();
            sort_groups(&mut many, &offsets, threads);
            assert_eq!(many, one, "{threads} threads");
        }
        for w in offsets.windows(2) {
            let group = &one[w[0] as usize..w[1] as usize];
            assert!(group.windows(2).all(|p| p[0].0 < p[1].0 || (p[0].0 == p[1].0 && p[0].1 < p[1].1)));
        }
    }
}
