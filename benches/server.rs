//! Server benchmarks through the public wire protocol (in-process server, tokio-postgres):
//!
//! - `copy_ingest`: COPY of generated transactions (durable: each COPY is flushed).
//! - `scan_count_sum`: `SELECT count(*), sum(amt)` over N stored rows.
//! - `insert_16_connections`: single-row INSERTs from 16 concurrent connections (group commit).
//!
//! Data comes from `../shared/data/gen_transactions.py`, cached under `target/bench-data`.
//! Run: `cargo bench --bench server` (sizes via ASOFDB_BENCH_SCAN_ROWS, default 10M).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TX_COLUMNS, connect, copy, start, transactions_csv};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn copy_ingest(c: &mut Criterion) {
    let bench = start();
    let mut group = c.benchmark_group("copy_ingest");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    for rows in [100_000usize, 1_000_000] {
        let csv = transactions_csv(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::from_parameter(rows), &csv, |b, csv| {
            b.to_async(&bench.rt).iter_custom(|iters| {
                let conn = bench.conn.clone();
                let csv = csv.clone();
                async move {
                    let client = connect(&conn).await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        client
                            .batch_execute(&format!(
                                "DROP TABLE IF EXISTS tx; CREATE TABLE tx ({TX_COLUMNS}) WITH (event_time = 'ts')"
                            ))
                            .await
                            .unwrap();
                        let start = Instant::now();
                        assert_eq!(copy(&client, "tx", &csv).await, rows as u64);
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
    }
    group.finish();
}

fn scan_count_sum(c: &mut Criterion) {
    let bench = start();
    let rows: usize = std::env::var("ASOFDB_BENCH_SCAN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let csv = transactions_csv(1_000_000);
    let client = bench.rt.block_on(connect(&bench.conn));
    bench.rt.block_on(async {
        client.batch_execute(&format!("CREATE TABLE scan ({TX_COLUMNS}) WITH (event_time = 'ts')")).await.unwrap();
        for _ in 0..rows / 1_000_000 {
            copy(&client, "scan", &csv).await;
        }
    });
    let mut group = c.benchmark_group("scan_count_sum");
    group.sample_size(10).throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::from_parameter(rows), |b| {
        b.to_async(&bench.rt).iter(|| async {
            let row = client.query_one("SELECT count(*), sum(amt) FROM scan", &[]).await.unwrap();
            assert_eq!(row.get::<_, i64>(0) as usize, rows);
        });
    });
    group.finish();
}

fn insert_16_connections(c: &mut Criterion) {
    const CONNECTIONS: usize = 16;
    const PER_CONNECTION: usize = 100;
    let bench = start();
    let clients: Vec<Arc<tokio_postgres::Client>> = bench.rt.block_on(async {
        let first = connect(&bench.conn).await;
        first.batch_execute(&format!("CREATE TABLE ins ({TX_COLUMNS}) WITH (event_time = 'ts')")).await.unwrap();
        let mut clients = vec![Arc::new(first)];
        for _ in 1..CONNECTIONS {
            clients.push(Arc::new(connect(&bench.conn).await));
        }
        clients
    });
    let mut group = c.benchmark_group("insert_16_connections");
    group.sample_size(10).throughput(Throughput::Elements((CONNECTIONS * PER_CONNECTION) as u64));
    group.bench_function("single_row_insert", |b| {
        b.to_async(&bench.rt).iter(|| {
            let clients = clients.clone();
            async move {
                let tasks: Vec<_> = clients
                    .into_iter()
                    .enumerate()
                    .map(|(c, client)| {
                        tokio::spawn(async move {
                            let stmt = client
                                .prepare("INSERT INTO ins VALUES ($1, $2, 1, 'm', 9.5, 'ok', '10.0.0.1', '2024-01-01 00:00:00')")
                                .await
                                .unwrap();
                            for i in 0..PER_CONNECTION {
                                client.execute(&stmt, &[&((c * PER_CONNECTION + i) as i64), &(c as i64)]).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, copy_ingest, scan_count_sum, insert_16_connections);
criterion_main!(benches);
