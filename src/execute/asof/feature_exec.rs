//! ASOF join against a feature: each left row gets the feature evaluated at its time.
//!
//! The feature's state already holds each key's events sorted by time with tile partials, so
//! nothing is built per query. Each left batch is swept key by key: its rows are ordered by
//! (key, time), each key's history is looked up once, and its rows are evaluated in time order
//! by the same core online reads use (`KeyHistory::evaluate`, `>=` inclusive, `>` strict).
//! Output rows keep the left order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::probe::{JoinSide, assemble, evaluate_as, external, micros, properties};
use crate::error::Error;
use crate::feature::{LiveFeature, SlidingDistinct, array_of};

pub struct AsofFeatureExec {
    left: Arc<dyn ExecutionPlan>,
    feature: Arc<LiveFeature>,
    /// Left keys in the feature's key order, and the left time.
    left_on: JoinSide,
    strict: bool,
    left_join: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl AsofFeatureExec {
    pub fn new(
        left: Arc<dyn ExecutionPlan>,
        feature: Arc<LiveFeature>,
        left_on: JoinSide,
        (strict, left_join): (bool, bool),
        schema: SchemaRef,
    ) -> Self {
        let properties = properties(&left, schema.clone());
        Self { left, feature, left_on, strict, left_join, schema, properties }
    }
}

impl fmt::Debug for AsofFeatureExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsofFeatureExec({})", self.feature.compiled.def.name)
    }
}

impl DisplayAs for AsofFeatureExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = if self.left_join { "AsofFeatureExec: LEFT" } else { "AsofFeatureExec:" };
        let op = if self.strict { ">" } else { ">=" };
        write!(
            f,
            "{kind} feature {}, keys {:?}, {} {op} time",
            self.feature.compiled.def.name, self.left_on.keys, self.left_on.time
        )
    }
}

impl ExecutionPlan for AsofFeatureExec {
    fn name(&self) -> &str {
        "AsofFeatureExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
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
            (self.strict, self.left_join),
            self.schema.clone(),
        )))
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let left = self.left.execute(partition, ctx)?;
        let mut sweep = Sweep {
            windows: (0, HashMap::new()),
            feature: self.feature.clone(),
            left_on: self.left_on.clone(),
            strict: self.strict,
            left_join: self.left_join,
            schema: self.schema.clone(),
        };
        let stream = left.map(move |batch| batch.and_then(|b| sweep.join(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// Sliding windows kept per key (by history address) across batches, with the state version
/// they belong to, at most this many words in all.
const CACHED_WINDOW_WORDS: usize = 4 << 20;

struct Sweep {
    /// (state version, per-key sliding windows): the spine usually arrives in time order, so
    /// the next batch's rows of a key extend its window instead of rebuilding it.
    windows: (u64, HashMap<usize, SlidingDistinct>),
    feature: Arc<LiveFeature>,
    left_on: JoinSide,
    strict: bool,
    left_join: bool,
    schema: SchemaRef,
}

impl Sweep {
    fn join(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let compiled = &self.feature.compiled;
        let n = batch.num_rows();
        let keys: Vec<ArrayRef> = self
            .left_on
            .keys
            .iter()
            .zip(&compiled.key_columns)
            .map(|(k, c)| evaluate_as(k, batch, &compiled.table.columns[*c].ty.arrow_type()))
            .collect::<Result<_>>()?;
        let times = micros(&self.left_on.time, batch)?;
        let state = self.feature.state.read().map_err(|_| external(Error::internal("feature state poisoned")))?;
        let histories = state.histories(&keys).map_err(external)?;

        // Key by key (histories are grouped by address), each key's rows in time order.
        let mut order: Vec<u32> =
            (0..n as u32).filter(|r| histories[*r as usize].is_some() && times.is_valid(*r as usize)).collect();
        let address = |r: u32| histories[r as usize].map_or(0, |h| h as *const _ as usize);
        order.sort_unstable_by_key(|r| (address(*r), times.value(*r as usize)));
        let mut values: Vec<Option<Vec<ScalarValue>>> = vec![None; n];
        let (version, windows) = &mut self.windows;
        if *version != state.version()
            || windows.values().map(SlidingDistinct::size).sum::<usize>() > CACHED_WINDOW_WORDS
        {
            windows.clear();
            *version = state.version();
        }
        // One sweep per key over its rows in time order.
        for rows in order.chunk_by(|a, b| address(*a) == address(*b)) {
            let Some(history) = histories[rows[0] as usize] else { continue };
            let mut next = rows.iter();
            let times_of_rows = rows.iter().map(|r| times.value(*r as usize));
            let window = windows.entry(address(rows[0])).or_default();
            history
                .sweep(compiled, times_of_rows, self.strict, window, &mut |value| {
                    if let Some(r) = next.next() {
                        values[*r as usize] = value;
                    }
                    Ok(())
                })
                .map_err(external)?;
        }
        drop(state);

        let rows: Vec<u32> = if self.left_join {
            (0..n as u32).collect()
        } else {
            (0..n as u32).filter(|r| values[*r as usize].is_some()).collect()
        };
        // Right columns: the keys and time as probed, then the values; all NULL where unmatched.
        let matched = |r: &u32| values[*r as usize].is_some();
        let probe_rows: UInt32Array = rows.iter().map(|r| matched(r).then_some(*r)).collect();
        let mut right: Vec<ArrayRef> =
            keys.iter().map(|k| take(k, &probe_rows, None)).collect::<std::result::Result<_, _>>()?;
        for (j, result_type) in compiled.result_types.iter().enumerate() {
            let null = ScalarValue::try_from(result_type)?;
            let column = rows.iter().map(|r| match &values[*r as usize] {
                Some(v) => v[j].clone(),
                None => null.clone(),
            });
            right.push(array_of(column, result_type).map_err(external)?);
        }
        right.push(take(&times, &probe_rows, None)?);
        let keep = (!self.left_join).then(|| UInt32Array::from(rows));
        assemble(&self.schema, batch, keep.as_ref(), right)
    }
}
