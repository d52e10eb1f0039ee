//! Helpers shared by the benchmarks: an in-process server, clients, generated data.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use asofdb::execute::Database;
use asofdb::server::Server;
use futures::SinkExt;

pub const TX_COLUMNS: &str = "tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, \
                          status TEXT, ip TEXT, ts TIMESTAMP NOT NULL";

pub struct Bench {
    pub rt: tokio::runtime::Runtime,
    pub conn: String,
    pub db: Arc<Database>,
    _dir: tempfile::TempDir,
}

pub fn start() -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let server = rt.block_on(Server::bind("127.0.0.1:0", db.clone())).unwrap();
    let addr = server.local_addr().unwrap();
    rt.spawn(server.serve(std::future::pending()));
    Bench { rt, conn: format!("host=127.0.0.1 port={} user=bench", addr.port()), db, _dir: dir }
}

pub async fn connect(conn: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// CSV (with header) of `rows` generated transactions.
pub fn transactions_csv(rows: usize) -> Arc<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("tx_{rows}.csv"));
    if !path.exists() {
        let generator = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/gen_transactions.py");
        let status = std::process::Command::new("python3")
            .arg(generator)
            .args(["--rows", &rows.to_string(), "--cards", "50000", "--days", "30", "--seed", "7"])
            .arg("--transactions")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    Arc::new(std::fs::read(path).unwrap())
}

pub async fn copy(client: &tokio_postgres::Client, table: &str, csv: &[u8]) -> u64 {
    let sink = client.copy_in(&format!("COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)")).await.unwrap();
    futures::pin_mut!(sink);
    for chunk in csv.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    sink.finish().await.unwrap()
}
