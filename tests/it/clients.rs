//! Real PostgreSQL client libraries against the real binary (issue #6): each client script in
//! `tests/clients/` runs the same scenario (connect, create a table, load rows with parameters
//! and COPY, create a feature, read it with a prepared statement, build a training set with
//! ASOF JOIN, provoke errors and check their SQLSTATEs, keep using the connection) against a
//! fresh server, and must exit 0. `scripts/test` installs the clients.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BinaryServer;
use common::postgres::Postgres;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("clients")
}

/// Starts a server, runs `program args... PORT` in `dir`, and fails with its output unless it succeeds.
fn run_client(program: &str, args: &[&str], dir: &Path) {
    let data = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(data.path());
    run_against(program, args, dir, server.addr.port(), &[]);
}

/// Runs `program args... PORT extra...` in `dir`; fails with its output unless it succeeds.
fn run_against(program: &str, args: &[&str], dir: &Path, port: u16, extra: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .arg(port.to_string())
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/test installs it): {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} {extra:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(": ok"), "{program} {args:?} {extra:?} did not finish\nstdout:\n{stdout}");
}

/// Issue #22: a tool's script (`tests/clients/fraud.py`'s example, the tool at its defaults)
/// against PostgreSQL 15 first, which shows the script itself is right, then against asofdb.
fn tool_at_defaults(script: &str) {
    let postgres = Postgres::start();
    run_against("python3", &[script], &clients_dir(), postgres.port, &["--postgres"]);
    drop(postgres);
    run_client("python3", &[script], &clients_dir());
}

#[test]
fn adbc_and_polars_at_defaults() {
    tool_at_defaults("adbc_client.py");
}

#[test]
fn connectorx_and_polars_at_defaults() {
    tool_at_defaults("connectorx_client.py");
}

#[test]
fn ibis_at_defaults() {
    tool_at_defaults("ibis_client.py");
}

#[test]
fn psqlodbc_at_defaults() {
    tool_at_defaults("odbc_client.py");
}

#[test]
fn sqlalchemy_psycopg_and_pandas_at_defaults() {
    tool_at_defaults("sqlalchemy_defaults.py");
}

#[test]
fn psycopg() {
    run_client("python3", &["psycopg_client.py"], &clients_dir());
}

#[test]
fn asyncpg() {
    run_client("python3", &["asyncpg_client.py"], &clients_dir());
}

#[test]
fn sqlalchemy_and_pandas() {
    run_client("python3", &["sqlalchemy_client.py"], &clients_dir());
}

#[test]
fn node_postgres() {
    run_client("node", &["client.js"], &clients_dir().join("node"));
}

#[test]
fn pgjdbc() {
    let classes = tempfile::tempdir().unwrap();
    let classpath = common::compile_jdbc("JdbcClient.java", classes.path());
    run_client("java", &["-cp", &classpath, "JdbcClient"], &clients_dir().join("jdbc"));
}

/// Issue #30: statements psycopg prepares by itself (after 5 runs) follow DDL.
#[test]
fn psycopg_prepared_statements_across_ddl() {
    run_client("python3", &["psycopg_prepared_ddl.py"], &clients_dir());
}
