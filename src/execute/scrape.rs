//! `GET /metrics` (spec section 7): what the stages recorded as work happened, with the values
//! read from the database at scrape time: each feature's freshness and state size, each
//! table's rows ingested and its rows and bytes per tier, each source's lag and bad messages.

use super::database::Database;
use crate::error::Result;
use crate::metrics::{Kind, family};

impl Database {
    /// Every metric, in Prometheus' text format.
    pub fn metrics_text(&self) -> Result<String> {
        let now = chrono::Utc::now().timestamp_micros();
        let (mut freshness, mut state_bytes) = (vec![], vec![]);
        for feature in self.features.all() {
            let name = vec![feature.compiled().def.name.clone()];
            let idle = now.saturating_sub(feature.applied_at()).max(0) as f64 / 1e6;
            freshness.push((name.clone(), idle));
            state_bytes.push((name, feature.size().2 as f64));
        }
        let store = self.catalog.store();
        let (mut ingested, mut rows, mut bytes) = (vec![], vec![], vec![]);
        for name in self.catalog.table_names() {
            let Some(table) = self.catalog.table(&name) else { continue };
            ingested.push((vec![name.clone()], store.metrics.rows_ingested(table.id) as f64));
            let (hot, cold) = store.tier_usage(table.id)?;
            for (tier, usage) in [("hot", hot), ("cold", cold)] {
                rows.push((vec![name.clone(), tier.to_string()], usage.rows as f64));
                bytes.push((vec![name.clone(), tier.to_string()], usage.bytes as f64));
            }
        }
        let (mut lag, mut bad, mut source_rows) = (vec![], vec![], vec![]);
        for source in self.catalog.sources() {
            let name = vec![source.def.name.clone()];
            let report = source.report.lock().clone();
            if let Some(behind) = report.lag {
                lag.push((name.clone(), behind as f64));
            }
            bad.push((name.clone(), report.position.bad_messages as f64));
            source_rows.push((name, report.position.rows_ingested as f64));
        }
        let scraped = vec![
            family(
                "asofdb_feature_freshness_seconds",
                "Seconds since the last write applied to the feature (or since its state was built or loaded).",
                Kind::Gauge,
                &["feature"],
                freshness,
            ),
            family(
                "asofdb_feature_state_bytes",
                "Approximate bytes of the feature's in-memory state.",
                Kind::Gauge,
                &["feature"],
                state_bytes,
            ),
            family(
                "asofdb_table_rows_ingested_total",
                "Rows committed to the table since the server started.",
                Kind::Counter,
                &["table"],
                ingested,
            ),
            family("asofdb_table_rows", "Rows stored, per tier.", Kind::Gauge, &["table", "tier"], rows),
            family("asofdb_table_bytes", "Bytes stored, per tier.", Kind::Gauge, &["table", "tier"], bytes),
            family(
                "asofdb_source_lag",
                "Kafka: messages behind the high-water marks; PostgreSQL: bytes of WAL behind the upstream.",
                Kind::Gauge,
                &["source"],
                lag,
            ),
            family(
                "asofdb_source_bad_messages_total",
                "Messages the source set aside in asofdb.source_errors since it was created.",
                Kind::Counter,
                &["source"],
                bad,
            ),
            family(
                "asofdb_source_rows_ingested_total",
                "Rows the source committed since it was created.",
                Kind::Counter,
                &["source"],
                source_rows,
            ),
        ];
        Ok(self.metrics().render(scraped))
    }
}
