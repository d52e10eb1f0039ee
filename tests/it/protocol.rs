//! Extended-protocol details that drivers rely on, checked message by message with a minimal
//! hand-written frontend: Describe before Bind, declared parameter types, text and binary
//! timestamps, and an error in the middle of a pipeline.

use crate::common;

use common::BinaryServer;
use common::frontend::{Frontend, Message, Param, cstr};

/// Postgres OIDs used below.
const INT4: u32 = 23;
const INT8: u32 = 20;
const FLOAT8: u32 = 701;
const TIMESTAMP: u32 = 1114;

fn tags(messages: &[Message]) -> String {
    messages.iter().map(|m| m.tag as char).collect()
}

fn text_rows(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            m.values()
                .into_iter()
                .map(|v| v.map(|b| String::from_utf8(b).unwrap()).unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn setup(server: &BinaryServer) -> Frontend {
    let mut fe = Frontend::connect(server);
    let created = fe.query(
        "CREATE TABLE tx (id BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts'); \
         INSERT INTO tx VALUES (1, 10.5, '2025-12-04 16:50:00'), (2, 20, '2025-12-05 08:00:00')",
    );
    assert!(!created.iter().any(|m| m.tag == b'E'), "{created:?}");
    fe
}

/// Microseconds since 2000-01-01, PostgreSQL's binary timestamp.
fn pg_micros(ts: &str) -> i64 {
    let t = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").unwrap();
    let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    (t - epoch).num_microseconds().unwrap()
}

#[test]
fn describe_before_bind_reports_parameter_and_result_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let mut fe = setup(&server);

    fe.parse("q", "SELECT id, amt * $2 AS scaled FROM tx WHERE id = $1", &[]);
    fe.describe_statement("q");
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "1tTZ", "{replies:?}");
    assert_eq!(replies[1].parameter_oids(), vec![INT8, FLOAT8]);
    assert_eq!(replies[2].columns(), vec![("id".into(), INT8), ("scaled".into(), FLOAT8)]);

    // A cast types its placeholder, as in PostgreSQL.
    fe.parse("c", "SELECT $1::BIGINT + 1 AS n", &[]);
    fe.describe_statement("c");
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "1tTZ", "{replies:?}");
    assert_eq!(replies[1].parameter_oids(), vec![INT8]);

    // A statement without result columns answers NoData.
    fe.parse("i", "INSERT INTO tx VALUES ($1, $2, $3)", &[]);
    fe.describe_statement("i");
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "1tnZ", "{replies:?}");
    assert_eq!(replies[1].parameter_oids(), vec![INT8, FLOAT8, TIMESTAMP]);
}

#[test]
fn declared_parameter_types_override_inferred_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let mut fe = setup(&server);

    // JDBC's setInt declares int4 for a BIGINT column, and sends 4 binary bytes.
    fe.parse("q", "SELECT amt FROM tx WHERE id = $1", &[INT4]);
    fe.describe_statement("q");
    fe.bind("q", &[Param::Binary(2i32.to_be_bytes().to_vec())], false);
    fe.execute();
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "1tT2DCZ", "{replies:?}");
    assert_eq!(replies[1].parameter_oids(), vec![INT4]);
    assert_eq!(text_rows(&replies), vec!["20"]);
}

#[test]
fn text_and_binary_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let mut fe = setup(&server);

    // JDBC's text form of a Timestamp carries fractional seconds: `2025-12-04 16:50:00.0`.
    fe.parse("i", "INSERT INTO tx VALUES ($1, $2, $3)", &[]);
    fe.bind("i", &[Param::Text("3"), Param::Text("1.5"), Param::Text("2025-12-04 16:50:00.0")], false);
    fe.execute();
    // A date alone is midnight, as PostgreSQL reads it.
    fe.bind("i", &[Param::Text("4"), Param::Text("2.5"), Param::Text("2025-12-06")], false);
    fe.execute();
    // Binary: int64 microseconds since 2000-01-01.
    let micros = pg_micros("2025-12-07 09:30:15");
    fe.bind("i", &[Param::Text("5"), Param::Text("3.5"), Param::Binary(micros.to_be_bytes().to_vec())], false);
    fe.execute();
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "12C2C2CZ", "{replies:?}");

    let rows = text_rows(&fe.query("SELECT id, ts FROM tx WHERE id >= 3 ORDER BY id"));
    assert_eq!(rows, vec!["3|2025-12-04 16:50:00", "4|2025-12-06 00:00:00", "5|2025-12-07 09:30:15"]);

    // Timestamps come back in binary when asked for, in the same encoding.
    fe.parse("r", "SELECT ts FROM tx WHERE id = $1", &[]);
    fe.bind("r", &[Param::Text("5")], true);
    fe.execute();
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "12DCZ", "{replies:?}");
    let value = replies[2].values()[0].clone().unwrap();
    assert_eq!(i64::from_be_bytes(value.try_into().unwrap()), micros);
}

#[test]
fn an_error_mid_pipeline_skips_to_sync_and_the_connection_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let mut fe = setup(&server);

    fe.parse("i", "INSERT INTO tx VALUES ($1, $2, $3)", &[]);
    fe.bind("i", &[Param::Text("10"), Param::Text("1"), Param::Text("2025-12-08 10:00:00")], false);
    fe.execute();
    // NULL into the NOT NULL event time fails...
    fe.send(b'B', &{
        let mut body = cstr("");
        body.extend(cstr("i"));
        body.extend(0u16.to_be_bytes());
        body.extend(3u16.to_be_bytes());
        for v in ["11", "1"] {
            body.extend((v.len() as i32).to_be_bytes());
            body.extend(v.as_bytes());
        }
        body.extend((-1i32).to_be_bytes());
        body.extend(0u16.to_be_bytes());
        body
    });
    fe.execute();
    // ...so everything after it up to Sync is skipped, even a statement that would work.
    fe.bind("i", &[Param::Text("12"), Param::Text("1"), Param::Text("2025-12-08 10:00:00")], false);
    fe.execute();
    fe.parse("x", "SELECT 1", &[]);
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "12C2EZ", "{replies:?}");
    assert_eq!(replies[4].error_field(b'C').as_deref(), Some("23502"));
    assert_eq!(replies[5].body, b"I", "idle after Sync");

    // The connection recovers. Outside an explicit transaction each Execute commits on its
    // own (docs/clients.md), so the first INSERT stays and the skipped one never ran.
    let rows = text_rows(&fe.query("SELECT id FROM tx WHERE id >= 10 ORDER BY id"));
    assert_eq!(rows, vec!["10"]);

    // Inside BEGIN the failed pipeline leaves the transaction aborted until ROLLBACK.
    assert_eq!(tags(&fe.query("BEGIN")), "CZ");
    fe.parse("", "SELECT * FROM missing_table", &[]);
    fe.bind("", &[], false);
    fe.execute();
    fe.sync();
    let replies = fe.until_ready();
    assert_eq!(tags(&replies), "EZ", "{replies:?}");
    assert_eq!(replies[0].error_field(b'C').as_deref(), Some("42P01"));
    assert_eq!(replies[1].body, b"E", "failed transaction after Sync");
    let replies = fe.query("SELECT 1");
    assert_eq!(replies[0].error_field(b'C').as_deref(), Some("25P02"));
    assert_eq!(tags(&fe.query("ROLLBACK")), "CZ");
    assert_eq!(text_rows(&fe.query("SELECT count(*) FROM tx")), vec!["3"]);
}
