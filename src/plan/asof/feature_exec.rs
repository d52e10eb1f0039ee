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
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
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
use crate::feature::{LiveFeature, Points, Values, value_column};

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
            // counted (the values as ScalarValues, an upper bound: each feature's are dropped
            // once its columns are built; the output as built) until it is emitted.
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

/// One join's results for one left batch: which rows it matched, its value columns and (with
/// an ingest time) the greatest ingest time each value rests on, NULL where unmatched.
struct Evaluated {
    matched: Vec<bool>,
    values: Vec<ArrayRef>,
    ingest: Option<ArrayRef>,
}

impl Join {
    fn all(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let probed = self
            .joins
            .iter()
            .map(|join| batches.iter().map(|batch| probe(join, batch)).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        let evaluated = evaluate_side_by_side(&self.joins, &probed)?;
        let mut evaluated: Vec<_> = evaluated.into_iter().map(|v| v.into_iter()).collect();
        batches
            .iter()
            .enumerate()
            .map(|(b, batch)| {
                let batch_values = evaluated
                    .iter_mut()
                    .map(|v| v.next().ok_or_else(|| DataFusionError::Internal("a feature gave too few batches".into())))
                    .collect::<Result<Vec<Evaluated>>>()?;
                self.output(batch, probed.iter().map(|p| &p[b]).collect(), batch_values)
            })
            .collect()
    }

    /// The output rows of one left batch: its columns, then each join's.
    fn output(&self, batch: &RecordBatch, probed: Vec<&Probed>, evaluated: Vec<Evaluated>) -> Result<RecordBatch> {
        let n = batch.num_rows();
        // An inner join keeps only the rows it matched.
        let kept = |r: usize| self.joins.iter().zip(&evaluated).all(|(j, e)| j.left_join || e.matched[r]);
        let rows: Vec<u32> = (0..n).filter(|r| kept(*r)).map(|r| r as u32).collect();
        let keep = (rows.len() < n).then(|| UInt32Array::from(rows));
        let mut right = Vec::new();
        for (p, e) in probed.into_iter().zip(evaluated) {
            right.extend(right_columns(p, e, keep.as_ref())?);
        }
        let rows = keep.as_ref().map_or(n, |k| k.len());
        assemble(&self.schema, rows, left_then_right(batch, keep.as_ref(), right)?)
    }
}

/// Each join's results at its probed points, as columns. The features run side by side, a
/// thread each, at most twice as many at a time as there are cores: they read different state
/// (or scan the stored events each; the spine's rows are shared read-only), and three features
/// on two cores then share both to the end rather than the third running alone on one. A
/// single feature runs on this thread.
fn evaluate_side_by_side(joins: &[FeatureJoin], probed: &[Vec<Probed>]) -> Result<Vec<Vec<Evaluated>>> {
    let evaluate = |join: &FeatureJoin, probed: &[Probed]| -> Result<Vec<Evaluated>> {
        let points: Vec<_> =
            probed.iter().map(|p| Points { keys: &p.keys, times: &p.times, known: p.known.as_ref() }).collect();
        let values = join.feature.evaluate_at(&points, join.as_of).map_err(external)?;
        // Built here, on the feature's own thread, while the others still evaluate.
        values.iter().map(|v| evaluated(join, v)).collect()
    };
    if let ([join], [probed]) = (joins, probed) {
        return Ok(vec![evaluate(join, probed)?]);
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    // Each worker takes the next feature until none is left, and returns what it evaluated.
    let worker = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let (Some(join), Some(probed)) = (joins.get(i), probed.get(i)) else { return done };
            done.push((i, evaluate(join, probed)));
        }
    };
    // Every thread is joined before any error is returned.
    let finished: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..joins.len().min(2 * cores)).map(|_| scope.spawn(worker)).collect();
        running.into_iter().map(|r| r.join()).collect()
    });
    let mut results: Vec<Option<Result<Vec<Evaluated>>>> = joins.iter().map(|_| None).collect();
    for done in finished {
        let done = done.map_err(|_| DataFusionError::Internal("a feature's evaluation panicked".into()))?;
        for (i, result) in done {
            results[i] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(DataFusionError::Internal("a feature was not evaluated".into()))))
        .collect()
}

/// `join`'s values of one left batch as columns.
fn evaluated(join: &FeatureJoin, values: &Values) -> Result<Evaluated> {
    let compiled = join.feature.compiled();
    let values_of = |j, data_type| value_column(values, j, data_type).map_err(external);
    let columns = compiled.result_types.iter().enumerate().map(|(j, t)| values_of(j, t)).collect::<Result<_>>()?;
    // µs since the epoch, after the values; `assemble` casts it to the schema's timestamp type.
    let ingest = compiled.ingest.map(|_| values_of(compiled.result_types.len(), &DataType::Int64)).transpose()?;
    Ok(Evaluated { matched: values.iter().map(Option::is_some).collect(), values: columns, ingest })
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

/// One join's columns for the output rows of a left batch (`keep`, or all of them): the keys
/// and time as probed, then the values, then (with an ingest time) the greatest ingest time
/// the values rest on; all NULL where unmatched.
fn right_columns(p: &Probed, e: Evaluated, keep: Option<&UInt32Array>) -> Result<Vec<ArrayRef>> {
    let kept = |column: ArrayRef| match keep {
        Some(keep) => take(&column, keep, None),
        None => Ok(column),
    };
    let all_matched = keep.is_none() && e.matched.iter().all(|m| *m);
    let probe_rows: Option<UInt32Array> = (!all_matched).then(|| match keep {
        Some(keep) => keep.iter().map(|r| r.filter(|r| e.matched[*r as usize])).collect(),
        None => (0..e.matched.len() as u32).map(|r| e.matched[r as usize].then_some(r)).collect(),
    });
    let probed = |column: ArrayRef| match &probe_rows {
        Some(rows) => take(&column, rows, None),
        None => Ok(column),
    };
    let mut right: Vec<ArrayRef> = p.keys.iter().map(|k| probed(k.clone())).collect::<std::result::Result<_, _>>()?;
    for column in e.values {
        right.push(kept(column)?);
    }
    right.push(probed(Arc::new(p.times.clone()))?);
    if let Some(ingest) = e.ingest {
        right.push(kept(ingest)?);
    }
    Ok(right)
}
