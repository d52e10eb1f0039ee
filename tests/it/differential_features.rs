//! Differential test: feature values read from asofdb at the watermark equal DuckDB's answer
//! to the same question, on data from the shared generator (power-law keys, late rows, ties).

use crate::common;

use std::process::Command;

use futures::SinkExt;

use common::TestServer;

fn generate(rows: usize, path: &std::path::Path) {
    let generator = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/gen_transactions.py");
    let status = Command::new("python3")
        .arg(generator)
        .args(["--rows", &rows.to_string(), "--cards", "300", "--days", "10", "--seed", "11"])
        .arg("--transactions")
        .arg(path)
        .status()
        .expect("python3");
    assert!(status.success());
}

/// Lines agree when equal, or, where DuckDB's last field is a range (an approximate
/// percentile over a sketched window), when ours lies within it and the rest is equal.
fn agree(ours: &str, theirs: &str) -> bool {
    let Some((rest, range)) = theirs.rsplit_once(",range:") else { return ours == theirs };
    let Some((our_rest, value)) = ours.rsplit_once(',') else { return false };
    let (Some((lo, hi)), Ok(value)) = (range.split_once(':'), value.parse::<f64>()) else { return false };
    let (Ok(lo), Ok(hi)) = (lo.parse::<f64>(), hi.parse::<f64>()) else { return false };
    our_rest == rest && lo - 1e-9 <= value && value <= hi + 1e-9
}

fn fmt(v: Option<f64>) -> String {
    v.map(|f| format!("{f:.6}")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_at_the_watermark_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tx.csv");
    generate(20_000, &csv);

    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(common::TRANSACTIONS_DDL).await.unwrap();
    client
        .batch_execute(
            "CREATE FEATURE card_1h AS SELECT cc_num, count(*) AS n, max(amt) AS mx, sum(amt) AS total
               FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 hour';",
        )
        .await
        .unwrap();
    // Half the rows before the other features exist (backfill), half after (incremental).
    let data = std::fs::read_to_string(&csv).unwrap();
    let (header, body) = data.split_once('\n').unwrap();
    let lines: Vec<&str> = body.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let copy = |rows: &[&str]| format!("{header}\n{}\n", rows.join("\n"));
    for (i, part) in [copy(first), copy(second)].into_iter().enumerate() {
        let sink = client.copy_in("COPY tx FROM STDIN WITH (FORMAT csv, HEADER true)").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(part)).await.unwrap();
        sink.finish().await.unwrap();
        if i == 0 {
            client
                .batch_execute(
                    "CREATE FEATURE user_ip_30d AS SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id
                       WINDOW SLIDING INTERVAL '30 days';
                     CREATE FEATURE failed_1d AS SELECT cc_num, count(*) AS failed FROM tx WHERE status = 'failed'
                       GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day';
                     CREATE FEATURE card_today AS SELECT cc_num, count(*) AS n, avg(amt) AS a, stddev_samp(amt) AS sd
                       FROM tx GROUP BY cc_num WINDOW TUMBLING INTERVAL '1 day';
                     CREATE FEATURE card_ml AS SELECT cc_num, last_k(amt, 3) AS last3, max_k(amt, 3) AS top3,
                         decayed_sum(amt, INTERVAL '1 hour') AS dsum, approx_percentile(amt, 0.5) AS p50
                       FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 day';",
                )
                .await
                .unwrap();
        }
    }

    let mut ours = Vec::new();
    for row in client.query("SELECT cc_num, n, mx, total FROM card_1h", &[]).await.unwrap() {
        let total: Option<f64> = row.get(3);
        ours.push(format!(
            "card_1h,{},{},{},{}",
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            fmt(row.get(2)),
            fmt(total.map(|t| (t * 1e6).round() / 1e6))
        ));
    }
    for row in client.query("SELECT user_id, ips FROM user_ip_30d", &[]).await.unwrap() {
        ours.push(format!("user_ip_30d,{},{},,", row.get::<_, i64>(0), row.get::<_, i64>(1)));
    }
    for row in client.query("SELECT cc_num, failed FROM failed_1d", &[]).await.unwrap() {
        ours.push(format!("failed_1d,{},{},,", row.get::<_, i64>(0), row.get::<_, i64>(1)));
    }
    for row in client.query("SELECT cc_num, n, a, sd FROM card_today", &[]).await.unwrap() {
        let round = |v: Option<f64>| fmt(v.map(|x| (x * 1e6).round() / 1e6));
        ours.push(format!(
            "card_today,{},{},{},{}",
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            round(row.get(2)),
            round(row.get(3))
        ));
    }
    let list = |values: Option<Vec<f64>>| match values {
        Some(v) => format!("{{{}}}", v.iter().map(|x| format!("{x:.6}")).collect::<Vec<_>>().join(";")),
        None => String::new(),
    };
    for row in client.query("SELECT cc_num, last3, top3, dsum, p50 FROM card_ml", &[]).await.unwrap() {
        let round = |v: Option<f64>| fmt(v.map(|x| (x * 1e6).round() / 1e6));
        ours.push(format!(
            "card_ml,{},{},{},{},{}",
            row.get::<_, i64>(0),
            list(row.get(1)),
            list(row.get(2)),
            round(row.get(3)),
            fmt(row.get(4))
        ));
    }
    ours.sort();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential/features_duckdb.py");
    let out =
        Command::new("python3").arg(script).arg(&csv).output().expect("python3 with duckdb (scripts/test installs it)");
    assert!(out.status.success(), "duckdb script failed: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();

    assert!(ours.len() > 300, "too few feature rows to mean anything: {}", ours.len());
    let mismatches: Vec<_> = ours.iter().zip(&theirs).filter(|(a, b)| !agree(a, b)).take(5).collect();
    let sketched = theirs.iter().filter(|t| t.contains(",range:")).count();
    assert!(sketched > 0, "no window large enough to be sketched: the bound was not exercised");
    assert_eq!(ours.len(), theirs.len(), "row counts differ");
    assert!(mismatches.is_empty(), "first mismatches (asofdb, duckdb): {mismatches:#?}");
    server.stop().await;
}
