//! psql, the reference client, over a real socket against the real binary.

use crate::common;

use std::process::Command;

use common::BinaryServer;

fn psql(server: &BinaryServer, args: &[&str], input: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new("psql");
    cmd.args([
        "-h",
        &server.addr.ip().to_string(),
        "-p",
        &server.addr.port().to_string(),
        "-U",
        "test",
        "-d",
        "asofdb",
    ])
    .args(["-X", "-v", "ON_ERROR_STOP=1", "-A", "-t"])
    .args(args)
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("psql is installed by scripts/test");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn psql_runs_a_script_with_inline_copy_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let script = "\
CREATE TABLE tx (id BIGINT, card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
COPY tx FROM STDIN WITH (FORMAT csv);
1,10,5.5,2024-01-01 09:00:00
2,10,7.5,2024-01-01 09:10:00
3,20,1,2024-01-01 09:20:00
\\.
INSERT INTO tx VALUES (4, 20, 2, '2024-01-01 09:30:00');
SELECT card, count(*), sum(amt) FROM tx GROUP BY card ORDER BY card;
";
    let (ok, out, err) = psql(&server, &[], Some(script));
    assert!(ok, "psql failed: {err}");
    assert!(out.contains("10|2|13"), "{out}");
    assert!(out.contains("20|2|3"), "{out}");
}

#[test]
fn create_feature_reports_backfill_progress_as_notices() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    // Two event-time hours, so the backfill reads two stored blocks.
    let script = "\
CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
INSERT INTO tx VALUES (1, 5, '2024-01-01 09:00:00'), (1, 7, '2024-01-01 10:30:00'), (2, 1, '2024-01-01 10:40:00');
CREATE FEATURE card_1h AS SELECT card, count(*) AS n FROM tx GROUP BY card WINDOW SLIDING INTERVAL '1 hour';
SELECT card, n FROM card_1h ORDER BY card;
";
    let (ok, out, err) = psql(&server, &[], Some(script));
    assert!(ok, "psql failed: {err}");
    assert!(err.contains("NOTICE:  backfilling feature \"card_1h\": 1 of 3 rows (33%)"), "{err}");
    assert!(err.contains("NOTICE:  backfilling feature \"card_1h\": 3 of 3 rows (100%)"), "{err}");
    // The test servers backfill every table on every core (ASOFDB_BACKFILL_SHARDED_ROWS=0).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if cores > 1 { format!(" on {} threads", cores.min(8)) } else { String::new() };
    assert!(err.contains(&format!("NOTICE:  feature \"card_1h\" backfilled from 3 rows{threads} in")), "{err}");
    assert!(out.contains("1|1") && out.contains("2|1"), "{out}");
}

#[test]
fn psql_reports_errors_with_sqlstate_and_backslash_copy_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let (ok, _, err) = psql(&server, &["-v", "VERBOSITY=verbose", "-c", "SELECT * FROM missing"], None);
    assert!(!ok);
    assert!(err.contains("42P01"), "{err}");

    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, "a,b\n1,x\n2,y\n").unwrap();
    let (ok, _, err) = psql(&server, &["-c", "CREATE TABLE t (a BIGINT, b TEXT)"], None);
    assert!(ok, "{err}");
    let copy = format!("\\copy t FROM '{}' WITH (FORMAT csv, HEADER true)", csv.display());
    let (ok, out, err) = psql(&server, &["-c", &copy], None);
    assert!(ok, "{err}");
    assert!(out.contains("COPY 2"), "{out}{err}");
    // No row: the header alone, and no row counted.
    let empty = dir.path().join("empty.csv");
    let copy = format!("\\copy (SELECT a, b FROM t WHERE a < 0) TO '{}' WITH (FORMAT csv, HEADER)", empty.display());
    let (ok, out, err) = psql(&server, &["-c", &copy], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "COPY 0", "{err}");
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "a,b\n");
    let (ok, out, err) = psql(&server, &["-c", "SELECT string_agg(b, '+' ORDER BY a) FROM t"], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "x+y");
}

#[test]
fn psql_meta_commands_describe_tables() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let create = "CREATE TABLE tx (id BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')";
    let (ok, _, err) = psql(&server, &["-c", create], None);
    assert!(ok, "{err}");
    let (ok, out, err) = psql(&server, &["-c", "\\dt"], None);
    assert!(ok, "{err}");
    assert!(out.contains("public|tx|table"), "{out}");
    let (ok, out, err) = psql(&server, &["-c", "\\d tx"], None);
    assert!(ok, "{err}");
    assert!(out.contains("amt|double precision"), "{out}");
    assert!(out.contains("ts|timestamp without time zone||not null"), "{out}");
    let (ok, out, err) = psql(&server, &["-c", "\\dn"], None);
    assert!(ok, "{err}");
    assert!(out.contains("public"), "{out}");
}

#[test]
fn psql_describes_features_lists_databases_and_expands_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let script = "\
CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
INSERT INTO tx VALUES (1, 5, '2024-01-01 09:00:00'), (1, 7, '2024-01-01 09:30:00');
CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx GROUP BY card
  WINDOW SLIDING INTERVAL '1 hour';
";
    let (ok, _, err) = psql(&server, &[], Some(script));
    assert!(ok, "{err}");

    // A feature is a view: its key, its aggregates with their types, and its event time.
    let (ok, out, err) = psql(&server, &["-c", "\\d card_1h"], None);
    assert!(ok, "{err}");
    assert!(out.contains("card|bigint"), "{out}");
    assert!(out.contains("n|bigint"), "{out}");
    assert!(out.contains("max_amt|double precision"), "{out}");
    assert!(out.contains("ts|timestamp without time zone||not null"), "{out}");
    let (ok, out, err) = psql(&server, &["-c", "\\dv"], None);
    assert!(ok, "{err}");
    assert!(out.contains("public|card_1h|view"), "{out}");

    let (ok, out, err) = psql(&server, &["-c", "\\l"], None);
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("asofdb|")), "{out}");

    // \x: one column per line.
    let (ok, out, err) = psql(&server, &["-c", "\\x on", "-c", "SELECT card, n, max_amt FROM card_1h"], None);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines, vec!["Expanded display is on.", "card|1", "n|2", "max_amt|7"], "{out}");
}
