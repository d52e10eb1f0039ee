//! Tiered storage over the wire: CHECKPOINT moves old rows to Parquet, every reader (scans,
//! features, ASOF JOIN) sees both tiers with identical results, DuckDB reads the cold files
//! directly, late rows older than the hot horizon count everywhere, and a restart (clean or
//! `kill -9` at random moments of moves) loses and duplicates nothing.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{BinaryServer, connect, text_rows};
use futures::SinkExt;

/// Deterministic rows: (id, card, amt or NULL, ts) over three days, with shared timestamps
/// per card (ties) and in shuffled arrival order.
fn rows(count: i64, seed: u64, first_id: i64, day_offset: i64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    let mut out = Vec::new();
    for i in 0..count {
        let id = first_id + i;
        let card = next() % 7;
        // Seconds within three days, on 10-minute steps half the time so ties are common.
        let mut secs = next() as i64 % (3 * 86_400);
        if next() % 2 == 0 {
            secs -= secs % 600;
        }
        let secs = secs + day_offset * 86_400;
        let ts = chrono::DateTime::from_timestamp(1_704_067_200 + secs, 0).unwrap().naive_utc();
        let amt = if next() % 10 == 0 { String::new() } else { format!("{}", (next() % 10_000) as f64 / 100.0) };
        out.push(format!("{id},{card},{amt},{}", ts.format("%Y-%m-%d %H:%M:%S")));
    }
    out
}

async fn copy(client: &tokio_postgres::Client, lines: &[String]) {
    assert_eq!(try_copy(client, lines).await.unwrap(), lines.len() as u64);
}

async fn try_copy(client: &tokio_postgres::Client, lines: &[String]) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await?;
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(lines.join("\n") + "\n")).await?;
    sink.finish().await
}

/// Everything a reader can observe, as text: table checksum, per-day counts, the feature's
/// online values and an ASOF JOIN over the whole history.
async fn observe(client: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "SELECT count(*), count(amt), sum(id), round(sum(amt), 4)::TEXT, min(ts)::TEXT, max(ts)::TEXT FROM tx",
        "SELECT date_trunc('day', ts)::TEXT, count(*), sum(id) FROM tx GROUP BY 1 ORDER BY 1",
        "SELECT card, n, mx FROM f ORDER BY card",
        "SELECT count(*), sum(p.n), round(sum(p.mx), 4)::TEXT FROM probe s ASOF LEFT JOIN f p ON s.card = p.card AND s.ts > p.ts",
        "SELECT count(*), sum(t.id) FROM probe s ASOF JOIN tx t ON s.card = t.card AND s.ts >= t.ts",
        "SELECT count(*) FROM tx WHERE ts < '2024-01-02 12:00:00'",
    ];
    let mut out = Vec::new();
    for q in queries {
        out.extend(text_rows(client, q).await);
    }
    out
}

async fn tiers(client: &tokio_postgres::Client) -> (i64, i64, i64) {
    let rows = client
        .query("SELECT tier, row_count, file_count FROM asofdb.storage WHERE table_name = 'tx' ORDER BY tier", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (cold, hot): (i64, i64) = (rows[0].get(1), rows[1].get(1));
    (hot, cold, rows[0].get(2))
}

async fn setup(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) \
                 WITH (event_time = 'ts', hot_retention = '6 hours');
             CREATE TABLE probe (card BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             CREATE FEATURE f AS SELECT card, count(*) AS n, max(amt) AS mx FROM tx GROUP BY card \
                 WINDOW SLIDING INTERVAL '2 days'",
        )
        .await
        .unwrap();
    let probes: Vec<String> = (0..200)
        .map(|i| format!("({}, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '{} minutes')", i % 7, i * 23))
        .collect();
    client.batch_execute(&format!("INSERT INTO probe VALUES {}", probes.join(","))).await.unwrap();
}

fn duckdb_count(cold_dir: &Path) -> String {
    let script = format!(
        "import duckdb; print(duckdb.connect().execute(\"SELECT count(*), sum(id) FROM read_parquet('{}/tx/*/*.parquet')\").fetchone())",
        cold_dir.display()
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3 with duckdb");
    assert!(out.status.success(), "duckdb: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_moves_old_rows_and_readers_see_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0"];
    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    copy(&client, &rows(3000, 7, 1, 0)).await;
    let before = observe(&client).await;
    assert_eq!(tiers(&client).await, (3000, 0, 0));

    client.batch_execute("CHECKPOINT").await.unwrap();
    let (hot, cold, files) = tiers(&client).await;
    // Exactly the rows older than the watermark minus 6 hours are cold.
    let expected_cold: i64 = client
        .query_one("SELECT count(*) FROM tx WHERE ts < (SELECT max(ts) FROM tx) - INTERVAL '6 hours'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((hot + cold, cold), (3000, expected_cold));
    assert!(cold > 2000 && files >= 3, "cold {cold} in {files} files");
    assert_eq!(observe(&client).await, before, "both tiers read the same as the hot tier did");

    // Another engine reads the documented layout and finds the same rows.
    let ours = client
        .query_one(
            "SELECT count(*), sum(id)::BIGINT FROM tx WHERE ts < (SELECT max(ts) FROM tx) - INTERVAL '6 hours'",
            &[],
        )
        .await
        .unwrap();
    let (n, s): (i64, i64) = (ours.get(0), ours.get(1));
    assert_eq!(duckdb_count(&dir.path().join("cold")), format!("({n}, {s})"));

    // Late rows far behind the hot horizon: accepted, counted, then moved and compacted.
    copy(&client, &rows(200, 99, 100_000, 0)).await;
    let with_late = observe(&client).await;
    assert_ne!(with_late, before);
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(observe(&client).await, with_late);
    let (hot2, cold2, files2) = tiers(&client).await;
    assert_eq!(hot2 + cold2, 3200);
    assert!(cold2 > cold && files2 <= files, "late files compacted: {files} -> {files2}");

    // A restart reads the manifest, features restore from their snapshots.
    drop(client);
    server.terminate();
    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(observe(&client).await, with_late);
    assert_eq!(tiers(&client).await, (hot2, cold2, files2));
    // DROP TABLE removes the cold files too (collected by the next tiering pass).
    client.batch_execute("DROP TABLE tx CASCADE; CHECKPOINT").await.unwrap();
    let left = walk(&dir.path().join("cold").join("tx"));
    assert!(left.iter().all(|p| !p.ends_with(".parquet")), "files left after DROP: {left:?}");
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

/// `kill -9` at varying moments while rows arrive and CHECKPOINTs move them: after each
/// restart every acknowledged row is there exactly once, and both tiers agree with a
/// recomputation from the acknowledged rows. `ASOFDB_KILL_ROUNDS` (default 8) sets the number
/// of kills for a longer run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_moves_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rounds: u64 = std::env::var("ASOFDB_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    kill9_rounds(dir.path(), &["--tier-secs", "1", "--checkpoint-secs", "1"], &[], rounds).await;
}

/// Rounds of writes and CHECKPOINTs cut by `kill -9` at varying moments; after each restart
/// every acknowledged row is there exactly once, and at the end the feature equals a
/// recomputation over both tiers. Returns the server of the last restart, checkpointed.
async fn kill9_rounds(
    dir: &Path,
    args: &[&str],
    env: &[(String, String)],
    rounds: u64,
) -> (BinaryServer, tokio_postgres::Client) {
    let mut acknowledged: Vec<String> = Vec::new();
    let mut in_flight: Vec<String> = Vec::new();
    let mut seed = 1u64;
    for round in 0..rounds {
        let server = BinaryServer::start_with_env(dir, args, env);
        let client = connect(&server.conn_string()).await;
        if round == 0 {
            setup(&client).await;
        } else {
            let count = |rows: &[String]| rows.len() as i64;
            let row = client.query_one("SELECT count(*), count(DISTINCT id) FROM tx", &[]).await.unwrap();
            let (n, distinct): (i64, i64) = (row.get(0), row.get(1));
            // A COPY cut off by the kill is all there (made durable, reply lost) or absent.
            if n == count(&acknowledged) + count(&in_flight) {
                acknowledged.append(&mut in_flight);
            }
            in_flight.clear();
            assert_eq!((n, distinct), (count(&acknowledged), count(&acknowledged)), "round {round}");
            let expected: i64 = acknowledged.iter().map(|l| l.split(',').next().unwrap().parse::<i64>().unwrap()).sum();
            let sum: i64 = client.query_one("SELECT sum(id)::BIGINT FROM tx", &[]).await.unwrap().get(0);
            assert_eq!(sum, expected);
            let (hot, cold, _) = tiers(&client).await;
            assert_eq!(hot + cold, n);
        }
        // Write, checkpoint, and die at a moment that depends on the round.
        let writer = {
            let conn = server.conn_string();
            let batch_rows: Vec<Vec<String>> = (0..6)
                .map(|b| {
                    seed += 1;
                    rows(400, seed, 1 + (round as i64 * 6 + b) * 400, round as i64)
                })
                .collect();
            tokio::spawn(async move {
                let client = connect(&conn).await;
                let mut done = Vec::new();
                for lines in batch_rows {
                    if try_copy(&client, &lines).await.is_err() {
                        return (done, lines);
                    }
                    done.extend(lines);
                    if client.batch_execute("CHECKPOINT").await.is_err() {
                        break;
                    }
                }
                (done, Vec::new())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(150 + (round % 8) * 170 + (round / 8) * 37)).await;
        server.kill9();
        // Rows whose COPY completed before the kill were acknowledged.
        let (done, cut) = writer.await.unwrap();
        acknowledged.extend(done);
        in_flight = cut;
    }
    let server = BinaryServer::start_with_env(dir, args, env);
    let client = connect(&server.conn_string()).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let row = client.query_one("SELECT count(*), count(DISTINCT id) FROM tx", &[]).await.unwrap();
    let (n, distinct): (i64, i64) = (row.get(0), row.get(1));
    if n == (acknowledged.len() + in_flight.len()) as i64 {
        acknowledged.append(&mut in_flight);
    }
    assert_eq!((n, distinct), (acknowledged.len() as i64, acknowledged.len() as i64));
    assert_feature_equals_recomputation(&client).await;
    (server, client)
}

/// Feature `f` (of `setup`) equals the same definition backfilled now from the rows there are.
async fn assert_feature_equals_recomputation(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE FEATURE g AS SELECT card, count(*) AS n, max(amt) AS mx FROM tx GROUP BY card \
             WINDOW SLIDING INTERVAL '2 days'",
        )
        .await
        .unwrap();
    let values = |name: &str| format!("SELECT card, n, mx FROM {name} ORDER BY card");
    assert_eq!(text_rows(client, &values("f")).await, text_rows(client, &values("g")).await);
    client.batch_execute("DROP FEATURE g").await.unwrap();
}

/// `--cold-url` puts the cold tier elsewhere (an S3 bucket in production; a directory here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_url_places_the_cold_tier() {
    let (dir, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let url = format!("file://{}", elsewhere.path().display());
    let server = BinaryServer::start_with_args(dir.path(), &["--tier-secs", "0", "--cold-url", &url]);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    copy(&client, &rows(500, 3, 1, 0)).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_, cold, files) = tiers(&client).await;
    assert!(cold > 0 && files > 0);
    let parquet: Vec<String> =
        walk(&elsewhere.path().join("tx")).into_iter().filter(|p| p.ends_with(".parquet")).collect();
    assert_eq!(parquet.len() as i64, files);
    assert!(!dir.path().join("cold").join("tx").exists());
    let row = client.query_one("SELECT count(*) FROM tx", &[]).await.unwrap();
    assert_eq!(row.get::<_, i64>(0), 500);

    // A backup takes the files from wherever the cold tier is; restored, they are local.
    let backup = dir.path().join("backup");
    client.batch_execute(&format!("BACKUP TO '{}'", backup.display())).await.unwrap();
    let restored = dir.path().join("restored");
    let out = common::restore_backup(&backup, &restored);
    assert!(out.status.success(), "{out:?}");
    let before = observe(&client).await;
    drop(server);
    let copy = BinaryServer::start_with_args(&restored, &["--tier-secs", "0"]);
    let client = connect(&copy.conn_string()).await;
    assert_eq!(tiers(&client).await, (500 - cold, cold, files));
    assert_eq!(observe(&client).await, before);
}

/// The cold tier in an S3 bucket, on an S3 API server the test starts (issue #29): CHECKPOINT
/// moves rows there as Parquet objects; scans, the feature and ASOF joins read both tiers as
/// they read the hot tier alone; late rows are compacted into the bucket's files; a restart
/// reads the manifest back; DROP TABLE empties its prefix; and `kill -9` during moves loses and
/// duplicates nothing, the objects of crashed moves being collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_cold_tier_serves_every_reader_and_survives_kill9() {
    let s3 = common::s3::S3::start("cold");
    let env = s3.env();
    let parquet_under = |prefix: &str| -> Vec<String> {
        s3.keys().into_iter().filter(|k| k.starts_with(prefix) && k.ends_with(".parquet")).collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0", "--cold-url", "s3://cold/tier"];
    let server = BinaryServer::start_with_env(dir.path(), &args, &env);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    copy(&client, &rows(3000, 7, 1, 0)).await;
    let before = observe(&client).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (hot, cold, files) = tiers(&client).await;
    assert!(hot + cold == 3000 && cold > 2000 && files >= 3, "hot {hot}, cold {cold} in {files} files");
    assert_eq!(observe(&client).await, before, "both tiers read the same as the hot tier did");
    assert_eq!(parquet_under("tier/tx/").len() as i64, files, "one object per cold file");
    assert!(!dir.path().join("cold").join("tx").exists(), "nothing cold on local disk");

    copy(&client, &rows(200, 99, 100_000, 0)).await;
    let with_late = observe(&client).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(observe(&client).await, with_late);
    let (hot2, cold2, files2) = tiers(&client).await;
    assert!(hot2 + cold2 == 3200 && cold2 > cold && files2 <= files, "late rows moved and compacted");
    assert_eq!(parquet_under("tier/tx/").len() as i64, files2, "compacted objects collected");

    drop(client);
    server.terminate();
    let server = BinaryServer::start_with_env(dir.path(), &args, &env);
    let client = connect(&server.conn_string()).await;
    assert_eq!(observe(&client).await, with_late, "after a restart");

    // Erasure over both tiers: after CHECKPOINT no object holds a row of card 3, and the
    // feature equals one computed afresh from the rows left.
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let card3 = count("SELECT count(*) FROM tx WHERE card = 3").await;
    assert!(card3 > 0);
    client.batch_execute("DELETE FROM tx WHERE card = 3; CHECKPOINT").await.unwrap();
    assert_eq!(
        (count("SELECT count(*) FROM tx WHERE card = 3").await, count("SELECT count(*) FROM tx").await),
        (0, 3200 - card3)
    );
    let cards_in_bucket = s3.python(
        "import io, pyarrow.parquet as pq\n\
         keys = [o['Key'] for o in s3.list_objects_v2(Bucket='cold', Prefix='tier/tx/').get('Contents', [])]\n\
         cards = set()\n\
         for k in keys:\n    cards |= set(pq.read_table(io.BytesIO(s3.get_object(Bucket='cold', Key=k)['Body'].read())).column('card').to_pylist())\n\
         print(sorted(cards))",
    );
    assert_eq!(cards_in_bucket.trim(), "[0, 1, 2, 4, 5, 6]", "card 3 is in no object");
    assert_feature_equals_recomputation(&client).await;
    client.batch_execute("DROP TABLE tx CASCADE; CHECKPOINT").await.unwrap();
    assert_eq!(parquet_under("tier/tx/"), Vec::<String>::new(), "DROP TABLE leaves no object");
    drop(client);
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let args = ["--tier-secs", "1", "--checkpoint-secs", "1", "--cold-url", "s3://cold/killed"];
    let (server, client) = kill9_rounds(dir.path(), &args, &env, 4).await;
    // Compared with no background move running meanwhile.
    drop(client);
    server.terminate();
    let quiet = ["--tier-secs", "0", "--checkpoint-secs", "0", "--cold-url", "s3://cold/killed"];
    let server = BinaryServer::start_with_env(dir.path(), &quiet, &env);
    let client = connect(&server.conn_string()).await;
    client.batch_execute("CHECKPOINT").await.unwrap();
    let (_, cold, files) = tiers(&client).await;
    assert!(cold > 0, "rows reached the bucket");
    assert_eq!(parquet_under("killed/tx/").len() as i64, files, "objects of crashed moves collected");
}

/// ADD COLUMN and known-at over both tiers and a restart: rows moved to Parquet before the
/// column existed read its default, a known-at ASOF join reads the ingest times of cold and
/// hot rows alike, and all of it answers the same after a restart (the feature's snapshot
/// keeps each event's ingest time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_columns_and_ingest_times_span_both_tiers_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--tier-secs", "0"]);
    let client = connect(&server.conn_string()).await;
    let mut lines = Vec::new();
    for i in 0..300i64 {
        // Three days of events for 3 users; every 7th became known 5 hours late.
        let ts = chrono::DateTime::from_timestamp(1_704_067_200 + i * 860, 0).unwrap().naive_utc();
        let late = if i % 7 == 0 { 5 * 3600 } else { 1 };
        let known = ts + chrono::Duration::seconds(late);
        lines.push(format!("({}, {i}, '{ts}', '{known}')", i % 3));
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE ev (u BIGINT, v BIGINT, ts TIMESTAMP NOT NULL, k TIMESTAMP)
               WITH (event_time = 'ts', ingest_time = 'k', hot_retention = '6 hours');
             INSERT INTO ev VALUES {};
             CREATE FEATURE ev_day AS SELECT u, count(*) AS n, sum(v) AS s FROM ev GROUP BY u
               WINDOW SLIDING INTERVAL '1 day';
             CHECKPOINT;
             ALTER TABLE ev ADD COLUMN label INTEGER DEFAULT 5;
             INSERT INTO ev (u, v, ts, label) VALUES (1, 1000, '2024-01-03 23:00:00', 6);
             CREATE TABLE spine (u BIGINT, t TIMESTAMP NOT NULL);
             INSERT INTO spine SELECT u, t FROM (VALUES (0), (1), (2)) AS us(u)
               CROSS JOIN (VALUES (TIMESTAMP '2024-01-01 12:00:00'), (TIMESTAMP '2024-01-02 06:00:00'),
                                  (TIMESTAMP '2024-01-03 20:00:00')) AS ts(t);",
            lines.join(", ")
        ))
        .await
        .unwrap();
    let cold: i64 = client
        .query_one("SELECT row_count FROM asofdb.storage WHERE table_name = 'ev' AND tier = 'cold'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(cold > 200, "most rows should be cold: {cold}");
    let queries = [
        "SELECT label, count(*) FROM ev GROUP BY label ORDER BY label",
        "SELECT s.u, s.t, f.n, f.s FROM spine s ASOF JOIN ev_day f ON s.u = f.u AND s.t >= f.ts ORDER BY 1, 2",
        "SELECT s.u, s.t, f.n, f.s FROM spine s ASOF JOIN ev_day f ON s.u = f.u AND s.t >= f.ts AND s.t >= f.k
         ORDER BY 1, 2",
        // The greatest ingest time of each user's events, evicted ones included (the snapshot
        // keeps it for keys whose early events are gone).
        "SELECT u, k FROM ev_day ORDER BY u",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(text_rows(&client, q).await);
    }
    assert_eq!(before[0], vec!["5|300", "6|1"]);
    // Known at T leaves out the events still unknown at T: fewer events, never more.
    let (all, known) = (&before[1], &before[2]);
    assert_eq!(all.len(), 9);
    assert!(all.iter().zip(known).any(|(a, k)| a != k), "some late events are inside the windows");
    for (a, k) in all.iter().zip(known) {
        let n = |row: &str| row.split('|').nth(2).unwrap().parse::<i64>().unwrap();
        assert!(n(k) <= n(a) && n(a) - n(k) <= 4, "{a} vs {k}");
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    server.terminate();
    let server = BinaryServer::start_with_args(dir.path(), &["--tier-secs", "0"]);
    let client = connect(&server.conn_string()).await;
    for (q, expected) in queries.iter().zip(&before) {
        assert_eq!(&text_rows(&client, q).await, expected, "{q}");
    }
}
