//! COPY FROM streamed in chunks (the server runs with 1 KiB chunks, so every COPY here spans
//! many): rows and features equal a single-statement load, CSV records split across chunk
//! boundaries decode whole, bad data anywhere writes nothing, and `kill -9` during or right
//! after a COPY leaves either none of it (not acknowledged) or all of it (acknowledged).

use crate::common;

use common::{BinaryServer, connect, text_rows};
use futures::SinkExt;

const SMALL_CHUNKS: &[&str] = &["--copy-chunk-kb", "1", "--checkpoint-secs", "0", "--tier-secs", "0"];

/// Rows `id,card,"note",ts`: notes hold quotes, commas and newlines, so records straddle the
/// chunk cuts; times run over ten days, out of order.
fn rows(count: i64) -> String {
    let mut out = String::new();
    for id in 0..count {
        let card = id * 7 % 13;
        let secs = (id * 7919) % (10 * 86_400);
        let ts = chrono::DateTime::from_timestamp(1_704_067_200 + secs, 0).unwrap().naive_utc();
        let note = match id % 4 {
            0 => String::new(),
            1 => format!("\"line one\nline {id}, \"\"quoted\"\"\""),
            2 => format!("plain {id}"),
            _ => "\"\"".to_string(),
        };
        out.push_str(&format!("{id},{card},{note},{}\n", ts.format("%Y-%m-%d %H:%M:%S")));
    }
    out
}

async fn setup(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE tx (id BIGINT, card BIGINT, note TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             CREATE FEATURE f AS SELECT card, count(*) AS n, count(note) AS notes, max(id) AS top FROM tx GROUP BY card \
                 WINDOW SLIDING INTERVAL '3 days'",
        )
        .await
        .unwrap();
}

async fn copy(client: &tokio_postgres::Client, data: String) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await?;
    futures::pin_mut!(sink);
    // Sent in uneven pieces, as a driver would.
    let bytes = data.into_bytes();
    for piece in bytes.chunks(777) {
        sink.send(bytes::Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

/// What a reader sees: the table's checksum, the feature's values, the notes' shapes.
async fn observe(client: &tokio_postgres::Client) -> Vec<String> {
    let queries = [
        "SELECT count(*), sum(id), count(note), sum(length(note)), min(ts)::TEXT, max(ts)::TEXT FROM tx",
        "SELECT card, n, notes, top FROM f ORDER BY card",
        "SELECT count(*) FROM tx WHERE note LIKE 'line one' || chr(10) || 'line %, \"quoted\"'",
    ];
    let mut out = Vec::new();
    for q in queries {
        out.extend(text_rows(client, q).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_copy_equals_one_statement_load_and_survives_kill9() {
    let data = rows(3000);
    // Reference: the same data in one chunk (default chunk size).
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = BinaryServer::start_with_args(reference_dir.path(), &["--checkpoint-secs", "0"]);
    let client = connect(&reference.conn_string()).await;
    setup(&client).await;
    assert_eq!(copy(&client, data.clone()).await.unwrap(), 3000);
    let expected = observe(&client).await;
    assert!(expected[0].starts_with("3000|"), "{expected:?}");
    assert_eq!(expected.last().unwrap(), "750", "multi-line quoted notes decode whole");

    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    assert_eq!(copy(&client, data).await.unwrap(), 3000);
    assert_eq!(observe(&client).await, expected);
    // Acknowledged: a kill -9 right after loses nothing, features included.
    server.kill9();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    assert_eq!(observe(&client).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_late_in_a_chunked_copy_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    let mut data = rows(2000);
    data.push_str("2000,1,fine,2024-01-02 00:00:00\n2001,not_a_number,x,2024-01-02 00:00:00\n");
    data.push_str(&rows(500));
    let err = copy(&client, data).await.unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "22P02", "{db:?}");
    assert!(db.message().contains("not_a_number"), "{}", db.message());
    let before = observe(&client).await;
    assert_eq!(before[0], "0|NULL|0|NULL|NULL|NULL");
    assert_eq!(before.len(), 2, "the feature has no keys: {before:?}");
    // The connection goes on; a good COPY after it counts alone.
    assert_eq!(copy(&client, rows(100)).await.unwrap(), 100);
    assert!(observe(&client).await[0].starts_with("100|"));
    server.kill9();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    assert!(observe(&client).await[0].starts_with("100|"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_in_the_middle_of_a_copy_leaves_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    setup(&client).await;
    assert_eq!(copy(&client, rows(200)).await.unwrap(), 200);
    let expected = observe(&client).await;
    // Half of a large COPY is sent (and staged, chunk by chunk), then the server dies.
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    let data = rows(4000);
    sink.send(bytes::Bytes::from(data[..data.len() / 2].to_string())).await.unwrap();
    sink.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill9();
    let server = BinaryServer::start_with_args(dir.path(), SMALL_CHUNKS);
    let client = connect(&server.conn_string()).await;
    assert_eq!(observe(&client).await, expected);
    let hot: i64 = client
        .query_one("SELECT row_count FROM asofdb.storage WHERE table_name = 'tx' AND tier = 'hot'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot, 200);
}
