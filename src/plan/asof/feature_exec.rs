//! ASOF join against a feature: each left row gets the feature evaluated at its time.
//!
//! The left side (the spine) is read whole (which path answers depends on how far back it
//! reaches), its keys and times computed, and the feature evaluated at all of them at once
//! (`LiveFeature::evaluate_at`: from the live state, or the stored events). Output rows keep
//! the left order. The spine is counted in DataFusion's memory pool, so a spine larger than
//! the pool fails with 53200.

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
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties};
use datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};

use super::probe::{JoinSide, assemble, evaluate_as, external, left_then_right, micros};
use crate::feature::window::AsOf;
use crate::feature::{LiveFeature, Points, Values, array_of};

pub struct AsofFeatureExec {
    left: Arc<dyn ExecutionPlan>,
    feature: Arc<LiveFeature>,
    /// Left keys in the feature's key order, and the left time.
    left_on: JoinSide,
    as_of: AsOf,
    left_join: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl AsofFeatureExec {
    pub fn new(
        left: Arc<dyn ExecutionPlan>,
        feature: Arc<LiveFeature>,
        left_on: JoinSide,
        (as_of, left_join): (AsOf, bool),
        schema: SchemaRef,
    ) -> Self {
        // One partition: a sweep over stored events reads the table once for the whole spine
        // (per left partition it would read it once each, and hold a window each).
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { left, feature, left_on, as_of, left_join, schema, properties }
    }
}

impl fmt::Debug for AsofFeatureExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsofFeatureExec({})", self.feature.compiled().def.name)
    }
}

impl DisplayAs for AsofFeatureExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = if self.left_join { "AsofFeatureExec: LEFT" } else { "AsofFeatureExec:" };
        let op = if self.as_of.strict { ">" } else { ">=" };
        write!(
            f,
            "{kind} feature {}, keys {:?}, {} {op} time",
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
        for e in self.left_on.expressions() {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let left = children.pop().ok_or_else(|| DataFusionError::Internal("AsofFeatureExec has one child".into()))?;
        Ok(Arc::new(Self::new(
            left,
            self.feature.clone(),
            self.left_on.clone(),
            (self.as_of, self.left_join),
            self.schema.clone(),
        )))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let mut left = self.left.execute(partition, ctx.clone())?;
        let reservation = MemoryConsumer::new("AsofFeatureExec[spine]").register(ctx.memory_pool());
        let join = Join {
            feature: self.feature.clone(),
            left_on: self.left_on.clone(),
            as_of: self.as_of,
            left_join: self.left_join,
            schema: self.schema.clone(),
        };
        let output = async move {
            // The whole spine is read first: which path answers depends on how far back it reaches.
            let mut batches = Vec::new();
            while let Some(batch) = left.next().await {
                let batch = batch?;
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
            let joined = tokio::task::spawn_blocking(move || join.all(batches))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??;
            drop(reservation);
            Ok::<_, DataFusionError>(futures::stream::iter(joined.into_iter().map(Ok)))
        };
        let stream = futures::stream::once(output).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// One left batch with its keys (in the feature's key types), times and known-at times.
struct Probed {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    times: TimestampMicrosecondArray,
    known: Option<TimestampMicrosecondArray>,
}

struct Join {
    feature: Arc<LiveFeature>,
    left_on: JoinSide,
    as_of: AsOf,
    left_join: bool,
    schema: SchemaRef,
}

impl Join {
    fn all(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let compiled = self.feature.compiled();
        let probed = batches
            .into_iter()
            .map(|batch| {
                let keys = self
                    .left_on
                    .keys
                    .iter()
                    .zip(&compiled.key_columns)
                    .map(|(k, c)| evaluate_as(k, &batch, &compiled.table.columns[*c].ty.arrow_type()))
                    .collect::<Result<Vec<_>>>()?;
                let times = micros(&self.left_on.time, &batch)?;
                // `l.k > f.known` counts ingest times before K: at or before K - 1µs.
                let known = match &self.left_on.known {
                    Some((k, strict)) => {
                        let k = micros(k, &batch)?;
                        Some(if *strict { k.unary(|v: i64| v.saturating_sub(1)) } else { k })
                    }
                    None => None,
                };
                Ok(Probed { batch, keys, times, known })
            })
            .collect::<Result<Vec<_>>>()?;
        let points: Vec<_> =
            probed.iter().map(|p| Points { keys: &p.keys, times: &p.times, known: p.known.as_ref() }).collect();
        let values = self.feature.evaluate_at(&points, self.as_of).map_err(external)?;
        probed.iter().zip(values).map(|(p, values)| self.output(p, values)).collect()
    }

    /// The output rows of one left batch.
    fn output(&self, p: &Probed, values: Values) -> Result<RecordBatch> {
        let compiled = self.feature.compiled();
        let n = p.batch.num_rows();
        let rows: Vec<u32> = if self.left_join {
            (0..n as u32).collect()
        } else {
            (0..n as u32).filter(|r| values[*r as usize].is_some()).collect()
        };
        // Right columns: the keys and time as probed, then the values; all NULL where unmatched.
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
            // The greatest ingest time of the events the value rests on, after the values.
            let n = compiled.result_types.len();
            let known = rows.iter().map(|r| match &values[*r as usize] {
                Some(v) => v.get(n).cloned().unwrap_or(ScalarValue::Int64(None)),
                None => ScalarValue::Int64(None),
            });
            let known = array_of(known, &arrow::datatypes::DataType::Int64).map_err(external)?;
            let field = self.schema.field(self.schema.fields().len() - 1);
            right.push(arrow::compute::cast(&known, field.data_type())?);
        }
        let keep = (!self.left_join).then(|| UInt32Array::from(rows));
        let rows = keep.as_ref().map_or(p.batch.num_rows(), |k| k.len());
        assemble(&self.schema, rows, left_then_right(&p.batch, keep.as_ref(), right)?)
    }
}
