//! Shared test helpers: servers on free loopback ports, in-process or as the real binary.

#![allow(dead_code)]

pub mod frontend;
pub mod postgres;
pub mod s3;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use asofdb::execute::{Database, Limits};
use asofdb::server::Server;

/// The generator's transactions as an event table (columns in the CSV's order).
pub const TRANSACTIONS_DDL: &str = "CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, \
     amt DOUBLE PRECISION, status TEXT, ip TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts')";

/// A server task inside the test process, on its own temp data dir.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open_with(dir.path(), limits).expect("open database");
        Self::serve(db, dir).await
    }

    /// A server whose database lives in memory (the `KvStore` contract's other implementation).
    pub async fn start_in_memory() -> TestServer {
        let db = Database::in_memory().expect("open database");
        Self::serve(db, tempfile::tempdir().expect("temp dir")).await
    }

    async fn serve(db: std::sync::Arc<Database>, dir: tempfile::TempDir) -> TestServer {
        let server = Server::bind("127.0.0.1:0", db).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        TestServer { addr, dir, stop: Some(stop), task: Some(task) }
    }

    pub fn conn_string(&self) -> String {
        format!("host={} port={} user=test dbname=asofdb", self.addr.ip(), self.addr.port())
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.conn_string()).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub async fn connect(conn: &str) -> tokio_postgres::Client {
    try_connect(conn).await.expect("connect")
}

/// A connection, or None if the server is not there (a test that kills it races it).
pub async fn try_connect(conn: &str) -> Option<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

/// The real `asofdb` binary, started on a free port.
pub struct BinaryServer {
    pub addr: SocketAddr,
    /// The HTTP port, when started with `--http`.
    pub http: Option<SocketAddr>,
    pub child: Child,
}

impl BinaryServer {
    pub fn start(data_dir: &Path) -> BinaryServer {
        Self::start_with_args(data_dir, &[])
    }

    /// Starts the binary with extra command-line arguments.
    pub fn start_with_args(data_dir: &Path, args: &[&str]) -> BinaryServer {
        Self::spawn(data_dir, args, &[], "warn", Stdio::inherit())
    }

    /// Starts the binary with extra arguments and environment variables.
    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(String, String)]) -> BinaryServer {
        Self::spawn(data_dir, args, env, "warn", Stdio::inherit())
    }

    /// Starts the binary logging at INFO into the file `log`.
    pub fn start_logging(data_dir: &Path, args: &[&str], log: &Path) -> BinaryServer {
        let file = std::fs::File::create(log).expect("log file");
        Self::spawn(data_dir, args, &[], "info", Stdio::from(file))
    }

    fn spawn(data_dir: &Path, args: &[&str], env: &[(String, String)], rust_log: &str, stderr: Stdio) -> BinaryServer {
        let mut child = Command::new(binary_path())
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", rust_log)
            // Backfill progress NOTICEs after every stored block, so tests see them.
            .env("ASOFDB_BACKFILL_NOTICE_MS", "0")
            // Every backfill on every core, as a large table's (feature/sharded_ingest.rs).
            .env("ASOFDB_BACKFILL_SHARDED_ROWS", "0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn asofdb");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read listening line");
        // With --http, its line comes first.
        let http = line.trim().strip_prefix("asofdb http listening on ").map(|addr| addr.parse().expect("address"));
        if http.is_some() {
            line.clear();
            stdout.read_line(&mut line).expect("read listening line");
        }
        let addr = line
            .trim()
            .strip_prefix("asofdb listening on ")
            .unwrap_or_else(|| panic!("unexpected line: {line:?}"))
            .parse()
            .expect("address");
        BinaryServer { addr, http, child }
    }

    pub fn conn_string(&self) -> String {
        format!("host={} port={} user=test dbname=asofdb", self.addr.ip(), self.addr.port())
    }

    /// `kill -9`: no chance to flush anything.
    /// [`BinaryServer::conn_string`] as role `role`.
    pub fn conn_string_as(&self, role: &str) -> String {
        format!("host={} port={} user={role} dbname=asofdb", self.addr.ip(), self.addr.port())
    }

    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        panic!("asofdb did not exit on SIGTERM");
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_asofdb"))
}

/// Compiles `source` (in `tests/clients/jdbc`) against pgjdbc into `classes`; returns the
/// classpath that runs it.
pub fn compile_jdbc(source: &str, classes: &Path) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/jdbc");
    let jar = "/usr/share/java/postgresql.jar";
    let status = Command::new("javac")
        .args(["-d", &classes.display().to_string(), "-cp", jar, source])
        .current_dir(&dir)
        .status()
        .expect("javac (scripts/test installs a JDK)");
    assert!(status.success(), "javac {source} failed");
    format!("{jar}:{}", classes.display())
}

/// Runs `asofdb restore --from <from> --data-dir <to>`.
pub fn restore_backup(from: &Path, to: &Path) -> std::process::Output {
    Command::new(binary_path())
        .args(["restore", "--from"])
        .arg(from)
        .arg("--data-dir")
        .arg(to)
        .output()
        .expect("run asofdb restore")
}

/// Every row of `sql` (simple protocol) as `a|b|...` text, NULL as "NULL".
#[allow(dead_code)] // not every test binary reads rows as text
pub async fn text_rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    for message in client.simple_query(sql).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = message {
            out.push((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out
}
