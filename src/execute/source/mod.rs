//! Sources (spec section 6): CREATE SOURCE, DROP SOURCE, and the threads that keep each
//! source's table fed, one per source, committing through [`Database::commit`] like any
//! INSERT, with the source's position in the same atomic write.
//!
//! Exactly once: a batch's rows, its bad messages and the position after its last message
//! are one commit. A runner that restarts (after an outage, an error, a crash) seeks to the
//! stored position, so a message is stored once whatever was read and not committed before.

mod batch;
mod kafka;
mod options;
mod payload;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::database::{Database, Write};
use crate::catalog::{Source, SourceDef, SourceKind, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::sql::feature::CreateSource;
use crate::storage::Append;
use batch::PendingBatch;

pub use options::KafkaOptions;

/// The running sources of a database: each one's thread and the flag that stops it.
#[derive(Default)]
pub struct SourceRunners {
    running: Mutex<HashMap<String, Runner>>,
    /// Held by CREATE SOURCE, DROP SOURCE and DROP TABLE from their checks until the source
    /// runs or is gone, so none of them acts on what another is changing. Taken before the
    /// commit gate, never while holding it (a runner may be waiting for the gate).
    pub(super) ddl: tokio::sync::Mutex<()>,
}

struct Runner {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// What a runner thread is given.
pub(super) struct RunContext {
    /// Weak between sessions, so a database dropped without `stop_sources` (a test's
    /// in-process server) ends its runners at their next session; a session holds it strong.
    pub db: Weak<Database>,
    pub source: Arc<Source>,
    pub stop: Arc<AtomicBool>,
    /// The runtime the database's commits run on.
    pub runtime: tokio::runtime::Handle,
}

impl RunContext {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `pause` unless stopped first; true if stopped.
    pub fn sleep(&self, pause: Duration) -> bool {
        let until = std::time::Instant::now() + pause;
        while std::time::Instant::now() < until {
            if self.stopped() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20).min(until - std::time::Instant::now()));
        }
        self.stopped()
    }
}

impl SourceRunners {
    /// Starts `source`'s runner on a thread of its own.
    fn start(&self, db: &Arc<Database>, source: Arc<Source>) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::internal("sources run only inside the server's runtime"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let name = source.def.name.clone();
        let context = RunContext { db: Arc::downgrade(db), source: source.clone(), stop: stop.clone(), runtime };
        let thread = std::thread::Builder::new().name(format!("source-{name}")).spawn(move || {
            match context.source.def.kind {
                SourceKind::Kafka => kafka::run(context),
                SourceKind::Postgres => {
                    context.source.report.lock().failed("PostgreSQL sources are not supported yet".into());
                }
            }
        })?;
        self.running.lock().insert(name, Runner { stop, thread });
        Ok(())
    }

    /// Stops the runner of source `name` and waits until it has ended (a commit it has begun
    /// finishes first). Must not be called holding the commit gate: the runner may wait for it.
    async fn stop(&self, name: &str) {
        let Some(runner) = self.running.lock().remove(name) else { return };
        runner.stop.store(true, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(move || runner.thread.join()).await;
    }
}

/// Commits `batch` with the source's position after it: `offsets` (each partition's next
/// offset) over the stored ones, the counters, the bad messages; then reports the position.
pub(super) fn commit_batch(
    context: &RunContext,
    db: &Arc<Database>,
    def: &TableDef,
    batch: PendingBatch,
    offsets: BTreeMap<i32, i64>,
) -> Result<()> {
    let source = &context.source;
    // Rows read before an ALTER TABLE ADD COLUMN are checked as they will be stored.
    let check = |rows: &arrow::array::RecordBatch| {
        let rows = db.catalog.store().widen(def.id, rows.clone())?;
        db.features.check(def.id, &rows)
    };
    let finished = batch.finish(def, &check)?;
    let mut position = source.report.lock().position.clone();
    let first_error = position.bad_messages;
    position.offsets.extend(offsets);
    position.rows_ingested += finished.rows.as_ref().map_or(0, |b| b.num_rows()) as u64;
    position.bad_messages += finished.errors.len() as u64;
    let entries = db.catalog.source_write(&source.def.name, &position, first_error, &finished.errors)?;
    let appends =
        finished.rows.into_iter().map(|batch| Append { table_id: def.id, event_time: def.event_time, batch }).collect();
    context.runtime.block_on(db.commit(Write::Source { appends, entries }))?;
    let mut report = source.report.lock();
    report.position = position;
    report.last_commit_at = Some(chrono::Utc::now().timestamp_micros());
    Ok(())
}

/// Starts the runner of every stored source (at server start).
pub fn resume_sources(db: &Arc<Database>) -> Result<()> {
    for source in db.catalog.sources() {
        tracing::info!(source = %source.def.name, position = %source.report.lock().position.text(source.def.kind), "source resumes");
        db.sources.start(db, source)?;
    }
    Ok(())
}

/// Stops every source's runner (at shutdown), each after the commit it is making.
pub async fn stop_sources(db: &Database) {
    let names: Vec<String> = db.sources.running.lock().keys().cloned().collect();
    for name in names {
        db.sources.stop(&name).await;
    }
}

/// CREATE SOURCE: the options are checked, the upstream is reached (08001 and nothing
/// created if it cannot be), then the source is stored with its first position and starts.
pub async fn create_source(db: &Arc<Database>, create: &CreateSource) -> Result<()> {
    let kind = match create.kind.as_str() {
        "kafka" => SourceKind::Kafka,
        "postgres" => SourceKind::Postgres,
        other => {
            return Err(Error::invalid_input(
                SqlState::InvalidParameterValue,
                format!("unknown source kind \"{other}\" (asofdb reads KAFKA and POSTGRES)"),
            ));
        }
    };
    let _ddl = db.sources.ddl.lock().await;
    if db.catalog.source(&create.name).is_some() && create.if_not_exists {
        return Ok(());
    }
    let table = db.catalog.require_table(&create.table)?;
    if table.event_time.is_none() {
        return Err(Error::no_event_time(&table.name));
    }
    if table.temporary {
        return Err(Error::invalid_input(
            SqlState::WrongObjectType,
            format!("\"{}\" is a temporary table: a source feeds a table that outlives the session", table.name),
        ));
    }
    let options: BTreeMap<String, String> = create.options.iter().cloned().collect();
    let position = match kind {
        SourceKind::Kafka => {
            let kafka = KafkaOptions::parse(&options, &table)?;
            tokio::task::spawn_blocking(move || kafka::first_position(&kafka))
                .await
                .map_err(|e| Error::internal(format!("source check: {e}")))??
        }
        SourceKind::Postgres => {
            return Err(Error::Unsupported("CREATE SOURCE ... FROM POSTGRES is not supported yet".into()));
        }
    };
    let def = SourceDef { name: create.name.clone(), kind, table: table.name.clone(), options };
    if let Some(source) = db.catalog.create_source(def, position, create.if_not_exists).await? {
        db.sources.start(db, source)?;
    }
    Ok(())
}

/// DROP SOURCE: stops it (also mid-batch: what it has not committed is not written) and
/// removes it with its position and bad messages.
pub async fn drop_source(db: &Database, name: &str, if_exists: bool) -> Result<()> {
    let _ddl = db.sources.ddl.lock().await;
    drop_source_locked(db, name, if_exists).await
}

/// [`drop_source`], the caller holding `SourceRunners::ddl`.
pub(super) async fn drop_source_locked(db: &Database, name: &str, if_exists: bool) -> Result<()> {
    if db.catalog.source(name).is_none() {
        if if_exists {
            return Ok(());
        }
        return Err(Error::NotFound {
            sqlstate: SqlState::UndefinedObject,
            message: format!("source \"{name}\" does not exist"),
        });
    }
    db.sources.stop(name).await;
    db.catalog.drop_source(name).await
}
