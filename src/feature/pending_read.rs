//! A feature read inside a transaction: the committed state with the transaction's own
//! pending rows added, without changing the state others read.
//!
//! Only the keys the pending rows touch are copied ([`FeatureState::with_rows`]); the others
//! are read from the live state. Every key is evaluated at the later of the table's watermark
//! and the pending rows' latest event time, as it will be once they commit.

use arrow::array::{ArrayRef, RecordBatch};
use datafusion::scalar::ScalarValue;

use super::LiveFeature;
use super::state::KeyHistory;
use crate::error::Result;
use crate::storage::EventStore;
use crate::storage::blocks::event_times;

impl LiveFeature {
    /// [`LiveFeature::read`] as if `pending` (rows of the feature's table) were committed.
    pub fn read_with_pending(
        &self,
        store: &EventStore,
        key: Option<&[ScalarValue]>,
        pending: &[RecordBatch],
    ) -> Result<RecordBatch> {
        if pending.is_empty() {
            return self.read(store, key);
        }
        let compiled = self.compiled();
        let mut watermark = store.stats(compiled.table.id).watermark;
        for batch in pending {
            if let Some(max) = event_times(batch.column(compiled.event_time))?.values().iter().max() {
                watermark = Some(watermark.map_or(*max, |w| w.max(*max)));
            }
        }
        let Some(watermark) = watermark else { return Ok(RecordBatch::new_empty(compiled.schema.clone())) };
        let state = self.state()?;
        let scratch = state.with_rows(compiled, pending, self.next_seq())?;
        let wanted: Option<Vec<u8>> = match key {
            Some(key) => {
                let arrays: Vec<ArrayRef> = key.iter().map(|v| v.to_array()).collect::<std::result::Result<_, _>>()?;
                Some(state.encode_keys(&arrays)?.row(0).as_ref().to_vec())
            }
            None => None,
        };
        let histories: Vec<(&[u8], &KeyHistory)> = match &wanted {
            Some(key) => {
                scratch.encoded(key).or_else(|| state.encoded(key)).map(|h| (key.as_slice(), h)).into_iter().collect()
            }
            None => scratch.encoded_all().chain(state.encoded_all().filter(|(k, _)| !scratch.has_key(k))).collect(),
        };
        let mut rows = Vec::with_capacity(histories.len());
        let mut keys = Vec::with_capacity(histories.len());
        for (encoded, history) in &histories {
            if let Some(mut values) = history.evaluate(compiled, watermark, false)? {
                // The transaction's own rows count as known at their event time (they have no
                // ingest time until they commit).
                let latest = state.latest_ingest(encoded).max(scratch.latest_ingest(encoded));
                if compiled.ingest.is_some()
                    && let Some(last) = values.last_mut()
                {
                    *last = ScalarValue::Int64(latest);
                }
                rows.push(values);
                keys.push(*encoded);
            }
        }
        let key_columns = state.decode_keys(keys.into_iter())?;
        compiled.batch(key_columns, &rows, vec![watermark; rows.len()])
    }
}
