//! Soak: 64 connections of mixed work (INSERTs, COPYs, feature point reads, aggregates and
//! ASOF joins) against the real binary for a bounded time, sampling its RSS every second.
//! Every statement must succeed, and at the end every acknowledged row is there once.
//!
//! 20 seconds in the suite; `ASOFDB_SOAK_SECS=600 cargo test --test it soak:: --
//! --nocapture` is the 10-minute run whose figures are in docs/reliability.md (RSS is printed,
//! not asserted: memory figures are measured, not thresholds).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{BinaryServer, connect};
use futures::SinkExt;

const CONNECTIONS: usize = 64;
const KEYS: i64 = 500;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The event of row `id`: key, amount and event time. Time advances with the id, four events
/// a second, as in live ingest, and each event is up to half an hour late, so rows arrive out
/// of order and the hot tier stays bounded by `hot_retention`.
fn event(id: i64) -> (i64, String, String) {
    let start = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap();
    let late = (id * 7919) % 1800;
    let ts = start + chrono::Duration::seconds(id / 4 + 1800 - late);
    (id % KEYS, format!("{}.5", id % 100), ts.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// What one client does, by its number: a mix of writers and readers.
async fn client_loop(
    n: usize,
    conn: String,
    next_id: Arc<AtomicI64>,
    written: Arc<AtomicI64>,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let client = connect(&conn).await;
    let point = client.prepare("SELECT n, top FROM ev_1h WHERE k = $1").await.unwrap();
    let mut round = 0i64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let k = (n as i64 * 31 + round) % KEYS;
        match n % 8 {
            // INSERT of a few rows.
            0 | 1 => {
                let first = next_id.fetch_add(5, Ordering::SeqCst);
                let values: Vec<String> = (first..first + 5)
                    .map(|id| {
                        let (k, amt, ts) = event(id);
                        format!("({id}, {k}, {amt}, '{ts}')")
                    })
                    .collect();
                client.batch_execute(&format!("INSERT INTO ev VALUES {}", values.join(","))).await.unwrap();
                written.fetch_add(5, Ordering::SeqCst);
            }
            // COPY of 200 rows.
            2 => {
                let first = next_id.fetch_add(200, Ordering::SeqCst);
                let data: String = (first..first + 200)
                    .map(|id| {
                        let (k, amt, ts) = event(id);
                        format!("{id},{k},{amt},{ts}\n")
                    })
                    .collect();
                let sink = client.copy_in("COPY ev FROM STDIN WITH (FORMAT csv)").await.unwrap();
                futures::pin_mut!(sink);
                sink.send(bytes::Bytes::from(data)).await.unwrap();
                assert_eq!(sink.finish().await.unwrap(), 200);
                written.fetch_add(200, Ordering::SeqCst);
            }
            // An ASOF join building a small training set.
            3 => {
                let rows = client
                    .query(
                        "SELECT s.k, f.n FROM (SELECT k, ts FROM ev WHERE k = $1 ORDER BY ts LIMIT 20) s
                         ASOF LEFT JOIN ev_1h f ON s.k = f.k AND s.ts > f.ts",
                        &[&k],
                    )
                    .await
                    .unwrap();
                assert!(rows.len() <= 20);
            }
            // An aggregate over the table.
            4 => {
                client.query_one("SELECT count(*), max(amt) FROM ev WHERE k = $1", &[&k]).await.unwrap();
            }
            // Feature point reads, the serving path.
            _ => {
                for i in 0..10 {
                    client.query(&point, &[&((k + i) % KEYS)]).await.unwrap();
                }
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_of_mixed_work() {
    let seconds: u64 = std::env::var("ASOFDB_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "5", "--tier-secs", "5"]);
    let setup = connect(&server.conn_string()).await;
    setup
        .batch_execute(
            "CREATE TABLE ev (id BIGINT NOT NULL, k BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL)
               WITH (event_time = 'ts', hot_retention = '6 hours');
             CREATE FEATURE ev_1h AS SELECT k, count(*) AS n, max(amt) AS top FROM ev GROUP BY k
               WINDOW SLIDING INTERVAL '1 hour';",
        )
        .await
        .unwrap();

    let next_id = Arc::new(AtomicI64::new(1));
    let written = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|n| {
            tokio::spawn(client_loop(
                n,
                server.conn_string(),
                next_id.clone(),
                written.clone(),
                done.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let pid = server.child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_mib(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client hit an unexpected error");
    }

    let rows: i64 = setup.query_one("SELECT count(*) FROM ev", &[]).await.unwrap().get(0);
    let distinct: i64 = setup.query_one("SELECT count(DISTINCT id) FROM ev", &[]).await.unwrap().get(0);
    assert_eq!(rows, written.load(Ordering::SeqCst), "every acknowledged row, once");
    assert_eq!(distinct, rows);

    // RSS by tenth of the run: the first tenth is warm-up.
    let tenth = samples.len().div_ceil(10).max(1);
    let by_tenth: Vec<String> =
        samples.chunks(tenth).map(|c| format!("{:.0}", c.iter().cloned().fold(0.0, f64::max))).collect();
    eprintln!(
        "soak: {CONNECTIONS} connections, {seconds} s, {} client rounds, {rows} rows written; peak RSS MiB per tenth of the run: {}",
        done.load(Ordering::Relaxed),
        by_tenth.join(", ")
    );
}
