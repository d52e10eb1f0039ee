//! Retention (`WITH (retention = '400 days')`): each tiering pass erases the events older than
//! a table's watermark minus its retention from both tiers (`execute::erase`), before it moves
//! rows to the cold tier. Features then see only the retained events (docs/security.md).

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};

use super::database::Database;
use super::erase::{RowMatcher, erase};
use crate::error::Result;
use crate::storage::BLOCK_MICROS;
use crate::storage::blocks::event_times;

impl Database {
    /// Erases every table's expired events (with `exact`, all of them; else those before
    /// the hour of event time the cutoff falls in); returns how many. The caller (a tiering
    /// pass) holds the tiering lock. A table is skipped while a CREATE OR REPLACE FEATURE over
    /// it is reading its rows (the next pass takes it). The features of a table that lost rows
    /// snapshot again at once, so tier moves, which wait for snapshots, go on.
    pub(super) async fn expire(&self, exact: bool) -> Result<u64> {
        let store = self.catalog.store().clone();
        let mut expired = 0;
        for name in self.catalog.table_names() {
            let Some(def) = self.catalog.table(&name) else { continue };
            let (Some(retention), Some(event_time)) = (def.retention_micros, def.event_time) else { continue };
            let Some(watermark) = store.stats(def.id).watermark else { continue };
            // Never past the wall clock: one row stamped in the future (a typo, a bad clock)
            // would otherwise expire every real row.
            let watermark = watermark.min(chrono::Utc::now().timestamp_micros());
            let cutoff = match exact {
                true => watermark.saturating_sub(retention),
                false => watermark.saturating_sub(retention).div_euclid(BLOCK_MICROS).saturating_mul(BLOCK_MICROS),
            };
            if self.features.backfills().hot_from(def.id).is_some() {
                continue;
            }
            let check = {
                let (store, id) = (store.clone(), def.id);
                move || store.has_rows_before(id, event_time, cutoff)
            };
            match tokio::task::spawn_blocking(check).await.map_err(|e| crate::error::Error::internal(e.to_string()))? {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(table = %name, "retention: reading the table failed: {e}");
                    continue;
                }
            }
            let matches = RowMatcher {
                columns: vec![event_time],
                matches: Box::new(move |batch: &RecordBatch| -> Result<BooleanArray> {
                    let times = event_times(batch.column(event_time))?;
                    Ok(times.values().iter().map(|t| Some(*t < cutoff)).collect())
                }),
            };
            // One table's failure (a full disk, a broken feature) leaves the others, and the
            // moves and collection after, to go on.
            match erase(self, &Arc::unwrap_or_clone(def), matches, cutoff, true).await {
                Ok(erased) => expired += erased.rows,
                Err(e) => tracing::warn!(table = %name, "retention: erasing expired rows failed: {e}"),
            }
        }
        Ok(expired)
    }
}
