//! Acknowledged means durable: the real binary is `kill -9`ed right after CommandComplete and
//! every acknowledged row, table and statement is found after restart.

use crate::common;

use common::{BinaryServer, connect, text_rows};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_right_after_command_complete_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: i64 = 0;
    for round in 0..3i64 {
        let server = BinaryServer::start(dir.path());
        let client = connect(&server.conn_string()).await;
        if round == 0 {
            client
                .batch_execute(
                    "CREATE TABLE tx (id BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')",
                )
                .await
                .unwrap();
        }
        // Single-row inserts, a multi-row insert, a COPY and a committed transaction, each
        // acknowledged, then the process dies with no chance to flush.
        let insert = client.prepare("INSERT INTO tx VALUES ($1, $2, '2024-01-01 00:00:00')").await.unwrap();
        for _ in 0..20 {
            acknowledged += 1;
            client.execute(&insert, &[&acknowledged, &1.5f64]).await.unwrap();
        }
        let values: Vec<String> =
            (1..=50).map(|i| format!("({}, 2.5, '2024-01-02 00:00:00')", acknowledged + i)).collect();
        client.batch_execute(&format!("INSERT INTO tx VALUES {}", values.join(","))).await.unwrap();
        acknowledged += 50;

        let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
        futures::pin_mut!(sink);
        let data: String = (1..=100).map(|i| format!("{},3.5,2024-01-03 00:00:00\n", acknowledged + i)).collect();
        use futures::SinkExt;
        sink.send(bytes::Bytes::from(data)).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), 100);
        acknowledged += 100;

        client
            .batch_execute(&format!(
                "BEGIN; INSERT INTO tx VALUES ({}, 4.5, '2024-01-04 00:00:00'); INSERT INTO tx VALUES ({}, 4.5, '2024-01-04 00:00:00'); COMMIT",
                acknowledged + 1,
                acknowledged + 2
            ))
            .await
            .unwrap();
        acknowledged += 2;
        // An open, uncommitted transaction must vanish.
        client.batch_execute("BEGIN; INSERT INTO tx VALUES (-1, 0, '2024-01-05 00:00:00')").await.unwrap();
        server.kill9();

        let server = BinaryServer::start(dir.path());
        let client = connect(&server.conn_string()).await;
        let row = client.query_one("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tx", &[]).await.unwrap();
        let (count, distinct, min, max): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!((count, distinct, min, max), (acknowledged, acknowledged, 1, acknowledged), "round {round}");
        server.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_data_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client.batch_execute("CREATE TABLE t (a BIGINT); INSERT INTO t VALUES (1), (2)").await.unwrap();
    drop(client);
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");

    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    let sum: i64 = client.query_one("SELECT sum(a)::BIGINT FROM t", &[]).await.unwrap().get(0);
    assert_eq!(sum, 3);
    let status = server.terminate();
    assert!(status.success());
}

#[test]
fn help_documents_every_flag() {
    let out = std::process::Command::new(common::binary_path()).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in ["--data-dir", "--listen", "--checkpoint-secs", "--help", "--version"] {
        assert!(text.contains(flag), "--help does not mention {flag}:\n{text}");
    }
}

/// The table `tx` with two rows, and the feature `card_1h` over it.
const TX_WITH_CARD_1H: &str = "
    CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
    INSERT INTO tx VALUES (1, 10, '2024-01-01 09:00:00'), (2, 5, '2024-01-01 09:10:00');
    CREATE FEATURE card_1h AS SELECT card, count(*) AS n, sum(amt) AS total FROM tx GROUP BY card
      WINDOW SLIDING INTERVAL '1 hour';";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_survive_kill9_with_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client
        .batch_execute(&format!(
            "{TX_WITH_CARD_1H}
             INSERT INTO tx VALUES (1, 20, '2024-01-01 09:30:00'), (1, 1, '2024-01-01 07:00:00');"
        ))
        .await
        .unwrap();
    let before = card_totals(&client).await;
    assert_eq!(before, vec![(1, 2, 30.0), (2, 1, 5.0)]);
    server.kill9();

    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    let after = card_totals(&client).await;
    assert_eq!(after, before, "feature values after restart");
    let names: Vec<String> =
        client.query("SELECT name FROM asofdb.features", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(names, vec!["card_1h".to_string()]);
    // The state was loaded from the snapshot CREATE FEATURE wrote, plus the one later write.
    assert_eq!(origin(&client).await, "replayed 2 rows");

    // After a CHECKPOINT only what follows it is replayed.
    client.batch_execute("CHECKPOINT").await.unwrap();
    client.batch_execute("INSERT INTO tx VALUES (2, 7, '2024-01-01 09:40:00')").await.unwrap();
    let before = card_totals(&client).await;
    assert_eq!(before, vec![(1, 2, 30.0), (2, 2, 12.0)]);
    server.kill9();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    assert_eq!(card_totals(&client).await, before, "feature values after the second restart");
    assert_eq!(origin(&client).await, "replayed 1 rows");
    server.kill9();
}

/// How `card_1h`'s state was obtained at startup, from "replayed" on.
async fn origin(client: &tokio_postgres::Client) -> String {
    let row = client.query_one("SELECT origin FROM asofdb.feature_state WHERE name = 'card_1h'", &[]).await.unwrap();
    let origin: String = row.get(0);
    assert!(origin.starts_with("restored from snapshot at seq "), "{origin}");
    origin.split(", ").nth(1).unwrap().to_string()
}

async fn card_totals(client: &tokio_postgres::Client) -> Vec<(i64, i64, f64)> {
    let rows = client.query("SELECT card, n, total FROM card_1h ORDER BY card", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// A snapshot writes its chunks under a new generation and switches to them last. Chunks left
/// by a snapshot that a crash interrupted before its switch (written here by hand into the
/// stopped server's hot tier) are not read at restart and are removed by the next snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_an_interrupted_snapshot_are_ignored_then_removed() {
    use asofdb::feature::SnapshotMeta;
    use asofdb::storage::{KvOp, KvStore, hot::SledKv, keys};

    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client
        .batch_execute(&format!("{TX_WITH_CARD_1H} INSERT INTO tx VALUES (1, 20, '2024-01-01 09:30:00'); CHECKPOINT;"))
        .await
        .unwrap();
    let before = card_totals(&client).await;
    assert_eq!(before, vec![(1, 2, 30.0), (2, 1, 5.0)]);
    server.kill9();

    let hot = dir.path().join("hot");
    let snapshot_of = |kv: &SledKv| {
        let bytes = kv.get(&keys::feature_snapshot("card_1h")).unwrap().expect("a snapshot");
        SnapshotMeta::decode("card_1h", &bytes).unwrap()
    };
    let chunk_keys = |kv: &SledKv| -> Vec<Vec<u8>> {
        let prefix = keys::feature_state_prefix("card_1h");
        kv.scan(&prefix, &keys::prefix_end(&prefix)).map(|pair| pair.unwrap().0).collect()
    };
    let interrupted = {
        let kv = SledKv::open(&hot, None).unwrap();
        let current = snapshot_of(&kv);
        assert_eq!(chunk_keys(&kv).len(), current.chunks as usize);
        // Not Arrow IPC: restoring from these would fail.
        let junk: Vec<KvOp> = (0..3)
            .map(|chunk| KvOp::Put(keys::feature_state("card_1h", current.generation + 1, chunk), b"junk".to_vec()))
            .collect();
        kv.apply(junk).unwrap();
        kv.sync().unwrap();
        current
    };

    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    assert_eq!(card_totals(&client).await, before, "restored from the switched-to snapshot only");
    client.batch_execute("INSERT INTO tx VALUES (2, 7, '2024-01-01 09:40:00'); CHECKPOINT;").await.unwrap();
    let after = card_totals(&client).await;
    assert_eq!(after, vec![(1, 2, 30.0), (2, 2, 12.0)]);
    server.kill9();

    {
        let kv = SledKv::open(&hot, None).unwrap();
        let current = snapshot_of(&kv);
        assert!(current.generation > interrupted.generation);
        let stored = chunk_keys(&kv);
        assert_eq!(stored.len(), current.chunks as usize, "only the current snapshot's chunks are stored");
        assert!(stored.iter().all(|key| current.owns("card_1h", key)));
    }
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    assert_eq!(card_totals(&client).await, after, "restored from the new generation");
    assert_eq!(origin(&client).await, "replayed 0 rows");
    server.kill9();
}

/// The live state keeps one window behind the latest event: a key whose events all fell out
/// of it is still read (count 0, as the spec's "at least one qualifying event at or before the
/// watermark" requires), also after a snapshot and a `kill -9`, and ASOF joins at old times
/// read the evicted events from storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicted_keys_survive_snapshots_and_old_times_read_storage() {
    let dir = tempfile::tempdir().unwrap();
    let expected_reads = vec!["1|0|NULL".to_string(), "2|2|7".to_string()];
    let expected_asof = vec![
        "1|2024-01-01 00:30:00|2|4".to_string(),
        "1|2024-01-05 00:00:00|0|NULL".to_string(),
        "2|2024-01-01 00:30:00|NULL|NULL".to_string(),
        "2|2024-01-10 00:30:00|2|7".to_string(),
    ];
    let reads = "SELECT card, n, mx FROM f ORDER BY card";
    let asof = "SELECT s.card, s.ts, f.n, f.mx FROM probe s ASOF LEFT JOIN f ON s.card = f.card AND s.ts >= f.ts \
                ORDER BY s.card, s.ts";
    {
        let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "0", "--tier-secs", "0"]);
        let client = connect(&server.conn_string()).await;
        client
            .batch_execute(
                "CREATE TABLE tx (card BIGINT, amt BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
                 CREATE TABLE probe (card BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
                 CREATE FEATURE f AS SELECT card, count(*) AS n, max(amt) AS mx FROM tx GROUP BY card \
                     WINDOW SLIDING INTERVAL '1 hour';
                 INSERT INTO tx VALUES (1, 3, '2024-01-01 00:00:00'), (1, 4, '2024-01-01 00:10:00');
                 INSERT INTO tx VALUES (2, 5, '2024-01-10 00:00:00'), (2, 7, '2024-01-10 00:20:00');
                 INSERT INTO probe VALUES (1, '2024-01-01 00:30:00'), (1, '2024-01-05 00:00:00'),
                     (2, '2024-01-01 00:30:00'), (2, '2024-01-10 00:30:00');
                 CHECKPOINT",
            )
            .await
            .unwrap();
        let events: i64 =
            client.query_one("SELECT events FROM asofdb.feature_state WHERE name = 'f'", &[]).await.unwrap().get(0);
        assert_eq!(events, 2, "card 1's events are nine days older than the window: evicted");
        assert_eq!(text_rows(&client, reads).await, expected_reads);
        assert_eq!(text_rows(&client, asof).await, expected_asof);
        server.kill9();
    }
    let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "0", "--tier-secs", "0"]);
    let client = connect(&server.conn_string()).await;
    assert_eq!(text_rows(&client, reads).await, expected_reads);
    assert_eq!(text_rows(&client, asof).await, expected_asof);
}
