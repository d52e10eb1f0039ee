//! Crash loop: writers (INSERT and COPY) and readers run against the real binary while it is
//! `kill -9`ed at random moments and restarted, again and again. After every restart each
//! acknowledged row is present exactly once, each unacknowledged statement is present whole or
//! not at all, and every feature equals a recomputation from the table.
//!
//! 20 kills by default. `ASOFDB_CRASH_KILLS=50 ASOFDB_CRASH_TIERING=1` runs the longer variant
//! with tiering on (rows move to the cold tier between kills); docs/reliability.md has its
//! last figures.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BinaryServer, connect, try_connect};
use futures::SinkExt;

/// A write statement's rows: ids `first..first + rows`.
#[derive(Clone, Copy, Debug)]
struct Statement {
    first: i64,
    rows: i64,
}

/// What the writers know: statements acknowledged, and statements sent but not acknowledged.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<Statement>,
    uncertain: Vec<Statement>,
}

/// Deterministic pseudo-random numbers (xorshift), so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The event of row `id`: key, value and event time are functions of the id, so any row can be
/// checked on its own. Event times spread over ten days, out of order.
fn row_of(id: i64) -> (i64, i64, String) {
    let key = id % 17;
    let value = id % 1000;
    let minute = (id * 7919) % (10 * 24 * 60);
    let ts = chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
        + chrono::Duration::minutes(minute);
    (key, value, ts.format("%Y-%m-%d %H:%M:%S").to_string())
}

const SCHEMA: &str = "
    CREATE TABLE ev (id BIGINT NOT NULL, k BIGINT, v BIGINT, ts TIMESTAMP NOT NULL)
      WITH (event_time = 'ts', hot_retention = '2 days');
    CREATE FEATURE ev_total AS SELECT k, count(*) AS n, sum(v) AS total FROM ev GROUP BY k;
    CREATE FEATURE ev_1h AS SELECT k, count(*) AS n, max(v) AS top FROM ev GROUP BY k
      WINDOW SLIDING INTERVAL '1 hour';";

/// How a writer sends its statements.
#[derive(Clone, Copy)]
enum Writer {
    /// Multi-row INSERTs of 1 to 20 rows.
    Insert,
    /// COPY FROM STDIN (csv) of 50 to 449 rows.
    Copy,
}

/// Writes statements of fresh ids until stopped or the server dies. Each statement is logged
/// as uncertain before it is sent and settled when acknowledged.
async fn writer(
    kind: Writer,
    conn: String,
    next_id: Arc<AtomicI64>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    // The kill may come before the connection does.
    let Some(client) = try_connect(&conn).await else { return Default::default() };
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let rows = match kind {
            Writer::Insert => 1 + rng.below(20) as i64,
            Writer::Copy => 50 + rng.below(400) as i64,
        };
        let first = next_id.fetch_add(rows, Ordering::SeqCst);
        let statement = Statement { first, rows };
        ledger.lock().unwrap().uncertain.push(statement);
        let outcome = match kind {
            Writer::Insert => {
                let values: Vec<String> = (first..first + rows)
                    .map(|id| {
                        let (k, v, ts) = row_of(id);
                        format!("({id}, {k}, {v}, '{ts}')")
                    })
                    .collect();
                client.batch_execute(&format!("INSERT INTO ev VALUES {}", values.join(","))).await.map(|()| rows as u64)
            }
            Writer::Copy => {
                let data: String = (first..first + rows)
                    .map(|id| {
                        let (k, v, ts) = row_of(id);
                        format!("{id},{k},{v},{ts}\n")
                    })
                    .collect();
                async {
                    let sink = client.copy_in("COPY ev FROM STDIN WITH (FORMAT csv)").await?;
                    futures::pin_mut!(sink);
                    sink.send(bytes::Bytes::from(data)).await?;
                    sink.finish().await
                }
                .await
            }
        };
        match outcome {
            Ok(n) => {
                assert_eq!(n as i64, rows);
                settle(&ledger, statement);
            }
            Err(_) => return, // the server died; the statement stays uncertain
        }
    }
}

async fn reader(conn: String, stop: Arc<AtomicBool>) -> u64 {
    // The kill may come before the connection does.
    let Some(client) = try_connect(&conn).await else { return Default::default() };
    let Ok(point) = client.prepare("SELECT n, total FROM ev_total WHERE k = $1").await else { return 0 };
    let mut reads = 0;
    let mut k = 0i64;
    while !stop.load(Ordering::Relaxed) {
        k = (k + 1) % 17;
        if client.query(&point, &[&k]).await.is_err() || client.simple_query("SELECT count(*) FROM ev").await.is_err() {
            break;
        }
        reads += 1;
    }
    reads
}

/// `ev_total` and `ev_1h` (see `SCHEMA`) equal a recomputation from `ev`; `when` names the
/// moment in the failure message.
pub(crate) async fn assert_features_recomputed(client: &tokio_postgres::Client, when: &str) {
    let feature = triples(client, "SELECT k, n, total FROM ev_total ORDER BY k").await;
    let recomputed = triples(client, "SELECT k, count(*), CAST(sum(v) AS BIGINT) FROM ev GROUP BY k ORDER BY k").await;
    assert_eq!(feature, recomputed, "{when}: ev_total differs from its recomputation");
    let feature = triples(client, "SELECT k, n, top FROM ev_1h ORDER BY k").await;
    // Sliding hour at the watermark W (the latest event time): W - 1h < ts <= W.
    let recomputed = triples(
        client,
        "SELECT k, count(*) FILTER (WHERE ts > w - INTERVAL '1 hour'), max(v) FILTER (WHERE ts > w - INTERVAL '1 hour')
           FROM ev, (SELECT max(ts) AS w FROM ev) GROUP BY k ORDER BY k",
    )
    .await;
    assert_eq!(feature, recomputed, "{when}: ev_1h differs from its recomputation");
}

/// Rows of three BIGINT columns, the third nullable.
async fn triples(client: &tokio_postgres::Client, sql: &str) -> Vec<(i64, i64, Option<i64>)> {
    client.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

fn settle(ledger: &Mutex<Ledger>, statement: Statement) {
    let mut ledger = ledger.lock().unwrap();
    ledger.uncertain.retain(|s| s.first != statement.first);
    ledger.acknowledged.push(statement);
}

/// Checks the restarted server against the ledger; returns the ids now present (uncertain
/// statements that survived become acknowledged, those that did not are forgotten).
async fn verify(server: &BinaryServer, ledger: &Mutex<Ledger>, round: usize) {
    let client = connect(&server.conn_string()).await;
    let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
    for row in client.query("SELECT id, count(*) FROM ev GROUP BY id", &[]).await.unwrap() {
        counts.insert(row.get(0), row.get(1));
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(duplicated.is_empty(), "round {round}: rows present more than once: {duplicated:?}");

    {
        let mut ledger = ledger.lock().unwrap();
        for s in &ledger.acknowledged {
            let present = (s.first..s.first + s.rows).filter(|id| counts.contains_key(id)).count() as i64;
            assert_eq!(present, s.rows, "round {round}: acknowledged statement {s:?} lost rows");
        }
        let uncertain = std::mem::take(&mut ledger.uncertain);
        let mut explained = ledger.acknowledged.iter().map(|s| s.rows).sum::<i64>();
        for s in uncertain {
            let present = (s.first..s.first + s.rows).filter(|id| counts.contains_key(id)).count() as i64;
            assert!(
                present == 0 || present == s.rows,
                "round {round}: statement {s:?} is half-present ({present} rows)"
            );
            if present == s.rows {
                explained += s.rows;
                ledger.acknowledged.push(s);
            }
        }
        assert_eq!(counts.len() as i64, explained, "round {round}: rows no statement wrote");
    }

    // Every row is what its id says.
    let wrong: i64 =
        client.query_one("SELECT count(*) FROM ev WHERE k <> id % 17 OR v <> id % 1000", &[]).await.unwrap().get(0);
    assert_eq!(wrong, 0, "round {round}: rows with wrong values");

    assert_features_recomputed(&client, &format!("round {round}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_loses_nothing_acknowledged() {
    let kills: usize = std::env::var("ASOFDB_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let tiering = std::env::var("ASOFDB_CRASH_TIERING").is_ok_and(|v| v == "1");
    let seed: u64 = std::env::var("ASOFDB_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    // Snapshots every second, so kills land before, during and after them; tiering every
    // second in the long variant.
    let args: Vec<&str> = if tiering {
        vec!["--checkpoint-secs", "1", "--tier-secs", "1"]
    } else {
        vec!["--checkpoint-secs", "1", "--tier-secs", "0"]
    };

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let next_id = Arc::new(AtomicI64::new(1));
    let started = Instant::now();
    let mut reads = 0;
    {
        let server = BinaryServer::start_with_args(dir.path(), &args);
        connect(&server.conn_string()).await.batch_execute(SCHEMA).await.unwrap();
        server.kill9();
    }
    for round in 0..kills {
        let server = BinaryServer::start_with_args(dir.path(), &args);
        verify(&server, &ledger, round).await;

        let stop = Arc::new(AtomicBool::new(false));
        let conn = server.conn_string();
        let mut writers = Vec::new();
        for w in 0..2 {
            writers.push(tokio::spawn(writer(
                Writer::Insert,
                conn.clone(),
                next_id.clone(),
                ledger.clone(),
                stop.clone(),
                rng.next() + w,
            )));
        }
        writers.push(tokio::spawn(writer(
            Writer::Copy,
            conn.clone(),
            next_id.clone(),
            ledger.clone(),
            stop.clone(),
            rng.next(),
        )));
        let read = tokio::spawn(reader(conn.clone(), stop.clone()));
        if tiering && round % 5 == 4 {
            let _ = connect(&conn).await.batch_execute("CHECKPOINT").await;
        }

        tokio::time::sleep(Duration::from_millis(100 + rng.below(700))).await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        reads += read.await.unwrap();
    }
    let server = BinaryServer::start_with_args(dir.path(), &args);
    verify(&server, &ledger, kills).await;
    let rows: i64 = ledger.lock().unwrap().acknowledged.iter().map(|s| s.rows).sum();
    eprintln!(
        "crash loop: {kills} kills, {rows} rows acknowledged or recovered whole, {reads} read rounds, {:.1} s (seed {seed}, tiering {tiering})",
        started.elapsed().as_secs_f64()
    );
    assert!(rows > 0, "the writers wrote nothing");
}
