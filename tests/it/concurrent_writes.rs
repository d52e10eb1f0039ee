//! Many sessions writing one table at once while its features are read and CHECKPOINT runs
//! (issue #24): group commit puts several sessions' statements in one batch, and prepared
//! single-row INSERTs run on the connection's thread. Every acknowledged row must be stored
//! once, a feature read must never go backwards, and after the run (and after a restart) every
//! feature equals a recomputation from the table.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use crate::crash_loop::assert_features_recomputed;
use common::{BinaryServer, connect};

/// The crash loop's table and features (`assert_features_recomputed` checks them).
pub(crate) const SCHEMA: &str = "
    CREATE TABLE ev (id BIGINT NOT NULL, k BIGINT, v BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
    CREATE FEATURE ev_total AS SELECT k, count(*) AS n, sum(v) AS total FROM ev GROUP BY k;
    CREATE FEATURE ev_1h AS SELECT k, count(*) AS n, max(v) AS top FROM ev GROUP BY k
      WINDOW SLIDING INTERVAL '1 hour';";

const WRITERS: i64 = 8;
const STATEMENTS: i64 = 120;
const KEYS: i64 = 13;

/// The row of id `id`: its key, value and event time (spread over two hours and out of
/// order, so windows slide and late events arrive).
pub(crate) fn row(id: i64) -> (i64, i64, chrono::NaiveDateTime) {
    let base = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    (id % KEYS, id % 1000, base + chrono::Duration::seconds(id * 7919 % 7200))
}

/// One writer's statements: ids `first..` in prepared single-row INSERTs, with a three-row
/// transaction every fifth statement and a multi-row literal INSERT every seventh.
async fn write(client: tokio_postgres::Client, first: i64, acknowledged: Arc<AtomicI64>) {
    let insert = client.prepare("INSERT INTO ev VALUES ($1, $2, $3, $4)").await.unwrap();
    let mut id = first;
    for statement in 0..STATEMENTS {
        if statement % 5 == 4 {
            client.batch_execute("BEGIN").await.unwrap();
            for i in id..id + 3 {
                let (k, v, ts) = row(i);
                client.execute(&insert, &[&i, &k, &v, &ts]).await.unwrap();
            }
            client.batch_execute("COMMIT").await.unwrap();
            id += 3;
        } else if statement % 7 == 6 {
            let values: Vec<String> = (id..id + 4)
                .map(|i| {
                    let (k, v, ts) = row(i);
                    format!("({i}, {k}, {v}, '{ts}')")
                })
                .collect();
            client.batch_execute(&format!("INSERT INTO ev VALUES {}", values.join(", "))).await.unwrap();
            id += 4;
        } else {
            let (k, v, ts) = row(id);
            client.execute(&insert, &[&id, &k, &v, &ts]).await.unwrap();
            id += 1;
        }
        acknowledged.store(id - first, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_insert_while_features_are_read_and_checkpoints_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "0", "--tier-secs", "0"]);
    let admin = connect(&server.conn_string()).await;
    admin.batch_execute(SCHEMA).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicI64>> = (0..WRITERS).map(|_| Arc::new(AtomicI64::new(0))).collect();
    let mut writers = Vec::new();
    for (w, acknowledged) in counts.iter().enumerate() {
        let client = connect(&server.conn_string()).await;
        writers.push(tokio::spawn(write(client, 1 + w as i64 * 1_000_000, acknowledged.clone())));
    }
    // A reader: ev_total counts only grow, for every key, as rows are acknowledged.
    let reader = {
        let (client, done) = (connect(&server.conn_string()).await, done.clone());
        tokio::spawn(async move {
            let read = client.prepare("SELECT n FROM ev_total WHERE k = $1").await.unwrap();
            let mut seen = vec![0i64; KEYS as usize];
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                for k in 0..KEYS {
                    let n: i64 = client.query_opt(&read, &[&k]).await.unwrap().map_or(0, |r| r.get(0));
                    assert!(n >= seen[k as usize], "ev_total for key {k} went back from {} to {n}", seen[k as usize]);
                    seen[k as usize] = n;
                    reads += 1;
                }
            }
            reads
        })
    };
    let checkpointer = {
        let (client, done) = (connect(&server.conn_string()).await, done.clone());
        tokio::spawn(async move {
            let mut checkpoints = 0;
            while !done.load(Ordering::SeqCst) {
                client.batch_execute("CHECKPOINT").await.unwrap();
                checkpoints += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            checkpoints
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (reads, checkpoints) = (reader.await.unwrap(), checkpointer.await.unwrap());
    assert!(reads > 0 && checkpoints > 0, "reads {reads}, checkpoints {checkpoints}");

    let acknowledged: i64 = counts.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    let row = admin.query_one("SELECT count(*), count(DISTINCT id) FROM ev", &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (acknowledged, acknowledged));
    let wrong: i64 =
        admin.query_one("SELECT count(*) FROM ev WHERE k <> id % 13 OR v <> id % 1000", &[]).await.unwrap().get(0);
    assert_eq!(wrong, 0, "rows with wrong values");
    assert_features_recomputed(&admin, "after the run").await;

    // The snapshots taken meanwhile and the writes after them rebuild the same features,
    // after a kill -9 that gives no chance to write new ones.
    drop(admin);
    server.kill9();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    let count: i64 = client.query_one("SELECT count(*) FROM ev", &[]).await.unwrap().get(0);
    assert_eq!(count, acknowledged);
    assert_features_recomputed(&client, "after a restart").await;
    drop(client);
    assert!(server.terminate().success());
}
