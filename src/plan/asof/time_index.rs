//! The index of an ASOF join's right side: its rows kept, and per key the `(time, row)` pairs
//! sorted by time (rows of equal time in arrival order), built from every right partition at
//! once; and the search of each left row's closest match in it (galloping from where the
//! key's previous search ended), with conditions across both sides tried outward from there.
//! The index is charged to DataFusion's memory pool: a right side larger than the pool fails
//! with 53200.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_empty_array, new_null_array};
use arrow::compute::{concat, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::StreamExt;

use super::groups::GroupKeys;
use super::probe::{JoinSide, assemble, evaluate_as, micros};
use super::residual::Residual;

/// Which columns of left ++ right a join outputs.
pub(super) struct Output {
    pub(super) columns: Vec<usize>,
    pub(super) left_width: usize,
}

/// The right side: its rows, and per key the `(time, row)` pairs sorted by time.
pub(super) struct TimeIndex {
    /// The right side's columns the join outputs (`None` for the others).
    columns: Vec<Option<ArrayRef>>,
    key_types: Vec<DataType>,
    groups: GroupKeys,
    /// Times and rows of group `g` are `times[offsets[g]..offsets[g + 1]]` (ascending) and
    /// the same range of `row_ids`; apart, so a search touches only the times.
    offsets: Vec<u32>,
    times: Vec<i64>,
    row_ids: Vec<u32>,
    /// Right rows read (those with a NULL key or time too, which are in no group).
    rows: usize,
    _reservation: Arc<MemoryReservation>,
}

impl TimeIndex {
    /// How many key groups the index has.
    pub(super) fn groups(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// How many right rows it read (with a NULL key or time too).
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Reads the right side and indexes it: each partition on a task of its own (reading,
    /// grouping and sorting its rows), then one merge of their sorted runs. Only the `needed`
    /// right columns are kept as rows (those the join outputs).
    pub(super) async fn build(
        right: Arc<dyn ExecutionPlan>,
        side: JoinSide,
        mut needed: Vec<usize>,
        ctx: Arc<TaskContext>,
    ) -> Result<Arc<TimeIndex>> {
        let started = std::time::Instant::now();
        needed.sort_unstable();
        needed.dedup();
        let schema = right.schema();
        let key_types: Vec<DataType> = side.keys.iter().map(|k| k.data_type(&schema)).collect::<Result<_>>()?;
        let reservation = Arc::new(MemoryConsumer::new("AsofTableExec[index]").register(ctx.memory_pool()));
        let tasks = (0..right.output_partitioning().partition_count())
            .map(|p| {
                let reader = PartitionReader {
                    side: side.clone(),
                    key_types: key_types.clone(),
                    needed: needed.clone(),
                    reservation: reservation.clone(),
                };
                Ok(SpawnedTask::spawn(reader.read(right.execute(p, ctx.clone())?)))
            })
            .collect::<Result<Vec<_>>>()?;
        // The first error ends the build; dropping the other tasks aborts them.
        let mut parts =
            futures::future::try_join_all(tasks.into_iter().map(|task| async move {
                task.join().await.map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?
            }))
            .await?;
        let read = started.elapsed();

        let rows: usize = parts.iter().map(|p| p.rows).sum();
        if rows > u32::MAX as usize {
            return Err(DataFusionError::ResourcesExhausted("ASOF JOIN right side over 4G rows".into()));
        }
        // The first partition's groups become the index's (its group numbers stay); the
        // others' keys are added to them. Then each partition's local group of every group
        // (u32::MAX where it has none).
        let mut groups = match parts.first_mut() {
            Some(first) => std::mem::replace(&mut first.groups, GroupKeys::new(&key_types)?),
            None => GroupKeys::new(&key_types)?,
        };
        let mut mappings: Vec<Vec<u32>> = vec![(0..groups.len() as u32).collect()];
        for part in parts.iter().skip(1) {
            mappings.push(groups.absorb(&part.groups)?);
        }
        reservation.try_grow(groups.len() * 4 * parts.len())?;
        let locals: Vec<Vec<u32>> = mappings
            .iter()
            .map(|mapping| {
                let mut local = vec![u32::MAX; groups.len()];
                mapping.iter().enumerate().for_each(|(l, g)| local[*g as usize] = l as u32);
                local
            })
            .collect();
        drop(mappings);
        let bases: Vec<u32> =
            parts.iter().scan(0u32, |base, p| Some(std::mem::replace(base, *base + p.rows as u32))).collect();
        let pairs: usize = parts.iter().map(|p| p.pairs.len()).sum();
        reservation.try_grow(pairs * 12 + (groups.len() + 1) * 4)?;
        let (mut offsets, mut times, mut row_ids) =
            (Vec::with_capacity(groups.len() + 1), Vec::with_capacity(pairs), Vec::with_capacity(pairs));
        offsets.push(0u32);
        let mut runs = Vec::with_capacity(parts.len());
        for g in 0..groups.len() {
            runs.clear();
            for ((part, local), base) in parts.iter().zip(&locals).zip(&bases) {
                if let Some(run) = part.group(local[g]) {
                    runs.push((run, *base));
                }
            }
            merge_runs(&mut runs, &mut times, &mut row_ids);
            offsets.push(times.len() as u32);
        }
        drop(locals);
        reservation.shrink(groups.len() * 4 * parts.len());
        let columns: Vec<Option<ArrayRef>> = (0..schema.fields().len())
            .map(|c| {
                let Ok(at) = needed.binary_search(&c) else { return Ok(None) };
                let pieces: Vec<&dyn Array> =
                    parts.iter().flat_map(|p| &p.batches).map(|b| b.column(at).as_ref()).collect();
                let column =
                    if pieces.is_empty() { new_empty_array(schema.field(c).data_type()) } else { concat(&pieces)? };
                reservation.try_grow(column.get_array_memory_size())?;
                Ok(Some(column))
            })
            .collect::<Result<_>>()?;
        let read_bytes: usize = parts.iter().map(PartitionIndex::reserved).sum();
        drop(parts);
        reservation.shrink(read_bytes);
        tracing::debug!(rows, groups = groups.len(), read = ?read, built = ?(started.elapsed() - read), "ASOF index");
        let index = TimeIndex { columns, key_types, groups, offsets, times, row_ids, rows, _reservation: reservation };
        Ok(Arc::new(index))
    }

    /// The right row matching each left row of `batch`, if any.
    pub(super) fn probe(
        &self,
        batch: &RecordBatch,
        left_on: &JoinSide,
        (op, residual): (Operator, Option<&Residual>),
        hints: &mut [u32],
    ) -> Result<Vec<Option<u32>>> {
        let keys: Vec<ArrayRef> =
            left_on.keys.iter().zip(&self.key_types).map(|(k, t)| evaluate_as(k, batch, t)).collect::<Result<_>>()?;
        let groups = self.groups.find(&keys, batch.num_rows())?;
        let times = micros(&left_on.time, batch)?;
        // Rows ordered by (key group, time), so each group's searches move forward through
        // its times from the previous answer (galloping) instead of starting cold; a group's
        // first search starts where its search in the previous batch ended, as a scan's
        // batches come roughly in time order.
        let mut probes: Vec<(u32, i64, u32)> = Vec::with_capacity(batch.num_rows());
        for (row, group) in groups.into_iter().enumerate() {
            if let Some(g) = group.filter(|_| times.is_valid(row)) {
                probes.push((g, times.value(row), row as u32));
            }
        }
        self.order_probes(&mut probes);
        let mut found: Vec<Option<u32>> = vec![None; batch.num_rows()];
        // (left row, position of its closest candidate, group), with a residual to pass.
        let mut candidates: Vec<(u32, usize, u32)> = Vec::new();
        for (g, t, row) in probes {
            let hint = &mut hints[g as usize];
            let (point, closest) = self.closest(g, t, op, *hint as usize);
            // A position within one group's times, which the index numbers in u32.
            *hint = point as u32;
            match (closest, residual) {
                (Some(at), Some(_)) => candidates.push((row, at, g)),
                (at, None) => found[row as usize] = at.map(|at| self.row_ids[at]),
                (None, Some(_)) => {}
            }
        }
        if let Some(residual) = residual {
            self.first_passing(batch, residual, op, candidates, &mut found)?;
        }
        Ok(found)
    }

    /// Walks each left row's candidates from the closest away from its time (towards older
    /// rows for `>=`/`>`), taking the first that passes `residual`: one pass over every row
    /// still searching, until none is.
    fn first_passing(
        &self,
        batch: &RecordBatch,
        residual: &Residual,
        op: Operator,
        mut candidates: Vec<(u32, usize, u32)>,
        found: &mut [Option<u32>],
    ) -> Result<()> {
        let backwards = matches!(op, Operator::GtEq | Operator::Gt);
        while !candidates.is_empty() {
            let left_rows: UInt32Array = candidates.iter().map(|c| c.0).collect();
            let right_rows: UInt32Array = candidates.iter().map(|c| self.row_ids[c.1]).collect();
            let passed = residual.passes(batch, &left_rows, &self.columns, &right_rows)?;
            candidates = candidates
                .into_iter()
                .zip(passed)
                .filter_map(|((row, at, g), passed)| {
                    if passed {
                        found[row as usize] = Some(self.row_ids[at]);
                        return None;
                    }
                    let (start, end) = (self.offsets[g as usize] as usize, self.offsets[g as usize + 1] as usize);
                    let next = if backwards { at.checked_sub(1).filter(|n| *n >= start) } else { Some(at + 1) };
                    next.filter(|n| *n < end).map(|n| (row, n, g))
                })
                .collect();
        }
        Ok(())
    }

    /// The left rows of `batch` joined to the right rows `found` for them.
    pub(super) fn joined(
        &self,
        batch: &RecordBatch,
        found: Vec<Option<u32>>,
        left_join: bool,
        output: &Output,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        // Only the output columns are gathered: left rows kept (all of them for LEFT), right
        // rows by their match (NULL where none).
        let (keep, right_rows): (Option<UInt32Array>, UInt32Array) = if left_join {
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
                Some(r) => self.right_column(r, &right_rows),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        assemble(schema, right_rows.len(), columns)
    }

    /// The right rows `rows`, which no left row matched, with NULL left columns.
    pub(super) fn unmatched(&self, rows: &UInt32Array, output: &Output, schema: &SchemaRef) -> Result<RecordBatch> {
        let columns = output
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(&c, field)| match c.checked_sub(output.left_width) {
                None => Ok(new_null_array(field.data_type(), rows.len())),
                Some(r) => self.right_column(r, rows),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        assemble(schema, rows.len(), columns)
    }

    /// Right column `r` at `rows` (NULL where a row is NULL).
    fn right_column(&self, r: usize, rows: &UInt32Array) -> std::result::Result<ArrayRef, ArrowError> {
        match self.columns.get(r) {
            Some(Some(column)) => take(column, rows, None),
            _ => Err(ArrowError::InvalidArgumentError(format!("ASOF index lacks right column {r}"))),
        }
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

    /// The position (in `times` and `row_ids`) of group `g`'s row whose time is closest to
    /// `t` satisfying `t op time`, and the search's partition point, which never decreases as
    /// `t` grows: the search starts `near` a previous one's. Ties: the last-arrived for
    /// `>=`/`>`, the first-arrived for `<=`/`<`.
    fn closest(&self, g: u32, t: i64, op: Operator, near: usize) -> (usize, Option<usize>) {
        let range = self.offsets[g as usize] as usize..self.offsets[g as usize + 1] as usize;
        let times = &self.times[range.clone()];
        // Times `<= t` (or `< t`) come first: find where they end.
        let inclusive = matches!(op, Operator::GtEq | Operator::Lt);
        let before = |e: i64| if inclusive { e <= t } else { e < t };
        let point = gallop(times, near, before);
        let i = match op {
            Operator::GtEq | Operator::Gt => point.checked_sub(1),
            Operator::LtEq | Operator::Lt => Some(point).filter(|i| *i < times.len()),
            _ => None,
        };
        (point, i.map(|i| range.start + i))
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

/// Reads one partition of the right side for the index.
struct PartitionReader {
    side: JoinSide,
    key_types: Vec<DataType>,
    /// The right columns kept, ascending.
    needed: Vec<usize>,
    reservation: Arc<MemoryReservation>,
}

/// One right partition, read: its key groups, its `(time, row)` pairs grouped by key
/// (`offsets`, as in the index) and sorted within each group (rows numbered within the
/// partition, so equal times stay in arrival order), and its batches of the needed columns.
struct PartitionIndex {
    groups: GroupKeys,
    offsets: Vec<u32>,
    pairs: Vec<(i64, u32)>,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl PartitionIndex {
    /// The sorted pairs of local group `g`, if it has any.
    fn group(&self, g: u32) -> Option<&[(i64, u32)]> {
        let range = *self.offsets.get(g as usize)? as usize..*self.offsets.get(g as usize + 1)? as usize;
        Some(&self.pairs[range]).filter(|run| !run.is_empty())
    }

    /// What the partition holds in the memory pool.
    fn reserved(&self) -> usize {
        self.batches.iter().map(|b| b.get_array_memory_size()).sum::<usize>()
            + self.pairs.len() * 16
            + self.offsets.len() * 4
    }
}

impl PartitionReader {
    async fn read(self, mut stream: SendableRecordBatchStream) -> Result<PartitionIndex> {
        let mut groups = GroupKeys::new(&self.key_types)?;
        let (mut group_of, mut times) = (Vec::<u32>::new(), Vec::<i64>::new());
        let (mut batches, mut rows) = (Vec::new(), 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let n = batch.num_rows();
            let kept = batch.project(&self.needed)?;
            self.reservation.try_grow(kept.get_array_memory_size() + n * 12)?;
            let keys: Vec<ArrayRef> = self
                .side
                .keys
                .iter()
                .zip(&self.key_types)
                .map(|(k, t)| evaluate_as(k, &batch, t))
                .collect::<Result<_>>()?;
            let batch_times = micros(&self.side.time, &batch)?;
            if rows + n > u32::MAX as usize {
                return Err(DataFusionError::ResourcesExhausted("ASOF JOIN right side over 4G rows".into()));
            }
            // NULL keys and times never match.
            for (row, g) in groups.assign(&keys, n)?.into_iter().enumerate() {
                group_of.push(g.filter(|_| batch_times.is_valid(row)).unwrap_or(u32::MAX));
            }
            times.extend_from_slice(batch_times.values());
            rows += n;
            batches.push(kept);
        }
        self.reservation.try_grow(rows * 16 + (groups.len() + 1) * 4)?;
        let (offsets, mut pairs) = bucket_by_group(groups.len(), rows, |row| {
            let g = group_of[row];
            (g != u32::MAX).then(|| (g, (times[row], row as u32)))
        });
        drop((group_of, times));
        self.reservation.shrink(rows * 12 + (rows - pairs.len()) * 16);
        for w in offsets.windows(2) {
            sort_pairs(&mut pairs[w[0] as usize..w[1] as usize]);
        }
        Ok(PartitionIndex { groups, offsets, pairs, batches, rows })
    }
}

/// Sorts `(time, row)` pairs (rows unique, so by time with equal times in row order). A scan
/// yields rows roughly in time order, so the pairs are cut where every later time is above
/// every earlier one and each piece is sorted alone: pieces of an hour's rows sort in cache.
fn sort_pairs(pairs: &mut [(i64, u32)]) {
    if pairs.len() <= 256 {
        pairs.sort_unstable();
        return;
    }
    // The minimum time after each pair (`i64::MAX` after the last).
    let mut later_min: Vec<i64> =
        pairs.iter().rev().scan(i64::MAX, |min, &(t, _)| Some(std::mem::replace(min, (*min).min(t)))).collect();
    later_min.reverse();
    let (mut start, mut max) = (0, i64::MIN);
    for i in 0..pairs.len() {
        max = max.max(pairs[i].0);
        if max < later_min[i] {
            pairs[start..=i].sort_unstable();
            start = i + 1;
        }
    }
    pairs[start..].sort_unstable();
}

/// Merges runs of `(time, row)` pairs, each sorted, into `times` and `row_ids` in (time, row)
/// order; a run's rows are offset by its base. Runs from different partitions of a scan hold
/// different days, so they interleave in long stretches: each step copies the whole stretch
/// of the run with the lowest head that comes before every other run's head. `runs` is
/// used up.
fn merge_runs(runs: &mut Vec<(&[(i64, u32)], u32)>, times: &mut Vec<i64>, row_ids: &mut Vec<u32>) {
    runs.retain(|(run, _)| !run.is_empty());
    let head = |(run, base): &(&[(i64, u32)], u32)| (run[0].0, run[0].1 + base);
    while !runs.is_empty() {
        let lowest = (0..runs.len()).min_by_key(|&i| head(&runs[i])).unwrap_or(0);
        let bound = (0..runs.len()).filter(|&i| i != lowest).map(|i| head(&runs[i])).min();
        let (run, base) = runs[lowest];
        let take = match bound {
            Some(bound) => run.partition_point(|&(t, r)| (t, r + base) < bound),
            None => run.len(),
        };
        times.extend(run[..take].iter().map(|(t, _)| *t));
        row_ids.extend(run[..take].iter().map(|(_, r)| r + base));
        if take == run.len() {
            runs.swap_remove(lowest);
        } else {
            runs[lowest].0 = &run[take..];
        }
    }
}

/// The partition point of `pred` in `times` (a prefix of `times` satisfies it), searched
/// from `near`: doubling steps forward or backward from there, then a binary search in the
/// last step. Cheap when the point is close to `near`.
fn gallop(times: &[i64], near: usize, pred: impl Fn(i64) -> bool) -> usize {
    let near = near.min(times.len());
    if near > 0 && !pred(times[near - 1]) {
        // The point is before `near`: `times[hi]` fails the predicate.
        let (mut hi, mut step) = (near - 1, 1);
        while hi >= step && !pred(times[hi - step]) {
            hi -= step;
            step *= 2;
        }
        let lo = if hi >= step { hi - step + 1 } else { 0 };
        return lo + times[lo..hi].partition_point(|e| pred(*e));
    }
    let mut step = 1;
    let mut lo = near;
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
    fn gallop_finds_the_partition_point_from_any_start() {
        let times: Vec<i64> = vec![1, 3, 3, 3, 5, 8, 8, 13, 21, 34, 34, 55];
        for t in -1..60 {
            for inclusive in [true, false] {
                let pred = |e: i64| if inclusive { e <= t } else { e < t };
                let expected = times.partition_point(|e| pred(*e));
                for near in 0..=times.len() + 2 {
                    assert_eq!(gallop(&times, near, pred), expected, "t {t} near {near}");
                }
            }
        }
        assert_eq!(gallop(&[], 3, |e| e < 0), 0);
    }

    #[test]
    fn pairs_sorted_in_pieces_equal_one_sort() {
        // Hour-like chunks in order, shuffled inside, with ties across and inside chunks.
        let mut pairs: Vec<(i64, u32)> =
            (0..5000u32).map(|r| (((r / 100) * 100 + (r * 37) % 100) as i64 / 3, r)).collect();
        pairs.extend((5000..5100u32).map(|r| ((r % 7) as i64 * 1000, r)));
        let mut expected = pairs.clone();
        expected.sort();
        sort_pairs(&mut pairs);
        assert_eq!(pairs, expected);
        let mut empty: Vec<(i64, u32)> = Vec::new();
        sort_pairs(&mut empty);
        assert!(empty.is_empty());
    }

    /// Merges `runs` and checks the result is one sort of all their (offset) pairs.
    fn assert_merge_is_one_sort(runs: &[(&[(i64, u32)], u32)]) {
        let (mut times, mut rows) = (Vec::new(), Vec::new());
        merge_runs(&mut runs.to_vec(), &mut times, &mut rows);
        let mut expected: Vec<(i64, u32)> =
            runs.iter().flat_map(|(run, base)| run.iter().map(move |(t, r)| (*t, r + base))).collect();
        expected.sort();
        assert_eq!(times.into_iter().zip(rows).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn merged_runs_equal_one_sort_of_their_pairs() {
        let a: Vec<(i64, u32)> = vec![(1, 0), (3, 1), (3, 4), (9, 2)];
        let b: Vec<(i64, u32)> = vec![(0, 1), (3, 0), (10, 2)];
        let c: Vec<(i64, u32)> = vec![];
        assert_merge_is_one_sort(&[(a.as_slice(), 0), (b.as_slice(), 5), (c.as_slice(), 8)]);

        // Long stretches, ties between runs broken by row.
        let d: Vec<(i64, u32)> = (0..50u32).map(|r| ((r / 10 * 20 + r % 10) as i64, r)).collect();
        let e: Vec<(i64, u32)> = (0..50u32).map(|r| ((r / 10 * 20 + 9 + r % 10) as i64, r)).collect();
        assert_merge_is_one_sort(&[(d.as_slice(), 100), (e.as_slice(), 0), (a.as_slice(), 3)]);

        let (mut times, mut rows) = (Vec::new(), Vec::new());
        merge_runs(&mut vec![(a.as_slice(), 7)], &mut times, &mut rows);
        assert_eq!(times, vec![1, 3, 3, 9]);
        assert_eq!(rows, vec![7, 8, 11, 9]);
    }
}
