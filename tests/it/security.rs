//! Passwords (SCRAM-SHA-256), roles logging in with their own, TLS and the connection
//! limits, against the real binary with psql and tokio-postgres (and PostgreSQL 15 for a
//! verifier it made).

use crate::common;

use std::path::Path;
use std::process::Command;

use common::BinaryServer;

/// Runs `psql` with a libpq connection string; returns (success, stdout, stderr).
fn psql(conninfo: &str, password: Option<&str>, sql: &str) -> (bool, String, String) {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]);
    // No ~/.pgpass or inherited variables may answer for the test.
    cmd.env_remove("PGPASSWORD").env("PGPASSFILE", "/nonexistent");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let out = cmd.output().expect("psql is installed by scripts/test");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn conninfo(server: &BinaryServer, extra: &str) -> String {
    format!("host=127.0.0.1 port={} user=asofdb dbname=asofdb connect_timeout=10 {extra}", server.addr.port())
}

/// A self-signed certificate for localhost and 127.0.0.1, made by the openssl command line;
/// an end-entity certificate (CA:FALSE) a client can trust as its own root.
pub(crate) fn self_signed_cert(dir: &Path) -> (String, String) {
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed by scripts/test");
    assert!(status.success(), "openssl could not make a certificate");
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn password_requires_scram_and_a_wrong_one_gets_28p01() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(&dir.path().join("db"), &["--password", "s3cret pass"]);

    let (ok, out, err) = psql(&conninfo(&server, ""), Some("s3cret pass"), "SELECT 40 + 2");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");

    let (ok, _, err) = psql(&conninfo(&server, ""), Some("wrong"), "SELECT 1");
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");

    // The driver sees the SQLSTATE of the refusal.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let wrong = format!("host=127.0.0.1 port={} user=asofdb dbname=asofdb password=nope", server.addr.port());
        let error = tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await.err().expect("wrong password refused");
        assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD), "{error:?}");

        // No password at all is refused before any query runs.
        let none = format!("host=127.0.0.1 port={} user=asofdb dbname=asofdb", server.addr.port());
        assert!(tokio_postgres::connect(&none, tokio_postgres::NoTls).await.is_err());

        // It is the bootstrap superuser's password only: a user name that names no role is
        // refused as a wrong password is, so a client cannot tell which roles exist.
        let other = format!("host=127.0.0.1 port={} user=bob dbname=asofdb password='s3cret pass'", server.addr.port());
        let error = tokio_postgres::connect(&other, tokio_postgres::NoTls).await.err().expect("no role bob");
        assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD), "{error:?}");

        // The right one works, and the server keeps serving.
        let right =
            format!("host=127.0.0.1 port={} user=asofdb dbname=asofdb password='s3cret pass'", server.addr.port());
        let (client, connection) = tokio_postgres::connect(&right, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        let row = client.query_one("SELECT $1::BIGINT * 2", &[&21i64]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
    });
}

/// Each role logs in with its own password (SCRAM), is refused without LOGIN or past its
/// CONNECTION LIMIT, starts with its own settings, and is still there after a restart; a
/// verifier PostgreSQL made logs in with PostgreSQL's password.
#[test]
fn roles_log_in_with_their_own_passwords_limits_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let server = BinaryServer::start_with_args(&data, &["--password", "boot"]);
    let as_role = |server: &BinaryServer, role: &str| {
        format!("host=127.0.0.1 port={} user={role} dbname=asofdb connect_timeout=10", server.addr.port())
    };
    // A verifier made by PostgreSQL 15 itself, as pg_dumpall and psql's \password carry them.
    let postgres = common::postgres::Postgres::start();
    let verifier = {
        let pg = format!("{} connect_timeout=10", postgres.conn_string());
        let (ok, _, err) =
            psql(&pg, None, "SET password_encryption = 'scram-sha-256'; CREATE ROLE carol PASSWORD 'from pg'");
        assert!(ok, "{err}");
        let (ok, out, err) = psql(&pg, None, "SELECT rolpassword FROM pg_authid WHERE rolname = 'carol'");
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    let setup = format!(
        "CREATE USER alice PASSWORD 'a l1ce' CONNECTION LIMIT 1; CREATE ROLE nologin PASSWORD 'n'; \
         CREATE USER bob PASSWORD 'b0b'; ALTER ROLE bob SET statement_timeout = '1ms'; \
         CREATE USER carol PASSWORD '{verifier}'"
    );
    let (ok, _, err) = psql(&as_role(&server, "asofdb"), Some("boot"), &setup);
    assert!(ok, "{err}");

    let check_logins = |server: &BinaryServer| {
        let (ok, out, err) = psql(&as_role(server, "alice"), Some("a l1ce"), "SELECT current_user");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "alice");
        let (ok, out, err) = psql(&as_role(server, "carol"), Some("from pg"), "SELECT current_user");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "carol");
        // Another role's password, or the superuser's, is not alice's.
        for wrong in ["b0b", "boot", "a l1ce "] {
            let (ok, _, err) = psql(&as_role(server, "alice"), Some(wrong), "SELECT 1");
            assert!(!ok && err.contains("password authentication failed for user \"alice\""), "{err}");
        }
        let (ok, _, err) = psql(&as_role(server, "nologin"), Some("n"), "SELECT 1");
        assert!(!ok && err.contains("role \"nologin\" is not permitted to log in"), "{err}");
    };
    check_logins(&server);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let connect = |role: &str, password: &str| {
            let conn = format!("{} password='{password}'", as_role(&server, role));
            async move { tokio_postgres::connect(&conn, tokio_postgres::NoTls).await }
        };
        let code = |e: tokio_postgres::Error| e.code().map(|c| c.code().to_string());
        assert_eq!(connect("nologin", "n").await.err().and_then(code).as_deref(), Some("28000"));

        // CONNECTION LIMIT 1: a second session of alice is refused, another role's is not,
        // and the slot comes back when the first one leaves.
        let (first, connection) = connect("alice", "a l1ce").await.expect("alice logs in");
        let first_task = tokio::spawn(connection);
        let refused = connect("alice", "a l1ce").await.err().expect("past alice's limit");
        assert_eq!(code(refused).as_deref(), Some("53300"));
        let (bob, connection) = connect("bob", "b0b").await.expect("bob logs in meanwhile");
        tokio::spawn(connection);
        assert_eq!(first.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);
        drop(first);
        first_task.await.unwrap().unwrap();
        let mut again = None;
        for _ in 0..100 {
            if let Ok((client, connection)) = connect("alice", "a l1ce").await {
                tokio::spawn(connection);
                again = Some(client);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let again = again.expect("alice's slot came back");
        assert_eq!(again.query_one("SELECT current_user", &[]).await.unwrap().get::<_, String>(0), "alice");

        // bob's sessions start with his statement_timeout; a client's own setting wins.
        let timeout: String = bob.query_one("SHOW statement_timeout", &[]).await.unwrap().get(0);
        assert_eq!(timeout, "1ms");
        let slow = "SELECT count(*) FROM generate_series(1, 30000000)";
        let err = bob.query_one(slow, &[]).await.expect_err("past bob's statement_timeout");
        assert_eq!(code(err).as_deref(), Some("57014"));
        let conn = format!("{} password='b0b' options='-c statement_timeout=0'", as_role(&server, "bob"));
        let (own, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        assert_eq!(own.query_one(slow, &[]).await.unwrap().get::<_, i64>(0), 30_000_000);
    });

    // psql's \du lists them.
    let (ok, out, err) = psql(&as_role(&server, "asofdb"), Some("boot"), "\\du");
    assert!(ok, "{err}");
    for expected in ["alice|1 connection", "asofdb|Superuser", "nologin|Cannot login", "bob|"] {
        assert!(out.lines().any(|l| l.starts_with(expected)), "{expected} in {out}");
    }

    // Roles are durable: after a restart the same logins pass and fail.
    drop(server);
    let server = BinaryServer::start_with_args(&data, &["--password", "boot"]);
    check_logins(&server);
}

/// psycopg and pgjdbc log in as roles with their own passwords (SCRAM) and are held to the
/// roles' privileges.
#[test]
fn psycopg_and_pgjdbc_log_in_as_roles() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(&dir.path().join("db"), &["--password", "boot"]);
    let admin = format!("host=127.0.0.1 port={} user=asofdb dbname=asofdb", server.addr.port());
    let setup = "CREATE TABLE granted_t (id BIGINT); INSERT INTO granted_t VALUES (1), (2); \
                 CREATE TABLE secret_t (id BIGINT); \
                 CREATE USER py PASSWORD 'py pass'; CREATE USER jd PASSWORD 'jd pass'; \
                 GRANT SELECT ON granted_t TO py, jd";
    let (ok, _, err) = psql(&admin, Some("boot"), setup);
    assert!(ok, "{err}");

    let script = r#"
import sys, psycopg
from psycopg import errors
port = sys.argv[1]
conn = psycopg.connect(f"host=127.0.0.1 port={port} user=py password='py pass' dbname=asofdb", autocommit=True)
assert conn.execute("SELECT current_user").fetchone()[0] == "py"
assert conn.execute("SELECT count(*) FROM granted_t WHERE id > %s", (0,), prepare=True).fetchone()[0] == 2
try:
    conn.execute("SELECT * FROM secret_t")
    raise AssertionError("secret_t was readable")
except errors.InsufficientPrivilege:
    pass
try:
    psycopg.connect(f"host=127.0.0.1 port={port} user=py password=wrong dbname=asofdb")
    raise AssertionError("a wrong password logged in")
except psycopg.OperationalError as e:
    assert "password authentication failed" in str(e), e
print("psycopg roles: ok")
"#;
    let port = server.addr.port().to_string();
    let out = Command::new("python3").args(["-c", script, &port]).output().expect("python3 with psycopg");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains(": ok"), "{stdout}\n{stderr}");

    let classes = tempfile::tempdir().unwrap();
    let classpath = common::compile_jdbc("JdbcRoles.java", classes.path());
    let out = Command::new("java").args(["-cp", &classpath, "JdbcRoles", &port, "jd", "jd pass"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains(": ok"), "{stdout}\n{stderr}");
}

#[test]
fn without_a_password_loopback_clients_are_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let (ok, out, err) = psql(&conninfo(&server, ""), None, "SELECT 'in'");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "in");
}

#[test]
fn tls_with_a_certificate_and_scram_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let server = BinaryServer::start_with_args(
        &dir.path().join("db"),
        &["--tls-cert", &cert, "--tls-key", &key, "--password", "pw"],
    );

    // sslmode=require: psql insists on TLS; \conninfo reports the TLS session.
    let (ok, out, err) = psql(&conninfo(&server, "sslmode=require"), Some("pw"), "\\conninfo");
    assert!(ok, "{err}");
    assert!(out.contains("SSL connection (protocol: TLSv1."), "{out}");

    // Channel binding (SCRAM-SHA-256-PLUS) ties the password exchange to this certificate.
    let (ok, out, err) = psql(&conninfo(&server, "sslmode=require channel_binding=require"), Some("pw"), "SELECT 7");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "7");

    // The wrong password over TLS is still refused.
    let (ok, _, err) = psql(&conninfo(&server, "sslmode=require"), Some("nope"), "SELECT 1");
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");

    // Clients that do not ask for TLS still connect in the clear.
    let (ok, out, err) = psql(&conninfo(&server, "sslmode=disable"), Some("pw"), "SELECT 8");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "8");
}

#[test]
fn without_a_certificate_sslmode_require_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let (ok, _, err) = psql(&conninfo(&server, "sslmode=require"), None, "SELECT 1");
    assert!(!ok);
    assert!(err.contains("does not support SSL"), "{err}");
    let (ok, _, err) = psql(&conninfo(&server, "sslmode=prefer"), None, "SELECT 1");
    assert!(ok, "{err}");
}

#[test]
fn a_bad_certificate_stops_the_server_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = Command::new(common::binary_path())
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("db"))
        .arg("--tls-cert")
        .arg(&junk)
        .arg("--tls-key")
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS certificate"), "{err}");
}

#[test]
fn connections_past_the_limit_get_53300_and_slots_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--max-connections", "2"]);
    let conn = server.conn_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let first = common::connect(&conn).await;
        let second = common::connect(&conn).await;
        let error = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.err().expect("third refused");
        assert_eq!(error.code(), Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS), "{error:?}");
        // The admitted connections are unaffected.
        assert_eq!(first.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 1);

        drop(second);
        // The slot frees once the server sees the connection close.
        let mut third = None;
        for _ in 0..100 {
            if let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                third = Some(client);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let third = third.expect("a slot came back after a client left");
        assert_eq!(third.query_one("SELECT 3::BIGINT", &[]).await.unwrap().get::<_, i64>(0), 3);
    });
}

/// pgwire keeps reading a connection after a FATAL startup error; nothing it sends afterwards
/// may run.
#[test]
fn a_refused_connection_cannot_run_statements() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start_with_args(&dir.path().join("db"), &["--password", "pw", "--max-connections", "2"]);
    let (ok, _, err) = psql(&conninfo(&server, ""), Some("pw"), "CREATE TABLE kept (a BIGINT)");
    assert!(ok, "{err}");

    let startup = {
        let mut body = 196608u32.to_be_bytes().to_vec();
        body.extend(b"user\0mallory\0database\0asofdb\0\0");
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    };
    let query = |sql: &str| {
        let mut out = vec![b'Q'];
        out.extend(((sql.len() + 5) as u32).to_be_bytes());
        out.extend(sql.as_bytes());
        out.push(0);
        out
    };
    // 1: a wrong SASL mechanism, then statements. 2: no answer to the SASL request at all.
    for answer_sasl in [true, false] {
        let mut socket = std::net::TcpStream::connect(server.addr).unwrap();
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        socket.write_all(&startup).unwrap();
        if answer_sasl {
            let mechanism = b"NOT-A-MECHANISM\0\xff\xff\xff\xff";
            let mut message = vec![b'p'];
            message.extend(((mechanism.len() + 4) as u32).to_be_bytes());
            message.extend(mechanism);
            let _ = socket.write_all(&message);
        }
        let _ = socket.write_all(&query("DROP TABLE kept"));
        let _ = socket.write_all(&query("CREATE TABLE pwned (a BIGINT)"));
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink);
    }
    let (ok, out, err) = psql(
        &conninfo(&server, ""),
        Some("pw"),
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "kept");
}
