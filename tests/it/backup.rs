//! Online backup and restore with the real binary: a backup taken while writers and feature
//! reads go on holds every row acknowledged before it began (each writer's rows up to some
//! point, nothing after a gap), restores into a data directory that serves the same rows and
//! features equal to a recomputation; a `kill -9` during a backup leaves the original intact
//! and the unfinished backup is refused by restore.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BinaryServer, connect, restore_backup, text_rows};
use futures::SinkExt;

/// Writers of single-row INSERTs, and one of COPYs.
const WRITERS: i64 = 4;
/// Writer `w`'s rows have ids from `w * WRITER_IDS` on; the bulk rows' ids are below it.
const WRITER_IDS: i64 = 1_000_000_000;

/// Bulk rows with ids `ids`, over three days (some go cold at CHECKPOINT), as CSV lines.
fn bulk_rows(ids: std::ops::Range<i64>) -> Vec<String> {
    ids.map(|id| {
        let secs = (id * 7_919) % (3 * 86_400);
        let ts = chrono::DateTime::from_timestamp(1_704_067_200 + secs, 0).unwrap().naive_utc();
        let amt = if id % 10 == 0 { String::new() } else { format!("{}", (id * 31 % 10_000) as f64 / 100.0) };
        format!("{id},{},{amt},{}", id % 11, ts.format("%Y-%m-%d %H:%M:%S"))
    })
    .collect()
}

async fn copy(client: &tokio_postgres::Client, lines: &[String]) {
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(lines.join("\n") + "\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), lines.len() as u64);
}

/// One writer's acknowledged rows: the instant each INSERT was acknowledged, by index.
type Acks = Vec<Instant>;

/// Writes rows until `stop`, recording when each was acknowledged: single-row INSERTs, or
/// for the last writer COPYs of 20 rows (staged writes, moved into place at commit).
async fn write_until(conn: String, writer: i64, stop: Arc<AtomicBool>) -> Acks {
    let client = connect(&conn).await;
    let insert = client.prepare("INSERT INTO tx VALUES ($1, $2, $3, $4)").await.unwrap();
    let ts = |i: i64| chrono::DateTime::from_timestamp(1_704_067_200 + 2 * 86_400 + i, 0).unwrap().naive_utc();
    let mut acks = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let i = acks.len() as i64;
        if writer == WRITERS {
            let lines: Vec<String> = (i..i + 20)
                .map(|i| {
                    format!("{},{},{},{}", writer * WRITER_IDS + i, i % 11, i % 97, ts(i).format("%Y-%m-%d %H:%M:%S"))
                })
                .collect();
            copy(&client, &lines).await;
            acks.extend([Instant::now(); 20]);
            continue;
        }
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&(writer * WRITER_IDS + i), &(i % 11), &((i % 97) as f64), &ts(i)];
        client.execute(&insert, &row).await.unwrap();
        acks.push(Instant::now());
    }
    acks
}

/// Point reads of the feature until `stop`; returns how many were answered.
async fn read_until(conn: String, stop: Arc<AtomicBool>) -> u64 {
    let client = connect(&conn).await;
    let read = client.prepare("SELECT n, mx FROM f WHERE card = $1").await.unwrap();
    let mut reads = 0;
    while !stop.load(Ordering::SeqCst) {
        let rows = client.query(&read, &[&((reads % 11) as i64)]).await.unwrap();
        assert_eq!(rows.len(), 1);
        reads += 1;
    }
    reads
}

/// Every row by id, as text.
async fn rows_by_id(client: &tokio_postgres::Client) -> BTreeMap<i64, String> {
    text_rows(client, "SELECT id, card, amt, ts FROM tx")
        .await
        .into_iter()
        .map(|row| (row.split('|').next().unwrap().parse().unwrap(), row))
        .collect()
}

/// The feature's values, and the same aggregates recomputed from the table (its window of
/// 30 days holds every row).
async fn feature_and_recomputation(client: &tokio_postgres::Client) -> (Vec<String>, Vec<String>) {
    let feature = text_rows(client, "SELECT card, n, mx FROM f ORDER BY card").await;
    let recomputed = text_rows(client, "SELECT card, count(*), max(amt) FROM tx GROUP BY card ORDER BY card").await;
    (feature, recomputed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_row_and_a_kill_leaves_the_original_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0"];
    let server = BinaryServer::start_with_args(&data, &args);
    let conn = server.conn_string();
    let client = connect(&conn).await;
    client
        .batch_execute(
            "CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) \
                 WITH (event_time = 'ts', hot_retention = '6 hours');
             CREATE FEATURE f AS SELECT card, count(*) AS n, max(amt) AS mx FROM tx GROUP BY card \
                 WINDOW SLIDING INTERVAL '30 days'",
        )
        .await
        .unwrap();
    let bulk = 60_000;
    copy(&client, &bulk_rows(0..bulk)).await;
    // Old rows go cold; a run of single-row writes is merged in the hot tier.
    for i in 0..20 {
        client
            .execute(&format!("INSERT INTO tx VALUES ({}, 1, 1.5, '2024-01-03 23:00:00')", bulk + i), &[])
            .await
            .unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    let bulk = bulk + 20;

    // Writers and readers run before, during and after the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (1..=WRITERS).map(|w| tokio::spawn(write_until(conn.clone(), w, stop.clone()))).collect();
    let readers: Vec<_> = (0..2).map(|_| tokio::spawn(read_until(conn.clone(), stop.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backup_dir = dir.path().join("backup");
    let began = Instant::now();
    client.batch_execute(&format!("BACKUP TO '{}'", backup_dir.display())).await.unwrap();
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for writer in writers {
        acks.push(writer.await.unwrap());
    }
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "feature reads went on");
    }
    for (w, acks) in acks.iter().enumerate() {
        assert!(acks.iter().any(|at| *at > ended), "writer {w} went on after the backup");
        assert!(acks.iter().any(|at| *at < began), "writer {w} wrote before the backup");
    }
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("backup.json")).unwrap()).unwrap();
    assert!(marker["cold_files"].as_u64().unwrap() > 0, "the backup holds cold files: {marker}");
    let original = rows_by_id(&client).await;

    // Restored elsewhere, it serves every row acknowledged before the backup began.
    let restored_dir = dir.path().join("restored");
    let out = restore_backup(&backup_dir, &restored_dir);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    let restored_server = BinaryServer::start_with_args(&restored_dir, &args);
    let restored_client = connect(&restored_server.conn_string()).await;
    let restored = rows_by_id(&restored_client).await;
    assert_eq!(restored.range(..WRITER_IDS).count() as i64, bulk, "every bulk row");
    for (w, acks) in acks.iter().enumerate() {
        let first = (w as i64 + 1) * WRITER_IDS;
        let ids: BTreeSet<i64> = restored.range(first..first + WRITER_IDS).map(|(id, _)| id - first).collect();
        let acked_before = acks.iter().filter(|at| **at < began).count() as i64;
        // A writer's rows are committed in order: the backup holds a prefix of them.
        assert_eq!(ids, (0..ids.len() as i64).collect(), "writer {w}: no gap");
        assert!(ids.len() as i64 >= acked_before, "writer {w}: {} of {acked_before} acknowledged rows", ids.len());
        // At most one write in flight when the backup's seq was fixed: none acknowledged after.
        let acked_by_end = acks.iter().filter(|at| **at <= ended).count();
        let rows_per_write = if w as i64 + 1 == WRITERS { 20 } else { 1 };
        assert!(
            ids.len() <= acked_by_end + rows_per_write,
            "writer {w}: {} rows, {acked_by_end} acknowledged",
            ids.len()
        );
        assert_eq!(ids.len() % rows_per_write, 0, "writer {w}: a COPY in part");
    }
    for (id, row) in &restored {
        assert_eq!(Some(row), original.get(id), "row {id} as stored in the original");
    }
    let (feature, recomputed) = feature_and_recomputation(&restored_client).await;
    assert_eq!(feature, recomputed, "the restored feature equals a recomputation");
    // The restored copy takes writes and is a database of its own.
    restored_client.execute("INSERT INTO tx VALUES (-1, 3, 2.5, '2024-01-04 00:00:00')", &[]).await.unwrap();
    let (feature, recomputed) = feature_and_recomputation(&restored_client).await;
    assert_eq!(feature, recomputed);
    drop(restored_server);

    // Bad targets: not empty, relative; a restore onto a data directory in use.
    let not_empty = client.batch_execute(&format!("BACKUP TO '{}'", backup_dir.display())).await.unwrap_err();
    assert_eq!(not_empty.code().unwrap().code(), "58P02", "{not_empty:?}");
    let relative = client.batch_execute("BACKUP TO 'backup'").await.unwrap_err();
    assert_eq!(relative.code().unwrap().code(), "42602", "{relative:?}");
    for inside in [data.join("hot/backup"), data.join("cold/tx/../backup")] {
        let refused = client.batch_execute(&format!("BACKUP TO '{}'", inside.display())).await.unwrap_err();
        assert_eq!(refused.code().unwrap().code(), "22023", "{refused:?}");
        assert!(!inside.exists());
    }
    let out = restore_backup(&backup_dir, &data);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"), "{out:?}");

    // kill -9 while a backup is being written: the original loses nothing. More hot rows
    // first, so the backup takes long enough to be killed in the middle.
    copy(&client, &bulk_rows(bulk..bulk + 100_000)).await;
    let acknowledged = rows_by_id(&client).await;
    let killed_dir = dir.path().join("killed");
    let backing_up = {
        let (client, sql) = (connect(&conn).await, format!("BACKUP TO '{}'", killed_dir.display()));
        tokio::spawn(async move { client.batch_execute(&sql).await })
    };
    let waited = Instant::now();
    while !killed_dir.join("hot").exists() {
        assert!(waited.elapsed() < Duration::from_secs(30), "the backup did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill9();
    assert!(backing_up.await.unwrap().is_err(), "the backup was cut short");
    assert!(!killed_dir.join("backup.json").exists(), "killed before the backup finished");
    let out = restore_backup(&killed_dir, &dir.path().join("from-killed"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("did not finish"), "{out:?}");
    assert!(!dir.path().join("from-killed").exists(), "nothing made from an unfinished backup");

    let server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(rows_by_id(&client).await, acknowledged, "the original after the kill");
    let (feature, recomputed) = feature_and_recomputation(&client).await;
    assert_eq!(feature, recomputed);
}
