//! Kafka sources against librdkafka's mock cluster (three brokers with real TCP listeners,
//! in this process) and the real binary: every message stored exactly once across `kill -9`
//! while a producer keeps producing, bad messages set aside once each (and counted in the
//! metrics), positions kept by a backup, a broker outage ridden out, and `lag` kept current
//! under a steady load.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::common::{BinaryServer, connect, text_rows};

fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "2")
        .set("reconnect.backoff.max.ms", "500")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer")
}

/// Sends one message (to `partition` if given), waiting while the producer's queue is full.
fn send(producer: &BaseProducer, topic: &str, partition: Option<i32>, payload: &str, timestamp_ms: Option<i64>) {
    let mut record = BaseRecord::<(), str>::to(topic).payload(payload);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(ms) = timestamp_ms {
        record = record.timestamp(ms);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                producer.poll(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => panic!("produce: {e}"),
        }
    }
}

/// Event `id`: 50 cards, one event per second from 2026-01-01, every 7th an hour late.
fn event(id: i64) -> String {
    let base = 1_767_225_600; // 2026-01-01 00:00:00 UTC
    let at = base + id - if id % 7 == 0 { 3600 } else { 0 };
    let ts = chrono::DateTime::from_timestamp(at, 0).unwrap().format("%Y-%m-%d %H:%M:%S");
    format!(r#"{{"id": {id}, "card": "c{}", "amount": {}, "ts": "{ts}"}}"#, id % 50, id % 1000)
}

pub(crate) const SCHEMA: &str = "
    CREATE TABLE tx (id BIGINT, card TEXT, amount BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
    CREATE FEATURE card_total AS SELECT card, count(*) AS n, sum(amount) AS total FROM tx GROUP BY card;
    CREATE FEATURE card_1h AS SELECT card, max(amount) AS top FROM tx GROUP BY card
        WINDOW SLIDING INTERVAL '1 hour';";

/// Polls `sql` (one value) until it equals `want`; panics after `limit`.
pub(crate) async fn wait_for(client: &tokio_postgres::Client, sql: &str, want: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = text_rows(client, sql).await;
        if got == [want] {
            return;
        }
        assert!(start.elapsed() < limit, "{sql}: still {got:?} after {limit:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The features equal a recomputation from the table.
pub(crate) async fn assert_features_recomputed(client: &tokio_postgres::Client) {
    let feature = text_rows(client, "SELECT card, n, total FROM card_total ORDER BY card").await;
    let recomputed = text_rows(client, "SELECT card, count(*), sum(amount) FROM tx GROUP BY card ORDER BY card").await;
    assert_eq!(feature, recomputed, "card_total differs from its recomputation");
    let feature = text_rows(client, "SELECT card, top FROM card_1h ORDER BY card").await;
    let recomputed = text_rows(
        client,
        "SELECT card, max(amount) FILTER (WHERE ts > w - INTERVAL '1 hour') FROM tx, (SELECT max(ts) AS w FROM tx)
           GROUP BY card ORDER BY card",
    )
    .await;
    assert_eq!(feature, recomputed, "card_1h differs from its recomputation");
}

/// The binary on `dir` with `SCHEMA`, and source `s` reading topic `tx` (3 partitions) of `cluster`.
async fn fed_by_source_s(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    dir: &std::path::Path,
) -> (BinaryServer, tokio_postgres::Client) {
    cluster.create_topic("tx", 3, 1).unwrap();
    let server = BinaryServer::start(dir);
    let client = connect(&server.conn_string()).await;
    client.batch_execute(SCHEMA).await.unwrap();
    let bootstrap = cluster.bootstrap_servers();
    client
        .batch_execute(&format!("CREATE SOURCE s INTO tx FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx')"))
        .await
        .unwrap();
    (server, client)
}

/// A small xorshift, so the kill moments are random but repeatable.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_source_stores_every_message_once_across_kill_9() {
    let total: i64 = std::env::var("ASOFDB_SOURCE_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let kills: usize = std::env::var("ASOFDB_SOURCE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let cluster = MockCluster::new(3).unwrap();
    // librdkafka's mock broker keeps at most 5 MB per partition (rdkafka_mock.c, `max_size`)
    // and drops older messages past that: with 3 partitions, 200K messages outgrew it, and a
    // source lagging under load found its stored offset gone ("out of range"). With 8, every
    // partition holds all of its messages (about 25K of about 120 bytes).
    cluster.create_topic("tx", 8, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();

    // Half the messages wait in the topic; the rest are produced while the server is killed.
    let produced = Arc::new(AtomicI64::new(0));
    let producing = {
        let (bootstrap, produced) = (bootstrap.clone(), produced.clone());
        std::thread::spawn(move || {
            let producer = producer(&bootstrap);
            for id in 1..=total {
                send(&producer, "tx", None, &event(id), None);
                if id == total / 2 {
                    producer.flush(Duration::from_secs(60)).unwrap();
                    produced.store(id, Ordering::SeqCst);
                }
                // The second half over about eight seconds, while the server is killed.
                if id > total / 2 && id % (total / 200).max(1) == 0 {
                    std::thread::sleep(Duration::from_millis(80));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            produced.store(total, Ordering::SeqCst);
        })
    };
    while produced.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "1"]);
        let client = connect(&server.conn_string()).await;
        client.batch_execute(SCHEMA).await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE SOURCE tx_stream INTO tx FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx', format = 'json')"
            ))
            .await
            .unwrap();
        server.kill9();
    }
    let mut rng = Rng(0x5eed_cafe);
    let mut seen = Vec::new();
    for _ in 0..kills {
        let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "1"]);
        let client = connect(&server.conn_string()).await;
        tokio::time::sleep(Duration::from_millis(150 + rng.below(600))).await;
        seen.push(text_rows(&client, "SELECT count(*) FROM tx").await[0].parse::<i64>().unwrap());
        server.kill9();
    }
    eprintln!("rows stored at the kills: {seen:?}");
    assert!(seen.iter().any(|n| *n > 0 && *n < total), "some kill lands while the source ingests: {seen:?}");
    producing.join().unwrap();
    let server = BinaryServer::start_with_args(dir.path(), &["--checkpoint-secs", "1"]);
    let client = connect(&server.conn_string()).await;
    let limit = Duration::from_secs(180);
    wait_for(&client, "SELECT count(*) FROM tx", &total.to_string(), limit).await;
    wait_for(&client, "SELECT lag FROM asofdb.sources", "0", limit).await;
    let counts = text_rows(&client, "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM tx").await;
    assert_eq!(counts, [format!("{total}|{total}|1|{total}")], "every message once");
    let report = text_rows(&client, "SELECT state, rows_ingested, bad_messages FROM asofdb.sources").await;
    assert_eq!(report, [format!("running|{total}|0")]);
    assert_features_recomputed(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_set_aside_once_and_good_ones_land() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("mixed", 3, 1).unwrap();
    cluster.create_topic("lines", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let producer = producer(&bootstrap);
    let bad = [
        "not json {",
        "[1, 2, 3]",
        r#"{"id": "seven", "card": "c1", "ts": "2026-01-01 00:00:00"}"#,
        r#"{"id": 8, "qty": 3000000000, "card": "c1", "ts": "2026-01-01 00:00:00"}"#,
        r#"{"id": 9, "card": "c1", "ts": null}"#,
        r#"{"id": 10, "card": {"nested": true}, "ts": "2026-01-01 00:00:00"}"#,
    ];
    let mut good = 0;
    for (i, payload) in bad.iter().enumerate() {
        // Good ones around each bad one, in the same partition.
        let partition = Some(i as i32 % 3);
        for _ in 0..2 {
            good += 1;
            let ok =
                format!(r#"{{"id": {}, "qty": 1, "card": "c{good}", "ts": "2026-01-01 00:00:{good:02}"}}"#, 100 + good);
            send(&producer, "mixed", partition, &ok, Some(1_767_225_600_000 + good));
        }
        send(&producer, "mixed", partition, payload, None);
    }
    for line in
        ["1,c1,2026-01-01 00:00:01", "2,c2", "3,c3,2026-01-01 00:00:03\n4,c4,2026-01-01 00:00:04", "x,c5,2026-01-01"]
    {
        send(&producer, "lines", None, line, None);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE m (id BIGINT, qty INT, card TEXT, ts TIMESTAMP, seen TIMESTAMP)
                 WITH (event_time = 'ts', ingest_time = 'seen');
             CREATE TABLE l (id BIGINT, card TEXT, ts TIMESTAMP) WITH (event_time = 'ts');
             CREATE SOURCE mixed INTO m FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'mixed', batch_rows = 3);
             CREATE SOURCE lines INTO l FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'lines', format = 'csv',
                 columns = 'id, card, ts')"
        ))
        .await
        .unwrap();
    // Prepared before the rows arrive, executed after: it reads the sources as they are then.
    let prepared = client.prepare("SELECT rows_ingested FROM asofdb.sources WHERE name = $1").await.unwrap();
    let limit = Duration::from_secs(60);
    wait_for(&client, "SELECT count(*) FROM m", &good.to_string(), limit).await;
    let ingested: i64 = client.query_one(&prepared, &[&"mixed"]).await.unwrap().get(0);
    assert_eq!(ingested, good);
    wait_for(&client, "SELECT count(*) FROM asofdb.source_errors WHERE source = 'mixed'", "6", limit).await;
    wait_for(&client, "SELECT count(*) FROM l", "3", limit).await;
    wait_for(&client, "SELECT count(*) FROM asofdb.source_errors WHERE source = 'lines'", "2", limit).await;
    // The message timestamp is the ingest time.
    let stamped = text_rows(
        &client,
        "SELECT count(*) FROM m WHERE seen = TIMESTAMP '2026-01-01 00:00:00' + (id - 100) * INTERVAL '1 millisecond'",
    )
    .await;
    assert_eq!(stamped, [good.to_string()]);

    // Each bad payload is kept once, with why it was refused, and survives a kill -9.
    server.kill9();
    let server = BinaryServer::start_with_args(dir.path(), &["--http", "127.0.0.1:0"]);
    let client = connect(&server.conn_string()).await;
    wait_for(&client, "SELECT count(*) FROM asofdb.sources WHERE lag = 0", "2", limit).await;
    let payloads =
        text_rows(&client, "SELECT payload FROM asofdb.source_errors WHERE source = 'mixed' ORDER BY payload").await;
    let mut expected: Vec<String> = bad.iter().map(|p| p.to_string()).collect();
    expected.sort();
    assert_eq!(payloads, expected);
    let reasons = text_rows(&client, "SELECT payload, reason FROM asofdb.source_errors").await;
    let why = [
        ("not json {", "not json"),
        ("[1, 2, 3]", "array"),
        ("seven", "seven"),
        ("3000000000", "out of range"),
        ("null}", "null"),
        ("nested", "object"),
        ("2,c2", "missing data"),
        ("x,c5", "\"x\""),
    ];
    for (payload, word) in why {
        let row = reasons.iter().find(|r| r.contains(payload)).unwrap_or_else(|| panic!("no error for {payload}"));
        let reason = row.rsplit_once('|').map(|(_, r)| r.to_lowercase()).unwrap_or_default();
        assert!(reason.contains(word), "{payload}: the reason {reason:?} does not say {word:?}");
    }
    let ids = text_rows(&client, "SELECT string_agg(CAST(id AS TEXT), ',' ORDER BY id) FROM l").await;
    assert_eq!(ids, ["1,3,4"]);
    let report =
        text_rows(&client, "SELECT name, rows_ingested, bad_messages, lag FROM asofdb.sources ORDER BY name").await;
    assert_eq!(report, ["lines|3|2|0".to_string(), format!("mixed|{good}|6|0")]);
    assert_eq!(text_rows(&client, "SELECT count(*) FROM m").await, [good.to_string()]);

    // The same figures in the metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", server.http.unwrap())).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for (series, value) in [
        ("asofdb_source_bad_messages_total{source=\"mixed\"}", 6),
        ("asofdb_source_bad_messages_total{source=\"lines\"}", 2),
        ("asofdb_source_rows_ingested_total{source=\"mixed\"}", good),
        ("asofdb_source_rows_ingested_total{source=\"lines\"}", 3),
        ("asofdb_source_lag{source=\"mixed\"}", 0),
    ] {
        assert!(metrics.lines().any(|line| line == format!("{series} {value}")), "{series} {value} in\n{metrics}");
    }

    // A backup holds the sources' positions: the restored copy resumes after what it holds,
    // and reads on from there exactly once.
    let backup = dir.path().join("backup");
    client.batch_execute(&format!("BACKUP TO '{}'", backup.display())).await.unwrap();
    let restored = dir.path().join("restored");
    let out = crate::common::restore_backup(&backup, &restored);
    assert!(out.status.success(), "{out:?}");
    send(&producer, "lines", None, "5,c5,2026-01-01 00:00:05", None);
    producer.flush(Duration::from_secs(30)).unwrap();
    let copy = BinaryServer::start(&restored);
    let copy_client = connect(&copy.conn_string()).await;
    for client in [&client, &copy_client] {
        wait_for(client, "SELECT count(*) FROM l", "4", limit).await;
        wait_for(client, "SELECT count(*) FROM asofdb.sources WHERE lag = 0", "2", limit).await;
        let ids = text_rows(client, "SELECT string_agg(CAST(id AS TEXT), ',' ORDER BY id) FROM l").await;
        assert_eq!(ids, ["1,3,4,5"]);
        assert_eq!(text_rows(client, "SELECT count(*) FROM m").await, [good.to_string()]);
        assert_eq!(text_rows(client, "SELECT count(*) FROM asofdb.source_errors").await, ["8"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_retried_and_nothing_is_lost_or_doubled() {
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = fed_by_source_s(&cluster, dir.path()).await;
    let producer = producer(&bootstrap);
    let next = Arc::new(AtomicI64::new(1));
    let produce = |n: i64| {
        for _ in 0..n {
            send(&producer, "tx", None, &event(next.fetch_add(1, Ordering::SeqCst)), None);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    produce(2000);
    wait_for(&client, "SELECT count(*) FROM tx", "2000", Duration::from_secs(60)).await;

    cluster.broker_down(1).unwrap();
    let start = Instant::now();
    let mut seen_retrying = false;
    while start.elapsed() < Duration::from_secs(30) && !seen_retrying {
        let state = text_rows(&client, "SELECT state, last_error IS NOT NULL FROM asofdb.sources").await;
        seen_retrying = state == ["retrying|t"];
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_retrying, "the source says it is retrying while the broker is down");
    // Queries and client writes go on meanwhile.
    client.batch_execute("INSERT INTO tx VALUES (-1, 'c0', 0, '2025-12-31 00:00:00')").await.unwrap();
    cluster.broker_up(1).unwrap();
    produce(2000);
    wait_for(&client, "SELECT count(*) FROM tx", "4001", Duration::from_secs(60)).await;
    wait_for(&client, "SELECT state || ' ' || lag FROM asofdb.sources", "running 0", Duration::from_secs(60)).await;
    let counts = text_rows(&client, "SELECT count(DISTINCT id) FROM tx").await;
    assert_eq!(counts, ["4001"]);
    assert_features_recomputed(&client).await;

    // A column added while the source runs is filled by the messages after it.
    client.batch_execute("ALTER TABLE tx ADD COLUMN note TEXT").await.unwrap();
    for id in 5001..=5010 {
        let payload =
            format!(r#"{{"id": {id}, "card": "c1", "amount": 1, "ts": "2026-01-03 00:00:00", "note": "n{id}"}}"#);
        send(&producer, "tx", None, &payload, None);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let limit = Duration::from_secs(60);
    wait_for(&client, "SELECT count(*) FROM tx WHERE note = 'n' || CAST(id AS TEXT)", "10", limit).await;

    // Dropped while it ingests: nothing lands after DROP SOURCE returns.
    produce(30_000);
    client.batch_execute("DROP SOURCE s").await.unwrap();
    let after_drop = text_rows(&client, "SELECT count(*) FROM tx").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(text_rows(&client, "SELECT count(*) FROM tx").await, after_drop, "rows landed after DROP SOURCE");
    assert_eq!(text_rows(&client, "SELECT count(*) FROM asofdb.sources").await, ["0"]);

    // `start = 'latest'`: only what is produced after CREATE SOURCE.
    client
        .batch_execute(&format!(
            "CREATE TABLE late (id BIGINT, card TEXT, amount BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             CREATE SOURCE l INTO late FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx', start = 'latest')"
        ))
        .await
        .unwrap();
    let first = next.load(Ordering::SeqCst);
    produce(100);
    wait_for(&client, "SELECT count(*) FROM late", "100", limit).await;
    let ids = text_rows(&client, "SELECT min(id), max(id), count(DISTINCT id) FROM late").await;
    assert_eq!(ids, [format!("{first}|{}|100", first + 99)]);

    // A source writes with its owner's privileges: made by a role allowed to insert into
    // its table; once that is revoked it retries, committing nothing; granted again, it goes
    // on from where it was, losing and doubling nothing.
    client
        .batch_execute(&format!(
            "CREATE ROLE feeder; GRANT CREATE ON SCHEMA public TO feeder; GRANT INSERT ON late TO feeder;
             SET ROLE feeder;
             CREATE SOURCE fed INTO late FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx', start = 'latest');
             RESET ROLE;
             DROP SOURCE l"
        ))
        .await
        .unwrap();
    let owner = text_rows(&client, "SELECT count(*) FROM asofdb.sources WHERE name = 'fed'").await;
    assert_eq!(owner, ["1"]);
    let err = client.batch_execute("DROP ROLE feeder").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("2BP01"), "{err:?}");
    client.batch_execute("REVOKE INSERT ON late FROM feeder").await.unwrap();
    produce(50);
    let sql = "SELECT state || ' ' || last_error FROM asofdb.sources WHERE name = 'fed'";
    wait_for(&client, sql, "retrying permission denied for table late", limit).await;
    assert_eq!(text_rows(&client, "SELECT count(*) FROM late").await, ["100"]);
    client.batch_execute("GRANT INSERT ON late TO feeder").await.unwrap();
    wait_for(&client, "SELECT count(DISTINCT id) || ' ' || count(*) FROM late", "150 150", limit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_producers_messages_land_once() {
    // librdkafka's mock broker reports no aborted transactions in its fetch responses (its
    // rdkafka_mock_handlers.c writes an empty list and the end offset as the last stable
    // one) and stores no commit markers, so `read_committed` skipping aborted messages cannot
    // be shown against it.
    let cluster = MockCluster::new(1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let (_server, client) = fed_by_source_s(&cluster, dir.path()).await;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "asofdb-test")
        .create()
        .expect("transactional producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).unwrap();
    for round in 0..3i64 {
        producer.begin_transaction().unwrap();
        for id in round * 100 + 1..=round * 100 + 100 {
            send(&producer, "tx", None, &event(id), None);
        }
        producer.flush(timeout).unwrap();
        producer.commit_transaction(timeout).unwrap();
    }
    let limit = Duration::from_secs(60);
    wait_for(&client, "SELECT count(*) FROM tx", "300", limit).await;
    wait_for(&client, "SELECT lag FROM asofdb.sources", "0", limit).await;
    assert_eq!(text_rows(&client, "SELECT count(DISTINCT id), min(id), max(id) FROM tx").await, ["300|1|300"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_reported_while_messages_keep_arriving() {
    // Under a steady stream a batch is open nearly all the time; `lag` used to be refreshed
    // only while none was, so a source created under load reported NULL until the load ended.
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("tx", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let produced = Arc::new(AtomicI64::new(0));
    let producing = {
        let (bootstrap, stop, produced) = (bootstrap.clone(), stop.clone(), produced.clone());
        std::thread::spawn(move || {
            let producer = producer(&bootstrap);
            let mut id = 0;
            // About 2,000 messages a second, for at most 30 s.
            while !stop.load(Ordering::SeqCst) && id < 60_000 {
                for _ in 0..10 {
                    id += 1;
                    send(&producer, "tx", None, &event(id), None);
                }
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(5));
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            produced.store(id, Ordering::SeqCst);
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(dir.path());
    let client = connect(&server.conn_string()).await;
    client.batch_execute(SCHEMA).await.unwrap();
    client
        .batch_execute(&format!("CREATE SOURCE s INTO tx FROM KAFKA WITH (brokers = '{bootstrap}', topic = 'tx')"))
        .await
        .unwrap();
    wait_for(&client, "SELECT lag IS NOT NULL FROM asofdb.sources", "t", Duration::from_secs(20)).await;
    assert!(!producing.is_finished(), "the lag was seen only after the load ended");
    stop.store(true, Ordering::SeqCst);
    producing.join().unwrap();
    let total = produced.load(Ordering::SeqCst);
    let limit = Duration::from_secs(60);
    wait_for(&client, "SELECT count(*) FROM tx", &total.to_string(), limit).await;
    wait_for(&client, "SELECT lag FROM asofdb.sources", "0", limit).await;
}
