//! Feature benchmarks (issue #3), on `../shared/data/gen_transactions.py` data:
//!
//! - `ingest_5_features`: durable COPY of 1M events into a table with the five sliding
//!   features (1h max by card, 1d count by card, 30d distinct ip by user, 1h avg by
//!   (card, merchant), 10-minute session count by card), all maintained before CommandComplete.
//! - `backfill`: `CREATE FEATURE` (1h max amt by card) over N stored events
//!   (ASOFDB_BENCH_BACKFILL_ROWS, default 10M: ten COPYs of the 1M file).
//! - `point_read`: one key's value at the watermark, in process (`LiveFeature::read`), on a
//!   feature over 1M events; `card_ml_1d` holds the ML aggregates of issue #26
//!   (`last_k(amt, 10)`, `approx_percentile(amt, 0.9)`, `decayed_sum(amt, '1 hour')`, 1 day).
//! - `memory_1m_keys`: the five features over 1M distinct keys (one event each); prints the
//!   process RSS growth and the state size `asofdb.feature_state` reports.
//!
//! Run: `cargo bench --bench features`.

mod common;

use std::time::{Duration, Instant};

use common::{TX_COLUMNS, connect, copy, start, transactions_csv};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::scalar::ScalarValue;

const FEATURES: [&str; 5] = [
    "CREATE FEATURE card_max_1h AS SELECT cc_num, max(amt) AS max_amt FROM tx GROUP BY cc_num \
     WINDOW SLIDING INTERVAL '1 hour'",
    "CREATE FEATURE card_count_1d AS SELECT cc_num, count(*) AS n FROM tx GROUP BY cc_num \
     WINDOW SLIDING INTERVAL '1 day'",
    "CREATE FEATURE user_ips_30d AS SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id \
     WINDOW SLIDING INTERVAL '30 days'",
    "CREATE FEATURE card_merchant_avg_1h AS SELECT cc_num, merchant, avg(amt) AS avg_amt FROM tx \
     GROUP BY cc_num, merchant WINDOW SLIDING INTERVAL '1 hour'",
    "CREATE FEATURE card_session_10m AS SELECT cc_num, count(*) AS n FROM tx GROUP BY cc_num \
     WINDOW SESSION GAP INTERVAL '10 minutes'",
];

fn create_table_sql() -> String {
    format!("DROP TABLE IF EXISTS tx CASCADE; CREATE TABLE tx ({TX_COLUMNS}) WITH (event_time = 'ts')")
}

fn ingest_5_features(c: &mut Criterion) {
    let bench = start();
    let rows = 1_000_000usize;
    let csv = transactions_csv(rows);
    let mut group = c.benchmark_group("ingest_5_features");
    group.sample_size(10).measurement_time(Duration::from_secs(30)).throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::from_parameter(rows), |b| {
        b.to_async(&bench.rt).iter_custom(|iters| {
            let (conn, csv) = (bench.conn.clone(), csv.clone());
            async move {
                let client = connect(&conn).await;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    client.batch_execute(&create_table_sql()).await.unwrap();
                    for feature in FEATURES {
                        client.batch_execute(feature).await.unwrap();
                    }
                    let start = Instant::now();
                    assert_eq!(copy(&client, "tx", &csv).await, rows as u64);
                    total += start.elapsed();
                }
                total
            }
        });
    });
    group.finish();
}

fn backfill(c: &mut Criterion) {
    let bench = start();
    let rows: usize =
        std::env::var("ASOFDB_BENCH_BACKFILL_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let csv = transactions_csv(1_000_000);
    let client = bench.rt.block_on(connect(&bench.conn));
    bench.rt.block_on(async {
        client.batch_execute(&create_table_sql()).await.unwrap();
        for _ in 0..rows / 1_000_000 {
            copy(&client, "tx", &csv).await;
        }
    });
    let mut group = c.benchmark_group("backfill");
    group.sample_size(10).throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::from_parameter(rows), |b| {
        b.to_async(&bench.rt).iter_custom(|iters| {
            let client = &client;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    client.batch_execute(FEATURES[0]).await.unwrap();
                    total += start.elapsed();
                    client.batch_execute("DROP FEATURE card_max_1h").await.unwrap();
                }
                total
            }
        });
    });
    group.finish();
}

fn point_read(c: &mut Criterion) {
    let bench = start();
    let client = bench.rt.block_on(connect(&bench.conn));
    let keys: Vec<i64> = bench.rt.block_on(async {
        client.batch_execute(&create_table_sql()).await.unwrap();
        copy(&client, "tx", &transactions_csv(1_000_000)).await;
        for feature in FEATURES {
            client.batch_execute(feature).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE FEATURE card_ml_1d AS SELECT cc_num, last_k(amt, 10) AS last10, \
                 approx_percentile(amt, 0.9) AS p90, decayed_sum(amt, INTERVAL '1 hour') AS decayed \
                 FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day'",
            )
            .await
            .unwrap();
        let rows = client.query("SELECT DISTINCT cc_num FROM tx ORDER BY cc_num LIMIT 1000", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    });
    let mut group = c.benchmark_group("point_read");
    for name in ["card_max_1h", "card_count_1d", "card_session_10m", "card_ml_1d"] {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                let batch = bench.db.read_feature(name, Some(&[ScalarValue::Int64(Some(keys[i]))])).unwrap();
                assert_eq!(batch.num_rows(), 1);
            })
        });
    }
    group.finish();
}

fn memory_1m_keys(c: &mut Criterion) {
    let bench = start();
    let client = bench.rt.block_on(connect(&bench.conn));
    let load = format!(
        "{}; INSERT INTO tx SELECT i AS tid, i AS cc_num, i AS user_id, 'merchant_' || CAST(i % 200 AS TEXT), CAST(i % 1000 AS DOUBLE PRECISION), \
         'ok', '10.0.' || CAST(i % 250 AS TEXT) || '.1', to_timestamp_seconds(1704067200 + i % 2592000) \
         FROM generate_series(1, 1000000) AS g(i)",
        create_table_sql()
    );
    bench.rt.block_on(client.batch_execute(&load)).unwrap();
    let before = rss_bytes();
    let started = Instant::now();
    for feature in FEATURES {
        bench.rt.block_on(client.batch_execute(feature)).unwrap();
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    let rows = bench
        .rt
        .block_on(client.query("SELECT name, keys, events, state_bytes FROM asofdb.feature_state ORDER BY name", &[]))
        .unwrap();
    eprintln!("memory_1m_keys: 5 features backfilled over 1M keys in {elapsed:.2?}");
    eprintln!("memory_1m_keys: process RSS grew by {} MiB", (after - before) / (1 << 20));
    for row in rows {
        let (name, keys, events, bytes): (String, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        eprintln!("memory_1m_keys: {name}: {keys} keys, {events} events, {} MiB of state", bytes / (1 << 20));
    }
    // Reading every key of one feature (a scan of the state) is the criterion measurement.
    let mut group = c.benchmark_group("memory_1m_keys");
    group.sample_size(10);
    group.bench_function("read_all_keys_card_max_1h", |b| {
        b.to_async(&bench.rt).iter(|| async {
            let row = client.query_one("SELECT count(*) FROM card_max_1h", &[]).await.unwrap();
            assert_eq!(row.get::<_, i64>(0), 1_000_000);
        })
    });
    group.finish();
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

criterion_group!(benches, point_read, ingest_5_features, backfill, memory_1m_keys);
criterion_main!(benches);
