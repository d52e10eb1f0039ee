//! The metrics of one database (spec section 7, `GET /metrics`): the histograms and counters
//! the stages record as work happens, in a registry of the database's own, and the families
//! built at scrape time from what the database holds (`execute::scrape`), in Prometheus' text
//! format.
//!
//! The registry is per database, not process-wide, so two databases in one process (tests)
//! never count each other's work.

use std::collections::HashMap;

use parking_lot::Mutex;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Histogram, HistogramOpts, IntGauge, Registry, TextEncoder};

/// What the stages record as it happens. Each handle is cheap to observe (atomics).
pub struct Metrics {
    registry: Registry,
    /// Client connections open on the PostgreSQL port.
    pub connections: IntGauge,
    /// Statements over the PostgreSQL protocol, from arrival until the response is ready to
    /// send (a result's rows are streamed after).
    pub statement_seconds: Histogram,
    /// Point reads of features: the prepared fast path, and each `POST /v1/features`.
    pub point_read_seconds: Histogram,
    /// Commits made durable by one flush of the hot tier (group commit).
    pub commit_group_size: Histogram,
    /// One flush of the hot tier.
    pub flush_seconds: Histogram,
    /// One CHECKPOINT (or the periodic feature snapshot).
    pub checkpoint_seconds: Histogram,
    /// One pass of the mover from the hot to the cold tier.
    pub tiering_seconds: Histogram,
    /// Rows committed per table id since the server started.
    rows_ingested: Mutex<HashMap<u64, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `count` bucket bounds from `first` on, each twice the one before.
fn doubling_buckets(first: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| first * f64::powi(2.0, i as i32)).collect()
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("a valid histogram definition");
            registry.register(Box::new(histogram.clone())).expect("each metric is registered once");
            histogram
        };
        let statement_seconds = histogram(
            "asofdb_statement_duration_seconds",
            "Statements over the PostgreSQL protocol, from arrival until the response is ready to send.",
            doubling_buckets(0.00005, 20),
        );
        let point_read_seconds = histogram(
            "asofdb_point_read_duration_seconds",
            "Point reads of features: prepared point reads, and each POST /v1/features.",
            doubling_buckets(0.00001, 20),
        );
        let commit_group_size = histogram(
            "asofdb_commit_group_size",
            "Commits made durable by one flush of the hot tier (group commit).",
            // Up to the committer's largest group (4096).
            doubling_buckets(1.0, 13),
        );
        let flush_seconds =
            histogram("asofdb_flush_duration_seconds", "One flush of the hot tier.", doubling_buckets(0.00005, 18));
        let checkpoint_seconds = histogram(
            "asofdb_checkpoint_duration_seconds",
            "One CHECKPOINT or periodic snapshot of the features' state.",
            doubling_buckets(0.001, 18),
        );
        let tiering_seconds = histogram(
            "asofdb_tiering_duration_seconds",
            "One pass of the mover from the hot to the cold tier.",
            doubling_buckets(0.001, 18),
        );
        let connections = IntGauge::new("asofdb_connections", "Client connections open on the PostgreSQL port.")
            .expect("a valid gauge definition");
        registry.register(Box::new(connections.clone())).expect("each metric is registered once");
        Self {
            registry,
            connections,
            statement_seconds,
            point_read_seconds,
            commit_group_size,
            flush_seconds,
            checkpoint_seconds,
            tiering_seconds,
            rows_ingested: Mutex::default(),
        }
    }

    /// Counts rows committed to a table.
    pub fn ingested(&self, table_id: u64, rows: u64) {
        if rows > 0 {
            *self.rows_ingested.lock().entry(table_id).or_default() += rows;
        }
    }

    /// Rows committed to the table since the server started.
    pub fn rows_ingested(&self, table_id: u64) -> u64 {
        self.rows_ingested.lock().get(&table_id).copied().unwrap_or(0)
    }

    /// The families recorded as work happened, with `scraped` (built from the database's
    /// contents now), in Prometheus' text format.
    pub fn render(&self, scraped: Vec<MetricFamily>) -> String {
        let mut families = self.registry.gather();
        families.extend(scraped.into_iter().filter(|f| !f.get_metric().is_empty()));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut out = Vec::new();
        // Encoding into memory fails only on a malformed family, which `family` cannot build.
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!("encoding metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Whether a family built at scrape time is a counter or a gauge.
#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A family of values known at scrape time: one sample per label values.
pub fn family(name: &str, help: &str, kind: Kind, labels: &[&str], samples: Vec<(Vec<String>, f64)>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
    });
    let metrics = samples
        .into_iter()
        .map(|(values, value)| {
            let mut metric = Metric::default();
            let pairs = labels
                .iter()
                .zip(values)
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_string());
                    pair.set_value(value);
                    pair
                })
                .collect();
            metric.set_label(pairs);
            match kind {
                Kind::Counter => {
                    let mut counter = Counter::default();
                    counter.set_value(value);
                    metric.set_counter(counter);
                }
                Kind::Gauge => {
                    let mut gauge = Gauge::default();
                    gauge.set_value(value);
                    metric.set_gauge(gauge);
                }
            }
            metric
        })
        .collect();
    family.set_metric(metrics);
    family
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_and_scraped_families() {
        let metrics = Metrics::new();
        metrics.commit_group_size.observe(3.0);
        metrics.ingested(7, 5);
        metrics.ingested(7, 2);
        let scraped = vec![
            family(
                "asofdb_table_rows_ingested_total",
                "Rows.",
                Kind::Counter,
                &["table"],
                vec![(vec!["tx".into()], metrics.rows_ingested(7) as f64)],
            ),
            family("asofdb_source_lag", "Lag.", Kind::Gauge, &["source"], vec![]),
        ];
        let text = metrics.render(scraped);
        assert!(text.contains("# TYPE asofdb_table_rows_ingested_total counter"), "{text}");
        assert!(text.contains("asofdb_table_rows_ingested_total{table=\"tx\"} 7"), "{text}");
        assert!(text.contains("asofdb_commit_group_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(text.contains("asofdb_commit_group_size_count 1"), "{text}");
        assert!(text.contains("asofdb_connections 0"), "{text}");
        // A family without samples is left out, not printed with a bare header.
        assert!(!text.contains("asofdb_source_lag"), "{text}");
    }
}
