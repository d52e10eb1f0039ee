//! The database: storage, catalog and query engine, shared by every connection.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::catalog::TableProvider;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::ViewTable;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::Analyzer;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use sqlparser::ast::Statement as SqlStatement;

use crate::catalog::{Catalog, SourceEntries};
use crate::error::{Error, Result};
use crate::feature::{FeatureEngine, LiveFeature, stored_definitions};
use crate::plan::asof;
use crate::plan::{
    CATALOG_NAME, OpenCursors, PendingRows, SCHEMA_NAME, TemporaryViews, new_session_context, with_pending,
};
use crate::sql::SqlParser;
use crate::storage::cold::ColdStore;
use crate::storage::hot::SledKv;
use crate::storage::{Append, Commit, DiskReserve, EventStore, KvStore, MemoryKv, StagedWrite};
use crate::value::time_zone::SessionZone;

/// Resource limits of a database.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes queries may hold in DataFusion's memory pool (default: half the machine's memory).
    pub query_memory: Option<usize>,
    /// Where the cold tier lives (`ColdStore::open`); default `<data-dir>/cold`.
    pub cold_url: Option<String>,
    /// COPY FROM data decoded and staged at a time (default 16 MiB): a COPY holds about this
    /// much in memory however large it is.
    pub copy_chunk_bytes: Option<usize>,
    /// The hot tier's page cache (`SledKv::open`; default 256 MiB).
    pub hot_cache_bytes: Option<u64>,
    /// New rows are refused (53100) while the data directory's disk has less free space
    /// than this (`storage::DiskReserve`; default 64 MiB, 0 turns the check off).
    pub disk_reserve_bytes: Option<u64>,
}

/// Half of the machine's memory (from /proc/meminfo), or 4 GiB if it cannot be read.
fn default_query_memory() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok()
    });
    total_kib.map_or(4 << 30, |kib| kib * 1024 / 2)
}

/// What a session's statement sees besides the stored data.
pub struct SessionReads<'a> {
    /// The session's time zone, which is also `current_date`'s.
    pub zone: &'a SessionZone,
    /// The rows its transaction wrote and has not committed (`plan::pending`).
    pub pending: PendingRows,
    /// Its open cursors (`pg_cursors`).
    pub cursors: Arc<OpenCursors>,
    /// What `now()` and `current_timestamp` return: the start of its transaction block, or of
    /// the statement outside one (PostgreSQL's `transaction_timestamp()`).
    pub now: DateTime<Utc>,
    /// Its role: what `current_user` and `session_user` return.
    pub role: &'a str,
}

/// What one commit writes.
pub enum Write {
    /// Rows held in memory (INSERT, a small COPY, a transaction's rows).
    Rows(Vec<Append>),
    /// A large COPY's rows, written to staging chunk by chunk as they arrived.
    Staged { staged: StagedWrite },
    /// A source's batch: its rows with its new position and bad messages (`execute::source`),
    /// stored together or not at all.
    Source { appends: Vec<Append>, entries: SourceEntries },
}

/// Everything a session needs that outlives it.
pub struct Database {
    pub(super) catalog: Arc<Catalog>,
    /// The live features, updated by every commit ([`Database::commit`]).
    pub(super) features: Arc<FeatureEngine>,
    /// The sessions' temporary views (`execute::views`).
    pub(super) views: Arc<TemporaryViews>,
    pub(super) ctx: SessionContext,
    /// `ctx`'s analyzer rules, applied by [`Database::analyze`].
    analyzer: Analyzer,
    /// `ctx`'s state without analyzer rules: what runs plans [`Database::analyze`] made.
    pub(super) run_state: SessionState,
    pub(super) parser: SqlParser,
    /// Commits hold it shared while they write and update features; CREATE FEATURE holds it
    /// exclusively while it backfills, so no commit falls between backfill and registration
    /// (CREATE OR REPLACE only while it takes the last writes and switches).
    pub(super) commit_gate: tokio::sync::RwLock<()>,
    /// Held by a tiering pass ([`Database::tier`]) from choosing which rows move until they
    /// moved, and by CREATE OR REPLACE FEATURE while it marks which rows it reads hot.
    pub(super) tiering: tokio::sync::Mutex<()>,
    /// Held by a backup exclusively and by whatever drops a table shared: a drop deletes rows
    /// a backup may still have to copy (`execute::backup`).
    pub(super) backups: tokio::sync::RwLock<()>,
    /// See [`Limits::copy_chunk_bytes`].
    pub(super) copy_chunk_bytes: usize,
    /// Rows stored in tables that features read, when features last snapshotted: rows written
    /// since then cannot move to the cold tier yet (see `tiering`).
    rows_at_snapshot: std::sync::atomic::AtomicU64,
    /// The running sources (`execute::source`).
    pub(super) sources: super::source::SourceRunners,
    /// Where the database lives on disk (`None` in memory): no backup may go into its hot tier.
    pub(super) data_dir: Option<std::path::PathBuf>,
    /// Each role's open sessions (`execute::roles`).
    pub(super) role_connections: super::logins::RoleConnections,
}

impl Database {
    /// Opens (creating if needed) the database in `data_dir`, with default limits.
    pub fn open(data_dir: &Path) -> Result<Arc<Self>> {
        Self::open_with(data_dir, Limits::default())
    }

    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open_with(data_dir: &Path, limits: Limits) -> Result<Arc<Self>> {
        std::fs::create_dir_all(data_dir)?;
        let cold = Arc::new(match &limits.cold_url {
            Some(url) => ColdStore::open(url)?,
            None => ColdStore::local(data_dir.join("cold"))?,
        });
        let kv = Arc::new(SledKv::open(&data_dir.join("hot"), limits.hot_cache_bytes)?);
        let reserve = DiskReserve::new(data_dir.to_path_buf(), limits.disk_reserve_bytes.unwrap_or(64 << 20));
        Self::with_store(kv, Some(cold), reserve, limits, Some(data_dir.to_path_buf()))
    }

    /// A database that lives in memory only, for tests.
    pub fn in_memory() -> Result<Arc<Self>> {
        Self::with_store(Arc::new(MemoryKv::new()), None, DiskReserve::none(), Limits::default(), None)
    }

    /// Plans a read-only statement (query, EXPLAIN) without running it. ASOF joins are
    /// marked first, planned against placeholders of the statement's own, and lowered to
    /// their own plan node after (`plan::asof::mark`).
    pub async fn plan_query(&self, sql: &SqlStatement) -> Result<LogicalPlan> {
        if !asof::has_asof(sql) {
            return self.plan_statement(sql).await;
        }
        let mut sql = sql.clone();
        let mut placeholders = asof::Placeholders::default();
        for (name, right) in asof::mark(&mut sql)? {
            let (provider, target) = self.asof_right_side(right).await?;
            placeholders.add(name, provider, target)?;
        }
        // A copy of the context's state with the catalog list swapped, not a state rebuilt
        // from it: rebuilding registers the functions again, and DataFusion's `to_char`
        // (alias of its `date_format`) could then replace ours.
        let mut state = self.ctx.state();
        state.register_catalog_list(placeholders.catalogs_with(&state));
        let plan = Self::plan_in(&state, &sql).await?;
        asof::lower(plan, &placeholders.specs)
    }

    /// What the right side of an ASOF join reads: a stored table or feature, or a query
    /// (planned on its own, read as a view).
    async fn asof_right_side(&self, right: asof::RightSide) -> Result<(Arc<dyn TableProvider>, asof::AsofTarget)> {
        match right {
            asof::RightSide::Stored(name) => {
                let public = self.ctx.catalog(CATALOG_NAME).and_then(|c| c.schema(SCHEMA_NAME));
                let public = public.ok_or_else(|| Error::internal("public schema missing"))?;
                let provider = public.table(&name).await?.ok_or_else(|| Error::undefined_table(&name))?;
                let target = match self.features.get(&name) {
                    Some(feature) => asof::AsofTarget::Feature(feature),
                    None => asof::AsofTarget::Table,
                };
                Ok((provider, target))
            }
            asof::RightSide::Query(query) => {
                let plan = Box::pin(self.plan_query(&SqlStatement::Query(query))).await?;
                Ok((Arc::new(ViewTable::new(plan, None)), asof::AsofTarget::Table))
            }
        }
    }

    /// The role a connection logging in as `user` acts as, or why it may not log in now
    /// (`execute::logins`). `trusted`: no password is asked (no `--password`).
    pub fn admit(&self, user: &str, trusted: bool) -> Result<super::Login> {
        self.role_connections.admit(&self.catalog, user, trusted)
    }

    /// The stored role `name` (not the bootstrap superuser, which is not stored).
    pub fn role(&self, name: &str) -> Option<Arc<crate::catalog::RoleDef>> {
        self.catalog.role(name)
    }

    /// Ok while the database accepts queries and writes; otherwise why not (`GET /healthz`,
    /// which answers without a password, so the reason names no path): the data
    /// directory's disk is down to its reserve.
    pub fn health(&self) -> std::result::Result<(), &'static str> {
        match self.catalog.store().disk_reserve().check(0) {
            Ok(()) => Ok(()),
            Err(_) => Err("disk reserve reached: writes of new rows are refused until disk space is freed"),
        }
    }

    /// The database's metrics (`crate::metrics`), recorded by every stage.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.catalog.store().metrics
    }

    /// The statements of `text`, in order (`sql::SqlParser`).
    pub fn parse(&self, text: &str) -> Result<Vec<crate::sql::Statement>> {
        self.parser.parse_many(text)
    }

    /// The values of feature `name` for `key` (or every key) at its table's watermark, as
    /// `SELECT * FROM name [WHERE keys = ...]` returns them, without planning.
    pub fn read_feature(
        &self,
        name: &str,
        key: Option<&[datafusion::scalar::ScalarValue]>,
    ) -> Result<arrow::array::RecordBatch> {
        let feature = self.features.get(name).ok_or_else(|| Error::undefined_table(name))?;
        feature.read(self.catalog.store(), key)
    }

    /// Whether a table, feature or view has this name (they share one namespace).
    pub fn relation_exists(&self, name: &str) -> bool {
        self.catalog.table(name).is_some() || self.features.get(name).is_some() || self.views.get(name).is_some()
    }

    /// Changes whenever a table or feature is created, dropped or altered (after the change
    /// is visible): a plan made at an earlier generation may name objects that are gone, so
    /// prepared statements plan again (`execute::PreparedStatement`). Every new DDL (ALTER
    /// TABLE, CREATE OR REPLACE FEATURE, sources) must bump its part once its change is visible.
    pub fn generation(&self) -> u64 {
        self.catalog.generation() + self.features.generation() + self.views.generation()
    }

    /// The one way rows become part of the database, for every writer (INSERT, COPY, COMMIT
    /// of a transaction): under the commit gate (so no CREATE FEATURE backfill falls between),
    /// the rows are made durable and then applied to every feature of their tables, all
    /// before the caller acknowledges the statement (read-your-writes through features).
    /// The rows were checked against the features' expressions before (`FeatureEngine::check`).
    pub async fn commit(&self, write: Write) -> Result<()> {
        let _gate = self.commit_gate.read().await;
        let store = self.catalog.store();
        let rows = |appends: Vec<Append>, entries: SourceEntries| async move {
            let mut appends = appends;
            // A transaction's rows may predate an ADD COLUMN (which waits for no open
            // transaction): they take its default now, or fail if it has none and is NOT NULL.
            for append in &mut appends {
                append.batch = store.widen(append.table_id, append.batch.clone())?;
            }
            let commit =
                Commit { appends, catalog_puts: entries.puts, catalog_deletes: entries.deletes, ..Default::default() };
            let parts = store.commit(commit).await?;
            parts.iter().for_each(|part| store.metrics.ingested(part.table_id, part.batch.num_rows() as u64));
            self.features.on_commit(&parts)
        };
        match write {
            Write::Rows(appends) => rows(appends, SourceEntries { puts: vec![], deletes: vec![] }).await,
            Write::Source { appends, entries } => rows(appends, entries).await,
            Write::Staged { staged } => {
                let pieces = staged.commit().await?;
                // The rows are durable; features take them piece by piece (a COPY may not fit
                // in memory at once).
                for chunk in pieces.locations.chunks(64) {
                    let mut parts = pieces.read(chunk)?;
                    for part in &mut parts {
                        part.batch = store.widen(part.table_id, part.batch.clone())?;
                        store.metrics.ingested(part.table_id, part.batch.num_rows() as u64);
                    }
                    self.features.on_commit(&parts)?;
                }
                Ok(())
            }
        }
    }

    /// Persists a snapshot of every feature whose state changed since its last one (all of
    /// them if `force`), so a restart loads them instead of replaying. Commits wait meanwhile.
    /// Returns the number of snapshots written.
    pub async fn checkpoint(&self, force: bool) -> Result<usize> {
        let started = std::time::Instant::now();
        let written = self.checkpoint_features(force).await;
        self.metrics().checkpoint_seconds.observe(started.elapsed().as_secs_f64());
        written
    }

    async fn checkpoint_features(&self, force: bool) -> Result<usize> {
        let _no_commits = self.commit_gate.write().await;
        let store = self.catalog.store();
        let mut written = 0;
        for feature in self.features.all() {
            if force || feature.changed_since_snapshot() {
                store.disk_reserve().check_for_maintenance(0)?;
                feature.write_snapshot(store).await?;
                written += 1;
            }
        }
        self.rows_at_snapshot.store(self.rows_read_by_features(), std::sync::atomic::Ordering::SeqCst);
        Ok(written)
    }

    /// Rows erased from tables features read (`execute::erase`): the rows counted at the last
    /// snapshot go down with them, so those still awaiting one are counted right.
    pub(super) fn rows_erased(&self, rows: u64) {
        let _ = self.rows_at_snapshot.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |at| Some(at.saturating_sub(rows)),
        );
    }

    /// Rows stored in the tables features read.
    fn rows_read_by_features(&self) -> u64 {
        let mut tables: Vec<u64> = self.features.all().iter().map(|f| f.compiled().table.id).collect();
        tables.sort_unstable();
        tables.dedup();
        tables.iter().map(|id| self.catalog.store().stats(*id).rows).sum()
    }

    /// Rows written to feature tables since the last feature snapshot: they stay in the hot
    /// tier until the next one.
    pub fn rows_awaiting_snapshot(&self) -> u64 {
        self.rows_read_by_features().saturating_sub(self.rows_at_snapshot.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// `plan` after the analyzer rules (type coercion and asofdb's PostgreSQL rules): with
    /// the column types its rows will have, which clients are told before they arrive.
    /// `zone` is the session's time zone (`plan::session_time_zone`); it changes no type.
    pub fn analyze(&self, plan: LogicalPlan, zone: &SessionZone) -> Result<LogicalPlan> {
        if zone.is_utc() {
            return Ok(self.analyzer.execute_and_check(plan, self.run_state.config_options(), |_, _| {})?);
        }
        let mut config = self.run_state.config_options().as_ref().clone();
        config.execution.time_zone = Some(zone.arrow_name.clone());
        Ok(self.analyzer.execute_and_check(plan, &config, |_, _| {})?)
    }

    /// The columns `plan`'s rows will have: those of the analyzed plan, or, while parameter
    /// types are not yet known and it cannot be analyzed, the planner's.
    pub fn output_schema(&self, plan: &LogicalPlan) -> arrow::datatypes::SchemaRef {
        let analyzed = self.analyze(plan.clone(), &SessionZone::default()).map(|p| p.schema().as_arrow().clone());
        Arc::new(analyzed.unwrap_or_else(|_| plan.schema().as_arrow().clone()))
    }

    /// Runs `plan` (not yet analyzed): analyzes it, so that the result's schema is the rows',
    /// then optimizes and executes it.
    /// As the session `reads` (its time zone, its pending rows, its cursors) sees the data.
    pub fn run(&self, plan: LogicalPlan, reads: &SessionReads) -> Result<DataFrame> {
        let zone = reads.zone;
        let plan = with_pending(plan, &reads.pending)?;
        let plan = if crate::plan::calls_role_functions(&plan) {
            let plan = crate::plan::with_session_user(plan, reads.role)?;
            super::privileges::answer_privilege_functions(self, plan, reads.role)?
        } else {
            plan
        };
        let analyzed = self.analyze(plan, zone)?;
        // After analysis, which puts views' plans in place: what they read is checked too.
        self.require_reads(reads.role, &analyzed)?;
        let mut state = self.run_state.clone();
        // Without this, now() would be the instant this cached state was made (server start).
        state.mark_start_execution();
        state.execution_props_mut().query_execution_start_time = Some(reads.now);
        state.config_mut().set_extension(reads.cursors.clone());
        if !zone.is_utc() {
            state.config_mut().options_mut().execution.time_zone = Some(zone.arrow_name.clone());
        }
        Ok(DataFrame::new(state, analyzed))
    }

    async fn plan_statement(&self, sql: &SqlStatement) -> Result<LogicalPlan> {
        Self::plan_in(&self.ctx.state(), sql).await
    }

    /// Plans a read-only statement with `state`'s catalogs; DDL and DML are refused, so
    /// nothing bypasses our storage.
    async fn plan_in(state: &SessionState, sql: &SqlStatement) -> Result<LogicalPlan> {
        let plan = state.statement_to_plan(DfStatement::Statement(Box::new(sql.clone()))).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        Ok(plan)
    }

    fn with_store(
        kv: Arc<dyn KvStore>,
        cold: Option<Arc<ColdStore>>,
        reserve: DiskReserve,
        limits: Limits,
        data_dir: Option<std::path::PathBuf>,
    ) -> Result<Arc<Self>> {
        let store = Arc::new(EventStore::open(kv, cold, reserve)?);
        let catalog = Arc::new(Catalog::open(store)?);
        let query_memory = limits.query_memory.unwrap_or_else(default_query_memory);
        if let Some(cold) = catalog.store().cold_location() {
            tracing::info!("cold tier at {cold}");
        }
        let features = Arc::new(FeatureEngine::default());
        let views = Arc::new(TemporaryViews::default());
        let ctx = new_session_context(catalog.clone(), features.clone(), views.clone(), query_memory)?;
        for def in stored_definitions(catalog.store())? {
            let table = catalog.require_table(&def.table)?;
            features.insert(LiveFeature::open(def, table, catalog.store(), &ctx)?)?;
        }
        let analyzer = ctx.state().analyzer().clone();
        let run_state = SessionStateBuilder::new_from_existing(ctx.state()).with_analyzer_rules(vec![]).build();
        Ok(Arc::new(Self {
            catalog,
            features,
            views,
            ctx,
            analyzer,
            run_state,
            parser: SqlParser::new(),
            commit_gate: tokio::sync::RwLock::new(()),
            tiering: tokio::sync::Mutex::new(()),
            backups: tokio::sync::RwLock::new(()),
            copy_chunk_bytes: limits.copy_chunk_bytes.unwrap_or(16 << 20).max(1),
            rows_at_snapshot: std::sync::atomic::AtomicU64::new(0),
            sources: Default::default(),
            data_dir,
            role_connections: Default::default(),
        }))
    }
}
