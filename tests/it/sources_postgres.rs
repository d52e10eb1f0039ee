//! PostgreSQL sources against a real PostgreSQL 15 upstream (`wal_level = logical`, started
//! by each test on a temp dir) and the real binary: the initial snapshot and the stream
//! stored exactly once across `kill -9` (one kill during the snapshot) while the upstream
//! keeps inserting; columns mapped by name; updates as events, deletes counted; bad rows set
//! aside; an upstream outage ridden out; DROP SOURCE releasing the slot and publication.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::sources::{Rng, SCHEMA, assert_features_recomputed, wait_for};
use crate::common::postgres::Postgres;
use crate::common::{BinaryServer, connect, text_rows};

/// Rows `from..=to` of the upstream table: 50 cards, one per second from 2026-01-01, every
/// 7th an hour late.
fn insert_rows(from: i64, to: i64) -> String {
    format!(
        "INSERT INTO tx (id, card, amount, ts) SELECT i, 'c' || (i % 50), i % 1000,
            TIMESTAMP '2026-01-01' + i * INTERVAL '1 second' - CASE WHEN i % 7 = 0 THEN INTERVAL '1 hour' ELSE INTERVAL '0' END
         FROM generate_series({from}, {to}) AS i"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_source_stores_every_row_once_across_kill_9() {
    let snapshot_rows: i64 =
        std::env::var("ASOFDB_SOURCE_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let kills: usize = std::env::var("ASOFDB_SOURCE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let upstream = Postgres::start_logical();
    let app = connect(&upstream.conn_string()).await;
    app.batch_execute("CREATE TABLE tx (id BIGINT PRIMARY KEY, card TEXT, amount BIGINT, ts TIMESTAMP NOT NULL)")
        .await
        .unwrap();
    app.batch_execute(&insert_rows(1, snapshot_rows)).await.unwrap();

    // The application keeps inserting (small transactions of 1 to 20 rows) while asofdb is
    // killed, and once the snapshot is stored deletes now and then (a row deleted before
    // the snapshot is rightly never seen).
    let (inserted, deleted) = (Arc::new(AtomicI64::new(snapshot_rows)), Arc::new(AtomicI64::new(0)));
    let (deleting, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let writing = {
        let (inserted, deleted, deleting, done, conn) =
            (inserted.clone(), deleted.clone(), deleting.clone(), done.clone(), upstream.conn_string());
        tokio::spawn(async move {
            let app = connect(&conn).await;
            let mut rng = Rng(0xfeed);
            while !done.load(Ordering::SeqCst) {
                let from = inserted.load(Ordering::SeqCst) + 1;
                let to = from + rng.below(20) as i64;
                app.batch_execute(&insert_rows(from, to)).await.unwrap();
                inserted.store(to, Ordering::SeqCst);
                if rng.below(10) == 0 && deleting.load(Ordering::SeqCst) {
                    let gone = app.execute("DELETE FROM tx WHERE id = $1", &[&(from - 1000)]).await.unwrap();
                    deleted.fetch_add(gone as i64, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let args = ["--checkpoint-secs", "1"];
    {
        let server = BinaryServer::start_with_args(dir.path(), &args);
        let client = connect(&server.conn_string()).await;
        client.batch_execute(SCHEMA).await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE SOURCE app_tx INTO tx FROM POSTGRES WITH (conninfo = '{}', table = 'public.tx')",
                upstream.conn_string()
            ))
            .await
            .unwrap();
        // Killed while it copies the snapshot: nothing of it may be stored.
        wait_for(&client, "SELECT state FROM asofdb.sources", "snapshot", Duration::from_secs(30)).await;
        server.kill9();
    }
    {
        // The next start copies the snapshot again, whole; then the kills land while it streams.
        let server = BinaryServer::start_with_args(dir.path(), &args);
        let client = connect(&server.conn_string()).await;
        let started = Instant::now();
        wait_for(&client, "SELECT state FROM asofdb.sources", "running", Duration::from_secs(60)).await;
        eprintln!("snapshot of {snapshot_rows} rows stored after {:?}", started.elapsed());
        deleting.store(true, Ordering::SeqCst);
        server.kill9();
    }
    let mut rng = Rng(0x5eed_cafe);
    let mut seen = Vec::new();
    for _ in 0..kills {
        let server = BinaryServer::start_with_args(dir.path(), &args);
        let client = connect(&server.conn_string()).await;
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        let count: i64 = text_rows(&client, "SELECT count(*) FROM tx").await[0].parse().unwrap();
        assert!(count == 0 || count >= snapshot_rows, "the snapshot is stored whole or not at all: {count} rows");
        seen.push(count);
        server.kill9();
    }
    eprintln!("rows stored at the kills: {seen:?}");
    assert!(
        seen.windows(2).any(|w| w[0] >= snapshot_rows && w[1] > w[0]),
        "some kill lands while the source streams: {seen:?}"
    );
    done.store(true, Ordering::SeqCst);
    writing.await.unwrap();
    let total = inserted.load(Ordering::SeqCst);

    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    let limit = Duration::from_secs(120);
    wait_for(&client, "SELECT count(*) FROM tx", &total.to_string(), limit).await;
    wait_for(&client, "SELECT lag FROM asofdb.sources", "0", limit).await;
    let counts = text_rows(&client, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tx").await;
    assert_eq!(counts, [format!("{total}|{total}|1|{total}")], "every upstream row once");
    let report =
        text_rows(&client, "SELECT kind, state, rows_ingested, bad_messages, deletes_ignored FROM asofdb.sources")
            .await;
    assert_eq!(report, [format!("postgres|running|{total}|0|{}", deleted.load(Ordering::SeqCst))]);
    assert_features_recomputed(&client).await;
    // The upstream was told what is applied: its slot holds no more than the last commit.
    let confirmed = text_rows(
        &app,
        "SELECT confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'asofdb_app_tx'",
    )
    .await;
    assert_eq!(confirmed, ["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_source_maps_columns_counts_deletes_sets_bad_rows_aside_and_rides_out_an_outage() {
    let upstream = Postgres::start_logical();
    let app = connect(&upstream.conn_string()).await;
    // Upstream columns in another order, one the target lacks (ignored), none for `note`
    // (NULL); `amount` is text upstream, so a row whose amount is not a number is bad.
    app.batch_execute(
        "CREATE TABLE other (id INT); CREATE PUBLICATION other FOR TABLE other;
         CREATE TABLE parted (id INT, ts TIMESTAMPTZ) PARTITION BY RANGE (ts);
         CREATE TABLE orders (extra TEXT, amount TEXT, ts TIMESTAMPTZ NOT NULL, id INT PRIMARY KEY, card TEXT);
         INSERT INTO orders VALUES ('x', '10', '2026-01-01 00:00:00+00', 1, 'c1'), ('x', '20', '2026-01-01 00:00:01+00', 2, 'c2');",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client
        .batch_execute(
            "CREATE TABLE orders (id BIGINT, card TEXT, amount BIGINT, note TEXT, ts TIMESTAMPTZ NOT NULL,
                 seen TIMESTAMPTZ) WITH (event_time = 'ts', ingest_time = 'seen');
             CREATE TABLE later (id INT, ts TIMESTAMPTZ NOT NULL) WITH (event_time = 'ts');",
        )
        .await
        .unwrap();

    // CREATE SOURCE's errors create nothing.
    let conninfo = upstream.conn_string();
    let create =
        |name: &str, table: &str, with: &str| format!("CREATE SOURCE {name} INTO {table} FROM POSTGRES WITH ({with})");
    let refused = format!("conninfo = 'host=127.0.0.1 port={} user=postgres', table = 'orders'", free_port());
    for (sql, code) in [
        (create("bad", "orders", &refused), "08001"),
        (create("bad", "orders", &format!("conninfo = '{conninfo}', table = 'missing'")), "42P01"),
        (create("bad", "orders", &format!("conninfo = '{conninfo}', table = 'orders', colour = 'red'")), "22023"),
        (create("bad", "orders", &format!("conninfo = '{conninfo}', table = 'orders', publication = 'nope'")), "42704"),
        (create("bad", "orders", "table = 'orders'"), "22023"),
        (create("bad", "orders", &format!("conninfo = '{conninfo}', table = 'parted'")), "42809"),
        (
            create("bad", "orders", &format!("conninfo = '{conninfo}', table = 'orders', publication = 'other'")),
            "55000",
        ),
    ] {
        let error = client.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(error.code().map(|c| c.code()), Some(code), "{sql}: {error:?}");
    }
    assert_eq!(text_rows(&client, "SELECT count(*) FROM asofdb.sources").await, ["0"]);

    // DROP SOURCE while its slot creation waits for an upstream transaction that stays open:
    // the runner's session is ended, and no slot is left behind.
    let blocker = connect(&upstream.conn_string()).await;
    blocker.batch_execute("BEGIN; INSERT INTO other VALUES (1)").await.unwrap();
    client
        .batch_execute(&create("stuck", "orders", &format!("conninfo = '{conninfo}', table = 'orders'")))
        .await
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'asofdb source stuck'";
    wait_for(&app, waiting, "1", Duration::from_secs(30)).await;
    client.batch_execute("DROP SOURCE stuck").await.unwrap();
    wait_for(&app, "SELECT count(*) FROM pg_replication_slots", "0", Duration::from_secs(30)).await;
    blocker.batch_execute("COMMIT").await.unwrap();

    client
        .batch_execute(&create("app", "orders", &format!("conninfo = '{conninfo}', table = 'orders'")))
        .await
        .unwrap();
    client
        .batch_execute(&create(
            "app_later",
            "later",
            &format!("conninfo = '{conninfo}', table = 'orders', snapshot = false, publication = 'asofdb_app'"),
        ))
        .await
        .unwrap();
    // The same bound as the waits above: with the whole suite running beside it, the second
    // source's first rows took longer than 30 s once (the clean-clone run of 48842f2).
    let limit = Duration::from_secs(120);
    wait_for(&client, "SELECT count(*) FROM orders", "2", limit).await;
    wait_for(&client, "SELECT state FROM asofdb.sources WHERE name = 'app_later'", "running", limit).await;
    let before_stream = chrono::Utc::now();
    app.batch_execute(
        "INSERT INTO orders VALUES ('y', '30', '2026-01-01 00:00:02+00', 3, 'c1');
         INSERT INTO orders VALUES ('y', 'lots', '2026-01-01 00:00:03+00', 4, 'c1');
         UPDATE orders SET amount = '11', ts = '2026-01-01 00:00:04+00' WHERE id = 1;
         DELETE FROM orders WHERE id = 2;",
    )
    .await
    .unwrap();
    wait_for(&client, "SELECT count(*) FROM orders", "4", limit).await;
    let rows = text_rows(&client, "SELECT id, card, amount, note IS NULL FROM orders ORDER BY ts").await;
    assert_eq!(rows, ["1|c1|10|t", "2|c2|20|t", "3|c1|30|t", "1|c1|11|t"], "an UPDATE is one more event");
    let stamped = text_rows(
        &client,
        &format!(
            "SELECT count(*) FROM orders WHERE id = 3 AND seen >= '{}'",
            before_stream.format("%Y-%m-%d %H:%M:%S%.6f+00")
        ),
    )
    .await;
    assert_eq!(stamped, ["1"], "ingest_time is the upstream commit time");
    wait_for(&client, "SELECT deletes_ignored FROM asofdb.sources WHERE name = 'app'", "1", limit).await;
    let errors = text_rows(
        &client,
        "SELECT source, position LIKE 'LSN %', payload LIKE '%\"lots\"%', reason FROM asofdb.source_errors",
    )
    .await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("app|t|t|") && errors[0].contains("lots"), "{errors:?}");
    // Only what was written after it started: ids 3, 4 (its amount is not a column here) and 1.
    wait_for(&client, "SELECT string_agg(id::text, ',' ORDER BY ts) FROM later", "3,4,1", limit).await;

    // An outage: the upstream stops, the source retries, and catches up after.
    upstream.stop();
    wait_for(&client, "SELECT state FROM asofdb.sources WHERE name = 'app'", "retrying", limit).await;
    upstream.start_again();
    let app = connect(&upstream.conn_string()).await;
    app.batch_execute("INSERT INTO orders VALUES ('z', '50', '2026-01-01 00:00:05+00', 5, 'c3'); TRUNCATE orders;")
        .await
        .unwrap();
    wait_for(&client, "SELECT count(*) FROM orders WHERE id = 5", "1", limit).await;
    wait_for(
        &client,
        "SELECT state || ' ' || deletes_ignored FROM asofdb.sources WHERE name = 'app'",
        "running 2",
        limit,
    )
    .await;
    assert_eq!(
        text_rows(&client, "SELECT count(*), count(DISTINCT (id, ts)) FROM orders").await,
        ["5|5"],
        "nothing doubled"
    );

    // Renamed upstream, the table is still the one streamed (it is known by its OID).
    app.batch_execute("ALTER TABLE orders RENAME TO orders_renamed; INSERT INTO orders_renamed VALUES ('z', '60', '2026-01-01 00:00:06+00', 6, 'c3')").await.unwrap();
    wait_for(&client, "SELECT count(*) FROM orders WHERE id = 6", "1", limit).await;

    // DROP SOURCE lets go of the slot and drops the publication asofdb made.
    client.batch_execute("DROP SOURCE app_later; DROP SOURCE app").await.unwrap();
    assert_eq!(text_rows(&app, "SELECT count(*) FROM pg_replication_slots").await, ["0"]);
    assert_eq!(text_rows(&app, "SELECT string_agg(pubname, ',') FROM pg_publication").await, ["other"]);
    assert_eq!(text_rows(&client, "SELECT count(*) FROM asofdb.sources").await, ["0"]);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
