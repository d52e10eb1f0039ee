//! The wire protocol with a real driver (tokio-postgres): extended protocol, parameters,
//! binary results, pipelining, errors, concurrency, cancellation, garbage input.

use crate::common;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::types::Type;

use common::{TestServer, text_rows};

async fn setup(server: &TestServer) -> tokio_postgres::Client {
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, note TEXT, ts TIMESTAMP NOT NULL) \
             WITH (event_time = 'ts')",
        )
        .await
        .unwrap();
    client
}

fn ts(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters_and_return_binary_rows() {
    let server = TestServer::start().await;
    let client = setup(&server).await;

    let insert = client.prepare("INSERT INTO tx VALUES ($1, $2, $3, $4, $5)").await.unwrap();
    assert_eq!(insert.params(), &[Type::INT8, Type::INT8, Type::FLOAT8, Type::TEXT, Type::TIMESTAMP]);
    for i in 0..10i64 {
        let n = client
            .execute(&insert, &[&i, &(i % 3), &(i as f64 * 1.5), &format!("note {i}"), &ts("2024-01-01 09:00:00")])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    // A NULL parameter and a parameter carrying quotes.
    client
        .execute(&insert, &[&100i64, &None::<i64>, &None::<f64>, &"it's \"quoted\"", &ts("2024-01-02 00:00:00")])
        .await
        .unwrap();

    let select = client.prepare("SELECT id, amt, note, ts FROM tx WHERE card = $1 ORDER BY id").await.unwrap();
    assert_eq!(select.params(), &[Type::INT8]);
    assert_eq!(select.columns().len(), 4);
    assert_eq!(select.columns()[3].type_(), &Type::TIMESTAMP);
    // tokio-postgres requests binary results for every column.
    let rows = client.query(&select, &[&1i64]).await.unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 4, 7]);
    let amt: f64 = rows[1].get(1);
    assert_eq!(amt, 6.0);
    let when: chrono::NaiveDateTime = rows[0].get(3);
    assert_eq!(when, ts("2024-01-01 09:00:00"));

    let note: String = client.query_one("SELECT note FROM tx WHERE id = $1", &[&100i64]).await.unwrap().get(0);
    assert_eq!(note, "it's \"quoted\"");

    // Declared parameter types win over inferred ones.
    let typed = client.prepare_typed("SELECT count(*) FROM tx WHERE id < $1", &[Type::INT4]).await.unwrap();
    let count: i64 = client.query_one(&typed, &[&5i32]).await.unwrap().get(0);
    assert_eq!(count, 5);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstate_and_the_connection_recovers() {
    let server = TestServer::start().await;
    let client = setup(&server).await;

    let err = client.query("SELECT * FROM nowhere", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let err = client.query("SELECT nope FROM tx", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");
    let err = client.batch_execute("SELEC 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    let err = client.execute("INSERT INTO tx VALUES (1, 1, 1.0, 'x', NULL)", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "23502");

    // Pipelined statements: the failing one is reported, its neighbours are unaffected.
    let good = client.query_one("SELECT 1::BIGINT", &[]);
    let bad = client.query_one("SELECT 1/0", &[]);
    let good_again = client.query_one("SELECT 2::BIGINT", &[]);
    let (a, b, c) = tokio::join!(good, bad, good_again);
    assert_eq!(a.unwrap().get::<_, i64>(0), 1);
    assert!(b.is_err());
    assert_eq!(c.unwrap().get::<_, i64>(0), 2);

    // Simple protocol: the first failing statement stops the rest of the query string.
    let err = client
        .batch_execute("INSERT INTO tx VALUES (1, 1, 1.0, 'a', '2024-01-01'); SELECT * FROM nowhere; INSERT INTO tx VALUES (2, 1, 1.0, 'b', '2024-01-01')")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    let count: i64 = client.query_one("SELECT count(*) FROM tx", &[]).await.unwrap().get(0);
    assert_eq!(count, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_through_the_driver() {
    let server = TestServer::start().await;
    let client = setup(&server).await;

    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv, HEADER true)").await.unwrap();
    futures::pin_mut!(sink);
    let mut data = String::from("id,card,amt,note,ts\n");
    for i in 0..1000 {
        data.push_str(&format!("{i},{},{}.5,\"n,{i}\",2024-01-01 {:02}:{:02}:00\n", i % 10, i, (i / 60) % 24, i % 60));
    }
    // Send in uneven chunks: the server must not assume chunk boundaries are lines.
    for chunk in data.as_bytes().chunks(777) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 1000);

    let stream = client
        .copy_out("COPY (SELECT id, note FROM tx WHERE id < 3 ORDER BY id) TO STDOUT WITH (FORMAT csv)")
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let text: String = chunks.into_iter().map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap()).collect();
    assert_eq!(text, "0,\"n,0\"\n1,\"n,1\"\n2,\"n,2\"\n");

    // A failing COPY writes nothing.
    let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv)").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"5000,1,1.0,x,2024-01-01 00:00:00\n5001,1,oops,x,2024-01-01 00:00:00\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22P02");
    let count: i64 = client.query_one("SELECT count(*) FROM tx", &[]).await.unwrap().get(0);
    assert_eq!(count, 1000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections_write_and_read() {
    let server = TestServer::start().await;
    let setup_client = setup(&server).await;
    let mut tasks = Vec::new();
    for c in 0..32i64 {
        let conn = server.conn_string();
        tasks.push(tokio::spawn(async move {
            let client = common::connect(&conn).await;
            let insert = client.prepare("INSERT INTO tx (id, card, ts) VALUES ($1, $2, $3)").await.unwrap();
            for i in 0..20i64 {
                client.execute(&insert, &[&(c * 1000 + i), &c, &ts("2024-01-01 00:00:00")]).await.unwrap();
            }
            let n: i64 = client.query_one("SELECT count(*) FROM tx WHERE card = $1", &[&c]).await.unwrap().get(0);
            assert_eq!(n, 20, "read-your-writes on connection {c}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = setup_client.query_one("SELECT count(*) FROM tx", &[]).await.unwrap().get(0);
    assert_eq!(total, 32 * 20);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_over_the_extended_protocol() {
    let server = TestServer::start().await;
    let mut client = setup(&server).await;
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO tx (id, ts) VALUES ($1, $2)", &[&1i64, &ts("2024-01-01 00:00:00")]).await.unwrap();
    txn.rollback().await.unwrap();
    let txn = client.transaction().await.unwrap();
    txn.execute("INSERT INTO tx (id, ts) VALUES ($1, $2)", &[&2i64, &ts("2024-01-01 00:00:00")]).await.unwrap();
    txn.commit().await.unwrap();
    let ids: Vec<i64> = client.query("SELECT id FROM tx", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![2]);
    server.stop().await;
}

async fn now_of(client: &impl tokio_postgres::GenericClient) -> chrono::DateTime<chrono::Utc> {
    client.query_one("SELECT now()", &[]).await.unwrap().get(0)
}

/// now() is PostgreSQL's transaction_timestamp(): the statement's start outside a block, the
/// BEGIN's inside one, in queries and INSERTs (prepared or not) alike. It was once the
/// instant the server started, for every query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn now_is_the_transaction_start() {
    use chrono::{DateTime, Utc};
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.batch_execute("CREATE TABLE stamps (k INT, at TIMESTAMPTZ, local_at TIMESTAMP)").await.unwrap();

    let before = Utc::now();
    let first = now_of(&client).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = now_of(&client).await;
    let after = Utc::now();
    assert!(before - chrono::Duration::milliseconds(5) <= first && first < second, "{before} {first} {second}");
    assert!(second <= after + chrono::Duration::milliseconds(5), "{second} {after}");

    let txn = client.transaction().await.unwrap();
    let began = now_of(&txn).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    txn.execute("INSERT INTO stamps VALUES ($1, now(), now())", &[&1i32]).await.unwrap();
    txn.batch_execute("INSERT INTO stamps VALUES (2, current_timestamp, current_timestamp)").await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(now_of(&txn).await, began);
    txn.commit().await.unwrap();
    let rows = client.query("SELECT at, local_at::timestamptz FROM stamps ORDER BY k", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let (at, local): (DateTime<Utc>, DateTime<Utc>) = (row.get(0), row.get(1));
        assert_eq!((at, local), (began, began));
    }
    assert!(now_of(&client).await > began);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_protocol_reports_every_statement() {
    let server = TestServer::start().await;
    let client = setup(&server).await;
    let messages = client
        .simple_query("INSERT INTO tx (id, ts) VALUES (1, '2024-01-01'); SELECT id FROM tx; SHOW server_version")
        .await
        .unwrap();
    let completes: Vec<u64> = messages
        .iter()
        .filter_map(|m| if let SimpleQueryMessage::CommandComplete(n) = m { Some(*n) } else { None })
        .collect();
    assert_eq!(completes, vec![1, 1, 1]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_query() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let token = client.cancel_token();
    let long =
        tokio::spawn(
            async move { client.simple_query("SELECT count(*) FROM generate_series(1, 20000000000) a").await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), long).await.expect("query was not cancelled").unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_do_not_hurt_the_server() {
    let server = TestServer::start().await;
    let payloads: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 64],
        vec![0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef],
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
        vec![0, 0, 0, 3],
    ];
    for payload in payloads {
        let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = socket.write_all(&payload).await;
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(2), socket.read(&mut buf)).await;
    }
    // A garbage message after a valid startup.
    let client = server.connect().await;
    let one: i64 = client.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    server.stop().await;
}

/// Prepared key-equality reads of a feature take the fast path (`plan::point_read`); they must
/// answer exactly what the general path answers (here forced by ORDER BY), in binary too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_feature_point_reads_match_the_general_path() {
    let server = TestServer::start().await;
    let client = setup(&server).await;
    client
        .batch_execute(
            "INSERT INTO tx VALUES (1, 1, 10, 'a', '2024-01-01 09:00:00'), (2, 1, 20, 'b', '2024-01-01 09:30:00'),
                                   (3, 2, 5, 'a', '2024-01-01 09:40:00'), (4, 2, NULL, 'a', '2024-01-01 09:50:00');
             CREATE FEATURE by_card AS SELECT card, count(*) AS n, sum(amt) AS total, max(note) AS top
               FROM tx GROUP BY card WINDOW SLIDING INTERVAL '1 hour';
             CREATE FEATURE by_card_note AS SELECT card, note, count(*) AS n FROM tx GROUP BY card, note",
        )
        .await
        .unwrap();
    let fast = client.prepare("SELECT total, n AS events, top FROM by_card WHERE card = $1").await.unwrap();
    let general =
        client.prepare("SELECT total, n AS events, top FROM by_card WHERE card = $1 ORDER BY n").await.unwrap();
    let rows = |rows: Vec<tokio_postgres::Row>| -> Vec<(Option<f64>, i64, Option<String>)> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    for card in [1i64, 2, 3] {
        let a = rows(client.query(&fast, &[&card]).await.unwrap());
        let b = rows(client.query(&general, &[&card]).await.unwrap());
        assert_eq!(a, b, "card {card}");
    }
    // Every column, the key and the evaluation time included, in the order asked for.
    let fast_all = client.prepare("SELECT ts, n, card, total FROM by_card WHERE card = $1").await.unwrap();
    let general_all =
        client.prepare("SELECT ts, n, card, total FROM by_card WHERE card = $1 ORDER BY n").await.unwrap();
    let all_columns = |rows: Vec<tokio_postgres::Row>| -> Vec<(chrono::NaiveDateTime, i64, i64, Option<f64>)> {
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect()
    };
    for card in [1i64, 2, 3] {
        let a = all_columns(client.query(&fast_all, &[&card]).await.unwrap());
        let b = all_columns(client.query(&general_all, &[&card]).await.unwrap());
        assert_eq!(a, b, "card {card}");
    }
    assert_eq!(rows(client.query(&fast, &[&1i64]).await.unwrap()), vec![(Some(30.0), 2, Some("b".into()))]);
    assert!(client.query(&fast, &[&None::<i64>]).await.unwrap().is_empty());
    // A parameter type the client declares (JDBC's setInt: int4 for the BIGINT key).
    let int4 = client.prepare_typed("SELECT n FROM by_card WHERE card = $1", &[Type::INT4]).await.unwrap();
    let n: Vec<i64> = client.query(&int4, &[&2i32]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(n, vec![2]);

    let composite = client.prepare("SELECT n FROM by_card_note WHERE note = $2 AND card = $1").await.unwrap();
    let n: Vec<i64> = client.query(&composite, &[&2i64, &"a"]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(n, vec![2]);
    // A write is visible to the next fast read.
    client.batch_execute("INSERT INTO tx VALUES (5, 2, 1, 'a', '2024-01-01 09:55:00')").await.unwrap();
    let n: Vec<i64> = client.query(&composite, &[&2i64, &"a"]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(n, vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cancels_long_statements_with_57014() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // Slow by its size, not its arithmetic: a statement is cancelled between batches, and a
    // debug build computes a batch of checked products slowly.
    let slow = "SELECT count(*) FROM generate_series(1, 200000) a, generate_series(1, 200000) b WHERE a < b";
    client.batch_execute("SET statement_timeout = '200ms'").await.unwrap();
    assert_eq!(text_rows(&client, "SHOW statement_timeout").await, vec!["200ms"]);
    let started = std::time::Instant::now();
    for outcome in [client.simple_query(slow).await.err(), client.query(slow, &[]).await.err()] {
        let error = outcome.expect("the slow query was stopped");
        let db = error.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "57014");
        assert_eq!(db.message(), "canceling statement due to statement timeout");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    // Quick statements still run, and the limit can be lifted.
    assert_eq!(text_rows(&client, "SELECT 1 + 1").await, vec!["2"]);
    client.batch_execute("SET statement_timeout TO DEFAULT").await.unwrap();
    assert_eq!(text_rows(&client, "SHOW statement_timeout").await, vec!["0"]);
    let error = client.batch_execute("SET statement_timeout = 'soon'").await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("22023"));
}

/// Issue #30: a statement prepared before DDL reads what its names denote at each Execute
/// (re-planned, as PostgreSQL re-plans a cached plan), or fails with PostgreSQL's error; it
/// never reads a dropped feature's frozen state or a dropped table's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_follow_ddl() {
    let server = TestServer::start().await;
    let client = setup(&server).await;
    let feature = "CREATE FEATURE f AS SELECT card, count(*) AS n FROM tx GROUP BY card";
    client
        .batch_execute(&format!(
            "INSERT INTO tx VALUES (1, 7, 10.0, 'a', '2024-01-01 09:00:00'); {feature}; \
             CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL); \
             INSERT INTO spine VALUES (7, '2024-01-02 00:00:00')"
        ))
        .await
        .unwrap();
    let point = client.prepare("SELECT n FROM f WHERE card = $1").await.unwrap();
    let asof = client
        .prepare("SELECT s.card, f.n FROM spine s ASOF LEFT JOIN f ON s.card = f.card AND s.t >= f.ts")
        .await
        .unwrap();
    let scan = client.prepare("SELECT count(*) FROM tx WHERE card = $1").await.unwrap();
    let read_all = |expected: i64| {
        let (client, point, asof, scan) = (&client, &point, &asof, &scan);
        async move {
            let n: i64 = client.query_one(point, &[&7i64]).await.unwrap().get(0);
            assert_eq!(n, expected, "prepared point read");
            let n: Option<i64> = client.query_one(asof, &[]).await.unwrap().get(1);
            assert_eq!(n, Some(expected), "prepared ASOF JOIN");
            let n: i64 = client.query_one(scan, &[&7i64]).await.unwrap().get(0);
            assert_eq!(n, expected, "prepared scan");
        }
    };
    read_all(1).await;

    // DROP: the next Execute fails as PostgreSQL's does for a dropped relation.
    client.batch_execute("DROP FEATURE f").await.unwrap();
    let error = client.query_one(&point, &[&7i64]).await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"), "{error}");
    let error = client.query_one(&asof, &[]).await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"), "{error}");

    // DROP + CREATE of the same shape, then more rows: the new feature's values.
    client.batch_execute(feature).await.unwrap();
    client.batch_execute("INSERT INTO tx VALUES (2, 7, 1.0, 'b', '2024-01-01 10:00:00')").await.unwrap();
    read_all(2).await;
    client.batch_execute("INSERT INTO tx VALUES (3, 7, 1.0, 'c', '2024-01-01 11:00:00')").await.unwrap();
    read_all(3).await;

    // Result columns changed: PostgreSQL's 0A000, and the connection goes on.
    client
        .batch_execute("DROP FEATURE f; CREATE FEATURE f AS SELECT card, sum(amt) AS n FROM tx GROUP BY card")
        .await
        .unwrap();
    for statement in [&point, &asof] {
        let key: &(dyn tokio_postgres::types::ToSql + Sync) = &7i64;
        let error = client.query(statement, &[key][..statement.params().len()]).await.unwrap_err();
        assert_eq!(error.code().map(|c| c.code()), Some("0A000"), "{error}");
        let message = error.as_db_error().map(|e| e.message()).unwrap_or_default();
        assert_eq!(message, "cached plan must not change result type");
    }

    // DROP TABLE ... CASCADE, then a new table of the same name with other rows.
    client.batch_execute("DROP TABLE tx CASCADE").await.unwrap();
    let error = client.query_one(&scan, &[&7i64]).await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("42P01"), "{error}");
    client
        .batch_execute(&format!(
            "CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, note TEXT, ts TIMESTAMP NOT NULL) \
             WITH (event_time = 'ts'); {feature}; \
             INSERT INTO tx VALUES (1, 7, 1.0, 'x', '2024-01-01 09:00:00'), (2, 7, 1.0, 'y', '2024-01-01 09:30:00'), \
             (3, 7, 1.0, 'z', '2024-01-01 09:45:00'), (4, 7, 1.0, 'z', '2024-01-01 09:50:00')"
        ))
        .await
        .unwrap();
    read_all(4).await;
    // Unprepared, the same answers (the general path agrees with the re-planned one).
    assert_eq!(text_rows(&client, "SELECT n FROM f WHERE card = 7").await, vec!["4"]);
    server.stop().await;
}

/// PostgreSQL allows repeated output names (`SELECT a, a`); clients see each name as written,
/// and as PostgreSQL names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_output_names_reach_the_client() {
    let server = TestServer::start().await;
    let client = setup(&server).await;
    client.batch_execute("INSERT INTO tx VALUES (1, 7, 10.0, 'a', '2024-01-01 09:00:00')").await.unwrap();
    let statement = client.prepare("SELECT id, tx.id, card AS id, 1 + 1, 2 * 2 FROM tx").await.unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "id", "id", "?column?", "?column?"]);
    let row = client.query_one(&statement, &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(2), row.get::<_, i32>(4)), (1, 7, 4));
    // PostgreSQL's names for functions, CASE, EXISTS and casts.
    let statement = client
        .prepare(
            "SELECT count(*), max(id), CASE WHEN true THEN 1 END, 1::int, id::text, EXISTS (SELECT 1), \
             TIMESTAMP '2024-01-01', count(*) FROM tx GROUP BY id",
        )
        .await
        .unwrap();
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "max", "case", "int4", "id", "exists", "timestamp", "count"]);
    for message in client.simple_query("SELECT note, note FROM tx").await.unwrap() {
        if let SimpleQueryMessage::Row(row) = message {
            let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            assert_eq!(names, ["note", "note"]);
            assert_eq!((row.get(0), row.get(1)), (Some("a"), Some("a")));
        }
    }
    server.stop().await;
}

/// The session's time zone may come with the connection (`options=-c TimeZone=...`, as
/// libpq's PGOPTIONS and pgjdbc send it) and decides how TIMESTAMPTZ values are printed;
/// binary values are instants, the same in every zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_zone_comes_with_the_connection() {
    let server = TestServer::start().await;
    let conn = format!("{} options='-c TimeZone=America/New_York'", server.conn_string());
    let client = common::connect(&conn).await;
    assert_eq!(text_rows(&client, "SHOW TimeZone").await, vec!["America/New_York"]);
    let noon_utc = "SELECT TIMESTAMPTZ '2024-01-15 12:00:00+00'";
    assert_eq!(text_rows(&client, noon_utc).await, vec!["2024-01-15 07:00:00-05"]);
    let instant: chrono::DateTime<chrono::Utc> = client.query_one(noon_utc, &[]).await.unwrap().get(0);
    assert_eq!(instant.to_rfc3339(), "2024-01-15T12:00:00+00:00");
    client.batch_execute("SET TIME ZONE 'Asia/Kolkata'").await.unwrap();
    assert_eq!(text_rows(&client, noon_utc).await, vec!["2024-01-15 17:30:00+05:30"]);
    // RESET and DISCARD ALL go back to what the connection started with.
    client.batch_execute("RESET TimeZone").await.unwrap();
    assert_eq!(text_rows(&client, "SHOW TimeZone").await, vec!["America/New_York"]);
    client.batch_execute("SET TIME ZONE 'UTC'; DISCARD ALL").await.unwrap();
    assert_eq!(text_rows(&client, noon_utc).await, vec!["2024-01-15 07:00:00-05"]);
    // Another connection keeps the default.
    assert_eq!(text_rows(&server.connect().await, noon_utc).await, vec!["2024-01-15 12:00:00+00"]);
    server.stop().await;
}

/// CREATE TEMPORARY TABLE (Ibis loads DataFrames through one): the table goes when its
/// session ends, and at start-up if the server was killed first. A plain table stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_tables_go_with_their_session() {
    let data = tempfile::tempdir().unwrap();
    let server = common::BinaryServer::start(data.path());
    let (client, connection) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TEMPORARY TABLE memtable (card BIGINT, t TIMESTAMP); CREATE TABLE kept (card BIGINT); \
             INSERT INTO memtable VALUES (1, '2024-01-01 00:00:00'); INSERT INTO kept SELECT card FROM memtable; \
             CREATE TEMP VIEW memview AS SELECT card FROM memtable; CREATE TEMP VIEW keptview AS SELECT card FROM kept",
        )
        .await
        .unwrap();
    let error = client.batch_execute("CREATE TEMP TABLE gone (x BIGINT) ON COMMIT DROP").await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("0A000"), "{error:?}");
    // Another session replaces a temporary table by a table of its own: that one stays.
    client.batch_execute("CREATE TEMP TABLE staging (x BIGINT)").await.unwrap();
    let (third, connection) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    third.batch_execute("DROP TABLE staging; CREATE TABLE staging (x BIGINT)").await.unwrap();
    // A view of another session's view goes with it; a view of one's own stays.
    third.batch_execute("CREATE TEMP VIEW thirdview AS SELECT card FROM memview").await.unwrap();
    third.batch_execute("CREATE TEMP VIEW ownview AS SELECT x FROM staging").await.unwrap();
    drop(client);
    task.await.unwrap().unwrap();

    let (other, connection) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut names = Vec::new();
    for _ in 0..100 {
        names = text_rows(
            &other,
            "SELECT relname FROM pg_class WHERE relname IN \
             ('memtable', 'kept', 'staging', 'memview', 'keptview', 'thirdview', 'ownview') ORDER BY 1",
        )
        .await;
        if names.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names, ["kept", "ownview", "staging"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(text_rows(&other, "SELECT relname FROM pg_class WHERE relname = 'staging'").await, ["staging"]);
    assert_eq!(text_rows(&other, "SELECT card FROM kept").await, ["1"]);

    // Killed while a session holds one: gone after the restart.
    other.batch_execute("CREATE TEMPORARY TABLE memtable (card BIGINT)").await.unwrap();
    server.kill9();
    let server = common::BinaryServer::start(data.path());
    let (client, connection) = tokio_postgres::connect(&server.conn_string(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        text_rows(&client, "SELECT relname FROM pg_class WHERE relname IN ('memtable', 'kept')").await,
        ["kept"]
    );
    client.batch_execute("CREATE TEMPORARY TABLE memtable (card BIGINT)").await.unwrap();
    server.kill9();
}

/// The array aggregates (spec section 2) reach a driver as PostgreSQL arrays of the argument's
/// type, in binary (extended protocol) and text (simple protocol), through the point-read
/// path and an ASOF JOIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_aggregates_arrive_as_postgres_arrays() {
    let server = TestServer::start().await;
    let client = setup(&server).await;
    client
        .batch_execute(
            "INSERT INTO tx VALUES (1, 1, 10, 'a b', '2024-01-01 09:00:00'), (2, 1, 20, NULL, '2024-01-01 09:30:00'),
                                   (3, 1, NULL, 'c', '2024-01-01 09:40:00'), (4, 2, 5, 'x', '2024-01-01 09:50:00');
             CREATE FEATURE arrays AS SELECT card, last_k(amt, 5) AS amts, max_k(id, 2) AS ids, last_k(note, 2) AS notes,
                 approx_percentile(amt, 0.5) AS p50 FROM tx GROUP BY card WINDOW SLIDING INTERVAL '1 hour';
             CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL);
             INSERT INTO spine VALUES (1, '2024-01-01 09:45:00')",
        )
        .await
        .unwrap();
    let point = client.prepare("SELECT amts, ids, notes, p50 FROM arrays WHERE card = $1").await.unwrap();
    let columns: Vec<Type> = point.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(columns, vec![Type::FLOAT8_ARRAY, Type::INT8_ARRAY, Type::TEXT_ARRAY, Type::FLOAT8]);
    let row = client.query_one(&point, &[&1i64]).await.unwrap();
    assert_eq!(row.get::<_, Vec<f64>>(0), vec![20.0, 10.0]);
    assert_eq!(row.get::<_, Vec<i64>>(1), vec![3, 2]);
    assert_eq!(row.get::<_, Vec<String>>(2), vec!["c".to_string(), "a b".to_string()]);
    assert_eq!(row.get::<_, f64>(3), 15.0);
    let joined = client
        .query_one("SELECT f.amts, f.notes FROM spine s ASOF JOIN arrays f ON s.card = f.card AND s.t >= f.ts", &[])
        .await
        .unwrap();
    assert_eq!(joined.get::<_, Vec<f64>>(0), vec![20.0, 10.0]);
    assert_eq!(joined.get::<_, Vec<String>>(1), vec!["c".to_string(), "a b".to_string()]);
    let text = text_rows(&client, "SELECT amts, notes FROM arrays ORDER BY card").await;
    assert_eq!(text, vec!["{20,10}|{c,\"a b\"}", "{5}|{x}"]);
}

/// ADD COLUMN while another session's transaction holds rows conformed before it: at COMMIT
/// the rows take the new column's default, and a feature created meanwhile over that column
/// counts them; with a NOT NULL column without a default (allowed: the table was empty) the
/// COMMIT fails with 23502 and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_while_a_transaction_holds_rows() {
    let server = TestServer::start().await;
    let (writer, admin) = (setup(&server).await, server.connect().await);
    writer.batch_execute("BEGIN; INSERT INTO tx (id, card, ts) VALUES (1, 7, '2024-01-01 10:00:00')").await.unwrap();
    admin
        .batch_execute(
            "ALTER TABLE tx ADD COLUMN weight BIGINT DEFAULT 3;
             CREATE FEATURE weights AS SELECT card, sum(weight) AS w FROM tx GROUP BY card",
        )
        .await
        .unwrap();
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(text_rows(&admin, "SELECT id, weight FROM tx").await, vec!["1|3"]);
    assert_eq!(text_rows(&admin, "SELECT card, w FROM weights").await, vec!["7|3"]);

    admin.batch_execute("CREATE TABLE empty (a BIGINT)").await.unwrap();
    writer.batch_execute("BEGIN; INSERT INTO empty VALUES (1)").await.unwrap();
    admin.batch_execute("ALTER TABLE empty ADD COLUMN b BIGINT NOT NULL").await.unwrap();
    let err = writer.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23502"), "{err}");
    assert_eq!(text_rows(&admin, "SELECT count(*) FROM empty").await, vec!["0"]);
}
