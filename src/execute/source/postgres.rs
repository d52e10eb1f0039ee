//! A PostgreSQL source's runner: logical replication through pgwire-replication, the
//! `pgoutput` messages decoded in [`super::pgoutput`].
//!
//! First (no stored LSN yet) the slot `asofdb_<source>` is created and the table's existing
//! rows are read in that slot's own snapshot, and committed whole with the slot's consistent
//! point as the position: a crash before that commit leaves nothing, and the next start makes
//! a new slot and a new snapshot. Then each upstream transaction's INSERTs and UPDATEs become
//! events, committed in batches of whole transactions with the end LSN of the last one; the
//! upstream is told that LSN only after the commit. A session restarts from the stored LSN,
//! and skips any transaction that committed before it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwire_replication::{
    Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent, SslMode, TlsConfig,
};

use super::batch::{PendingBatch, Point};
use super::options::PostgresOptions;
use super::payload::TextRow;
use super::pgoutput::{self, Change, Value};
use super::{Ended, RunContext, commit_batch};
use crate::catalog::{SourceState, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::execute::database::Database;

/// µs from PostgreSQL's epoch (2000-01-01) to Unix's.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// How long connecting (and CREATE SOURCE's checks) may take before the upstream counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long DROP SOURCE waits for the upstream to let go of the slot its runner held.
const SLOT_RELEASE: Duration = Duration::from_secs(10);
/// How long an idle session waits for an event before looking at its stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(100);

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `application_name` of a source's own sessions, by which DROP SOURCE finds them.
fn session_name(source: &str) -> String {
    format!("asofdb source {source}")
}

/// A session's settings; `name` is its `application_name`.
fn config(options: &PostgresOptions, name: &str, start: u64) -> ReplicationConfig {
    let info = &options.conninfo;
    let ca = info.sslrootcert.clone().map(PathBuf::from);
    let tls = match info.sslmode.as_str() {
        "prefer" => TlsConfig { mode: SslMode::Prefer, ..TlsConfig::default() },
        "require" => TlsConfig::require(),
        "verify-ca" => TlsConfig::verify_ca(ca),
        "verify-full" => TlsConfig::verify_full(ca),
        _ => TlsConfig::disabled(),
    };
    ReplicationConfig::new(
        &info.host,
        &info.user,
        &info.password,
        &info.dbname,
        &options.slot,
        options.publication.as_str(),
    )
    .with_port(info.port)
    .with_tls(tls)
    .with_start_lsn(Lsn::from_u64(start))
    // Values as asofdb reads text: ISO timestamps in UTC, floats to the last digit.
    .with_options("-c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3")
    .with_application_name(name)
    .with_status_interval(Duration::from_secs(1))
    .with_wakeup_interval(Duration::from_secs(1))
}

/// The upstream's error as asofdb's: a connection the upstream refuses (a login or
/// pg_hba.conf refusal, a missing database, too many connections: SQLSTATE classes 08 and 28,
/// 3D000, 53300), or cannot make (refused, timed out, TLS), is 08001; any other PostgreSQL
/// error keeps its text (55000).
fn upstream_error(options: &PostgresOptions, e: PgWireError) -> Error {
    let at = format!("{}:{}", options.conninfo.host, options.conninfo.port);
    match e {
        PgWireError::Server(message) if !refuses_connection(&message) => Error::invalid_input(
            SqlState::ObjectNotInPrerequisiteState,
            format!("upstream PostgreSQL at {at}: {message}"),
        ),
        other => Error::Unreachable(format!("could not reach PostgreSQL at {at}: {other}")),
    }
}

/// The SQLSTATE pgwire-replication writes into a server error's text.
fn sqlstate(message: &str) -> Option<&str> {
    let at = message.find("SQLSTATE ")? + "SQLSTATE ".len();
    message.get(at..at + 5)
}

fn refuses_connection(message: &str) -> bool {
    sqlstate(message)
        .is_some_and(|code| code.starts_with("08") || code.starts_with("28") || code == "3D000" || code == "53300")
}

/// The rows of one query on a session that has not started replicating, as text.
async fn query(
    client: &mut ReplicationClient,
    options: &PostgresOptions,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>> {
    let rows = client.simple_query(sql).await.map_err(|e| upstream_error(options, e))?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_iter().map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())).collect())
        .collect())
}

/// A replication session that runs queries until it is dropped or started (then it streams
/// from `start`).
async fn query_session(options: &PostgresOptions, name: &str, start: u64) -> Result<ReplicationClient> {
    ReplicationClient::connect_gated(config(options, name, start)).await.map_err(|e| upstream_error(options, e))
}

async fn within<T>(what: &str, options: &PostgresOptions, work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(CONNECT_TIMEOUT, work).await.unwrap_or_else(|_| {
        Err(Error::Unreachable(format!(
            "{what}: PostgreSQL at {}:{} did not answer within {CONNECT_TIMEOUT:?}",
            options.conninfo.host, options.conninfo.port
        )))
    })
}

/// CREATE SOURCE's checks and set-up upstream: it answers (08001 otherwise), has `wal_level =
/// logical` and the table (55000, 42P01 otherwise); asofdb's publication for the table is
/// created, or the one named must exist (42704) and publish the table (55000).
pub(super) async fn prepare_upstream(options: &PostgresOptions) -> Result<()> {
    within("CREATE SOURCE", options, async {
        let mut client = query_session(options, "asofdb check", 0).await?;
        let level = query(&mut client, options, "SHOW wal_level").await?;
        let level = level.first().and_then(|row| row.first().cloned().flatten()).unwrap_or_default();
        if level != "logical" {
            return Err(Error::invalid_input(
                SqlState::ObjectNotInPrerequisiteState,
                format!("the upstream PostgreSQL has wal_level = {level}: a POSTGRES source needs wal_level = logical"),
            ));
        }
        let found = query(
            &mut client,
            options,
            &format!(
                "SELECT c.relkind::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = {} AND c.relname = {}",
                quote_literal(&options.schema),
                quote_literal(&options.table)
            ),
        )
        .await?;
        match found.first().and_then(|row| row.first().cloned().flatten()).as_deref() {
            Some("r") => {}
            None => {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedTable,
                    message: format!("upstream table \"{}.{}\" does not exist", options.schema, options.table),
                });
            }
            // A partitioned table's changes arrive under its partitions' names.
            Some(kind) => {
                let what = if kind == "p" { "a partitioned table" } else { "not a plain table" };
                return Err(Error::invalid_input(
                    SqlState::WrongObjectType,
                    format!("upstream \"{}.{}\" is {what}: a POSTGRES source reads one plain table", options.schema, options.table),
                ));
            }
        }
        let publication = query(
            &mut client,
            options,
            &format!("SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = {}", quote_literal(&options.publication)),
        )
        .await?;
        if publication.is_empty() {
            if !options.own_publication {
                return Err(Error::NotFound {
                    sqlstate: SqlState::UndefinedObject,
                    message: format!("upstream publication \"{}\" does not exist", options.publication),
                });
            }
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {}.{}",
                quote_ident(&options.publication),
                quote_ident(&options.schema),
                quote_ident(&options.table)
            );
            query(&mut client, options, &sql).await?;
        }
        // A publication that leaves the table out would stream nothing, silently.
        let published = query(
            &mut client,
            options,
            &format!(
                "SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = {} AND schemaname = {} AND tablename = {}",
                quote_literal(&options.publication),
                quote_literal(&options.schema),
                quote_literal(&options.table)
            ),
        )
        .await?;
        if published.is_empty() {
            return Err(Error::invalid_input(
                SqlState::ObjectNotInPrerequisiteState,
                format!(
                    "upstream publication \"{}\" does not publish table \"{}.{}\"",
                    options.publication, options.schema, options.table
                ),
            ));
        }
        Ok(())
    })
    .await
}

/// DROP SOURCE upstream: the slot, once the stopped runner's session has let go of it, and
/// the publication if asofdb created it.
pub(super) async fn release_upstream(source: &str, options: &PostgresOptions) -> Result<()> {
    let work = async {
        let mut client = query_session(options, "asofdb drop", 0).await?;
        let deadline = Instant::now() + SLOT_RELEASE;
        loop {
            // The stopped runner's sessions may still be at work upstream (a slot creation
            // waiting for old transactions, a snapshot's SELECT): they are ended first.
            let sql = format!(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
                 WHERE application_name = left({}, 63) AND pid <> pg_catalog.pg_backend_pid()",
                quote_literal(&session_name(source))
            );
            query(&mut client, options, &sql).await?;
            match query(&mut client, options, &drop_slot_sql(options)).await {
                Ok(_) => break,
                // 55006, "replication slot ... is active": the upstream has not yet seen the
                // runner's session end.
                Err(e) if Instant::now() < deadline && sqlstate(&e.to_string()) == Some("55006") => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => return Err(e),
            }
        }
        if options.own_publication {
            let sql = format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&options.publication));
            query(&mut client, options, &sql).await?;
        }
        Ok(())
    };
    // Never longer than this: DROP SOURCE holds the lock other CREATE/DROP SOURCEs wait for.
    tokio::time::timeout(SLOT_RELEASE + CONNECT_TIMEOUT, work).await.unwrap_or_else(|_| {
        Err(Error::Unreachable(format!(
            "PostgreSQL at {}:{} did not drop slot \"{}\" in time",
            options.conninfo.host, options.conninfo.port, options.slot
        )))
    })
}

/// `work`, unless the source is stopped first (`None`): a slot creation waits for every
/// upstream transaction open at the time, and a snapshot can take long.
async fn unless_stopped<T>(context: &RunContext, work: impl Future<Output = Result<T>>) -> Result<Option<T>> {
    tokio::select! {
        done = work => done.map(Some),
        () = async {
            while !context.stopped() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } => Ok(None),
    }
}

/// The upstream table as SQL names it: `"schema"."table"`.
fn relation_name(options: &PostgresOptions) -> String {
    format!("{}.{}", quote_ident(&options.schema), quote_ident(&options.table))
}

fn drop_slot_sql(options: &PostgresOptions) -> String {
    format!(
        "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots \
         WHERE slot_name = {}",
        quote_literal(&options.slot)
    )
}

/// One session: the snapshot if none is stored yet, else the changes from the stored LSN.
pub(super) fn session(context: &RunContext, db: &Arc<Database>, backoff: &mut Duration) -> Result<Ended> {
    let source = &context.source;
    let generation = db.catalog.generation();
    let def = db.catalog.require_table(&source.def.table)?;
    let options = PostgresOptions::parse(&source.def.name, &source.def.options)?;
    let stored = db.catalog.stored_source_position(&source.def.name)?;
    source.report.lock().position = stored.clone();
    match stored.lsn {
        None => {
            let ended = snapshot(context, db, &def, &options)?;
            *backoff = Duration::from_millis(100);
            Ok(ended)
        }
        Some(start) => {
            let streaming = Stream { context, db, def: &def, options: &options, start, generation };
            stream(&streaming, backoff)
        }
    }
}

/// For each table column, the upstream column of the same name, if there is one.
fn column_map(def: &TableDef, upstream: &[String]) -> Vec<Option<usize>> {
    def.columns
        .iter()
        .map(|c| {
            upstream
                .iter()
                .position(|u| *u == c.name)
                .or_else(|| upstream.iter().position(|u| u.to_lowercase() == c.name))
        })
        .collect()
}

/// A table row from an upstream tuple; an unchanged TOASTed value is taken from the old
/// tuple when the replica identity sent it, and is a bad message otherwise.
fn table_row(
    map: &[Option<usize>],
    upstream: &[String],
    new: &[Value],
    old: Option<&[Value]>,
) -> std::result::Result<TextRow, String> {
    map.iter()
        .map(|column| {
            let Some(column) = *column else { return Ok(None) };
            match new.get(column) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Text(text)) => Ok(Some(text.clone())),
                Some(Value::Unchanged) => match old.and_then(|old| old.get(column)) {
                    Some(Value::Text(text)) => Ok(Some(text.clone())),
                    Some(Value::Null) => Ok(None),
                    _ => Err(format!(
                        "an UPDATE left column \"{}\" unchanged and TOASTed, so its value was not sent \
                         (ALTER TABLE ... REPLICA IDENTITY FULL upstream sends it)",
                        upstream[column]
                    )),
                },
            }
        })
        .collect()
}

/// An upstream row as `asofdb.source_errors.payload` shows it: a JSON object.
fn payload(upstream: &[String], values: &[Value]) -> Vec<u8> {
    let object: serde_json::Map<String, serde_json::Value> = upstream
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let value = match value {
                Value::Null => serde_json::Value::Null,
                Value::Unchanged => serde_json::Value::String("(unchanged TOAST value)".into()),
                Value::Text(text) => serde_json::Value::String(text.clone()),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object).to_string().into_bytes()
}

fn consistent_point(created: &[Vec<Option<String>>]) -> Result<u64> {
    let text = created.first().and_then(|row| row.get(1).cloned().flatten()).unwrap_or_default();
    Lsn::parse(&text)
        .map(|lsn| lsn.as_u64())
        .map_err(|_| Error::internal(format!("CREATE_REPLICATION_SLOT answered an unreadable LSN \"{text}\"")))
}

/// Makes the slot and commits the table's rows as of the slot's consistent point (none with
/// `snapshot = false`) with that point as the source's position.
fn snapshot(context: &RunContext, db: &Arc<Database>, def: &TableDef, options: &PostgresOptions) -> Result<Ended> {
    let source = &context.source;
    // Also without a copy: until the slot exists, upstream writes are not captured.
    source.report.lock().state = SourceState::Snapshot;
    let taken_at = chrono::Utc::now().timestamp_micros();
    let slot = quote_ident(&options.slot);
    let copied = context.runtime.block_on(unless_stopped(context, async {
        let mut client = query_session(options, &session_name(&source.def.name), 0).await?;
        // A slot of an earlier start whose snapshot was never committed: that snapshot is gone.
        query(&mut client, options, &drop_slot_sql(options)).await?;
        if !options.snapshot {
            let created = query(
                &mut client,
                options,
                &format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput NOEXPORT_SNAPSHOT"),
            )
            .await?;
            return Ok((consistent_point(&created)?, Vec::new(), Vec::new()));
        }
        // The slot's snapshot becomes this transaction's: its rows are exactly those whose
        // changes the slot will not stream.
        query(&mut client, options, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ").await?;
        let created =
            query(&mut client, options, &format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput USE_SNAPSHOT"))
                .await?;
        let relation = relation_name(options);
        let columns = query(
            &mut client,
            options,
            &format!(
                "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = {}::regclass \
                 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                quote_literal(&relation)
            ),
        )
        .await?;
        let columns: Vec<String> = columns.into_iter().filter_map(|row| row.into_iter().next().flatten()).collect();
        let select: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let rows = query(&mut client, options, &format!("SELECT {} FROM {relation}", select.join(", "))).await?;
        query(&mut client, options, "COMMIT").await?;
        Ok::<_, Error>((consistent_point(&created)?, columns, rows))
    }))?;
    let Some((lsn, upstream, rows)) = copied else { return Ok(Ended::Stopped) };
    let map = column_map(def, &upstream);
    let mut batch = PendingBatch::new(def, (0..def.columns.len()).collect());
    for (number, row) in rows.into_iter().enumerate() {
        let values: Vec<Value> = row.into_iter().map(|v| v.map_or(Value::Null, Value::Text)).collect();
        let text = table_row(&map, &upstream, &values, None);
        batch.push(Point::Snapshot(number), Some(&payload(&upstream, &values)), Some(taken_at), text.map(|r| vec![r]));
    }
    let copy = options.snapshot;
    commit_batch(context, db, def, batch, |position| {
        position.lsn = Some(lsn);
        position.snapshot_done = copy;
    })?;
    source.report.lock().running();
    tracing::info!(source = %source.def.name, lsn = %Lsn::from_u64(lsn), "snapshot committed; streaming from its consistent point");
    Ok(Ended::Reconnect)
}

/// An upstream transaction being read.
struct Transaction {
    /// It committed before the stored position: already applied.
    skip: bool,
    /// Its commit time, µs since the Unix epoch (`ingest_time`).
    commit_micros: i64,
    deletes: u64,
}

/// The source's table as the upstream last described it.
struct Relation {
    id: u32,
    columns: Vec<String>,
    map: Vec<Option<usize>>,
}

/// A streaming session's surroundings.
struct Stream<'a> {
    context: &'a RunContext,
    db: &'a Arc<Database>,
    def: &'a TableDef,
    options: &'a PostgresOptions,
    /// The stored LSN it starts from.
    start: u64,
    /// The catalog's generation when it started: a change (ALTER TABLE) ends it.
    generation: u64,
}

/// Streams changes from the stored LSN until stopped, or the table changes.
fn stream(stream: &Stream, backoff: &mut Duration) -> Result<Ended> {
    let Stream { context, options, start, .. } = *stream;
    let source = &context.source;
    let (mut client, table) = context.runtime.block_on(within("replication", options, async {
        let mut client = query_session(options, &session_name(&source.def.name), start).await?;
        // The table is known by its OID from here on: renamed or moved upstream, it is still
        // the table the publication streams.
        let sql = format!("SELECT {}::regclass::oid", quote_literal(&relation_name(options)));
        let oid = query(&mut client, options, &sql).await?;
        let oid = oid.first().and_then(|row| row.first().cloned().flatten()).and_then(|oid| oid.parse::<u32>().ok());
        let oid = oid.ok_or_else(|| Error::internal("the upstream table's OID is unreadable"))?;
        client.start().await.map_err(|e| upstream_error(options, e))?;
        client.wait_started().await.map_err(|e| upstream_error(options, e))?;
        Ok((client, oid))
    }))?;
    source.report.lock().running();
    let ended = read_changes(stream, table, backoff, &mut client);
    client.stop();
    let _ = context.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await });
    ended
}

/// Reads and commits the changes of table `table` (its upstream OID).
fn read_changes(stream: &Stream, table: u32, backoff: &mut Duration, client: &mut ReplicationClient) -> Result<Ended> {
    let Stream { context, db, def, options, start, generation } = *stream;
    let source = &context.source;
    let batch_time = Duration::from_millis(options.batch_ms);
    let new_batch = || PendingBatch::new(def, (0..def.columns.len()).collect());
    let mut batch = new_batch();
    // The end LSN of the batch's last transaction, the deletes it counted, when it began.
    let (mut batch_end, mut batch_deletes, mut since) = (None::<u64>, 0u64, None::<Instant>);
    let mut relation: Option<Relation> = None;
    let mut transaction: Option<Transaction> = None;
    // Applied: committed here, or passed with nothing of ours in between. Upstream: the end
    // of its WAL as its walsender last said.
    let (mut applied, mut upstream_end) = (start, start);
    let mut last_lag = (0, 0);
    while !context.stopped() {
        if db.catalog.generation() != generation {
            // ALTER TABLE: what is not committed is read again, against the new definition.
            return Ok(Ended::Reconnect);
        }
        let wait = match since {
            Some(since) if transaction.is_none() => batch_time.saturating_sub(since.elapsed()),
            _ => IDLE_WAIT,
        };
        // (The timer is made inside the runtime: this thread is not one of its own.)
        let event = match context.runtime.block_on(async { tokio::time::timeout(wait, client.recv()).await }) {
            Err(_) => None,
            Ok(Ok(Some(event))) => Some(event),
            Ok(Ok(None)) => return Err(Error::Unreachable("the upstream PostgreSQL ended replication".into())),
            Ok(Err(e)) => return Err(upstream_error(options, e)),
        };
        match event {
            Some(ReplicationEvent::Begin { final_lsn, commit_time_micros, .. }) => {
                transaction = Some(Transaction {
                    skip: final_lsn.as_u64() < start,
                    commit_micros: commit_time_micros.saturating_add(POSTGRES_EPOCH_MICROS),
                    deletes: 0,
                });
            }
            Some(ReplicationEvent::XLogData { wal_start, wal_end, data, .. }) => {
                upstream_end = upstream_end.max(wal_end.as_u64());
                let change = pgoutput::decode(&data).map_err(Error::internal)?;
                if let Change::Relation { id, schema, name, columns } = change {
                    // Read even in a skipped transaction: it is not sent again.
                    if id == table {
                        tracing::debug!(source = %context.source.def.name, "upstream table {schema}.{name}: {columns:?}");
                        relation = Some(Relation { id, map: column_map(def, &columns), columns });
                    }
                    continue;
                }
                let (Some(table), Some(current)) = (&relation, transaction.as_mut().filter(|t| !t.skip)) else {
                    continue;
                };
                let (new, old) = match change {
                    Change::Insert { relation, new } if relation == table.id => (new, None),
                    Change::Update { relation, old, new } if relation == table.id => (new, old),
                    Change::Delete { relation } if relation == table.id => {
                        current.deletes += 1;
                        continue;
                    }
                    Change::Truncate { relations } if relations.contains(&table.id) => {
                        current.deletes += 1;
                        continue;
                    }
                    _ => continue,
                };
                // An INSERT or UPDATE of the table: the new row is an event.
                let row = table_row(&table.map, &table.columns, &new, old.as_deref());
                let point = Point::Wal(wal_start.as_u64());
                let text = payload(&table.columns, &new);
                batch.push(point, Some(&text), Some(current.commit_micros), row.map(|r| vec![r]));
            }
            Some(ReplicationEvent::Commit { end_lsn, .. }) => {
                if let Some(done) = transaction.take().filter(|t| !t.skip) {
                    batch_end = Some(end_lsn.as_u64());
                    batch_deletes += done.deletes;
                    since.get_or_insert_with(Instant::now);
                }
            }
            Some(ReplicationEvent::KeepAlive { wal_end, .. }) => {
                let wal_end = wal_end.as_u64();
                upstream_end = upstream_end.max(wal_end);
                // Everything before the walsender's position has been sent: with no
                // transaction of ours open or uncommitted, nothing of ours is before it.
                if transaction.is_none() && batch_end.is_none() && wal_end > applied {
                    applied = wal_end;
                    client.update_applied_lsn(Lsn::from_u64(wal_end));
                }
            }
            Some(_) | None => {}
        }
        let due = since.is_some_and(|since| batch.len() >= options.batch_rows || since.elapsed() >= batch_time);
        if let (Some(end), true, None) = (batch_end, due, &transaction) {
            let full = std::mem::replace(&mut batch, new_batch());
            let deletes = std::mem::take(&mut batch_deletes);
            commit_batch(context, db, def, full, |position| {
                position.lsn = Some(end);
                position.deletes_ignored += deletes;
            })?;
            // Only now may the upstream forget what is before `end`.
            client.update_applied_lsn(Lsn::from_u64(end));
            applied = applied.max(end);
            (batch_end, since) = (None, None);
            source.report.lock().running();
            *backoff = Duration::from_millis(100);
        }
        if transaction.is_none() && last_lag != (upstream_end, applied) {
            // Reported between transactions when it changed, not at every change message.
            last_lag = (upstream_end, applied);
            source.report.lock().lag = Some(upstream_end.saturating_sub(applied) as i64);
        }
    }
    Ok(Ended::Stopped)
}
