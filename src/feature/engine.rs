//! The live features of a database: backfilled when created (and at startup), updated by
//! every commit before it is acknowledged, and read at the table's watermark.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use super::def::{CompiledFeature, FeatureDef};
use super::state::FeatureState;
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::storage::{EventStore, StoredPart};

/// One feature: its compiled definition and its per-key state.
pub struct LiveFeature {
    pub compiled: CompiledFeature,
    pub state: RwLock<FeatureState>,
}

impl LiveFeature {
    /// Builds the feature from every stored row of its table (hot tier, in storage order).
    pub fn backfill(def: FeatureDef, table: Arc<TableDef>, store: &EventStore, ctx: &SessionContext) -> Result<Self> {
        let compiled = CompiledFeature::compile(def, table, ctx)?;
        let mut state = FeatureState::new(&compiled)?;
        for part in store.scan(compiled.table.id, (i64::MIN, i64::MAX), (0, 1)) {
            let part = part?;
            state.ingest(&compiled, &part.batch, part.seq)?;
        }
        Ok(Self { compiled, state: RwLock::new(state) })
    }

    /// Values for `keys` (or every key) evaluated at the table's watermark, in the feature's
    /// table schema. Keys with no qualifying event at or before the watermark are left out.
    pub fn read(&self, store: &EventStore, key: Option<&[ScalarValue]>) -> Result<RecordBatch> {
        let schema = self.compiled.schema.clone();
        let Some(watermark) = store.stats(self.compiled.table.id).watermark else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let state = self.state.read().map_err(|_| Error::internal("feature state poisoned"))?;
        let (key_columns, histories): (Vec<ArrayRef>, Vec<_>) = match key {
            Some(key) => match state.history(key)? {
                Some(h) => (key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?, vec![h]),
                None => return Ok(RecordBatch::new_empty(schema)),
            },
            None => state.all()?,
        };
        let mut rows = Vec::with_capacity(histories.len());
        let mut keep = Vec::with_capacity(histories.len());
        for (i, history) in histories.iter().enumerate() {
            if let Some(values) = history.evaluate(&self.compiled, watermark, false)? {
                rows.push(values);
                keep.push(i as u32);
            }
        }
        let indices = arrow::array::UInt32Array::from(keep);
        let keys: Vec<ArrayRef> = key_columns
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?;
        self.compiled.batch(keys, &rows, vec![watermark; rows.len()])
    }
}

/// Every live feature, by name.
#[derive(Default)]
pub struct FeatureEngine {
    features: RwLock<BTreeMap<String, Arc<LiveFeature>>>,
}

impl FeatureEngine {
    pub fn get(&self, name: &str) -> Option<Arc<LiveFeature>> {
        self.features.read().ok()?.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.features.read().map(|f| f.keys().cloned().collect()).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Arc<LiveFeature>> {
        self.features.read().map(|f| f.values().cloned().collect()).unwrap_or_default()
    }

    /// Names of the features reading table `table`.
    pub fn reading(&self, table: &str) -> Vec<String> {
        self.all().iter().filter(|f| f.compiled.table.name == table).map(|f| f.compiled.def.name.clone()).collect()
    }

    pub fn insert(&self, feature: LiveFeature) -> Result<()> {
        let mut features = self.features.write().map_err(|_| Error::internal("features poisoned"))?;
        features.insert(feature.compiled.def.name.clone(), Arc::new(feature));
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.features.write().map_err(|_| Error::internal("features poisoned"))?.remove(name);
        Ok(())
    }

    /// Applies committed rows to every feature of their tables.
    pub fn on_commit(&self, parts: &[StoredPart]) -> Result<()> {
        if parts.is_empty() {
            return Ok(());
        }
        for feature in self.all() {
            let mut state = None;
            for part in parts.iter().filter(|p| p.table_id == feature.compiled.table.id) {
                let state = match &mut state {
                    Some(s) => s,
                    None => state.insert(feature.state.write().map_err(|_| Error::internal("feature state poisoned"))?),
                };
                state.ingest(&feature.compiled, &part.batch, part.seq)?;
            }
        }
        Ok(())
    }
}
