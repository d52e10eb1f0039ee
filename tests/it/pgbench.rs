//! pgbench, with the scripts in benches/pgbench/, against the real binary: 16 clients in
//! prepared mode, every transaction must succeed.

use crate::common;

use std::process::Command;

use common::BinaryServer;

const CLIENTS: usize = 16;
const TRANSACTIONS: usize = 30;

fn pgbench(server: &BinaryServer, script: &str) -> String {
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-D", "keys=200"])
        .args(["-c", &CLIENTS.to_string(), "-t", &TRANSACTIONS.to_string()])
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string(), "-U", "bench", "asofdb"])
        .arg("-f")
        .arg(format!("{}/benches/pgbench/{script}", env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("pgbench is installed by scripts/test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgbench {script} failed:\n{stdout}\n{stderr}");
    let total = CLIENTS * TRANSACTIONS;
    assert!(stdout.contains(&format!("number of transactions actually processed: {total}/{total}")), "{stdout}");
    assert!(stdout.contains("number of failed transactions: 0 (0.000%)"), "{stdout}");
    stdout
}

#[test]
fn pgbench_point_reads_and_mixed_writes_run_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(common::connect(&server.conn_string()));
    rt.block_on(async {
        client
            .batch_execute(
                "CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
                 INSERT INTO tx SELECT value % 200 + 1, value * 1.5, to_timestamp(1735689600 + value * 60)
                   FROM generate_series(0, 999) AS g(value);
                 CREATE FEATURE card_stats AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx GROUP BY card
                   WINDOW SLIDING INTERVAL '1 hour';",
            )
            .await
            .unwrap();
    });

    pgbench(&server, "point_read.sql");
    pgbench(&server, "mixed.sql");

    // Every acknowledged INSERT of the mixed script is there, once.
    rt.block_on(async {
        let rows: i64 = client.query_one("SELECT count(*) FROM tx", &[]).await.unwrap().get(0);
        assert_eq!(rows as usize, 1000 + CLIENTS * TRANSACTIONS);
    });
}
