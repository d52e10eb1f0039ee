//! The tiering policy: which rows of which tables go cold and when (the mechanism is
//! `storage::tiering`). Runs in the background and as the second half of CHECKPOINT.

use std::collections::HashMap;
use std::sync::Arc;

use super::database::Database;
use crate::error::{Error, Result};
use crate::storage::{MoveRequest, TierReport, TierTable};

impl Database {
    /// Moves every row the retention rule assigns to the cold tier there (rows older than
    /// the table's watermark minus `hot_retention`, written before every feature snapshot of
    /// the table), compacts small files, merges small hot values (single-row writes) and
    /// collects garbage, after erasing the rows tables' retention expired (`exact`, as
    /// CHECKPOINT asks: every one; else those before the hour the cutoff is in, so a stream
    /// of writes makes one erasure an hour, not one a pass). Returns what moved and merged.
    pub async fn tier(&self, exact: bool) -> Result<TierReport> {
        let started = std::time::Instant::now();
        let report = self.tier_pass(exact).await;
        self.metrics().tiering_seconds.observe(started.elapsed().as_secs_f64());
        report
    }

    async fn tier_pass(&self, exact: bool) -> Result<TierReport> {
        let _one_pass = self.tiering.lock().await;
        // Expired rows go first: they need not move.
        let expired = self.expire(exact).await?;
        let store = self.catalog.store().clone();
        // A staged write moving into place is not moved on until it is wholly there.
        let next_seq = store.visible_seq();
        let mut requests = Vec::new();
        let mut event_times = HashMap::new();
        let mut tables = Vec::new();
        for name in self.catalog.table_names() {
            let Some(table) = self.catalog.table(&name) else { continue };
            tables.push(table.scan_table());
            let Some(event_time) = table.event_time else { continue };
            event_times.insert(table.id, event_time);
            let Some(watermark) = store.stats(table.id).watermark else { continue };
            // A feature's snapshot holds every write below its seq; rows above it stay hot
            // until the next snapshot, so a restart never has to replay a cold row.
            let below_seq = self.features.tier_bound(table.id, next_seq);
            requests.push(MoveRequest {
                table: TierTable { id: table.id, name: table.name.clone(), event_time },
                before_time: watermark.saturating_sub(table.hot_retention_micros),
                below_seq,
            });
        }
        let work = move || -> Result<TierReport> {
            let mut total = TierReport::default();
            let mut refused = None;
            for request in &requests {
                // Low on disk, moves stop, but collection still runs: it frees space.
                let outcome = store.move_to_cold(request).and_then(|moved| Ok((moved, store.compact(&request.table)?)));
                match outcome {
                    Ok((moved, compacted)) => {
                        total.rows_moved += moved.rows_moved;
                        total.files_written += moved.files_written + compacted.files_written;
                        total.files_compacted += compacted.files_compacted;
                    }
                    Err(e @ Error::DiskFull(_)) => {
                        refused = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            for table in tables {
                match store.compact_hot(table) {
                    Ok(merged) => total.hot_values_merged += merged.values_merged,
                    // Collection still runs: it frees what earlier merges replaced.
                    Err(e @ Error::DiskFull(_)) => {
                        refused = Some(e);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            store.collect_garbage(&|id| event_times.get(&id).copied())?;
            refused.map_or(Ok(total), Err)
        };
        let started = std::time::Instant::now();
        // At lower priority than serving: a pass may write many files again.
        let mut report = super::low_priority::spawn(work).await??;
        report.rows_expired = expired;
        if report != TierReport::default() {
            tracing::info!(
                rows = report.rows_moved,
                files = report.files_written,
                compacted = report.files_compacted,
                hot_values_merged = report.hot_values_merged,
                expired = report.rows_expired,
                secs = started.elapsed().as_secs_f64(),
                "tiered"
            );
        }
        Ok(report)
    }
}

/// Rows written since the last feature snapshot beyond which the background task snapshots
/// before tiering. Rows may move to the cold tier only once every feature has snapshotted them,
/// and the hot tier's size is the server's memory (sled keeps what it holds in RAM). Without
/// this, a fast ingest piles up rows between the periodic snapshots (`--checkpoint-secs`):
/// 30M rows, 6 GB, at 357K events/s (docs/benchmarks.md).
const SNAPSHOT_BACKLOG_ROWS: u64 = 2_000_000;

/// Runs [`Database::tier`] every `every` until aborted, snapshotting features first when many
/// rows wait on a snapshot.
pub fn spawn_background(db: Arc<Database>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            if db.rows_awaiting_snapshot() >= SNAPSHOT_BACKLOG_ROWS
                && let Err(e) = db.checkpoint(false).await
            {
                tracing::warn!("feature checkpoint before tiering failed: {e}");
            }
            if let Err(e) = db.tier(false).await {
                tracing::warn!("tiering failed: {e}");
            }
        }
    })
}
