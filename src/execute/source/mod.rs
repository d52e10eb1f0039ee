//! Sources (spec section 6): CREATE SOURCE, DROP SOURCE, and the threads that keep each
//! source's table fed, one per source (a Kafka source's with a commit thread beside it),
//! committing through [`Database::commit`] like any INSERT, with the source's position in
//! the same atomic write.
//!
//! Exactly once: a batch's rows, its bad messages and the position after its last message
//! are one commit. A runner that restarts (after an outage, an error, a crash) seeks to the
//! stored position, so a message is stored once whatever was read and not committed before.

mod batch;
mod committer;
mod kafka;
mod options;
mod payload;
mod pgoutput;
mod postgres;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::database::{Database, Write};
use crate::catalog::{Source, SourceDef, SourceKind, SourcePosition, TableDef};
use crate::error::{Error, Result, SqlState};
use crate::sql::feature::CreateSource;
use crate::storage::Append;
use batch::PendingBatch;

pub use options::{KafkaOptions, PostgresOptions};

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
                SourceKind::Kafka => run(context, kafka::session),
                SourceKind::Postgres => run(context, postgres::session),
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

/// How a session ended without an error.
pub(super) enum Ended {
    /// The source was dropped or the server stops.
    Stopped,
    /// The table changed (ALTER TABLE), the topic has new partitions, a snapshot is stored:
    /// connect again.
    Reconnect,
}

/// One connection of a source's runner, from the stored position; its error ends it.
type Session = fn(&RunContext, &Arc<Database>, &mut Duration) -> Result<Ended>;

/// A runner: sessions from the stored position, with backoff between failed ones, until the
/// source is dropped or the server stops. A panic fails the source for good.
fn run(context: RunContext, session: Session) {
    let mut backoff = Duration::from_millis(100);
    while !context.stopped() {
        let Some(db) = context.db.upgrade() else { return };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session(&context, &db, &mut backoff)));
        drop(db);
        match outcome {
            Ok(Ok(Ended::Stopped)) => return,
            Ok(Ok(Ended::Reconnect)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(source = %context.source.def.name, "source failed, retrying in {backoff:?}: {e}");
                context.source.report.lock().retrying(e.to_string());
                if context.sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(panic) => {
                let error = Error::panicked("the source", panic.as_ref());
                tracing::error!(source = %context.source.def.name, "{error}");
                context.source.report.lock().failed(error.to_string());
                return;
            }
        }
    }
}

/// Commits `batch`, if the source's owner may still write its table, with the source's
/// position after it (`advance` moves the stored one: each
/// partition's next offset, or the LSN), the counters, the bad messages; then reports it.
pub(super) fn commit_batch(
    context: &RunContext,
    db: &Arc<Database>,
    def: &TableDef,
    batch: PendingBatch,
    advance: impl FnOnce(&mut SourcePosition),
) -> Result<()> {
    let source = &context.source;
    // A source writes with its owner's privileges, checked at every batch: once its INSERT
    // is revoked, the source retries (nothing is committed, its position stays) until it is
    // granted again.
    let table = crate::catalog::Securable::Table(def.name.clone());
    db.require(&source.def.owner, &table, crate::catalog::Privilege::Insert)?;
    // Rows read before an ALTER TABLE ADD COLUMN are checked as they will be stored.
    let check = |rows: &arrow::array::RecordBatch| {
        let rows = db.catalog.store().widen(def.id, rows.clone())?;
        db.features.check(def.id, &rows)
    };
    let finished = batch.finish(def, &check)?;
    let mut position = source.report.lock().position.clone();
    let first_error = position.bad_messages;
    advance(&mut position);
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
pub async fn create_source(db: &Arc<Database>, create: &CreateSource, owner: &str) -> Result<()> {
    use crate::catalog::{Privilege, Securable};
    db.require(owner, &Securable::Schema, Privilege::Create)?;
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
    if db.catalog.source(&create.name).is_some() {
        if create.if_not_exists {
            return Ok(());
        }
        return Err(Error::Conflict {
            sqlstate: SqlState::DuplicateObject,
            message: format!("source \"{}\" already exists", create.name),
        });
    }
    let table = db.catalog.require_table(&create.table)?;
    // A source writes with its owner's privileges.
    db.require(owner, &Securable::Table(table.name.clone()), Privilege::Insert)?;
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
            let postgres = PostgresOptions::parse(&create.name, &options)?;
            postgres::prepare_upstream(&postgres).await?;
            SourcePosition::default()
        }
    };
    let def = SourceDef { name: create.name.clone(), kind, table: table.name.clone(), options, owner: owner.into() };
    if let Some(source) = db.catalog.create_source(def, position, create.if_not_exists).await? {
        db.sources.start(db, source)?;
    }
    Ok(())
}

/// DROP SOURCE: stops it (also mid-batch: what it has not committed is not written) and
/// removes it with its position and bad messages.
/// `role` drops it: its owner or a superuser.
pub async fn drop_source(db: &Database, name: &str, if_exists: bool, role: &str) -> Result<()> {
    let _ddl = db.sources.ddl.lock().await;
    if let Some(source) = db.catalog.source(name)
        && source.def.owner != role
        && !db.is_superuser(role)
    {
        return Err(Error::PermissionDenied(format!("must be owner of source {name}")));
    }
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
    let source = db.catalog.source(name);
    db.catalog.drop_source(name).await?;
    if let Some(source) = source.filter(|s| s.def.kind == SourceKind::Postgres) {
        // The slot would keep the upstream's WAL forever: it goes with the source. An
        // upstream that cannot be reached keeps it, and the log says so.
        match PostgresOptions::parse(name, &source.def.options) {
            Ok(options) => {
                if let Err(e) = postgres::release_upstream(name, &options).await {
                    tracing::warn!(source = name, slot = %options.slot, "could not drop the upstream replication slot or publication: {e}");
                }
            }
            Err(e) => tracing::warn!(source = name, "{e}"),
        }
    }
    Ok(())
}
