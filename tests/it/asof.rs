//! ASOF joins over the wire: extended-protocol parameters, EXPLAIN, the memory limit.

use crate::common;

use asofdb::execute::Limits;
use common::TestServer;
use tokio_postgres::SimpleQueryMessage;

async fn load_prices(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE px (k BIGINT, ts TIMESTAMP NOT NULL, v BIGINT) WITH (event_time = 'ts');
             CREATE TABLE spine (id BIGINT, k BIGINT, ts TIMESTAMP NOT NULL) WITH (event_time = 'ts');
             INSERT INTO px VALUES (1, '2024-01-01 10:00:00', 10), (1, '2024-01-01 11:00:00', 11),
                                   (2, '2024-01-01 10:30:00', 20);
             INSERT INTO spine VALUES (1, 1, '2024-01-01 10:59:00'), (2, 1, '2024-01-01 11:00:00'),
                                      (3, 2, '2024-01-01 10:00:00');
             CREATE FEATURE px_sum AS SELECT k, sum(v) AS total FROM px GROUP BY k WINDOW SLIDING INTERVAL '2 hours'",
        )
        .await
        .unwrap();
}

fn ts(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn first_column(rows: &[tokio_postgres::Row]) -> Vec<Option<i64>> {
    rows.iter().map(|r| r.get::<_, Option<i64>>(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_asof_joins_take_parameters_on_the_left() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    load_prices(&client).await;

    // Parameters in the WHERE that applies to the left side.
    let table = client
        .prepare(
            "SELECT p.v FROM spine s ASOF LEFT JOIN px p ON s.k = p.k AND s.ts >= p.ts \
             WHERE s.id >= $1 AND s.ts <= $2 ORDER BY s.id",
        )
        .await
        .unwrap();
    let rows = client.query(&table, &[&1i64, &ts("2024-01-02 00:00:00")]).await.unwrap();
    assert_eq!(first_column(&rows), vec![Some(10), Some(11), None]);
    let rows = client.query(&table, &[&2i64, &ts("2024-01-01 11:00:00")]).await.unwrap();
    assert_eq!(first_column(&rows), vec![Some(11), None]);

    let feature = client
        .prepare(
            "SELECT f.total FROM spine s ASOF JOIN px_sum f ON s.k = f.k AND s.ts > f.ts WHERE s.k = $1 ORDER BY s.id",
        )
        .await
        .unwrap();
    assert_eq!(first_column(&client.query(&feature, &[&1i64]).await.unwrap()), vec![Some(10), Some(10)]);
    assert_eq!(first_column(&client.query(&feature, &[&2i64]).await.unwrap()), Vec::<Option<i64>>::new());
    server.stop().await;
}

/// The plan column of `EXPLAIN sql`.
async fn explain(client: &tokio_postgres::Client, sql: &str) -> String {
    let plan = client.simple_query(&format!("EXPLAIN {sql}")).await.unwrap();
    plan.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(format!("{}\n", r.get(1).unwrap_or(""))),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_asof_operators() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    load_prices(&client).await;
    let text = explain(
        &client,
        "SELECT * FROM spine s ASOF JOIN px p ON s.k = p.k AND s.ts >= p.ts \
         ASOF LEFT JOIN px_sum f ON s.k = f.k AND s.ts > f.ts",
    )
    .await;
    assert!(text.contains("AsofTableExec"), "{text}");
    assert!(text.contains("AsofFeatureExec: LEFT feature px_sum"), "{text}");
    // Two features over the spine's own columns: one operator evaluates both.
    let text = explain(
        &client,
        "SELECT * FROM spine s ASOF LEFT JOIN px_sum f ON s.k = f.k AND s.ts > f.ts \
         ASOF JOIN px_sum g ON s.k = g.k AND s.ts >= g.ts",
    )
    .await;
    assert_eq!(text.matches("AsofFeatureExec").count(), 1, "{text}");
    assert!(text.contains("AsofFeatureExec: LEFT feature px_sum, ") && text.contains("; feature px_sum, "), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asof_join_over_the_memory_limit_fails_with_53200_and_the_server_goes_on() {
    let server = TestServer::start_with(Limits { query_memory: Some(4 << 20), ..Default::default() }).await;
    let client = server.connect().await;
    load_prices(&client).await;
    client
        .batch_execute("CREATE TABLE big (k BIGINT, ts TIMESTAMP NOT NULL, v BIGINT) WITH (event_time = 'ts')")
        .await
        .unwrap();
    let sink = client.copy_in("COPY big FROM STDIN WITH (FORMAT csv)").await.unwrap();
    let mut text = String::new();
    for i in 0..300_000u64 {
        text.push_str(&format!(
            "{},2024-01-0{} {:02}:{:02}:{:02},{i}\n",
            i % 7,
            1 + i % 5,
            i % 24,
            i % 60,
            (i / 60) % 60
        ));
    }
    futures::pin_mut!(sink);
    futures::SinkExt::send(&mut sink, bytes::Bytes::from(text)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 300_000);

    let err = client
        .query("SELECT count(*) FROM spine s ASOF JOIN big b ON s.k = b.k AND s.ts >= b.ts", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("53200"), "{err:?}");

    // The same connection, and a join whose right side fits, still work (no ORDER BY: a sort
    // alone reserves more than this tiny pool).
    let rows = client.query("SELECT p.v FROM spine s ASOF JOIN px p ON s.k = p.k AND s.ts >= p.ts", &[]).await.unwrap();
    let mut values = first_column(&rows);
    values.sort();
    assert_eq!(values, vec![Some(10), Some(11)]);
    server.stop().await;
}
