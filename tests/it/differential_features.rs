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

/// "Known at" ASOF joins (spec section 3) equal DuckDB's answer with an extra `ingested_at <= K`
/// filter, on generated data where 10% of rows arrive up to two hours late: probes at the
/// spine's times with K at T, 20 minutes after and 3 hours after, over the whole history
/// (the stored sweep) and over the last hours (the live state, tiles and evicted keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_at_joins_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, spine) = (dir.path().join("tx.csv"), dir.path().join("spine.csv"));
    let generator = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/gen_transactions.py");
    let status = Command::new("python3")
        .arg(generator)
        .args(["--rows", "20000", "--cards", "300", "--days", "10", "--seed", "5", "--ingest-time"])
        .args(["--late-fraction", "0.1", "--late-max", "7200", "--spine-rows", "1500"])
        .arg("--transactions")
        .arg(&csv)
        .arg("--spine")
        .arg(&spine)
        .status()
        .expect("python3");
    assert!(status.success());
    // Probes: each spine row three times, K = T, T + 20 minutes, T + 3 hours.
    let parse = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    let mut probes = String::new();
    let spine_text = std::fs::read_to_string(&spine).unwrap();
    for (i, line) in spine_text.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let t = parse(fields[1]);
        for (j, minutes) in [0i64, 20, 180].into_iter().enumerate() {
            let k = t + chrono::Duration::minutes(minutes);
            probes.push_str(&format!("{},{},{},{},{}\n", 3 * i + j, fields[2], fields[3], t, k));
        }
    }
    let probes_csv = dir.path().join("probes.csv");
    std::fs::write(&probes_csv, &probes).unwrap();

    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE tx (tid BIGINT, cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, \
               status TEXT, ip TEXT, ts TIMESTAMP NOT NULL, ingested_at TIMESTAMP) \
               WITH (event_time = 'ts', ingest_time = 'ingested_at');
             CREATE TABLE probes (id BIGINT, cc_num BIGINT, user_id BIGINT, t TIMESTAMP NOT NULL, k TIMESTAMP) \
               WITH (event_time = 't');
             CREATE FEATURE card_1h AS SELECT cc_num, count(*) AS n, max(amt) AS mx, sum(amt) AS total
               FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 hour';",
        )
        .await
        .unwrap();
    for (table, path, header) in [("tx", &csv, "true"), ("probes", &probes_csv, "false")] {
        let sink =
            client.copy_in(&format!("COPY {table} FROM STDIN WITH (FORMAT csv, HEADER {header})")).await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(std::fs::read(path).unwrap())).await.unwrap();
        sink.finish().await.unwrap();
    }
    // Created after the rows (backfill) where card_1h took them incrementally.
    client
        .batch_execute(
            "CREATE FEATURE user_ips_1d AS SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id
               WINDOW SLIDING INTERVAL '1 day';",
        )
        .await
        .unwrap();
    let join = "SELECT p.id, c.n, c.mx, c.total, u.ips FROM {probes} p
          ASOF LEFT JOIN card_1h c ON p.cc_num = c.cc_num AND p.t >= c.ts AND p.k >= c.ingested_at
          ASOF LEFT JOIN user_ips_1d u ON p.user_id = u.user_id AND p.t >= u.ts AND p.k >= u.ingested_at";
    let line = |row: &tokio_postgres::Row| {
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let total: Option<f64> = row.get(3);
        format!(
            "{},{},{},{},{}",
            row.get::<_, i64>(0),
            opt(row.get(1)),
            fmt(row.get(2)),
            fmt(total.map(|t| (t * 1e6).round() / 1e6)),
            opt(row.get(4))
        )
    };
    let all = join.replace("{probes}", "probes") + " ORDER BY p.id";
    let ours: Vec<String> = client.query(&all, &[]).await.unwrap().iter().map(line).collect();
    // The last 40 minutes only, filtered before the join: times the live state may hold (when
    // its last eviction step left the window's reach in memory).
    let recent = join
        .replace("{probes}", "(SELECT * FROM probes WHERE t >= (SELECT max(ts) FROM tx) - INTERVAL '40 minutes')")
        + " ORDER BY p.id";
    let recent_rows: Vec<String> = client.query(&recent, &[]).await.unwrap().iter().map(line).collect();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential/known_at_duckdb.py");
    let out = Command::new("python3").arg(script).arg(&csv).arg(&probes_csv).output().expect("python3 with duckdb");
    assert!(out.status.success(), "duckdb script failed: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    assert_eq!(ours.len(), theirs.len(), "row counts differ");
    let differ = |ours: &[String]| -> Vec<(String, String)> {
        ours.iter()
            .filter_map(|o| {
                let id = o.split(',').next().unwrap();
                let t = theirs.iter().find(|t| t.split(',').next() == Some(id)).unwrap();
                (o != t).then(|| (o.clone(), t.clone()))
            })
            .take(5)
            .collect()
    };
    let unmatched = ours.iter().filter(|o| o.split(',').nth(1) == Some("")).count();
    // Spine rows whose values at K = T differ from those at K = T + 3 hours (late events).
    let values = |line: &String| line.split_once(',').map(|(_, v)| v.to_string());
    let late = ours.chunks(3).filter(|p| values(&p[0]) != values(&p[2])).count();
    assert!(unmatched > 0 && late > 20, "the data must have unmatched probes and late events: {unmatched}, {late}");
    assert!(!recent_rows.is_empty());
    assert_eq!(differ(&recent_rows), vec![], "recent probes (asofdb, duckdb)");
    assert_eq!(differ(&ours), vec![], "all probes (asofdb, duckdb)");
    server.stop().await;
}

/// The same three features, one maintained as the rows arrive, one backfilled afterwards from
/// the stored rows (on every core: more rows than `SHARDED_ROWS`): equal at the watermark and
/// in an ASOF join at every 40th row's time. Rows arrive mostly in time order, with late
/// rows, ties and NULLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_on_every_core_equals_the_state_kept_as_rows_arrived() {
    const ROWS: i64 = 240_000;
    let definitions = [
        "SELECT cc_num, count(*) AS n, max(amt) AS mx, avg(amt) AS a, last_k(amt, 3) AS l3 FROM tx \
           GROUP BY cc_num WINDOW SLIDING INTERVAL '1 hour'",
        "SELECT user_id, count(DISTINCT ip) AS ips FROM tx GROUP BY user_id WINDOW SLIDING INTERVAL '1 day'",
        "SELECT cc_num, merchant, sum(amt) AS s FROM tx WHERE status = 'ok' GROUP BY cc_num, merchant \
           WINDOW SESSION GAP INTERVAL '10 minutes'",
    ];
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(common::TRANSACTIONS_DDL).await.unwrap();
    for (i, body) in definitions.iter().enumerate() {
        client.batch_execute(&format!("CREATE FEATURE kept_{i} AS {body}")).await.unwrap();
    }
    // Row i happens (i + (i * 7919) % 97) * 5 s after the start: up to 8 minutes late, with ties.
    for from in (0..ROWS).step_by(40_000) {
        client
            .batch_execute(&format!(
                "INSERT INTO tx SELECT i, i % 4999, i % 1201, 'm' || (i % 7), \
                   CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 1000) / 10.0 END, \
                   CASE WHEN i % 11 = 0 THEN 'failed' ELSE 'ok' END, '10.0.0.' || (i % 37), \
                   to_timestamp(1704067200 + (i + (i * 7919) % 97) * 5)::timestamp \
                 FROM generate_series({from}, {}) AS g(i)",
                from + 39_999
            ))
            .await
            .unwrap();
    }
    for (i, body) in definitions.iter().enumerate() {
        client.batch_execute(&format!("CREATE FEATURE built_{i} AS {body}")).await.unwrap();
    }
    let origins = common::text_rows(&client, "SELECT name, origin FROM asofdb.feature_state ORDER BY name").await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for origin in origins.iter().filter(|o| o.starts_with("built_")) {
        assert!(origin.contains(&format!("backfilled from {ROWS} rows")), "{origin}");
        assert_eq!(cores > 1, origin.contains(" threads"), "{origin}");
    }
    for i in 0..definitions.len() {
        let at_watermark = |name: String| format!("SELECT * FROM {name}_{i} ORDER BY 1, 2");
        let kept = common::text_rows(&client, &at_watermark("kept".into())).await;
        let built = common::text_rows(&client, &at_watermark("built".into())).await;
        assert!(kept.len() > 1000, "feature {i}: {} keys", kept.len());
        assert_eq!(kept, built, "feature {i} at the watermark");
        let key = if i == 1 { "user_id" } else { "cc_num" };
        // Every 40th row's time: the join reaches back past the live states' horizon, so it
        // sweeps the stored events. The last 300 rows (25 minutes): within the window the
        // live states hold, so it reads them.
        for (probes, expected) in [("tid % 40 = 0", ROWS / 40), (&*format!("tid >= {}", ROWS - 300), 300)] {
            let joined = |name: &str| {
                format!(
                    "SELECT t.tid, f.* FROM (SELECT * FROM tx WHERE {probes}) t ASOF LEFT JOIN {name}_{i} f \
                       ON t.{key} = f.{key} {} AND t.ts >= f.ts ORDER BY t.tid",
                    if i == 2 { "AND t.merchant = f.merchant" } else { "" }
                )
            };
            let kept = common::text_rows(&client, &joined("kept")).await;
            let built = common::text_rows(&client, &joined("built")).await;
            assert_eq!(kept.len() as i64, expected);
            let matched = kept.iter().filter(|row| !row.ends_with("|NULL")).count() as i64;
            assert!(matched > expected / 2, "feature {i}, {probes}: {matched} rows matched");
            assert_eq!(kept, built, "feature {i} joined as of each row's time ({probes})");
        }
    }
}
