//! Per-key event histories of one feature, and evaluation at a time T.
//!
//! Each key keeps its qualifying events (those passing the feature's WHERE) sorted by
//! (event time, arrival), with each aggregate's input value. Evaluating at T finds the window
//! by binary search and aggregates the events inside it. This is the one evaluation core the
//! online read and (next) the ASOF JOIN use. Its cost is linear in the window's size; the
//! tiled partial aggregates of issue #3 replace the scan, not the semantics.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::row::{RowConverter, SortField};
use datafusion::scalar::ScalarValue;

use super::aggregate::aggregate;
use super::def::CompiledFeature;
use super::window::{session_span, span, upper_bound};
use crate::error::{Error, Result};
use crate::sql::feature::Window;
use crate::storage::blocks::event_times;

/// One event of a key: its time, arrival order, and each aggregate's input (`None` when the
/// aggregate's FILTER excluded it; `count(*)` stores `true`).
#[derive(Debug, Clone)]
struct Event {
    seq: u64,
    row: u32,
    values: Vec<Option<ScalarValue>>,
}

#[derive(Debug, Default)]
pub struct KeyHistory {
    /// Event times, ascending; parallel to `events`.
    times: Vec<i64>,
    events: Vec<Event>,
}

impl KeyHistory {
    fn insert(&mut self, t: i64, event: Event) {
        let position = self.events.len()
            - self
                .times
                .iter()
                .rev()
                .zip(self.events.iter().rev())
                .take_while(|(et, e)| (**et, e.seq, e.row) > (t, event.seq, event.row))
                .count();
        self.times.insert(position, t);
        self.events.insert(position, event);
    }

    /// The feature's values at `t`, or `None` when the key has no qualifying event at or
    /// before `t` (before `t` if `strict`).
    pub fn evaluate(&self, feature: &CompiledFeature, t: i64, strict: bool) -> Result<Option<Vec<ScalarValue>>> {
        let end = self.times.partition_point(|e| *e <= upper_bound(t, strict));
        if end == 0 {
            return Ok(None);
        }
        let window = match feature.def.window {
            Window::Session { gap } => session_span(&self.times, gap, t, strict),
            ref other => span(other, t, strict),
        };
        let (from, to) = if window.from > window.to {
            (0, 0)
        } else {
            (self.times.partition_point(|e| *e < window.from), self.times.partition_point(|e| *e <= window.to))
        };
        let events = &self.events[from..to.max(from)];
        let values = (0..feature.def.values.len())
            .map(|j| {
                aggregate(
                    feature.def.values[j].kind,
                    &feature.result_types[j],
                    events.iter().map(move |e| &e.values[j]),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(values))
    }
}

/// All keys of one feature.
pub struct FeatureState {
    converter: RowConverter,
    keys: HashMap<Box<[u8]>, KeyHistory>,
}

impl FeatureState {
    pub fn new(feature: &CompiledFeature) -> Result<Self> {
        let fields =
            feature.key_columns.iter().map(|i| SortField::new(feature.table.columns[*i].ty.arrow_type())).collect();
        Ok(Self { converter: RowConverter::new(fields)?, keys: HashMap::new() })
    }

    /// Adds the qualifying rows of `batch` (rows of the source table stored under `seq`).
    pub fn ingest(&mut self, feature: &CompiledFeature, batch: &RecordBatch, seq: u64) -> Result<()> {
        let rows = batch.num_rows();
        let passes = match &feature.filter {
            Some(f) => Some(boolean(f.evaluate(batch)?.into_array(rows)?)?),
            None => None,
        };
        let args: Vec<Option<ArrayRef>> = feature
            .args
            .iter()
            .map(|a| a.as_ref().map(|a| a.evaluate(batch).and_then(|v| v.into_array(rows))).transpose())
            .collect::<std::result::Result<_, _>>()?;
        let filters: Vec<Option<BooleanArray>> = feature
            .value_filters
            .iter()
            .map(|f| {
                f.as_ref()
                    .map(|f| f.evaluate(batch).and_then(|v| v.into_array(rows)).map_err(Error::from).and_then(boolean))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let key_arrays: Vec<ArrayRef> = feature.key_columns.iter().map(|i| batch.column(*i).clone()).collect();
        let key_rows = self.converter.convert_columns(&key_arrays)?;
        let times = event_times(batch.column(feature.event_time))?;
        for row in 0..rows {
            if passes.as_ref().is_some_and(|p| !p.is_valid(row) || !p.value(row)) {
                continue;
            }
            let mut values = Vec::with_capacity(args.len());
            for (j, arg) in args.iter().enumerate() {
                let included = filters[j].as_ref().is_none_or(|f| f.is_valid(row) && f.value(row));
                values.push(match (included, arg) {
                    (false, _) => None,
                    (true, None) => Some(ScalarValue::Boolean(Some(true))),
                    (true, Some(a)) => Some(ScalarValue::try_from_array(a, row)?),
                });
            }
            let key = key_rows.row(row).as_ref().to_vec().into_boxed_slice();
            self.keys.entry(key).or_default().insert(times.value(row), Event { seq, row: row as u32, values });
        }
        Ok(())
    }

    /// The key's history, looked up by key values in key-column order.
    pub fn history(&self, key: &[ScalarValue]) -> Result<Option<&KeyHistory>> {
        let arrays: Vec<ArrayRef> = key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?;
        let rows = self.converter.convert_columns(&arrays)?;
        Ok(self.keys.get(rows.row(0).as_ref()))
    }

    /// Every key (as key-column arrays, one row per key) with its history.
    pub fn all(&self) -> Result<(Vec<ArrayRef>, Vec<&KeyHistory>)> {
        let parser = self.converter.parser();
        let (keys, histories): (Vec<_>, Vec<_>) = self.keys.iter().map(|(k, h)| (parser.parse(k), h)).unzip();
        let columns = self.converter.convert_rows(keys)?;
        Ok((columns, histories))
    }
}

fn boolean(array: ArrayRef) -> Result<BooleanArray> {
    array
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| Error::internal("predicate did not evaluate to booleans"))
}
