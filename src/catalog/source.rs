//! Sources (spec section 6): their definitions and positions, persisted with the catalog,
//! their set-aside bad messages, and what each reports while it runs (`asofdb.sources`).
//!
//! A source's position (every partition's next offset, or the upstream LSN) and its counters
//! are one catalog entry, written in the same commit as the rows they account for
//! ([`Catalog::source_write`]), so after a crash the stored rows and the stored position agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::{Error, Result, SqlState};
use crate::storage::{CatalogKind, Commit};

/// How many bad messages of one source are kept (the latest).
pub const KEPT_ERRORS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Kafka,
    Postgres,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Kafka => "kafka",
            SourceKind::Postgres => "postgres",
        }
    }
}

/// A source as created: what it reads, into which table, with its options as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceDef {
    pub name: String,
    pub kind: SourceKind,
    pub table: String,
    pub options: BTreeMap<String, String>,
    /// The role that created it, whose privileges it writes with.
    #[serde(default = "super::role::bootstrap_name")]
    pub owner: String,
}

/// Where a source is and what it has done, committed with the rows it accounts for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Kafka: partition → the next offset to read.
    #[serde(default)]
    pub offsets: BTreeMap<i32, i64>,
    /// PostgreSQL: the last LSN applied.
    #[serde(default)]
    pub lsn: Option<u64>,
    /// PostgreSQL: the initial snapshot has been copied whole.
    #[serde(default)]
    pub snapshot_done: bool,
    pub rows_ingested: u64,
    pub bad_messages: u64,
    pub deletes_ignored: u64,
}

impl SourcePosition {
    /// As `asofdb.sources.position` shows it.
    pub fn text(&self, kind: SourceKind) -> String {
        match kind {
            SourceKind::Kafka => {
                let parts: Vec<String> = self.offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                parts.join(",")
            }
            SourceKind::Postgres => self.lsn.map(lsn_text).unwrap_or_default(),
        }
    }
}

/// An LSN as PostgreSQL writes it: `16/B374D848`.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// A message that could not become a row (`asofdb.source_errors`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceError {
    /// When it was read, µs since the epoch.
    pub at: i64,
    /// `partition 2 offset 1041`, or an LSN.
    pub position: String,
    pub payload: String,
    pub reason: String,
}

/// What a source is doing, as `asofdb.sources.state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// A PostgreSQL source takes its starting point: it makes its slot and, with
    /// `snapshot = true`, copies its table's existing rows (one consistent snapshot).
    Snapshot,
    /// Connecting, or reading.
    Running,
    /// An outage or error; the runner tries again with backoff (`last_error` says why).
    Retrying,
    /// The runner stopped for good (a panic); DROP SOURCE and create it again.
    Failed,
}

impl SourceState {
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Snapshot => "snapshot",
            SourceState::Running => "running",
            SourceState::Retrying => "retrying",
            SourceState::Failed => "failed",
        }
    }
}

/// What a running source reports (`asofdb.sources`); the runner updates it.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub state: SourceState,
    pub position: SourcePosition,
    /// Messages (Kafka) or bytes of WAL (PostgreSQL) behind the upstream, when known.
    pub lag: Option<i64>,
    pub last_error: Option<String>,
    /// µs since the epoch of its last commit.
    pub last_commit_at: Option<i64>,
}

impl SourceReport {
    /// An outage or error: the runner retries; `last_error` says why.
    pub fn retrying(&mut self, error: String) {
        self.state = SourceState::Retrying;
        self.last_error = Some(error);
    }

    /// Reading again (`last_error` stays, as the latest error seen).
    pub fn running(&mut self) {
        self.state = SourceState::Running;
    }

    /// Stopped for good.
    pub fn failed(&mut self, error: String) {
        self.state = SourceState::Failed;
        self.last_error = Some(error);
    }
}

/// A source of the catalog: its definition and its report.
#[derive(Debug)]
pub struct Source {
    pub def: SourceDef,
    pub report: Mutex<SourceReport>,
}

impl Source {
    fn new(def: SourceDef, position: SourcePosition) -> Self {
        // A PostgreSQL source without an LSN has no slot yet: until its slot exists, upstream
        // writes are not captured, so it must not look like it is streaming.
        let state = match def.kind {
            SourceKind::Postgres if position.lsn.is_none() => SourceState::Snapshot,
            _ => SourceState::Running,
        };
        let report = SourceReport { state, position, lag: None, last_error: None, last_commit_at: None };
        Source { def, report: Mutex::new(report) }
    }
}

/// What a source's batch writes besides its rows: its new position, its bad messages (with
/// the oldest beyond [`KEPT_ERRORS`] removed), for [`Catalog::source_write`].
pub struct SourceEntries {
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub deletes: Vec<Vec<u8>>,
}

impl Catalog {
    /// Every source, in name order.
    pub fn sources(&self) -> Vec<Arc<Source>> {
        self.sources.read().values().cloned().collect()
    }

    pub fn source(&self, name: &str) -> Option<Arc<Source>> {
        self.sources.read().get(name).cloned()
    }

    /// The sources writing into `table`.
    pub fn sources_into(&self, table: &str) -> Vec<String> {
        self.sources.read().values().filter(|s| s.def.table == table).map(|s| s.def.name.clone()).collect()
    }

    /// Persists a new source with its first `position` (42710 if the name is taken; `None` if
    /// it was and `if_not_exists`).
    pub async fn create_source(
        &self,
        def: SourceDef,
        position: SourcePosition,
        if_not_exists: bool,
    ) -> Result<Option<Arc<Source>>> {
        let _ddl = self.ddl.lock().await;
        if self.source(&def.name).is_some() {
            if if_not_exists {
                return Ok(None);
            }
            return Err(Error::Conflict {
                sqlstate: SqlState::DuplicateObject,
                message: format!("source \"{}\" already exists", def.name),
            });
        }
        if self.table(&def.table).is_none() {
            return Err(Error::undefined_table(&def.table));
        }
        let puts = vec![
            (CatalogKind::Source.key(&def.name), serde_json::to_vec(&def)?),
            (CatalogKind::SourcePosition.key(&def.name), serde_json::to_vec(&position)?),
        ];
        self.store.commit(Commit { catalog_puts: puts, ..Default::default() }).await?;
        let source = Arc::new(Source::new(def.clone(), position));
        self.sources.write().insert(def.name, source.clone());
        Ok(Some(source))
    }

    /// Removes a source's definition, position and bad messages (its runner has stopped).
    pub async fn drop_source(&self, name: &str) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut deletes = vec![CatalogKind::Source.key(name), CatalogKind::SourcePosition.key(name)];
        for pair in self.store.scan_prefix(&CatalogKind::SourceError.numbered_prefix(name)) {
            deletes.push(pair?.0.to_vec());
        }
        self.store.commit(Commit { catalog_deletes: deletes, ..Default::default() }).await?;
        self.sources.write().remove(name);
        Ok(())
    }

    /// The position of source `name` as stored: what a runner starts from. (The report's
    /// may be behind it: a commit can fail after its write, when its flush or the features'
    /// update fails.)
    pub fn stored_source_position(&self, name: &str) -> Result<SourcePosition> {
        read_position(&self.store, name)
    }

    /// The catalog entries of a source's batch: `position`, and `errors` numbered on from
    /// the `first_error`-th bad message the source ever had.
    pub fn source_write(
        &self,
        name: &str,
        position: &SourcePosition,
        first_error: u64,
        errors: &[SourceError],
    ) -> Result<SourceEntries> {
        let mut puts = vec![(CatalogKind::SourcePosition.key(name), serde_json::to_vec(position)?)];
        let mut deletes = Vec::new();
        for (number, error) in (first_error..).zip(errors) {
            puts.push((CatalogKind::SourceError.numbered_key(name, number), serde_json::to_vec(error)?));
            if let Some(old) = number.checked_sub(KEPT_ERRORS) {
                deletes.push(CatalogKind::SourceError.numbered_key(name, old));
            }
        }
        Ok(SourceEntries { puts, deletes })
    }

    /// Every kept bad message of every source: (source, error), by source then age.
    pub fn source_errors(&self) -> Result<Vec<(String, SourceError)>> {
        let mut all = Vec::new();
        for source in self.sources() {
            let prefix = CatalogKind::SourceError.numbered_prefix(&source.def.name);
            for pair in self.store.scan_prefix(&prefix) {
                all.push((source.def.name.clone(), serde_json::from_slice(&pair?.1)?));
            }
        }
        Ok(all)
    }

    /// Loads every source's definition and position (at open).
    pub(super) fn load_sources(store: &crate::storage::EventStore) -> Result<BTreeMap<String, Arc<Source>>> {
        let mut sources = BTreeMap::new();
        for entry in store.catalog_entries(CatalogKind::Source)? {
            let def: SourceDef = serde_json::from_slice(&entry)?;
            let position = read_position(store, &def.name)?;
            sources.insert(def.name.clone(), Arc::new(Source::new(def, position)));
        }
        Ok(sources)
    }
}

/// Source `name`'s stored position (the default before its first).
fn read_position(store: &crate::storage::EventStore, name: &str) -> Result<SourcePosition> {
    match store.get(&CatalogKind::SourcePosition.key(name))? {
        Some(stored) => Ok(serde_json::from_slice(&stored)?),
        None => Ok(SourcePosition::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_as_written() {
        let mut position = SourcePosition { rows_ingested: 7, ..Default::default() };
        position.offsets.insert(0, 12);
        position.offsets.insert(2, 5);
        assert_eq!(position.text(SourceKind::Kafka), "0:12,2:5");
        let json = serde_json::to_vec(&position).unwrap();
        assert_eq!(serde_json::from_slice::<SourcePosition>(&json).unwrap(), position);
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
    }
}
