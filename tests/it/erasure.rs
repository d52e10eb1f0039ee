//! Erasure (`DELETE FROM t WHERE ...`) with the real binary: one user's events, carrying a
//! unique marker and spread over both tiers (cold files, recent hot rows, late hot rows in
//! cold days), leave every query, feature, ASOF join, COPY, later backup and (after
//! CHECKPOINT) every byte of the cold tier; the features equal a backfill over the remaining
//! rows, before and after a restart; and `kill -9` at random moments during DELETEs over both
//! tiers leaves each one's rows all there or all gone, and nothing else lost.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{BinaryServer, connect, text_rows};
use futures::{SinkExt, TryStreamExt};

const MARKER: &str = "ERASE-ME-7f3a9c";
const USERS: i64 = 12;
/// A spine of every user's times, ASOF-joined to a feature.
const SPINE: &str = "SELECT s.user_id, s.ts, f.n, f.mx FROM (SELECT user_id, ts + INTERVAL '1 second' AS ts FROM tx \
                     WHERE id % 997 = 0) AS s ASOF JOIN user_1h AS f ON s.user_id = f.user_id AND s.ts >= f.ts \
                     ORDER BY 1, 2";
const DAY: i64 = 86_400;
/// 2024-01-01 00:00:00 UTC.
const START: i64 = 1_704_067_200;

const TABLE: &str = "CREATE TABLE tx (id BIGINT, user_id BIGINT, bucket BIGINT, amt DOUBLE PRECISION, note TEXT, \
                     ts TIMESTAMP NOT NULL) WITH (event_time = 'ts', hot_retention = '1 day')";

/// Six features over tx, three of them keyed by something other than the user (an erased
/// user's rows change other users' values there), one holding the notes themselves (so its
/// state and snapshots would carry the marker).
const FEATURES: [(&str, &str); 6] = [
    (
        "user_1h",
        "SELECT user_id, count(*) AS n, max(amt) AS mx, sum(amt) AS total FROM tx GROUP BY user_id WINDOW SLIDING INTERVAL '1 hour'",
    ),
    (
        "user_2d",
        "SELECT user_id, count(*) AS n, avg(amt) AS mean, min(amt) AS mn FROM tx GROUP BY user_id WINDOW SLIDING INTERVAL '2 days'",
    ),
    ("user_life", "SELECT user_id, count(*) AS n, count(amt) AS amts FROM tx GROUP BY user_id WINDOW LIFETIME"),
    (
        "bucket_1d",
        "SELECT bucket, count(*) AS n, max(amt) AS mx FROM tx GROUP BY bucket WINDOW SLIDING INTERVAL '1 day'",
    ),
    (
        "bucket_day",
        "SELECT bucket, count(*) AS n, sum(amt) AS total FROM tx GROUP BY bucket WINDOW TUMBLING INTERVAL '1 day'",
    ),
    (
        "bucket_notes",
        "SELECT bucket, count(DISTINCT note) AS notes FROM tx GROUP BY bucket WINDOW SLIDING INTERVAL '2 days'",
    ),
];

/// Row `id` as CSV: users take turns, times repeat (ties), every tenth amount is NULL, and
/// user 7's notes carry the marker.
fn row(id: i64, secs: i64) -> String {
    let user = id % USERS;
    let amt = if id % 10 == 0 { String::new() } else { format!("{}", (id * 37 % 10_000) as f64 / 100.0) };
    let note = if user == 7 { format!("{MARKER}-{id}") } else { format!("n{id}") };
    let ts = chrono::DateTime::from_timestamp(START + secs, 0).unwrap().naive_utc();
    format!("{id},{user},{},{amt},{note},{}", id % 5, ts.format("%Y-%m-%d %H:%M:%S"))
}

/// `count` rows from id `first`, spread over four days (about 30 share each second).
fn bulk(first: i64, count: i64) -> Vec<String> {
    (first..first + count).map(|id| row(id, (id * 7_919) % (4 * DAY) / 30 * 30)).collect()
}

async fn copy(client: &tokio_postgres::Client, lines: &[String]) {
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(lines.join("\n") + "\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), lines.len() as u64);
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Creates tx with `rows` bulk rows, the five features, moves the older days cold, then adds
/// late rows into the cold days (hot rows of cold blocks).
async fn load(client: &tokio_postgres::Client, rows: i64) {
    client.batch_execute(TABLE).await.unwrap();
    for chunk in bulk(0, rows).chunks(20_000) {
        copy(client, chunk).await;
    }
    for (name, query) in FEATURES {
        client.batch_execute(&format!("CREATE FEATURE {name} AS {query}")).await.unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
    let late: Vec<String> = (rows..rows + 240).map(|id| row(id, (id % 48) * 3_600 + 17)).collect();
    for line in late.chunks(7) {
        copy(client, line).await;
    }
    let cold = count(client, "SELECT row_count FROM asofdb.storage WHERE table_name = 'tx' AND tier = 'cold'").await;
    assert!(cold > rows / 3, "the older days are cold: {cold} of {rows} rows");
}

/// Each feature's rows, next to those of the same definition backfilled now from the rows
/// stored (a recomputation by another path), must be equal.
async fn assert_features_recomputed(client: &tokio_postgres::Client, when: &str) {
    for (name, query) in FEATURES {
        let fresh = format!("{name}_fresh");
        client.batch_execute(&format!("CREATE FEATURE {fresh} AS {query}")).await.unwrap();
        let order = if name.starts_with("user") { "user_id" } else { "bucket" };
        let live = text_rows(client, &format!("SELECT * FROM {name} ORDER BY {order}")).await;
        let again = text_rows(client, &format!("SELECT * FROM {fresh} ORDER BY {order}")).await;
        assert!(!live.is_empty(), "{name} {when}: has rows");
        assert_eq!(live, again, "{name} {when}: equals a backfill over the remaining rows");
        client.batch_execute(&format!("DROP FEATURE {fresh}")).await.unwrap();
    }
    // The lifetime count is also the table's own count, per user.
    let per_user = text_rows(client, "SELECT user_id, count(*), count(amt) FROM tx GROUP BY user_id ORDER BY 1").await;
    let feature = text_rows(client, "SELECT user_id, n, amts FROM user_life ORDER BY 1").await;
    assert_eq!(per_user, feature, "user_life {when}: equals SQL over the table");
}

/// Files under `dir` holding the marker in their bytes, or (Parquet, compressed) in a value.
fn files_with_marker(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let raw = bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
        let decoded = entry.extension().is_some_and(|e| e == "parquet") && parquet_holds_marker(bytes);
        if raw || decoded {
            found.push(entry.display().to_string());
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

fn parquet_holds_marker(bytes: Vec<u8>) -> bool {
    use arrow::array::{Array, AsArray};
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        for column in batch.columns() {
            if let Some(strings) = column.as_string_opt::<i32>()
                && (0..strings.len()).any(|i| strings.is_valid(i) && strings.value(i).contains(MARKER))
            {
                return true;
            }
        }
    }
    false
}

/// Checks that user 7 is gone from every read, and that the features equal a recomputation.
async fn check_erased(client: &tokio_postgres::Client, spine_before: &[String], rows_left: i64, when: &str) {
    assert_eq!(count(client, "SELECT count(*) FROM tx").await, rows_left, "{when}: rows left");
    let stored = "SELECT sum(row_count)::bigint FROM asofdb.storage WHERE table_name = 'tx'";
    assert_eq!(count(client, stored).await, rows_left, "{when}: the table's row count");
    for sql in [
        format!("SELECT count(*) FROM tx WHERE note LIKE '%{MARKER}%'"),
        "SELECT count(*) FROM tx WHERE user_id = 7".into(),
        "SELECT count(*) FROM user_1h WHERE user_id = 7".into(),
        "SELECT count(*) FROM user_life WHERE user_id = 7".into(),
    ] {
        assert_eq!(count(client, &sql).await, 0, "{when}: {sql}");
    }
    // The ASOF join: user 7's spine rows find nothing, everyone else's what they did.
    let spine_after = text_rows(client, SPINE).await;
    let others: Vec<_> = spine_before.iter().filter(|r| !r.starts_with("7|")).cloned().collect();
    let mut expected_other = others.clone();
    expected_other.sort();
    let mut got_other: Vec<_> = spine_after.iter().filter(|r| !r.starts_with("7|")).cloned().collect();
    got_other.sort();
    assert_eq!(got_other.len(), expected_other.len(), "{when}: other users' spine rows");
    assert!(spine_after.iter().all(|r| !r.starts_with("7|")), "{when}: an inner ASOF join finds no user 7 row");
    // A table ASOF join reads the table's own rows.
    let notes = text_rows(
        client,
        "SELECT t.note FROM (VALUES (7::bigint, TIMESTAMP '2024-01-05'), (3, TIMESTAMP '2024-01-05')) AS s(user_id, ts) \
         ASOF JOIN tx AS t ON s.user_id = t.user_id AND s.ts >= t.ts",
    )
    .await;
    assert!(notes.iter().all(|n| !n.contains(MARKER)), "{when}: table ASOF join: {notes:?}");
    // COPY out.
    let out: Vec<bytes::Bytes> =
        client.copy_out("COPY tx TO STDOUT WITH (FORMAT csv)").await.unwrap().try_collect().await.unwrap();
    let text: Vec<u8> = out.concat();
    assert!(!text.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "{when}: COPY TO");
    assert_features_recomputed(client, when).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_users_events_leave_every_read_both_tiers_and_later_backups() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0", "--http", "127.0.0.1:0"];
    let server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    load(&client, 60_000).await;
    // A model server's feature vectors over HTTP, for users 7 and 3.
    let vectors = |server: &BinaryServer| {
        let url = format!("http://{}/v1/features", server.http.expect("--http"));
        async move {
            let body =
                r#"{"features": ["user_1h", "user_2d", "user_life"], "entities": [{"user_id": 7}, {"user_id": 3}]}"#;
            let response = reqwest::Client::new().post(url).body(body).send().await.expect("POST");
            assert_eq!(response.status().as_u16(), 200);
            let answer: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            let non_null =
                |i: usize| answer["results"][i].as_object().unwrap().values().filter(|v| !v.is_null()).count();
            (non_null(0), non_null(1))
        }
    };
    assert!(vectors(&server).await.0 > 0, "user 7's feature vector has values before");

    let total = count(&client, "SELECT count(*) FROM tx").await;
    let marked = count(&client, &format!("SELECT count(*) FROM tx WHERE note LIKE '{MARKER}%'")).await;
    let user7 = count(&client, "SELECT count(*) FROM tx WHERE user_id = 7").await;
    assert_eq!(marked, user7);
    assert!(!files_with_marker(&data.join("cold")).is_empty(), "the marker is in cold files before");
    let spine_before = text_rows(&client, SPINE).await;
    assert!(spine_before.iter().any(|r| r.starts_with("7|")), "the spine joins user 7 before");

    let erased = client.execute("DELETE FROM tx WHERE user_id = 7", &[]).await.unwrap();
    assert_eq!(erased as i64, user7, "DELETE's row count");
    assert_eq!(client.execute("DELETE FROM tx WHERE user_id = 7", &[]).await.unwrap(), 0);

    check_erased(&client, &spine_before, total - user7, "after DELETE").await;
    let (erased_user, other_user) = vectors(&server).await;
    assert_eq!(erased_user, 0, "user 7's feature vector over HTTP is empty");
    assert!(other_user > 0, "user 3's is not");

    client.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(files_with_marker(&data.join("cold")), Vec::<String>::new(), "cold files after CHECKPOINT");
    let backup = dir.path().join("backup");
    client.batch_execute(&format!("BACKUP TO '{}'", backup.display())).await.unwrap();
    assert_eq!(files_with_marker(&backup), Vec::<String>::new(), "a backup taken after");

    // New rows of user 7 come back as any rows do.
    client
        .batch_execute("INSERT INTO tx VALUES (-1, 7, 2, 1.5, 'new', TIMESTAMP '2024-01-04 23:00:00')")
        .await
        .unwrap();
    assert_eq!(count(&client, "SELECT n FROM user_life WHERE user_id = 7").await, 1);
    client.batch_execute("DELETE FROM tx WHERE id = -1").await.unwrap();

    drop(client);
    server.kill9();
    let server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    check_erased(&client, &spine_before, total - user7, "after kill -9 and restart").await;
    server.kill9();

    // The backup restores without the user.
    let restored = dir.path().join("restored");
    assert!(common::restore_backup(&backup, &restored).status.success());
    let server = BinaryServer::start_with_args(&restored, &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(count(&client, "SELECT count(*) FROM tx WHERE user_id = 7").await, 0);
    assert_eq!(count(&client, "SELECT count(*) FROM tx").await, total - user7);
    assert_features_recomputed(&client, "in the restored backup").await;
    server.kill9();
}

/// A small deterministic generator (the seed is printed, to replay a failure).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_deletes_leaves_each_all_or_nothing_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0"];
    let mut server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    load(&client, 120_000).await;
    let per_user = |rows: Vec<String>| -> Vec<(i64, i64)> {
        rows.iter()
            .map(|r| {
                let (u, n) = r.split_once('|').unwrap();
                (u.parse().unwrap(), n.parse().unwrap())
            })
            .collect()
    };
    let counts_sql = "SELECT user_id, count(*) FROM tx GROUP BY user_id ORDER BY 1";
    let mut expected = per_user(text_rows(&client, counts_sql).await);
    assert_eq!(expected.len() as i64, USERS);

    // How long one DELETE takes here: kills land in its first 60% (the feature rebuild after
    // the switch takes the rest).
    let started = Instant::now();
    let erased = client.execute("DELETE FROM tx WHERE user_id = 0", &[]).await.unwrap();
    let took = started.elapsed();
    assert_eq!(erased as i64, expected[0].1);
    expected[0].1 = 0;
    drop(client);

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("erasure kill loop: seed {seed}, one DELETE took {took:?}");
    let mut random = Lcg(seed);
    let (mut whole, mut none) = (0, 0);
    for user in 1..=10i64 {
        let conn = server.conn_string();
        let delete = tokio::spawn(async move {
            let client = connect(&conn).await;
            client.execute(&format!("DELETE FROM tx WHERE user_id = {user}"), &[]).await
        });
        let wait = Duration::from_micros(random.below(took.as_micros() as u64 * 3 / 5));
        tokio::time::sleep(wait).await;
        server.kill9();
        let acknowledged = matches!(delete.await, Ok(Ok(_)));
        server = BinaryServer::start_with_args(&data, &args);
        let client = connect(&server.conn_string()).await;
        let now = per_user(text_rows(&client, counts_sql).await);
        let left = now.iter().find(|(u, _)| *u == user).map_or(0, |(_, n)| *n);
        let before = expected[user as usize].1;
        assert!(left == 0 || left == before, "user {user}: {left} of {before} rows left after a kill at {wait:?}");
        assert!(!acknowledged || left == 0, "user {user}: an acknowledged DELETE is durable");
        if left == 0 {
            whole += 1;
            expected[user as usize].1 = 0;
        } else {
            none += 1;
        }
        let kept: Vec<(i64, i64)> = expected.iter().copied().filter(|(_, n)| *n > 0).collect();
        assert_eq!(now, kept, "after the kill during user {user}'s DELETE: every other row is there");
        let feature = per_user(text_rows(&client, "SELECT user_id, n FROM user_life ORDER BY 1").await);
        assert_eq!(feature, kept, "after the kill during user {user}'s DELETE: the lifetime feature");
    }
    eprintln!("erasure kill loop: {whole} DELETEs landed whole, {none} not at all");
    let client = connect(&server.conn_string()).await;
    assert_features_recomputed(&client, "after the kill loop").await;
    server.kill9();
}

/// The least event time stored in the cold tier's files (decoded), if any file has a row.
fn cold_min_time(dir: &Path) -> Option<i64> {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    let mut least = None::<i64>;
    for path in walk(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")) {
        let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let times = batch.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
            if let Some(min) = times.values().iter().min() {
                least = Some(least.map_or(*min, |l| l.min(*min)));
            }
        }
    }
    least
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_rows_from_both_tiers_and_features_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0"];
    let server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    load(&client, 40_000).await;
    let watermark = count(&client, "SELECT (extract(epoch FROM max(ts)) * 1000000)::bigint FROM tx").await;
    let cold_before = cold_min_time(&data.join("cold")).expect("cold rows");
    // Two and a half days of four: the first day and a half expire, most of it cold.
    let cutoff = watermark - 60 * 3_600 * 1_000_000;
    assert!(cold_before < cutoff);
    let left =
        count(&client, &format!("SELECT count(*) FROM tx WHERE ts >= to_timestamp({cutoff} / 1e6)::timestamp")).await;
    client.batch_execute("ALTER TABLE tx SET (retention = '60 hours')").await.unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();

    let check = |when: &'static str| {
        let client = &client;
        let cold = data.join("cold");
        async move {
            assert_eq!(count(client, "SELECT count(*) FROM tx").await, left, "{when}: the retained rows");
            let oldest = count(client, "SELECT (extract(epoch FROM min(ts)) * 1000000)::bigint FROM tx").await;
            assert!(oldest >= cutoff, "{when}: no row before the cutoff");
            assert!(cold_min_time(&cold).is_none_or(|t| t >= cutoff), "{when}: no cold file holds an expired row");
            assert_features_recomputed(client, when).await;
        }
    };
    check("after CHECKPOINT").await;
    drop(client);
    server.kill9();

    // A restart finds it so, and the background pass keeps expiring as the watermark moves.
    let args = ["--tier-secs", "1", "--checkpoint-secs", "0"];
    let server = BinaryServer::start_with_args(&data, &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(count(&client, "SELECT count(*) FROM tx").await, left, "after a restart");
    let later = chrono::DateTime::from_timestamp(watermark / 1_000_000 + 6 * 3_600, 0).unwrap().naive_utc();
    client.execute("INSERT INTO tx VALUES (-5, 3, 0, 1.0, 'later', $1)", &[&later]).await.unwrap();
    // The background pass erases what is before the hour the cutoff falls in.
    let cutoff = (watermark + 6 * 3_600 * 1_000_000 - 60 * 3_600 * 1_000_000).div_euclid(3_600_000_000) * 3_600_000_000;
    let expected =
        count(&client, &format!("SELECT count(*) FROM tx WHERE ts >= to_timestamp({cutoff} / 1e6)::timestamp")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&client, "SELECT count(*) FROM tx").await != expected {
        assert!(Instant::now() < deadline, "the background pass expires rows as the watermark moves");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Its features snapshot again at once (the pass finishes with it), so tier moves, which
    // wait for snapshots, go on.
    let unsnapshotted = "SELECT count(*) FROM asofdb.feature_state WHERE snapshot_seq = 0";
    while count(&client, unsnapshotted).await != 0 {
        assert!(Instant::now() < deadline, "every feature has a snapshot after a retention pass");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_features_recomputed(&client, "after the background pass").await;
    server.kill9();
}
