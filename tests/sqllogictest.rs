//! Runs every `sqllogictest/**/*.slt` file through the PostgreSQL wire protocol, each twice
//! against a fresh server: on sled in its own temp data dir, and on the in-memory store (the
//! `KvStore` contract's two implementations); several runs at a time.
//!
//! Extension to the format (see sqllogictest/README.md): a `statement` whose first line is a
//! `COPY ... FROM STDIN` ending in `;` sends the lines after it as COPY data; a `query` that
//! is a `COPY ... TO STDOUT` returns each output line as a one-column row.
//!
//! `cargo test --test sqllogictest -- FILTER` runs only the files whose path contains FILTER.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::SimpleQueryMessage;

use common::TestServer;

struct Wire {
    client: tokio_postgres::Client,
}

/// A driver error that prints the server's message (tokio-postgres prints only "db error").
#[derive(Debug)]
struct WireError(tokio_postgres::Error);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "{}: {}", db.code().code(), db.message()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for WireError {}

impl From<tokio_postgres::Error> for WireError {
    fn from(e: tokio_postgres::Error) -> Self {
        WireError(e)
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Wire {
    type Error = WireError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let upper = sql.trim_start().to_ascii_uppercase();
        if upper.starts_with("COPY") && upper.contains("FROM STDIN") {
            return self.copy_in(sql).await;
        }
        if upper.starts_with("COPY") && upper.contains("TO STDOUT") {
            return self.copy_out(sql).await;
        }
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = 0;
        let mut saw_rows = false;
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(desc) => {
                    columns = desc.len();
                    saw_rows = true;
                    rows.clear();
                }
                SimpleQueryMessage::Row(row) => {
                    rows.push((0..row.len()).map(|i| format_value(row.get(i))).collect::<Vec<_>>());
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        if saw_rows {
            Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; columns], rows })
        } else {
            Ok(DBOutput::StatementComplete(count))
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "asofdb"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.0.code().map(|c| c.code().to_string())
    }
}

impl Wire {
    async fn copy_in(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        let (statement, data) = match sql.find(";\n") {
            Some(end) => (&sql[..end], &sql[end + 2..]),
            None => (sql.trim_end_matches(';'), ""),
        };
        let sink = self.client.copy_in::<_, Bytes>(statement).await?;
        futures::pin_mut!(sink);
        if !data.is_empty() {
            sink.send(Bytes::from(format!("{data}\n"))).await?;
        }
        let rows = sink.finish().await?;
        Ok(DBOutput::StatementComplete(rows))
    }

    async fn copy_out(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, WireError> {
        let stream = self.client.copy_out(sql.trim_end_matches(';')).await?;
        futures::pin_mut!(stream);
        let mut text = Vec::new();
        while let Some(chunk) = stream.next().await {
            text.extend_from_slice(&chunk?);
        }
        let rows = String::from_utf8_lossy(&text).lines().map(|l| vec![l.to_string()]).collect();
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any], rows })
    }
}

fn format_value(value: Option<&str>) -> String {
    match value {
        None => "NULL".into(),
        Some("") => "(empty)".into(),
        Some(v) => v.to_string(),
    }
}

fn slt_files() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sqllogictest");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read sqllogictest dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "slt") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The store a file runs on: every file runs on both.
#[derive(Clone, Copy, Debug)]
enum Store {
    Sled,
    Memory,
}

async fn run_file(path: PathBuf, store: Store) -> Result<(), String> {
    let server = match store {
        Store::Sled => TestServer::start().await,
        Store::Memory => TestServer::start_in_memory().await,
    };
    let conn = server.conn_string();
    let mut runner = sqllogictest::Runner::new(move || {
        let conn = conn.clone();
        async move { Ok(Wire { client: common::connect(&conn).await }) }
    });
    let outcome = runner.run_file_async(&path).await.map_err(|e| format!("{}", e.display(true)));
    server.stop().await;
    outcome
}

fn main() -> std::process::ExitCode {
    // Every backfill of the suite takes the path of a large table's, on every core (checks,
    // errors and replacements included).
    // SAFETY: no other thread has started yet.
    unsafe { std::env::set_var("ASOFDB_BACKFILL_SHARDED_ROWS", "0") };
    // A Kafka cluster for the sources' statements (librdkafka's mock brokers, real listeners):
    // files name it `${ASOFDB_TEST_KAFKA}` (`control substitution on`), with the topic `slt`.
    let kafka = rdkafka::mocking::MockCluster::new(1).expect("mock Kafka cluster");
    kafka.create_topic("slt", 3, 1).expect("topic");
    // SAFETY: as above.
    unsafe { std::env::set_var("ASOFDB_TEST_KAFKA", kafka.bootstrap_servers()) };
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(run_all())
}

async fn run_all() -> std::process::ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let files: Vec<PathBuf> = slt_files()
        .into_iter()
        .filter(|p| filter.as_ref().is_none_or(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let runs = files.into_iter().flat_map(|path| [(path.clone(), Store::Sled), (path, Store::Memory)]);
    let results: Vec<(PathBuf, Store, Result<(), String>)> = futures::stream::iter(runs)
        .map(|(path, store)| async move { (path.clone(), store, run_file(path, store).await) })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut failed = 0;
    for (path, store, result) in &results {
        let name = path.strip_prefix(&root).unwrap_or(path).display();
        match result {
            Ok(()) => println!("test {name} ({store:?}) ... ok"),
            Err(e) => {
                failed += 1;
                println!("test {name} ({store:?}) ... FAILED\n{e}\n");
            }
        }
    }
    println!("\nsqllogictest: {} passed, {} failed", results.len() - failed, failed);
    if failed == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
