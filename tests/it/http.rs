//! The HTTP port (`--http`, spec section 7) of the real binary, over TLS with a password:
//! feature vectors equal to the SQL point reads on the same keys, bad requests answered 400
//! naming what is wrong, 401 without the password, metrics that move by exactly the work
//! done (CHECKPOINT and tiering passes too), freshness, health (503 while starting), the INFO
//! log with its audit lines, and 64 HTTP clients mixed with 16 SQL clients.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{BinaryServer, connect};
use crate::security::self_signed_cert;

const PASSWORD: &str = "http s3cret";

const SCHEMA: &str = "
    CREATE TABLE tx (cc_num BIGINT, user_id BIGINT, merchant TEXT, amt DOUBLE PRECISION, ip TEXT,
                     status TEXT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
    CREATE FEATURE card_amounts_1h AS
        SELECT cc_num, count(*) AS tx_count_1h, max(amt) AS tx_max_1h, avg(amt) AS tx_avg_1h
        FROM tx GROUP BY cc_num WINDOW SLIDING INTERVAL '1 hour';
    CREATE FEATURE user_unique_ip_30d AS
        SELECT user_id, count(DISTINCT ip) AS user_unique_ip_30d
        FROM tx GROUP BY user_id WINDOW SLIDING INTERVAL '30 days';
    CREATE FEATURE failed_by_merchant_1d AS
        SELECT cc_num, merchant, count(*) AS failed_1d, max(ts) AS last_failed
        FROM tx WHERE status = 'failed' GROUP BY cc_num, merchant WINDOW SLIDING INTERVAL '1 day';";

/// Event `i` as an INSERT's VALUES row: 20 cards, 7 users, 3 merchants, times with ties and
/// late events, NULL amounts, every 4th failed.
fn event(i: i64) -> String {
    let minute = i * 3 - if i % 5 == 0 { 90 } else { 0 };
    let amount = if i % 11 == 0 { "NULL".to_string() } else { format!("{}.25", (i * 37) % 500) };
    let status = if i % 4 == 0 { "failed" } else { "ok" };
    format!(
        "({}, {}, 'm{}', {amount}, '10.0.0.{}', '{status}', TIMESTAMP '2026-03-01 00:00' + INTERVAL '{minute} minutes')",
        i % 20,
        i % 7,
        i % 3,
        i % 13
    )
}

fn insert(from: i64, to: i64) -> String {
    format!("INSERT INTO tx VALUES {}", (from..to).map(event).collect::<Vec<_>>().join(", "))
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(server: &BinaryServer, cert: &Path) -> Http {
        let pem = std::fs::read(cert).expect("certificate");
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
            .build()
            .expect("HTTP client");
        let port = server.http.expect("started with --http").port();
        Http { client, base: format!("https://localhost:{port}") }
    }

    async fn get(&self, path: &str, password: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(password) = password {
            request = request.bearer_auth(password);
        }
        let response = request.send().await.expect("GET");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    async fn post(&self, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/features", self.base))
            .bearer_auth(PASSWORD)
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.expect("body")).expect("JSON answer"))
    }

    async fn metrics(&self) -> String {
        let (status, text) = self.get("/metrics", Some(PASSWORD)).await;
        assert_eq!(status, 200, "{text}");
        text
    }
}

/// The value of one sample (`name{labels}`, or a bare name) in a metrics scrape.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
        .parse()
        .expect("a number")
}

/// A PostgreSQL value of a row as the JSON the HTTP port answers with.
fn json_of(row: &tokio_postgres::Row, i: usize) -> Value {
    use tokio_postgres::types::Type;
    let column = &row.columns()[i];
    match *column.type_() {
        Type::INT8 => json!(row.get::<_, Option<i64>>(i)),
        Type::FLOAT8 => json!(row.get::<_, Option<f64>>(i)),
        Type::TIMESTAMP => {
            json!(row.get::<_, Option<chrono::NaiveDateTime>>(i).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()))
        }
        ref other => panic!("column {} of type {other} not compared", column.name()),
    }
}

/// What the SQL point reads answer for these entities, as the HTTP port should.
async fn point_reads(client: &tokio_postgres::Client, entities: &[(i64, i64, &str)]) -> Vec<Value> {
    let card = client
        .prepare("SELECT tx_count_1h, tx_max_1h, tx_avg_1h FROM card_amounts_1h WHERE cc_num = $1")
        .await
        .unwrap();
    let user = client.prepare("SELECT user_unique_ip_30d FROM user_unique_ip_30d WHERE user_id = $1").await.unwrap();
    let failed = client
        .prepare("SELECT failed_1d, last_failed FROM failed_by_merchant_1d WHERE cc_num = $1 AND merchant = $2")
        .await
        .unwrap();
    let mut answers = Vec::new();
    for &(cc_num, user_id, merchant) in entities {
        let mut object = serde_json::Map::new();
        let reads = [
            ("card_amounts_1h", vec!["tx_count_1h", "tx_max_1h", "tx_avg_1h"], client.query(&card, &[&cc_num]).await),
            ("user_unique_ip_30d", vec!["user_unique_ip_30d"], client.query(&user, &[&user_id]).await),
            (
                "failed_by_merchant_1d",
                vec!["failed_1d", "last_failed"],
                client.query(&failed, &[&cc_num, &merchant]).await,
            ),
        ];
        for (feature, columns, rows) in reads {
            let rows = rows.expect("point read");
            for (i, column) in columns.iter().enumerate() {
                let value = rows.first().map_or(Value::Null, |row| json_of(row, i));
                object.insert(format!("{feature}.{column}"), value);
            }
        }
        answers.push(Value::Object(object));
    }
    answers
}

/// The HTTP answers equal the point reads', numbers compared as numbers (`100.0` is
/// written `100`).
fn same_values(answer: &Value, reads: &[Value]) {
    let answer = answer.as_array().expect("results");
    assert_eq!(answer.len(), reads.len());
    for (got, want) in answer.iter().zip(reads) {
        let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
        for (name, value) in want {
            let same = match (&got[name], value) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                (a, b) => a == b,
            };
            assert!(same, "{name}: HTTP {} but SQL {value}", got[name]);
        }
    }
}

fn vector_request(entities: &[(i64, i64, &str)]) -> String {
    let entities: Vec<Value> = entities
        .iter()
        .map(|(cc, user, merchant)| json!({"cc_num": cc, "user_id": user, "merchant": merchant}))
        .collect();
    json!({"features": ["card_amounts_1h", "user_unique_ip_30d", "failed_by_merchant_1d"], "entities": entities})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_port_serves_feature_vectors_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let log = dir.path().join("server.log");
    let args =
        ["--http", "127.0.0.1:0", "--password", PASSWORD, "--tls-cert", &cert, "--tls-key", &key, "--tier-secs", "0"];
    // No background work commits or flushes between the two scrapes below.
    let args = [&args[..], &["--checkpoint-secs", "0", "--log-slow-ms", "0"]].concat();
    let server = BinaryServer::start_logging(&dir.path().join("db"), &args, &log);
    let http = Http::new(&server, Path::new(&cert));
    let conn = format!("{} password='{PASSWORD}'", server.conn_string_as("asofdb"));
    let sql = connect(&conn).await;
    sql.batch_execute(SCHEMA).await.unwrap();
    sql.batch_execute(&insert(0, 400)).await.unwrap();

    // Health needs no password; everything else does.
    assert_eq!(http.get("/healthz", None).await, (200, r#"{"status":"ok"}"#.to_string()));
    for password in [None, Some("wrong")] {
        let (status, body) = http.get("/metrics", password).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("28P01"), "{body}");
    }
    let unauthorized = http.client.post(format!("{}/v1/features", http.base)).body("{}").send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    // Without the password nothing else is learnt either: no 404, no 405.
    assert_eq!(http.get("/v2/nothing", None).await.0, 401);
    assert_eq!(http.get("/v1/features", None).await.0, 401);
    let (status, body) = http.get("/v2/nothing", Some(PASSWORD)).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = http.get("/v1/features", Some(PASSWORD)).await;
    assert_eq!(status, 405, "{body}");
    let lowercase =
        http.client.get(format!("{}/metrics", http.base)).header("authorization", format!("bearer {PASSWORD}"));
    assert_eq!(lowercase.send().await.unwrap().status().as_u16(), 200);

    // Feature vectors equal the SQL point reads: keys with events, a card with no failed
    // event at that merchant, a key no event has.
    let entities = [(3, 2, "m0"), (4, 4, "m1"), (0, 0, "m0"), (5, 6, "m2"), (99, 99, "m9")];
    let (status, answer) = http.post(&vector_request(&entities)).await;
    assert_eq!(status, 200, "{answer}");
    same_values(&answer["results"], &point_reads(&sql, &entities).await);
    assert!(answer["results"][4].as_object().unwrap().values().all(Value::is_null), "{answer}");
    assert!(answer["results"][0]["card_amounts_1h.tx_count_1h"].as_i64().unwrap() > 0, "{answer}");

    // Bad requests: 400 with the SQLSTATE, naming what is wrong.
    for (body, sqlstate, named) in [
        ("{\"features\": [", "22P02", "invalid JSON"),
        (r#"{"features": ["card_amounts_1h", "no_such"], "entities": []}"#, "42P01", "no_such"),
        (r#"{"features": ["failed_by_merchant_1d"], "entities": [{"cc_num": 1}]}"#, "42703", "merchant"),
        (r#"{"features": ["card_amounts_1h"], "entities": [{"cc_num": "x"}]}"#, "22P02", "cc_num"),
        (r#"{"features": ["card_amounts_1h"], "entities": [{"cc_num": 1.5}]}"#, "22P02", "cc_num"),
        (r#"{"features": ["card_amounts_1h"], "entities": [{"cc_num": true}]}"#, "22P02", "cc_num"),
        (r#"{"features": ["failed_by_merchant_1d"], "entities": [{"cc_num": 1, "merchant": 5}]}"#, "22P02", "merchant"),
        (r#"{"features": ["card_amounts_1h", "card_amounts_1h"], "entities": []}"#, "22023", "twice"),
        (r#"{"entities": []}"#, "22023", "features"),
    ] {
        let (status, error) = http.post(body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["sqlstate"], sqlstate, "{body}: {error}");
        assert!(error["error"].as_str().unwrap().contains(named), "{body}: {error}");
    }

    // A whole float for an integer key (as pandas sends them) and a string holding a value
    // read as the key's type.
    let (status, as_float) =
        http.post(r#"{"features": ["card_amounts_1h"], "entities": [{"cc_num": 3.0}, {"cc_num": "3"}]}"#).await;
    assert_eq!(status, 200, "{as_float}");
    assert_eq!(
        as_float["results"][0]["card_amounts_1h.tx_count_1h"],
        answer["results"][0]["card_amounts_1h.tx_count_1h"]
    );
    assert_eq!(as_float["results"][0], as_float["results"][1]);

    // Roles: Basic credentials act as the role, checked against its SCRAM verifier and held
    // to its privileges (42501 is 403); Bearer is the bootstrap superuser.
    sql.batch_execute("CREATE ROLE model LOGIN PASSWORD 'model-pw'; CREATE ROLE quiet PASSWORD 'quiet-pw'")
        .await
        .unwrap();
    let one = r#"{"features": ["card_amounts_1h"], "entities": [{"cc_num": 3}]}"#;
    let two = r#"{"features": ["card_amounts_1h", "user_unique_ip_30d"], "entities": [{"cc_num": 3, "user_id": 2}]}"#;
    let as_role = |role: &'static str, password: &'static str, body: &'static str| {
        let request = http.client.post(format!("{}/v1/features", http.base)).basic_auth(role, Some(password));
        async move {
            let response = request.body(body).send().await.expect("POST");
            let status = response.status().as_u16();
            (status, serde_json::from_str::<Value>(&response.text().await.expect("body")).expect("JSON"))
        }
    };
    for (role, password, status, sqlstate) in [
        ("model", "wrong", 401, "28P01"),
        ("nobody", "model-pw", 401, "28P01"),
        ("quiet", "quiet-pw", 401, "28000"),
        ("model", "model-pw", 403, "42501"),
    ] {
        let (got, error) = as_role(role, password, one).await;
        assert_eq!((got, error["sqlstate"].as_str()), (status, Some(sqlstate)), "{role}: {error}");
    }
    sql.batch_execute("GRANT SELECT ON FEATURE card_amounts_1h TO model").await.unwrap();
    let (status, granted) = as_role("model", "model-pw", one).await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(
        granted["results"][0]["card_amounts_1h.tx_count_1h"], answer["results"][0]["card_amounts_1h.tx_count_1h"],
        "the role reads what the superuser reads"
    );
    let (status, error) = as_role("model", "model-pw", two).await;
    assert_eq!((status, error["sqlstate"].as_str()), (403, Some("42501")), "a feature not granted: {error}");
    let (status, _) = as_role("asofdb", PASSWORD, two).await;
    assert_eq!(status, 200, "the bootstrap superuser by Basic");
    // A changed password is checked again (what was verified is not reused), and a revoked
    // grant holds at once.
    sql.batch_execute("ALTER ROLE model PASSWORD 'model-pw2'").await.unwrap();
    assert_eq!(as_role("model", "model-pw", one).await.0, 401);
    assert_eq!(as_role("model", "model-pw2", one).await.0, 200);
    sql.batch_execute("REVOKE SELECT ON FEATURE card_amounts_1h FROM model").await.unwrap();
    assert_eq!(as_role("model", "model-pw2", one).await.0, 403);

    // Metrics move by exactly the work done between two scrapes: 3 INSERTs of 25 rows
    // (3 statements, 3 commits), 2 HTTP feature-vector requests.
    let before = http.metrics().await;
    let mut written = Instant::now();
    for n in 0..3 {
        written = Instant::now();
        sql.batch_execute(&insert(400 + n * 25, 425 + n * 25)).await.unwrap();
    }
    for _ in 0..2 {
        assert_eq!(http.post(&vector_request(&entities)).await.0, 200);
    }
    let after = http.metrics().await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved("asofdb_table_rows_ingested_total{table=\"tx\"}"), 75.0);
    assert_eq!(moved("asofdb_statement_duration_seconds_count"), 3.0);
    assert_eq!(moved("asofdb_commit_group_size_sum"), 3.0);
    assert_eq!(moved("asofdb_point_read_duration_seconds_count"), 2.0);
    assert_eq!(sample(&after, "asofdb_table_rows{table=\"tx\",tier=\"hot\"}"), 475.0);
    assert_eq!(sample(&after, "asofdb_connections"), 1.0);
    assert!(sample(&after, "asofdb_feature_state_bytes{feature=\"card_amounts_1h\"}") > 0.0);
    assert!(sample(&after, "asofdb_flush_duration_seconds_count") >= 3.0);
    // Freshness: at most the time since the last write was sent, and it grows while idle.
    let fresh = sample(&after, "asofdb_feature_freshness_seconds{feature=\"card_amounts_1h\"}");
    assert!(fresh <= written.elapsed().as_secs_f64(), "{fresh}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let idle = sample(&http.metrics().await, "asofdb_feature_freshness_seconds{feature=\"card_amounts_1h\"}");
    assert!(idle >= fresh + 1.0, "{fresh} then {idle}");
    // One CHECKPOINT: one snapshot pass and one tiering pass.
    sql.batch_execute("CHECKPOINT").await.unwrap();
    let checkpointed = http.metrics().await;
    for series in ["asofdb_checkpoint_duration_seconds_count", "asofdb_tiering_duration_seconds_count"] {
        assert_eq!(sample(&checkpointed, series) - sample(&after, series), 1.0, "{series}");
    }

    // 64 HTTP clients and 16 SQL clients (writers and point readers) at once: nothing fails.
    let http = Arc::new(http);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..64i64 {
        let http = http.clone();
        tasks.spawn(async move {
            for r in 0..10 {
                let (status, answer) = http.post(&vector_request(&[((c + r) % 20, c % 7, "m1")])).await;
                assert_eq!(status, 200, "{answer}");
            }
        });
    }
    for c in 0..16i64 {
        let conn = conn.clone();
        tasks.spawn(async move {
            let sql = connect(&conn).await;
            for r in 0..10 {
                if c % 2 == 0 {
                    let from = 1000 + (c * 10 + r) * 5;
                    sql.batch_execute(&insert(from, from + 5)).await.unwrap();
                } else {
                    point_reads(&sql, &[(r, c % 7, "m0")]).await;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client failed");
    }
    // After the writes, the answers still equal the point reads.
    let (status, answer) = http.post(&vector_request(&entities)).await;
    assert_eq!(status, 200);
    same_values(&answer["results"], &point_reads(&sql, &entities).await);
    assert_eq!(sample(&http.metrics().await, "asofdb_table_rows_ingested_total{table=\"tx\"}"), 475.0 + 400.0);

    // Audited: DDL (done or refused), a DELETE, an UPDATE (refused: history is immutable), a
    // failed login.
    assert_eq!(sql.execute("DELETE FROM tx WHERE cc_num = 99999", &[]).await.unwrap(), 0);
    let refused = sql.batch_execute("UPDATE tx SET amt = 0").await.unwrap_err();
    assert_eq!(refused.code().unwrap().code(), "0A000");
    sql.batch_execute(
        "INSERT INTO tx VALUES (1, 1, 'm0', 1.0, 'ip', 'ok', '2024-01-01'); CREATE TABLE audited (x BIGINT)",
    )
    .await
    .unwrap();
    sql.execute("DROP TABLE audited", &[]).await.unwrap();
    sql.batch_execute("CREATE USER bob WITH PASSWORD 'secret x'").await.unwrap();
    let wrong = format!("{} password='wrong'", server.conn_string_as("asofdb"));
    assert!(crate::common::try_connect(&wrong).await.is_none());

    // The INFO log: connections with the client's address, slow statements (all, at
    // --log-slow-ms 0) with their text, nothing per point read, and the audit lines.
    drop(sql);
    server.terminate();
    let logged = std::fs::read_to_string(&log).unwrap();
    let audit: Vec<&str> = logged.lines().filter(|l| l.contains("asofdb::audit")).collect();
    let user = r#"user="asofdb" peer=127.0.0.1:"#;
    for (kind, outcome, statement) in [
        ("CREATE FEATURE", "ok", "CREATE FEATURE card_amounts_1h"),
        ("DELETE", "ok", "DELETE FROM tx WHERE cc_num = 99999"),
        ("UPDATE", "0A000", "UPDATE tx SET amt = 0"),
        ("CREATE TABLE", "ok", "CREATE TABLE audited"),
        ("DROP TABLE", "ok", "DROP TABLE audited"),
    ] {
        // Each statement of a string with its own text.
        let fields = format!(r#"kind="{kind}" outcome="{outcome}" {user}"#);
        let text = format!(r#"statement="{statement}"#);
        assert!(audit.iter().any(|l| l.contains(&fields) && l.contains(&text)), "{fields} {text}: {audit:#?}");
    }
    // A role statement, its password left out of every log line.
    let role =
        |l: &&&str| l.contains(r#"kind="CREATE ROLE""#) && l.contains("CREATE USER bob WITH PASSWORD '********'");
    assert!(audit.iter().any(|l| role(&l) && l.contains(r#"outcome="ok""#)), "{audit:#?}");
    assert!(!logged.contains("secret x"), "a password was logged:\n{logged}");
    assert!(!audit.iter().any(|l| l.contains(r#"outcome="ok" user="asofdb" peer=127.0.0.1:"#) && l.contains("INSERT")));
    let failed = r#"kind="LOGIN" outcome="28P01" user="asofdb" peer=127.0.0.1:"#;
    assert!(audit.iter().any(|l| l.contains("login failed: wrong password") && l.contains(failed)), "{audit:#?}");
    // Writes and queries are not audited.
    assert!(!audit.iter().any(|l| l.contains(r#"statement="INSERT"#) || l.contains(r#"statement="SELECT"#)));
    assert!(logged.lines().any(|l| l.contains("connection opened") && l.contains("peer=127.0.0.1:")), "{logged}");
    assert!(logged.lines().any(|l| l.contains("connection closed") && l.contains("peer=127.0.0.1:")), "{logged}");
    assert!(logged.lines().any(|l| l.contains("slow statement") && l.contains("CREATE FEATURE card_amounts_1h")));
    assert!(!logged.contains("FROM card_amounts_1h WHERE cc_num"), "a point read was logged:\n{logged}");
}

/// `/healthz` is 503 with the reason while the disk is below the write reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_below_the_disk_reserve() {
    let dir = tempfile::tempdir().unwrap();
    // A reserve no disk has: every write of new rows is refused.
    let server = BinaryServer::start_with_args(
        &dir.path().join("db"),
        &["--http", "127.0.0.1:0", "--disk-reserve-mb", "1000000000"],
    );
    let url = format!("http://{}/healthz", server.http.unwrap());
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("reserve"), "{body}");
}

/// Bound before the database opens, the port answers `/healthz` with 503 `starting` and
/// every other path with 57P03 until the database is handed over; then it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_port_answers_starting_until_the_database_is_open() {
    let http = asofdb::http::HttpServer::bind("127.0.0.1:0", Default::default()).await.unwrap();
    let base = format!("http://{}", http.local_addr().unwrap());
    let open = http.opener();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(http.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({"status": "unavailable", "reason": "starting"}));
    for request in [client.get(format!("{base}/metrics")), client.post(format!("{base}/v1/features")).body("{}")] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.json::<Value>().await.unwrap()["sqlstate"], "57P03");
    }
    open(asofdb::execute::Database::in_memory().unwrap());
    assert_eq!(client.get(format!("{base}/healthz")).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(client.get(format!("{base}/metrics")).send().await.unwrap().status().as_u16(), 200);
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
