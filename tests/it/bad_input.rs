//! The bad-input corpus: over a thousand malformed statements, literals, COPY streams and
//! protocol messages, generated and hand-written, sent over the wire to the real binary. Each
//! gets an ErrorResponse with a SQLSTATE of the class it deserves, writes nothing, and the
//! server answers a health query after it.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::frontend::{Frontend, Message};
use common::{BinaryServer, connect};
use futures::SinkExt;

/// Valid statements the generator breaks.
const SEEDS: &[&str] = &[
    "SELECT k, count(*) FROM ev GROUP BY k ORDER BY k",
    "INSERT INTO ev VALUES (1, 2, 3.5, '2025-01-01 00:00:00')",
    "CREATE FEATURE f2 AS SELECT k, max(v) AS top FROM ev GROUP BY k WINDOW SLIDING INTERVAL '1 hour'",
    "SELECT s.id, f.n FROM spine s ASOF JOIN ev_n f ON s.k = f.k AND s.ts >= f.ts",
    "SELECT * FROM ev WHERE ts BETWEEN '2025-01-01' AND '2025-01-02' AND v > 1",
    "CREATE TABLE t2 (a BIGINT, b TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')",
    "UPDATE ev SET v = 1 WHERE id = 2",
    "COPY ev FROM STDIN WITH (FORMAT csv)",
];

/// Tokens that make any statement invalid wherever they go between two tokens.
const BREAKERS: &[&str] = &["'unterminated", ")(", "FROM FROM", ",,", "@@", "\"open", "SELECT SELECT", "WINDOW WINDOW"];

/// Statements that must fail, each with the SQLSTATE classes that fit (two leading chars).
fn statements() -> Vec<(String, &'static [&'static str])> {
    // 0A: a breaker can turn a statement into syntax asofdb parses but does not support;
    // 22: one inside an option's value makes the value invalid.
    const SYNTAX: &[&str] = &["42", "0A", "22"];
    const DATA: &[&str] = &["22", "23"];
    let mut out: Vec<(String, &'static [&'static str])> = Vec::new();
    // Generated: a breaker between every pair of tokens of every seed.
    for seed in SEEDS {
        let tokens: Vec<&str> = seed.split(' ').collect();
        for at in 1..tokens.len() {
            // Not inside a string literal, where a breaker is only a bad value.
            if tokens[..at].iter().map(|t| t.matches('\'').count()).sum::<usize>() % 2 == 1 {
                continue;
            }
            for breaker in BREAKERS {
                let mut broken = tokens.clone();
                broken.insert(at, breaker);
                out.push((broken.join(" "), SYNTAX));
            }
        }
        // Truncated in the middle of a string literal.
        if let Some(quote) = seed.find('\'') {
            out.push((seed[..quote + 2].to_string(), SYNTAX));
        }
    }
    // Generated: bad literals for every column type.
    let columns = [
        ("id", &["'x'", "'1.5'", "99999999999999999999", "''", "'1e400'"][..]),
        ("k", &["'abc'", "'--'", "'9223372036854775808'"][..]),
        ("v", &["'not a number'", "'1,5'", "'NaNx'"][..]),
        (
            "ts",
            &["'2025-13-01'", "'yesterday-ish'", "'2025-02-30 00:00:00'", "'25:00'", "NULL", "'2025-01-01 24:61:00'"][..],
        ),
    ];
    for (column, values) in columns {
        for value in values {
            let mut row = ["1", "2", "3.5", "'2025-01-01 00:00:00'"];
            let index = ["id", "k", "v", "ts"].iter().position(|c| *c == column).unwrap();
            row[index] = value;
            out.push((format!("INSERT INTO ev VALUES ({})", row.join(", ")), DATA));
            out.push((
                format!("INSERT INTO ev (id, k, v, ts) VALUES (1, 2, 3.5, '2025-01-01'), ({})", row.join(", ")),
                DATA,
            ));
            out.push((format!("SELECT CAST({value} AS BIGINT) + CAST({value} AS TIMESTAMP) FROM ev"), &["22", "42"]));
        }
    }
    // Hand-written: names, arity, types, features, ASOF joins, DDL.
    let hand: &[(&str, &'static [&'static str])] = &[
        ("SELECT * FROM missing_table", &["42"]),
        ("SELECT missing_column FROM ev", &["42"]),
        ("INSERT INTO ev VALUES (1, 2)", &["42"]),
        ("INSERT INTO ev VALUES (1, 2, 3, '2025-01-01', 5)", &["42"]),
        ("INSERT INTO missing VALUES (1)", &["42"]),
        ("CREATE TABLE ev (a BIGINT)", &["42"]),
        ("CREATE TABLE t3 (a BIGINT, ts TIMESTAMP) WITH (event_time = 'nope')", &["42", "22"]),
        ("CREATE TABLE t3 (a NOSUCHTYPE)", &["42"]),
        ("CREATE FEATURE f3 AS SELECT k, max(v) FROM ev GROUP BY k WINDOW SLIDING INTERVAL 'forever'", &["42", "22"]),
        (
            "CREATE FEATURE f3 AS SELECT k, max(v) AS m FROM missing GROUP BY k WINDOW SLIDING INTERVAL '1 hour'",
            &["42"],
        ),
        ("CREATE FEATURE f3 AS SELECT k, max(v) AS m FROM ev WINDOW SLIDING INTERVAL '1 hour'", &["42"]),
        ("CREATE FEATURE ev_n AS SELECT k, count(*) AS n FROM ev GROUP BY k", &["42"]),
        (
            "CREATE FEATURE f3 AS SELECT k, max(v) AS m FROM ev GROUP BY k WINDOW SLIDING INTERVAL '-1 hour'",
            &["42", "22"],
        ),
        ("SELECT * FROM spine s ASOF JOIN ev f ON s.k = f.k", &["42", "0A"]),
        ("SELECT * FROM spine s ASOF JOIN ev f ON s.ts >= f.ts AND s.ts <= f.ts", &["42", "0A"]),
        ("SELECT * FROM spine s ASOF JOIN missing f ON s.k = f.k AND s.ts >= f.ts", &["42"]),
        ("DROP TABLE missing", &["42"]),
        ("DROP FEATURE missing", &["42"]),
        ("DROP TABLE ev", &["2B"]),
        ("SELECT 1/0", &["22"]),
        ("SELECT CAST('x' AS BIGINT)", &["22"]),
        ("SELECT '2025-01-01'::TIMESTAMP + 'x'", &["22", "42"]),
        ("SELECT", &["42"]),
        ("(", &["42"]),
        ("SELECT 'a' || ", &["42"]),
        ("COMMIT AND CHAIN NOW", &["42"]),
        ("SET", &["42"]),
        ("EXPLAIN", &["42"]),
        ("SELECT '\u{1F600}' + 1", &["22", "42"]),
    ];
    out.extend(hand.iter().map(|(sql, classes)| (sql.to_string(), *classes)));
    out
}

/// CSV bodies for `COPY ev FROM STDIN (FORMAT csv)` that must be rejected whole.
fn copy_streams() -> Vec<String> {
    let good = "1,2,3.5,2025-01-01 00:00:00\n";
    let bad_rows = [
        "1,2,3.5\n",
        "1,2,3.5,2025-01-01 00:00:00,extra\n",
        "x,2,3.5,2025-01-01 00:00:00\n",
        "1,2,abc,2025-01-01 00:00:00\n",
        "1,2,3.5,not a time\n",
        "1,2,3.5,\n",
        "1,2,\"3.5,2025-01-01 00:00:00\n",
        "99999999999999999999,2,3.5,2025-01-01 00:00:00\n",
        "1,2,3.5,2025-02-30 00:00:00\n",
        "\u{0},2,3.5,2025-01-01 00:00:00\n",
    ];
    let mut out = Vec::new();
    for bad in bad_rows {
        // The bad row first, last, and after many good ones.
        out.push(bad.to_string());
        out.push(format!("{good}{good}{bad}"));
        out.push(format!("{}{bad}{good}", good.repeat(500)));
    }
    out
}

/// Raw frontend messages (after a normal startup) that must be refused with an ErrorResponse.
fn protocol_messages() -> Vec<(Vec<u8>, &'static str)> {
    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(((body.len() + 4) as u32).to_be_bytes());
        out.extend(body);
        out
    }
    let sync = message(b'S', &[]);
    let mut out = Vec::new();
    // Bind to a statement that does not exist.
    let mut bind = b"\0nope\0".to_vec();
    bind.extend([0, 0, 0, 0, 0, 0]);
    out.push(([message(b'B', &bind), sync.clone()].concat(), "26"));
    // Execute a portal that does not exist.
    out.push(([message(b'E', b"nope\0\0\0\0\0"), sync.clone()].concat(), "34"));
    // Describe a statement that does not exist.
    out.push(([message(b'D', b"Snope\0"), sync.clone()].concat(), "26"));
    // Parse of invalid SQL.
    out.push(([message(b'P', b"\0SELEC 1\0\0\0"), sync.clone()].concat(), "42"));
    // Parse then Bind with the wrong number of parameters.
    let parse = message(b'P', b"s1\0SELECT id FROM ev WHERE id = $1\0\0\0");
    let mut bind = b"\0s1\0".to_vec();
    bind.extend([0, 0, 0, 0, 0, 0]);
    out.push(([parse.clone(), message(b'B', &bind), sync.clone()].concat(), "08"));
    // A parameter that is not a number, in text.
    let mut bind = b"\0s1\0".to_vec();
    bind.extend([0, 0, 0, 1, 0, 0, 0, 3]);
    bind.extend(b"abc");
    bind.extend([0, 0]);
    out.push(([parse.clone(), message(b'B', &bind), message(b'E', b"\0\0\0\0\0"), sync.clone()].concat(), "22"));
    // A binary parameter of the wrong width.
    let mut bind = b"\0s1\0".to_vec();
    bind.extend([0, 1, 0, 1, 0, 1, 0, 0, 0, 3, 1, 2, 3, 0, 0]);
    out.push(([parse, message(b'B', &bind), message(b'E', b"\0\0\0\0\0"), sync.clone()].concat(), "22"));
    out
}

/// The SQLSTATEs of the ErrorResponses among `messages`.
fn error_codes(messages: &[Message]) -> Vec<String> {
    messages.iter().filter(|m| m.tag == b'E').map(|m| m.error_field(b'C').unwrap_or_default()).collect()
}

async fn rows_in_ev(client: &tokio_postgres::Client) -> i64 {
    client.query_one("SELECT count(*) FROM ev", &[]).await.expect("health query").get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_input_gets_a_fitting_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client
        .batch_execute(
            "CREATE TABLE ev (id BIGINT, k BIGINT, v DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             CREATE TABLE spine (id BIGINT, k BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             INSERT INTO ev VALUES (100, 1, 1.0, '2025-01-01 00:00:00');
             CREATE FEATURE ev_n AS SELECT k, count(*) AS n FROM ev GROUP BY k",
        )
        .await
        .unwrap();
    let rows_before = rows_in_ev(&client).await;
    let mut sent = 0;

    let statements = statements();
    let mut wrong = Vec::new();
    for (sql, classes) in &statements {
        // Simple protocol, then extended (Parse/Bind/Execute), on the same connection.
        let simple = client.simple_query(sql).await;
        let extended = client.query(sql.as_str(), &[]).await;
        for (protocol, outcome) in [("simple", simple.err()), ("extended", extended.err())] {
            let Some(error) = outcome else {
                wrong.push(format!("{protocol}: {sql:?} succeeded"));
                continue;
            };
            let Some(db) = error.as_db_error() else {
                wrong.push(format!("{protocol}: {sql:?}: not a server error: {error}"));
                continue;
            };
            if !classes.iter().any(|class| db.code().code().starts_with(class)) {
                wrong.push(format!(
                    "{protocol}: {sql:?} got {} ({}), expected {classes:?}",
                    db.code().code(),
                    db.message()
                ));
            }
        }
        assert_eq!(rows_in_ev(&client).await, rows_before, "{sql:?} wrote rows");
        sent += 2;
    }
    assert!(
        wrong.is_empty(),
        "{} of {} statements answered wrongly:\n{}",
        wrong.len(),
        statements.len() * 2,
        wrong.join("\n")
    );

    for data in copy_streams() {
        let outcome = async {
            let sink = client.copy_in("COPY ev FROM STDIN WITH (FORMAT csv)").await?;
            futures::pin_mut!(sink);
            sink.send(bytes::Bytes::from(data.clone())).await?;
            sink.finish().await
        }
        .await;
        let error = outcome.err().unwrap_or_else(|| panic!("COPY of {data:?} succeeded"));
        let code = error.code().map(|c| c.code().to_string()).unwrap_or_default();
        assert!(
            code.starts_with("22") || code.starts_with("23"),
            "COPY of {:?}: {code} {error}",
            &data[..data.len().min(80)]
        );
        assert_eq!(rows_in_ev(&client).await, rows_before, "a rejected COPY wrote rows");
        sent += 1;
    }

    for (bytes, class) in protocol_messages() {
        let mut frontend = Frontend::connect(&server);
        frontend.socket.write_all(&bytes).unwrap();
        let errors = error_codes(&frontend.until_ready());
        assert!(
            errors.first().is_some_and(|code| code.starts_with(class)),
            "message {bytes:?}: errors {errors:?}, expected class {class}"
        );
        // The same connection still answers.
        assert!(error_codes(&frontend.query("SELECT 1")).is_empty());
        assert_eq!(rows_in_ev(&client).await, rows_before);
        sent += 1;
    }

    // Garbage instead of a startup packet, and truncated messages: the connection is closed,
    // the server stays up.
    for garbage in
        [&b"\x00\x00\x00\x08\x12\x34\x56\x78"[..], b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x03"]
    {
        let mut socket = TcpStream::connect(server.addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = socket.write_all(garbage);
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink);
        assert_eq!(rows_in_ev(&client).await, rows_before);
        sent += 1;
    }
    // Messages whose content runs past their declared length (found by fuzz/wire_messages:
    // pgwire's decoders used to panic on them): FATAL 08P01, and the server stays up.
    let truncated: [&[u8]; 5] = [
        b"P\x00\x00\x00\x0bs1\x00q\x00\x00\x01",
        b"B\x00\x00\x00\x0b\x00s1\x00\x00\x00\x00",
        b"B\x00\x00\x00\x10\x00\x00\x00\x00\x00\x01\x00\x00\x00\x7f\x00\x00",
        b"E\x00\x00\x00\x06\x00\x00",
        b"D\x00\x00\x00\x04",
    ];
    for message in truncated {
        let mut frontend = Frontend::connect(&server);
        frontend.socket.write_all(message).unwrap();
        let reply = frontend.read();
        assert_eq!(reply.tag, b'E', "message {message:?}");
        assert_eq!(reply.error_field(b'S').as_deref(), Some("FATAL"), "message {message:?}");
        assert_eq!(reply.error_field(b'C').as_deref(), Some("08P01"), "message {message:?}");
        assert_eq!(rows_in_ev(&client).await, rows_before);
        sent += 1;
    }
    assert!(sent >= 1000, "only {sent} malformed inputs");
    eprintln!("bad input: {sent} malformed inputs, all refused with a fitting SQLSTATE");
}
