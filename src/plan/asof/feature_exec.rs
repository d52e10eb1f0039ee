//! ASOF join against features: each left row gets each feature evaluated at its time.
//!
//! The left side (the spine) is read whole (which path answers depends on how far back it
//! reaches), its keys and times computed, and each feature evaluated at all of them at once
//! (`LiveFeature::evaluate_at`: from the live state, or the stored events), the features
//! side by side on threads of their own. Output rows keep the left order. The spine, the
//! values and the output are counted in DataFusion's memory pool, so a training set larger
//! than the pool fails with 53200.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties};
use datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};

use super::probe::{JoinSide, assemble, evaluate_as, external, left_then_right, micros};
use crate::feature::window::AsOf;
use crate::feature::{LiveFeature, Points, Values, array_of};

/// One feature joined to the left rows.
#[derive(Clone)]
pub struct FeatureJoin {
    /// The feature on the right.
    pub feature: Arc<LiveFeature>,
    /// Left keys in the feature's key order, and the left time.
    pub left_on: JoinSide,
    /// Strict or inclusive, the staleness bound, known-at.
    pub as_of: AsOf,
    /// ASOF LEFT JOIN: unmatched left rows stay, with NULLs.
    pub left_join: bool,
}

impl FeatureJoin {
    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = if self.left_join { "LEFT " } else { "" };
        let op = if self.as_of.strict { ">" } else { ">=" };
        write!(
            f,
            "{kind}feature {}, keys {:?}, {} {op} time",
            self.feature.compiled().def.name,
            self.left_on.keys,
            self.left_on.time
        )?;
        match self.as_of.max_age {
            Some(age) => write!(f, ", no older than {age} µs"),
            None => Ok(()),
        }
    }
}

/// One or more features joined to the same left rows. A chain of ASOF joins against features
/// whose later joins use only the first one's left columns (a training set: the spine's keys
/// and time) becomes one operator, which evaluates its features side by side, each on a
/// thread of its own, instead of one after another.
pub struct AsofFeatureExec {
    left: Arc<dyn ExecutionPlan>,
    joins: Vec<FeatureJoin>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl AsofFeatureExec {
    pub fn new(left: Arc<dyn ExecutionPlan>, joins: Vec<FeatureJoin>, schema: SchemaRef) -> Self {
        // One partition: a sweep over stored events reads the table once for the whole spine
        // (per left partition it would read it once each, and hold a window each).
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { left, joins, schema, properties }
    }

    /// This operator's joins followed by `join`, over this operator's left side, when `join`'s
    /// expressions read only columns of that left side (the output puts them first, in the
    /// same places). `schema` is the output of `join` over this operator.
    ///
    /// Only after LEFT joins: after an inner one, `join`'s expressions would also be evaluated
    /// on the rows it drops (an error there, say a division by zero, would be new).
    pub fn followed_by(&self, join: &FeatureJoin, schema: SchemaRef) -> Option<Self> {
        let width = self.left.schema().fields().len();
        let reads_left_only = join.left_on.expressions().all(|e| collect_columns(e).iter().all(|c| c.index() < width));
        let after_left_joins = self.joins.iter().all(|j| j.left_join);
        (reads_left_only && after_left_joins).then(|| {
            let joins = self.joins.iter().cloned().chain([join.clone()]).collect();
            Self::new(self.left.clone(), joins, schema)
        })
    }
}

impl fmt::Debug for AsofFeatureExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.joins.iter().map(|j| j.feature.compiled().def.name.clone()).collect();
        write!(f, "AsofFeatureExec({})", names.join(", "))
    }
}

impl DisplayAs for AsofFeatureExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "AsofFeatureExec: ")?;
        for (i, join) in self.joins.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            join.describe(f)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for AsofFeatureExec {
    fn name(&self) -> &str {
        "AsofFeatureExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in self.joins.iter().flat_map(|j| j.left_on.expressions()) {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let left = children.pop().ok_or_else(|| DataFusionError::Internal("AsofFeatureExec has one child".into()))?;
        Ok(Arc::new(Self::new(left, self.joins.clone(), self.schema.clone())))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut left = self.left.execute(partition, ctx.clone())?;
        let reservation = MemoryConsumer::new("AsofFeatureExec[spine]").register(ctx.memory_pool());
        let join = Join { joins: self.joins.clone(), schema: self.schema.clone() };
        let output = async move {
            // The whole spine is read first: which path answers depends on how far back it reaches.
            let mut batches = Vec::new();
            while let Some(batch) = left.next().await {
                let batch = batch?;
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
            // Every feature's values are held at once, then the output is built whole: both are
            // counted (the values as ScalarValues, the output as built) until it is emitted.
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let words: usize = join.joins.iter().map(|j| j.feature.compiled().result_types.len() + 1).sum();
            reservation.try_grow(rows.saturating_mul(words).saturating_mul(size_of::<ScalarValue>()))?;
            let joined = tokio::task::spawn_blocking(move || join.all(batches))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??;
            reservation.try_grow(joined.iter().map(|b| b.get_array_memory_size()).sum())?;
            Ok::<_, DataFusionError>(futures::stream::iter(joined.into_iter().map(move |batch| {
                let _held = &reservation;
                Ok(batch)
            })))
        };
        let stream = futures::stream::once(output).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// One left batch's keys (in the feature's key types), times and known-at times, for one join.
struct Probed {
    keys: Vec<ArrayRef>,
    times: TimestampMicrosecondArray,
    known: Option<TimestampMicrosecondArray>,
}

struct Join {
    joins: Vec<FeatureJoin>,
    schema: SchemaRef,
}

impl Join {
    fn all(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let probed = self
            .joins
            .iter()
            .map(|join| batches.iter().map(|batch| probe(join, batch)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let values = evaluate_side_by_side(&self.joins, &probed)?;
        let mut values: Vec<_> = values.into_iter().map(|v| v.into_iter()).collect();
        batches
            .iter()
            .enumerate()
            .map(|(b, batch)| {
                let batch_values = values
                    .iter_mut()
                    .map(|v| v.next().ok_or_else(|| DataFusionError::Internal("a feature gave too few batches".into())))
                    .collect::<Result<Vec<Values>>>()?;
                self.output(batch, probed.iter().map(|p| &p[b]).collect(), batch_values)
            })
            .collect()
    }

    /// The output rows of one left batch: its columns, then each join's.
    fn output(&self, batch: &RecordBatch, probed: Vec<&Probed>, values: Vec<Values>) -> Result<RecordBatch> {
        let n = batch.num_rows();
        // An inner join keeps only the rows it matched.
        let kept = |r: u32| self.joins.iter().zip(&values).all(|(j, v)| j.left_join || v[r as usize].is_some());
        let rows: Vec<u32> = (0..n as u32).filter(|r| kept(*r)).collect();
        let mut right = Vec::new();
        for ((join, p), values) in self.joins.iter().zip(probed).zip(&values) {
            right.extend(right_columns(join, p, values, &rows)?);
        }
        let keep = (rows.len() < n).then(|| UInt32Array::from(rows));
        let rows = keep.as_ref().map_or(n, |k| k.len());
        assemble(&self.schema, rows, left_then_right(batch, keep.as_ref(), right)?)
    }
}

/// Each join's values at its probed points. The features run side by side, a thread each, as
/// many at a time as there are cores (they read different state, or scan the stored events
/// each; the spine's rows are shared read-only); a single feature runs on this thread.
fn evaluate_side_by_side(joins: &[FeatureJoin], probed: &[Vec<Probed>]) -> Result<Vec<Vec<Values>>> {
    let evaluate = |join: &FeatureJoin, probed: &[Probed]| {
        let points: Vec<_> =
            probed.iter().map(|p| Points { keys: &p.keys, times: &p.times, known: p.known.as_ref() }).collect();
        join.feature.evaluate_at(&points, join.as_of).map_err(external)
    };
    if let ([join], [probed]) = (joins, probed) {
        return Ok(vec![evaluate(join, probed)?]);
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut values = Vec::with_capacity(joins.len());
    for (joins, probed) in joins.chunks(cores).zip(probed.chunks(cores)) {
        let finished: Vec<_> = std::thread::scope(|scope| {
            let running: Vec<_> =
                joins.iter().zip(probed).map(|(join, probed)| scope.spawn(move || evaluate(join, probed))).collect();
            // Every thread is joined before any error is returned.
            running.into_iter().map(|r| r.join()).collect()
        });
        for result in finished {
            values.push(result.map_err(|_| DataFusionError::Internal("a feature's evaluation panicked".into()))??);
        }
    }
    Ok(values)
}

/// `join`'s keys, times and known-at times of one left batch.
fn probe(join: &FeatureJoin, batch: &RecordBatch) -> Result<Probed> {
    let compiled = join.feature.compiled();
    let keys = join
        .left_on
        .keys
        .iter()
        .zip(&compiled.key_columns)
        .map(|(k, c)| evaluate_as(k, batch, &compiled.table.columns[*c].ty.arrow_type()))
        .collect::<Result<Vec<_>>>()?;
    let times = micros(&join.left_on.time, batch)?;
    // `l.k > f.known` counts ingest times before K: at or before K - 1µs.
    let known = match &join.left_on.known {
        Some((k, strict)) => {
            let k = micros(k, batch)?;
            Some(if *strict { k.unary(|v: i64| v.saturating_sub(1)) } else { k })
        }
        None => None,
    };
    Ok(Probed { keys, times, known })
}

/// One join's columns for the output `rows` of a left batch: the keys and time as probed, then
/// the values, then (with an ingest time) the greatest ingest time the values rest on; all NULL
/// where unmatched.
fn right_columns(join: &FeatureJoin, p: &Probed, values: &Values, rows: &[u32]) -> Result<Vec<ArrayRef>> {
    let compiled = join.feature.compiled();
    let matched = |r: &u32| values[*r as usize].is_some();
    let probe_rows: UInt32Array = rows.iter().map(|r| matched(r).then_some(*r)).collect();
    let mut right: Vec<ArrayRef> =
        p.keys.iter().map(|k| take(k, &probe_rows, None)).collect::<std::result::Result<_, _>>()?;
    for (j, result_type) in compiled.result_types.iter().enumerate() {
        let null = ScalarValue::try_from(result_type)?;
        let column = rows.iter().map(|r| match &values[*r as usize] {
            Some(v) => v[j].clone(),
            None => null.clone(),
        });
        right.push(array_of(column, result_type).map_err(external)?);
    }
    right.push(take(&p.times, &probe_rows, None)?);
    if compiled.ingest.is_some() {
        let n = compiled.result_types.len();
        let known = rows.iter().map(|r| match &values[*r as usize] {
            Some(v) => v.get(n).cloned().unwrap_or(ScalarValue::Int64(None)),
            None => ScalarValue::Int64(None),
        });
        // µs since the epoch; `assemble` casts it to the schema's timestamp type.
        right.push(array_of(known, &arrow::datatypes::DataType::Int64).map_err(external)?);
    }
    Ok(right)
}
