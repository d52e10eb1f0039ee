//! CREATE OR REPLACE FEATURE on the real binary: the old definition serves reads, writes,
//! joins and prepared statements on other connections while the new one is backfilled (tier
//! moves and snapshots going on too), the switch is atomic, and `kill -9` before the switch
//! leaves the old definition as it was, after it the new one without a rebuild.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{BinaryServer, connect, text_rows};
use futures::SinkExt;

const V1: &str = "CREATE FEATURE f AS SELECT card, count(*) AS n, max(amt) AS mx FROM tx GROUP BY card \
                  WINDOW SLIDING INTERVAL '2 days'";
/// The replacement: other columns, window and aggregates.
const V2_BODY: &str = "AS SELECT card, count(*) AS n, sum(amt) AS total, max_k(amt, 3) AS top FROM tx \
                       WHERE amt IS NOT NULL GROUP BY card WINDOW SLIDING INTERVAL '1 day'";

/// `count` deterministic rows `id,card,amt,ts` from id `first`: 50 cards over three days,
/// arrival order shuffled, NULL amounts now and then.
fn rows(count: u64, first: u64) -> String {
    let mut out = String::new();
    for i in first..first + count {
        let mix = i.wrapping_mul(2_654_435_761) % 1_000_003;
        let secs = 1_704_067_200 + (mix * 7919 % (3 * 86_400)) as i64;
        let ts = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
        let amt = if mix % 13 == 0 { String::new() } else { format!("{}", (mix % 10_000) as f64 / 100.0) };
        out.push_str(&format!("{i},{},{amt},{}\n", mix % 50, ts.format("%Y-%m-%d %H:%M:%S")));
    }
    out
}

async fn load(client: &tokio_postgres::Client, count: u64) {
    client
        .batch_execute(
            "CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) \
             WITH (event_time = 'ts', hot_retention = '6 hours');
             CREATE TABLE probe (card BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             INSERT INTO probe SELECT g % 50, TIMESTAMP '2024-01-01' + g * INTERVAL '7 minutes' FROM generate_series(0, 999) g;",
        )
        .await
        .unwrap();
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from(rows(count, 0))).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), count);
}

/// The state of the latest backfill of `f` and its rows done, if there is one.
async fn backfill_of_f(client: &tokio_postgres::Client) -> Option<(String, String, i64, i64)> {
    let rows = client
        .query(
            "SELECT kind, state, events_done, events_total FROM asofdb.backfills WHERE feature = 'f' ORDER BY started_at",
            &[],
        )
        .await
        .unwrap();
    rows.last().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
}

/// Waits until a replacement of `f` is running and has read rows.
async fn until_replacing(client: &tokio_postgres::Client) {
    for _ in 0..20_000 {
        if let Some((kind, state, done, _)) = backfill_of_f(client).await
            && kind == "replace"
            && state == "running"
            && done > 0
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("no replacement of f was seen running: {:?}", backfill_of_f(client).await);
}

async fn values(client: &tokio_postgres::Client, feature: &str) -> Vec<String> {
    let mut out = text_rows(client, &format!("SELECT card, n, total, top FROM {feature} ORDER BY card")).await;
    out.extend(
        text_rows(
            client,
            &format!(
                "SELECT count(*), sum(p.n), round(sum(p.total)::NUMERIC, 4) FROM probe s \
                 ASOF LEFT JOIN {feature} p ON s.card = p.card AND s.ts > p.ts"
            ),
        )
        .await,
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_definition_serves_while_the_new_one_is_built_then_the_switch_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--tier-secs", "0", "--checkpoint-secs", "0"]);
    let conn = server.conn_string();
    let client = connect(&conn).await;
    load(&client, 200_000).await;
    client.batch_execute(V1).await.unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();

    // Prepared before the replacement: one reads a column the new definition keeps, one
    // reads all of them (which change).
    let prepared = connect(&conn).await;
    let kept = prepared.prepare("SELECT n FROM f WHERE card = $1").await.unwrap();
    let every = prepared.prepare("SELECT * FROM f WHERE card = $1").await.unwrap();
    let old_n: i64 = prepared.query_one(&kept, &[&7i64]).await.unwrap().get(0);

    // A reader, a writer and a checkpointer (snapshots of the old definition, tier moves)
    // run on their own connections throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, client) = (stop.clone(), connect(&conn).await);
        tokio::spawn(async move {
            let mut widths = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let rows = client.simple_query("SELECT * FROM f ORDER BY card").await.expect("the reader never errors");
                let width = rows.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.len()),
                    _ => None,
                });
                if widths.last() != Some(&width) {
                    widths.push(width);
                }
            }
            widths
        })
    };
    // The writer alternates generated rows (on time and late) and rows of a card of its own
    // at the latest hour, which both definitions count (n); while the replacement runs it
    // checks that the old definition already counts each of its acknowledged writes.
    let while_running = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, client, while_running) = (stop.clone(), connect(&conn).await, while_running.clone());
        tokio::spawn(async move {
            let (mut id, mut own) = (1_000_000u64, 0i64);
            let replacing = |b: Option<(String, String, i64, i64)>| {
                b.is_some_and(|(kind, state, ..)| kind == "replace" && state == "running")
            };
            while !stop.load(Ordering::SeqCst) {
                let line = rows(1, id);
                let fields: Vec<&str> = line.trim().split(',').collect();
                let amt = if fields[2].is_empty() { "NULL" } else { fields[2] };
                let before = replacing(backfill_of_f(&client).await);
                client
                    .batch_execute(&format!(
                        "INSERT INTO tx VALUES ({}, {}, {amt}, '{}'), ({}, 999, 1.5, '2024-01-03 23:00:00')",
                        fields[0],
                        fields[1],
                        fields[3],
                        id + 1
                    ))
                    .await
                    .expect("writes go on");
                id += 2;
                own += 1;
                if before && replacing(backfill_of_f(&client).await) {
                    // Acknowledged while the replacement ran from start to end.
                    while_running.fetch_add(1, Ordering::SeqCst);
                    let n: i64 = client.query_one("SELECT n FROM f WHERE card = 999", &[]).await.unwrap().get(0);
                    assert_eq!(n, own, "the old definition counts every acknowledged write");
                }
            }
            own
        })
    };
    let checkpointer = {
        let (stop, client) = (stop.clone(), connect(&conn).await);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                client.batch_execute("CHECKPOINT").await.expect("checkpoints go on");
            }
        })
    };

    // How many writes land while one replacement runs depends on the machine's load, so the
    // replacement is run again (same definition) until at least three did: each run is a
    // full replacement with the same guarantees, and the count is what the test is about.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..20 {
        client.batch_execute(&format!("CREATE OR REPLACE FEATURE f {V2_BODY}")).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if while_running.load(Ordering::SeqCst) >= 3 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let widths = reader.await.unwrap();
    let own = writer.await.unwrap();
    checkpointer.await.unwrap();

    // Old columns (card, n, mx, ts), then the new ones (card, n, total, top, ts), never back.
    assert_eq!(widths, vec![Some(4), Some(5)], "the reader saw the old definition, then the new one");
    let during = while_running.load(Ordering::SeqCst);
    assert!(during >= 3, "writes were acknowledged while the replacement ran: {during}");
    let n: i64 = client.query_one("SELECT n FROM f WHERE card = 999", &[]).await.unwrap().get(0);
    assert_eq!(n, own, "the new definition counts every acknowledged write");

    // Every write reached the replacement: it equals the same definition built from scratch.
    client.batch_execute(&format!("CREATE FEATURE g {V2_BODY}")).await.unwrap();
    let replaced = values(&client, "f").await;
    assert_eq!(replaced, values(&client, "g").await);
    let (kind, state, done, total) = backfill_of_f(&client).await.unwrap();
    assert_eq!((kind.as_str(), state.as_str()), ("replace", "done"));
    assert!(done >= 200_000 && total >= done, "{done} of {total}");
    let definition: String =
        client.query_one("SELECT definition FROM asofdb.features WHERE name = 'f'", &[]).await.unwrap().get(0);
    assert!(definition.starts_with("CREATE OR REPLACE FEATURE f AS"), "{definition}");

    // Prepared statements: planned again at their next Execute; one whose columns changed fails.
    let new_n: i64 = prepared.query_one(&kept, &[&7i64]).await.unwrap().get(0);
    let expected: i64 = client.query_one("SELECT n FROM g WHERE card = 7", &[]).await.unwrap().get(0);
    assert_eq!(new_n, expected);
    assert_ne!(new_n, old_n, "the 1-day window counts fewer rows than the 2-day one did");
    let err = prepared.query(&every, &[&7i64]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(message, "cached plan must not change result type");

    // A replacement that fails validation changes nothing.
    let err = client
        .batch_execute("CREATE OR REPLACE FEATURE f AS SELECT card, max(nope) AS m FROM tx GROUP BY card")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42703"), "{err:?}");
    assert_eq!(values(&client, "f").await, replaced);

    // A replacement whose feature is dropped while it runs replaces nothing, and says so.
    let replacing = {
        let client = connect(&conn).await;
        tokio::spawn(async move { client.batch_execute(&format!("CREATE OR REPLACE FEATURE f {V2_BODY}")).await })
    };
    until_replacing(&client).await;
    client.batch_execute("DROP FEATURE f").await.unwrap();
    let err = replacing.await.unwrap().unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("55006"), "{err:?}");
    assert_eq!(backfill_of_f(&client).await.unwrap().1, "cancelled");
    let err = client.query("SELECT * FROM f", &[]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"), "{err:?}");
    // The name is free at once.
    client.batch_execute(V1).await.unwrap();
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_before_the_switch_keeps_the_old_definition_and_after_it_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--tier-secs", "0", "--checkpoint-secs", "0"];
    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    load(&client, 300_000).await;
    client.batch_execute(V1).await.unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
    let old = text_rows(&client, "SELECT card, n, mx FROM f ORDER BY card").await;

    let replacing = {
        let client = connect(&server.conn_string()).await;
        tokio::spawn(async move { client.batch_execute(&format!("CREATE OR REPLACE FEATURE f {V2_BODY}")).await })
    };
    until_replacing(&client).await;
    server.kill9();
    assert!(replacing.await.unwrap().is_err(), "the replacement was not acknowledged");

    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(text_rows(&client, "SELECT card, n, mx FROM f ORDER BY card").await, old);
    let definition: String =
        client.query_one("SELECT definition FROM asofdb.features WHERE name = 'f'", &[]).await.unwrap().get(0);
    assert_eq!(definition, V1);
    let origin: String =
        client.query_one("SELECT origin FROM asofdb.feature_state WHERE name = 'f'", &[]).await.unwrap().get(0);
    assert!(origin.starts_with("restored from snapshot"), "the old state was kept, not rebuilt: {origin}");
    assert!(backfill_of_f(&client).await.is_none(), "asofdb.backfills starts empty");

    // Done this time: after kill -9 the new definition serves, from its snapshot.
    client.batch_execute(&format!("CREATE OR REPLACE FEATURE f {V2_BODY}")).await.unwrap();
    let new = text_rows(&client, "SELECT card, n, total, top FROM f ORDER BY card").await;
    server.kill9();
    let server = BinaryServer::start_with_args(dir.path(), &args);
    let client = connect(&server.conn_string()).await;
    assert_eq!(text_rows(&client, "SELECT card, n, total, top FROM f ORDER BY card").await, new);
    let origin: String =
        client.query_one("SELECT origin FROM asofdb.feature_state WHERE name = 'f'", &[]).await.unwrap().get(0);
    assert!(origin.ends_with("replayed 0 rows"), "no rebuild from scratch: {origin}");
    server.kill9();
}
