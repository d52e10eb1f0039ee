//! Binary COPY against PostgreSQL 15 (issue #22): a table holding every column type (with
//! NULLs, extremes, empty and non-ASCII text) is copied out of each engine in binary and into
//! the other. PostgreSQL accepting asofdb's bytes and reading back the same values proves
//! asofdb's binary COPY TO; asofdb reading PostgreSQL's bytes proves its binary COPY FROM.
//! Malformed data is 22P04 and writes nothing.

use crate::common;

use bytes::Bytes;
use common::postgres::Postgres;
use common::{BinaryServer, connect, text_rows};
use futures::{SinkExt, TryStreamExt};

const COLUMNS: &str = "id BIGINT, b BOOLEAN, i2 SMALLINT, i4 INTEGER, f4 REAL, f8 DOUBLE PRECISION, \
    n NUMERIC(14,4), t TEXT, v VARCHAR(12), d DATE, ts TIMESTAMP NOT NULL, tz TIMESTAMPTZ, by BYTEA";

const ROWS: &str = "INSERT INTO every VALUES \
    (1, true, 32767, -2147483648, 1.5, -0.000123456789, 1234567890.1234, 'plain', 'v', '2024-02-29', '2024-01-01 00:00:00', '2024-01-01 12:00:00+00', '\\x00ff10'), \
    (2, false, -32768, 2147483647, -3.25e10, 1e300, -0.0001, '', '', '1970-01-01', '1999-12-31 23:59:59.999999', '2000-01-01 00:00:00+05:30', '\\x'), \
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-06-01 08:30:00.5', NULL, NULL), \
    (4, true, 0, 0, 0, 0, 0, 'tab\there, ümlaut ✓', 'quote''s', '0001-01-01', '1900-03-01 00:00:01', '2262-04-11 23:47:16+00', '\\xdeadbeef'), \
    (5, false, 1, 1, 3.4028235e38, 2.2250738585072014e-308, 99999999.9999, 'line\nbreak', 'x', '9999-12-31', '2024-01-01 00:00:00', '1970-01-01 00:00:00+00', '\\x5c')";

const ORDERED: &str = "SELECT * FROM every ORDER BY id";

async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn copy_in(client: &tokio_postgres::Client, sql: &str, data: &[u8]) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    futures::pin_mut!(sink);
    for piece in data.chunks(100) {
        sink.send(Bytes::copy_from_slice(piece)).await?;
    }
    sink.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_copy_round_trips_with_postgres() {
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(data.path());
    let ours = connect(&server.conn_string()).await;
    let postgres = Postgres::start();
    let theirs = connect(&postgres.conn_string()).await;
    for (client, with) in [(&ours, " WITH (event_time = 'ts')"), (&theirs, "")] {
        for table in ["every", "back"] {
            client.batch_execute(&format!("CREATE TABLE {table} ({COLUMNS}){with}")).await.unwrap();
        }
        client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        client.batch_execute(ROWS).await.unwrap();
    }
    let expected = text_rows(&theirs, ORDERED).await;
    assert_eq!(text_rows(&ours, ORDERED).await, expected, "the same rows in both engines");

    // asofdb's bytes, from a table and from a query, load into PostgreSQL unchanged.
    let from_table = copy_out(&ours, "COPY every TO STDOUT (FORMAT binary)").await;
    let from_query = copy_out(&ours, &format!("COPY ({ORDERED}) TO STDOUT WITH (FORMAT binary)")).await;
    for bytes in [&from_table, &from_query] {
        theirs.batch_execute("TRUNCATE back").await.unwrap();
        assert_eq!(copy_in(&theirs, "COPY back FROM STDIN (FORMAT binary)", bytes).await.unwrap(), 5);
        assert_eq!(text_rows(&theirs, "SELECT * FROM back ORDER BY id").await, expected);
    }
    // The ordered query's bytes are PostgreSQL's own, byte for byte.
    let postgres_bytes = copy_out(&theirs, &format!("COPY ({ORDERED}) TO STDOUT WITH (FORMAT binary)")).await;
    assert_eq!(from_query, postgres_bytes, "binary COPY of the same rows differs from PostgreSQL's");

    // Results of only the common types are written column by column (`server::binary_tuples`):
    // PostgreSQL's bytes too, infinities and window functions' counts included.
    for query in [
        "SELECT id, b, i2, i4, f4, f8, t, v, d, ts, tz FROM every ORDER BY id",
        "SELECT id, row_number() OVER (ORDER BY id DESC) AS r FROM every ORDER BY id",
        "SELECT TIMESTAMP 'infinity' AS a, TIMESTAMP '-infinity' AS b, DATE '2000-01-01' AS c",
    ] {
        let ours_bytes = copy_out(&ours, &format!("COPY ({query}) TO STDOUT (FORMAT binary)")).await;
        let their_bytes = copy_out(&theirs, &format!("COPY ({query}) TO STDOUT (FORMAT binary)")).await;
        assert_eq!(ours_bytes, their_bytes, "binary COPY of {query}");
    }

    // PostgreSQL's bytes load into asofdb; a column list picks the columns.
    assert_eq!(copy_in(&ours, "COPY back FROM STDIN (FORMAT binary)", &postgres_bytes).await.unwrap(), 5);
    assert_eq!(text_rows(&ours, "SELECT * FROM back ORDER BY id").await, expected);
    let two = copy_out(&theirs, "COPY (SELECT ts, id FROM every WHERE id = 1) TO STDOUT (FORMAT binary)").await;
    copy_in(&ours, "COPY back (ts, id) FROM STDIN (FORMAT binary)", &two).await.unwrap();
    assert_eq!(
        text_rows(&ours, "SELECT id, ts, t FROM back WHERE b IS NULL AND id = 1").await,
        ["1|2024-01-01 00:00:00|NULL"]
    );

    // No rows: the header and trailer alone, which PostgreSQL loads as nothing.
    let empty = copy_out(&ours, "COPY (SELECT * FROM every WHERE id < 0) TO STDOUT (FORMAT binary)").await;
    let postgres_empty = copy_out(&theirs, "COPY (SELECT * FROM every WHERE id < 0) TO STDOUT (FORMAT binary)").await;
    assert_eq!(empty, postgres_empty);
    assert_eq!(copy_in(&theirs, "COPY back FROM STDIN (FORMAT binary)", &empty).await.unwrap(), 0);

    // Malformed data: 22P04, and nothing of it written.
    let before = text_rows(&ours, "SELECT count(*) FROM back").await;
    let header = 19;
    let mut wrong_count = postgres_bytes.clone();
    wrong_count[header] = 0;
    wrong_count[header + 1] = 3; // a tuple announcing 3 fields of 13
    let mut wrong_width = two.clone();
    wrong_width[header + 2..header + 6].copy_from_slice(&4i32.to_be_bytes()); // an 8-byte timestamp sent as 4
    let malformed: [(&str, &[u8]); 4] = [
        ("truncated tuple", &postgres_bytes[..postgres_bytes.len() - 40]),
        ("bad signature", b"PGCOPY\n\xfe\r\n\0\0\0\0\0\0\0\0\0\xff\xff"),
        ("field count", &wrong_count),
        ("field width", &wrong_width),
    ];
    for (what, bytes) in malformed {
        let columns = if what == "field width" { " (ts, id)" } else { "" };
        let error = copy_in(&ours, &format!("COPY back{columns} FROM STDIN (FORMAT binary)"), bytes).await.unwrap_err();
        let code = error.as_db_error().map(|e| e.code().code().to_string());
        assert_eq!(code.as_deref(), Some("22P04"), "{what}: {error:?}");
        assert_eq!(text_rows(&ours, "SELECT count(*) FROM back").await, before, "{what} wrote rows");
    }
}

/// A COPY TO that fails after rows went out ends with PostgreSQL's ErrorResponse (not a
/// CopyFail, which only a client sends), with the error's SQLSTATE, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_failing_midway_reports_the_error_and_the_connection_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(data.path());
    let ours = connect(&server.conn_string()).await;
    let postgres = Postgres::start();
    let theirs = connect(&postgres.conn_string()).await;
    for format in ["text", "csv", "binary"] {
        let sql =
            format!("COPY (SELECT 1 / (x - 15000) FROM generate_series(1, 20000) AS g(x)) TO STDOUT (FORMAT {format})");
        let mut codes = Vec::new();
        for client in [&ours, &theirs] {
            let error = match client.copy_out(sql.as_str()).await {
                Ok(stream) => stream.try_collect::<Vec<Bytes>>().await.unwrap_err(),
                Err(e) => e,
            };
            codes.push(error.as_db_error().map(|e| e.code().code().to_string()));
            assert_eq!(text_rows(client, "SELECT 41 + 1").await, vec!["42".to_string()], "{format}: connection usable");
        }
        assert_eq!(codes[0].as_deref(), Some("22012"), "{format}");
        assert_eq!(codes[0], codes[1], "{format}: the same error as PostgreSQL");
    }
    // Inside a transaction block the failure aborts it, as any error does.
    let sql = "COPY (SELECT 1 / (x - 15000) FROM generate_series(1, 20000) AS g(x)) TO STDOUT (FORMAT binary)";
    for client in [&ours, &theirs] {
        client.batch_execute("BEGIN").await.unwrap();
        let stream = client.copy_out(sql).await.unwrap();
        assert!(stream.try_collect::<Vec<Bytes>>().await.is_err());
        let after = client.simple_query("SELECT 1").await.unwrap_err();
        assert_eq!(after.as_db_error().map(|e| e.code().code()), Some("25P02"), "{after:?}");
        client.batch_execute("ROLLBACK").await.unwrap();
    }
}
