//! Hot-tier compaction under fire (issue #34): 16 sessions insert single rows while merges
//! run (the background pass every second, and CHECKPOINT from another session), and the
//! server is killed with `kill -9` at a random moment, round after round. After each restart
//! every acknowledged row is stored exactly once and the features equal a recomputation; at
//! the end the table's rows sit in a few merged values.

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::concurrent_writes::{SCHEMA, row};
use crate::crash_loop::assert_features_recomputed;
use common::{BinaryServer, connect};

const WRITERS: i64 = 16;

/// Ids a writer has had acknowledged, and the one it may be waiting for.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<i64>,
    maybe: Vec<i64>,
}

/// Single-row INSERTs of ids `first..` until the server goes away.
async fn write(client: tokio_postgres::Client, first: i64, ledger: Arc<Mutex<Ledger>>) {
    let Ok(insert) = client.prepare("INSERT INTO ev VALUES ($1, $2, $3, $4)").await else { return };
    for id in first.. {
        let (k, v, ts) = row(id);
        ledger.lock().unwrap().maybe.push(id);
        if client.execute(&insert, &[&id, &k, &v, &ts]).await.is_err() {
            return;
        }
        ledger.lock().unwrap().acknowledged.push(id);
    }
}

/// CHECKPOINTs (each one merges) until the server goes away.
async fn checkpoint(client: tokio_postgres::Client) {
    while client.batch_execute("CHECKPOINT").await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_sessions_insert_and_merges_run() {
    let rounds: i64 = std::env::var("ASOFDB_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let args = ["--checkpoint-secs", "0", "--tier-secs", "1"];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..rounds {
        let server = BinaryServer::start_with_args(dir.path(), &args);
        let admin = connect(&server.conn_string()).await;
        if round == 0 {
            admin.batch_execute(SCHEMA).await.unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let client = connect(&server.conn_string()).await;
            tasks.push(tokio::spawn(write(client, 1 + round * 1_000_000 + w * 50_000, ledger.clone())));
        }
        tasks.push(tokio::spawn(checkpoint(connect(&server.conn_string()).await)));
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = 300 + (seed >> 33) % 1500;
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        drop(admin);
        server.kill9();
        for task in tasks {
            task.await.unwrap();
        }

        let server = BinaryServer::start_with_args(dir.path(), &args);
        let client = connect(&server.conn_string()).await;
        let stored: Vec<i64> = client.query("SELECT id FROM ev", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let unique: HashSet<i64> = stored.iter().copied().collect();
        assert_eq!(unique.len(), stored.len(), "round {round}: a row is stored twice");
        {
            let ledger = ledger.lock().unwrap();
            let lost: Vec<&i64> = ledger.acknowledged.iter().filter(|id| !unique.contains(id)).collect();
            assert!(lost.is_empty(), "round {round}: acknowledged rows lost: {lost:?}");
            let known: HashSet<&i64> = ledger.maybe.iter().collect();
            assert!(unique.iter().all(|id| known.contains(id)), "round {round}: a row nobody wrote");
        }
        assert_features_recomputed(&client, &format!("round {round}")).await;
        drop(client);
        server.kill9();
    }

    // Once merges have run, the rows sit in a few values per hour block (two blocks here).
    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let storage = client
        .query_one("SELECT row_count, file_count FROM asofdb.storage WHERE table_name = 'ev' AND tier = 'hot'", &[])
        .await
        .unwrap();
    let (rows, values): (i64, i64) = (storage.get(0), storage.get(1));
    let acknowledged = ledger.lock().unwrap().acknowledged.len() as i64;
    assert!(rows >= acknowledged && acknowledged > 1000, "{rows} rows stored, {acknowledged} acknowledged");
    assert!(values <= 2 * (rows / 32_768 + 9), "{values} hot values hold {rows} rows");
    drop(client);
    assert!(server.terminate().success());
}
