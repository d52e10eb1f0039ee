//! A client session: runs one statement at a time and holds the open transaction's writes.
//!
//! Transactions follow PostgreSQL where asofdb can: writes inside `BEGIN ... COMMIT` are kept
//! in the session and committed in one atomic, durable batch at COMMIT (or dropped at
//! ROLLBACK); after an error the transaction is aborted and only COMMIT/ROLLBACK/ROLLBACK TO
//! are accepted (25P02). Savepoints are marks in the pending writes (`transaction`). DDL takes
//! effect at once, even inside a transaction, with a NOTICE (documented in docs/sql.md).

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::LogicalPlan;
use sqlparser::ast::{CopySource, CopyTarget, ObjectType, Statement as SqlStatement};

use super::database::{Database, SessionReads, Write};
use super::prepared::PreparedStatement;

use super::copy_format::CopyFormat;
use super::create_feature::create_feature;
use super::create_table::table_def;
use super::insert::rows_to_insert;
use super::settings::Settings;
use crate::catalog::TableDef;
use crate::catalog::{Privilege, Securable};
use crate::error::{Error, Result, SqlState};
use crate::plan::{PendingRows, SystemSchema};
use crate::sql::Statement;
use crate::sql::names::{ident_name, table_name};
use crate::storage::Append;

/// What a statement produced, for the wire layer to send.
pub enum Output {
    /// A result set (SELECT, EXPLAIN, SHOW), streamed when sent.
    Rows(DataFrame),
    /// A result set already in memory (a feature point read).
    Batch(RecordBatch),
    /// The rows a FETCH took from a cursor.
    Fetched(RecordBatch),
    /// A command that completed; `rows` is reported in the command tag where PostgreSQL does.
    Command { tag: &'static str, rows: Option<u64> },
    /// BEGIN: the session is now in a transaction.
    TransactionStarted,
    /// COMMIT or ROLLBACK (`tag` says which happened: COMMIT of a failed transaction rolls back).
    TransactionEnded { tag: &'static str },
    /// ROLLBACK TO SAVEPOINT: the transaction is open again, even if an error had aborted it.
    TransactionResumed { tag: &'static str },
    /// COPY ... FROM STDIN of `columns` columns: the client sends data next
    /// ([`Session::copy_data`]), then [`Session::copy_done`].
    CopyIn { columns: usize, binary: bool },
    /// COPY ... TO STDOUT: these rows, in this format.
    CopyOut { format: CopyFormat, data: DataFrame },
}

mod copy_in;
mod cursors;

use copy_in::CopyIn;
use cursors::Cursors;

mod transaction;

use transaction::OpenTransaction;

enum Transaction {
    None,
    Open(OpenTransaction),
}

impl Transaction {
    fn is_failed(&self) -> bool {
        matches!(self, Transaction::Open(open) if open.is_failed())
    }
}

/// Per-connection state.
pub struct Session {
    db: Arc<Database>,
    transaction: Transaction,
    pub settings: Settings,
    /// Where NOTICE messages of the running statement go ([`Session::execute_reporting`]).
    notices: super::create_feature::Notices,
    /// A COPY FROM STDIN waiting for its data.
    copy_in: Option<CopyIn>,
    /// Tables this session created with CREATE TEMPORARY TABLE (name, id): dropped when it
    /// ends, if the name still belongs to that table.
    temporary_tables: Vec<(String, u64)>,
    /// Views this session created (name, id): dropped when it ends.
    temporary_views: Vec<(String, u64)>,
    cursors: Cursors,
    /// The role the session acts as (`current_user`; `execute::roles`).
    role: String,
    /// The role it logged in as, or was given by SET SESSION AUTHORIZATION
    /// (`session_user`): what RESET ROLE returns to.
    session_role: String,
    /// The role it logged in as.
    login_role: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The session's views go first, with any view that reads them or its tables.
        let views = &self.db.views;
        let mut gone: Vec<String> = self.temporary_views.iter().map(|(name, _)| name.clone()).collect();
        let still_ours = |(name, id): &&(String, u64)| self.db.catalog.table(name).is_some_and(|t| t.id == *id);
        gone.extend(self.temporary_tables.iter().filter(still_ours).map(|(name, _)| name.clone()));
        for name in views.depending_on(&gone) {
            if !self.temporary_views.iter().any(|(own, _)| *own == name) {
                views.remove(&name, None);
            }
        }
        for (name, id) in self.temporary_views.drain(..) {
            views.remove(&name, Some(id));
        }
        let names = std::mem::take(&mut self.temporary_tables);
        if names.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let db = self.db.clone();
        runtime.spawn(async move {
            let _no_backup = db.backups.read().await;
            for (name, id) in names {
                if let Err(error) = db.catalog.drop_table_with_id(&name, id).await {
                    tracing::warn!(%error, name, "dropping a closed session's temporary table");
                }
            }
        });
    }
}

impl Session {
    /// A session of the bootstrap superuser.
    pub fn new(db: Arc<Database>) -> Self {
        Self::for_role(db, crate::catalog::BOOTSTRAP_ROLE)
    }

    /// A session acting as `role`, with the role's settings (`ALTER ROLE ... SET`) applied.
    pub fn for_role(db: Arc<Database>, role: &str) -> Self {
        Self {
            db,
            transaction: Transaction::None,
            settings: Settings::default(),
            notices: None,
            copy_in: None,
            temporary_tables: Vec::new(),
            temporary_views: Vec::new(),
            cursors: Cursors::default(),
            role: role.to_string(),
            session_role: role.to_string(),
            login_role: role.to_string(),
        }
    }

    /// The role the session acts as.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Runs one statement as [`Session::execute`] does, sending its NOTICE messages (CREATE
    /// FEATURE's backfill progress) to `notices` as they come.
    pub async fn execute_reporting(
        &mut self,
        statement: &Statement,
        notices: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Output> {
        // A cancelled statement is dropped before the sender is cleared; the next statement
        // replaces it, and sends to a dropped receiver are ignored (`notice`).
        self.notices = Some(notices);
        let outcome = self.execute(statement).await;
        self.notices = None;
        outcome
    }

    /// Runs one statement. An error inside a transaction aborts the transaction.
    pub async fn execute(&mut self, statement: &Statement) -> Result<Output> {
        if self.transaction.is_failed() {
            return match statement {
                Statement::Standard(sql) => match sql.as_ref() {
                    SqlStatement::Commit { .. } | SqlStatement::Rollback { savepoint: None, .. } => {
                        self.transaction = Transaction::None;
                        self.cursors.end_transaction(false);
                        Ok(Output::TransactionEnded { tag: "ROLLBACK" })
                    }
                    SqlStatement::Rollback { savepoint: Some(name), .. } => self.rollback_to(name),
                    _ => Err(Error::TransactionAborted),
                },
                _ => Err(Error::TransactionAborted),
            };
        }
        if let (Transaction::Open(_), Some(kind)) = (&self.transaction, statement.ddl_kind()) {
            self.notice(format!("{kind} inside a transaction block takes effect at once: ROLLBACK will not undo it"));
        }
        let outcome = match statement {
            Statement::Standard(sql) => self.dispatch(sql).await,
            Statement::CreateFeature(create) => create_feature(&self.db, create, &self.role, &self.notices)
                .await
                .map(|()| Output::Command { tag: "CREATE FEATURE", rows: None }),
            Statement::DropFeature { names, if_exists, cascade } => {
                for name in names.iter().filter(|name| self.db.features.get(name).is_some()) {
                    self.db.require_owner(&self.role, &Securable::Feature(name.clone()))?;
                }
                let dropped = super::drop::drop_features(&self.db, names, *if_exists, *cascade).await;
                dropped.map(|()| Output::Command { tag: "DROP FEATURE", rows: None })
            }
            Statement::Checkpoint | Statement::Backup { .. } if !self.db.is_superuser(&self.role) => {
                let what = if matches!(statement, Statement::Checkpoint) { "CHECKPOINT" } else { "BACKUP" };
                Err(Error::PermissionDenied(format!("permission denied: only a superuser may run {what}")))
            }
            Statement::Checkpoint => {
                async {
                    self.db.checkpoint(true).await?;
                    self.db.tier(true).await?;
                    Ok(Output::Command { tag: "CHECKPOINT", rows: None })
                }
                .await
            }
            Statement::Backup { to } => self.db.backup(to).await.map(|report| {
                self.notice(format!(
                    "backup holds every write before seq {}: {} hot entries, {} cold files, {} bytes in {:.1} s",
                    report.next_seq,
                    report.hot_entries,
                    report.cold_files,
                    report.hot_bytes + report.cold_bytes,
                    report.seconds
                ));
                Output::Command { tag: "BACKUP", rows: None }
            }),
            Statement::ShowFeatures => SystemSchema::features(&self.db.features)
                .map_err(Error::from)
                .and_then(|batch| Ok(Output::Rows(self.db.ctx.read_batch(batch)?))),
            Statement::CreateSource(create) => super::source::create_source(&self.db, create, &self.role)
                .await
                .map(|()| Output::Command { tag: "CREATE SOURCE", rows: None }),
            Statement::DropSource { name, if_exists } => {
                super::source::drop_source(&self.db, name, *if_exists, &self.role)
                    .await
                    .map(|()| Output::Command { tag: "DROP SOURCE", rows: None })
            }
            Statement::Role(role) => {
                let notice = self.notice_sender();
                self.db.run_role_statement(&self.role, role, notice).await
            }
            Statement::Grant(grant) => {
                let notice = self.notice_sender();
                self.db.run_grant(&self.role, grant, notice).await.map(|tag| Output::Command { tag, rows: None })
            }
            Statement::ShowSources => SystemSchema::sources(&self.db.catalog)
                .map_err(Error::from)
                .and_then(|batch| Ok(Output::Rows(self.db.ctx.read_batch(batch)?))),
        };
        self.abort_on_error(outcome)
    }

    /// Sends NOTICE messages of the running statement, apart from the session.
    fn notice_sender(&self) -> impl Fn(String) + use<> {
        let notices = self.notices.clone();
        move |message: String| {
            if let Some(notices) = &notices {
                let _ = notices.send(message);
            }
        }
    }

    fn notice(&self, message: String) {
        if let Some(notices) = &self.notices {
            let _ = notices.send(message);
        }
    }

    /// The rows of a prepared point read (`plan::point_read`, recognised at Parse) for
    /// `parameters`, answered from the feature's state without waiting: `None` when the
    /// statement is not one, its plan is stale, or a write is being applied to the feature
    /// (then [`Session::execute_prepared`] answers). Cheap enough for the connection threads.
    pub fn prepared_point_read(
        &mut self,
        prepared: &PreparedStatement,
        parameters: &ParamValues,
    ) -> Result<Option<RecordBatch>> {
        let (Some(planned), ParamValues::List(values)) = (prepared.current(&self.db), parameters) else {
            return Ok(None);
        };
        let Some(read) = &planned.point_read else { return Ok(None) };
        // Each time: the session's role, and what it was granted, may have changed.
        let feature = Securable::Feature(read.feature_name().to_string());
        if let Err(denied) = self.db.require(&self.role, &feature, Privilege::Select) {
            return self.abort_on_error(Err(denied));
        }
        // Inside a transaction that wrote rows, reads take the way that sees them.
        if self.transaction.is_failed() || self.has_pending_rows() {
            return Ok(None);
        }
        let values: Vec<_> = values.iter().map(|v| v.value.clone()).collect();
        let outcome = read.read(&values);
        self.abort_on_error(outcome)
    }

    /// Runs a prepared statement with its bound `parameters` (extended protocol). A query is
    /// planned again first if DDL made its plan stale; another statement gets the values as
    /// literals and runs as [`Session::execute_reporting`] runs it.
    pub async fn execute_prepared(
        &mut self,
        prepared: &PreparedStatement,
        parameters: &ParamValues,
        notices: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Output> {
        if !prepared.is_query() {
            let statement = prepared.bound(parameters)?;
            return self.execute_reporting(&statement, notices).await;
        }
        if self.transaction.is_failed() {
            return Err(Error::TransactionAborted);
        }
        let outcome = self.run_prepared_query(prepared, parameters).await;
        self.abort_on_error(outcome)
    }

    async fn run_prepared_query(&mut self, prepared: &PreparedStatement, parameters: &ParamValues) -> Result<Output> {
        let planned = prepared.plan(&self.db).await?;
        let plan = planned.plan.clone().replace_params_with_values(parameters)?;
        // A point read answers from committed state only.
        if !self.has_pending_rows()
            && self.db.require_reads(&self.role, &plan).is_ok()
            && let Some(batch) = crate::plan::try_point_read(&plan)?
        {
            return Ok(Output::Batch(batch));
        }
        Ok(Output::Rows(self.run_plan(plan).await?))
    }

    async fn run_plan(&self, plan: LogicalPlan) -> Result<DataFrame> {
        self.db.run(plan, &self.reads())
    }

    /// How this session's statements see the data besides what is stored.
    fn reads(&self) -> SessionReads<'_> {
        let now = match &self.transaction {
            Transaction::Open(open) => open.started(),
            Transaction::None => chrono::Utc::now(),
        };
        SessionReads {
            zone: self.settings.zone(),
            pending: self.pending_rows(),
            cursors: self.cursors.rows(),
            now,
            role: &self.role,
        }
    }

    /// The rows this session's open transaction has written, which its own reads see.
    fn pending_rows(&self) -> PendingRows {
        match &self.transaction {
            Transaction::Open(open) => open.pending_by_table(),
            Transaction::None => PendingRows::new(),
        }
    }

    fn has_pending_rows(&self) -> bool {
        matches!(&self.transaction, Transaction::Open(open) if open.has_pending())
    }

    /// A statement failed before reaching the session (at Parse or Bind): inside a
    /// transaction, that aborts it as any other error does.
    pub fn abort_transaction(&mut self) {
        if let Transaction::Open(open) = &mut self.transaction {
            open.fail();
        }
    }

    fn abort_on_error<T>(&mut self, outcome: Result<T>) -> Result<T> {
        if outcome.is_err() {
            self.abort_transaction();
        }
        outcome
    }

    /// The open transaction, for SAVEPOINT, RELEASE and ROLLBACK TO (25P01 outside one).
    fn open_transaction(&mut self, statement: &str) -> Result<&mut OpenTransaction> {
        match &mut self.transaction {
            Transaction::Open(open) => Ok(open),
            Transaction::None => Err(Error::invalid_input(
                SqlState::NoActiveSqlTransaction,
                format!("{statement} can only be used in transaction blocks"),
            )),
        }
    }

    /// `ROLLBACK TO [SAVEPOINT] name`; the wire reports the transaction as open again.
    fn rollback_to(&mut self, name: &sqlparser::ast::Ident) -> Result<Output> {
        let cursor_mark = self.open_transaction("ROLLBACK TO SAVEPOINT")?.rollback_to(&ident_name(name))?;
        self.cursors.close_declared_since(cursor_mark);
        Ok(Output::TransactionResumed { tag: "ROLLBACK" })
    }

    async fn dispatch(&mut self, sql: &SqlStatement) -> Result<Output> {
        match sql {
            SqlStatement::Query(_) | SqlStatement::Explain { .. } => {
                // Boxed, as the other large futures below: the statement's future is as large
                // as its largest arm, and a small INSERT's would copy it several times.
                let plan = Box::pin(self.db.plan_query(sql)).await?;
                Ok(Output::Rows(self.run_plan(plan).await?))
            }
            SqlStatement::Insert(insert) => {
                let append = rows_to_insert(&self.db, insert, &self.reads()).await?;
                let rows = append.batch.num_rows() as u64;
                self.write(vec![append]).await?;
                Ok(Output::Command { tag: "INSERT", rows: Some(rows) })
            }
            SqlStatement::Copy { source, to, target, options, legacy_options, .. } => {
                let format = CopyFormat::from_options(options, legacy_options)?;
                if *to {
                    Box::pin(self.copy_to(source, target, format)).await
                } else {
                    Box::pin(self.copy_from(source, target, format)).await
                }
            }
            SqlStatement::CreateTable(create) => {
                let mut def = table_def(create)?;
                def.owner = self.role.clone();
                // PostgreSQL gives every role temporary tables (TEMP, which PUBLIC holds), each
                // session's in a schema of its own. asofdb's share schema public's names, so a
                // role that may not create there could take a name another role's statements
                // then write into: not supported.
                let create_in_schema = self.db.require(&self.role, &Securable::Schema, Privilege::Create);
                if def.temporary && create_in_schema.is_err() {
                    return Err(Error::unsupported(
                        "temporary tables of a role without CREATE on schema public: asofdb's temporary tables share the schema's names",
                    ));
                }
                create_in_schema?;
                if self.db.views.get(&def.name).is_some() || self.db.features.get(&def.name).is_some() {
                    if create.if_not_exists {
                        self.notice(format!("relation \"{}\" already exists, skipping", def.name));
                        return Ok(Output::Command { tag: "CREATE TABLE", rows: None });
                    }
                    return Err(Error::duplicate_table(&def.name));
                }
                let (name, temporary) = (def.name.clone(), def.temporary);
                if self.db.catalog.create_table(def, create.if_not_exists).await?
                    && temporary
                    && let Some(table) = self.db.catalog.table(&name)
                {
                    self.temporary_tables.push((name, table.id));
                }
                Ok(Output::Command { tag: "CREATE TABLE", rows: None })
            }
            SqlStatement::Drop { object_type: ObjectType::Table, if_exists, names, cascade, .. } => {
                let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
                for name in names.iter().filter(|name| self.db.catalog.table(name).is_some()) {
                    self.db.require_owner(&self.role, &Securable::Table(name.clone()))?;
                }
                let outcome = super::drop::drop_tables(&self.db, &names, *if_exists, *cascade).await;
                // Some may be gone even if a later one failed; a table of the same name made
                // later is not this session's to drop.
                let catalog = &self.db.catalog;
                self.temporary_tables.retain(|(name, id)| catalog.table(name).is_some_and(|t| t.id == *id));
                outcome?;
                Ok(Output::Command { tag: "DROP TABLE", rows: None })
            }
            SqlStatement::AlterTable(alter) => {
                let name = table_name(&alter.name)?;
                if self.db.catalog.table(&name).is_some() {
                    self.db.require_owner(&self.role, &Securable::Table(name))?;
                }
                for notice in super::alter_table::alter_table(&self.db, alter).await? {
                    self.notice(notice);
                }
                Ok(Output::Command { tag: "ALTER TABLE", rows: None })
            }
            SqlStatement::CreateView(create) => {
                let created = Box::pin(super::views::create_view(&self.db, create)).await?;
                if let Some((name, id)) = created.view {
                    self.temporary_views.retain(|(own, _)| *own != name);
                    self.temporary_views.push((name, id));
                }
                if let Some(notice) = created.notice {
                    self.notice(notice);
                }
                Ok(Output::Command { tag: "CREATE VIEW", rows: None })
            }
            SqlStatement::Drop { object_type: ObjectType::View, if_exists, names, cascade, .. } => {
                let names = names.iter().map(table_name).collect::<Result<Vec<_>>>()?;
                for notice in super::views::drop_views(&self.db, &names, *if_exists, *cascade)? {
                    self.notice(notice);
                }
                let views = &self.db.views;
                self.temporary_views.retain(|(name, id)| views.get(name).is_some_and(|v| v.id == *id));
                Ok(Output::Command { tag: "DROP VIEW", rows: None })
            }
            SqlStatement::StartTransaction { .. } => {
                if matches!(self.transaction, Transaction::None) {
                    self.transaction = Transaction::Open(OpenTransaction::begin());
                }
                Ok(Output::TransactionStarted)
            }
            SqlStatement::Savepoint { name } => {
                let cursor_mark = self.cursors.mark();
                self.open_transaction("SAVEPOINT")?.savepoint(ident_name(name), cursor_mark)?;
                Ok(Output::Command { tag: "SAVEPOINT", rows: None })
            }
            SqlStatement::ReleaseSavepoint { name } => {
                self.open_transaction("RELEASE SAVEPOINT")?.release(&ident_name(name))?;
                Ok(Output::Command { tag: "RELEASE", rows: None })
            }
            SqlStatement::Rollback { savepoint: Some(name), .. } => self.rollback_to(name),
            SqlStatement::Commit { .. } => {
                if let Transaction::Open(open) = std::mem::replace(&mut self.transaction, Transaction::None) {
                    let mut appends = open.into_pending();
                    // Columns added since the rows were inserted read their defaults (or fail).
                    let store = self.db.catalog.store();
                    let widened = appends.iter_mut().try_for_each(|a| {
                        a.batch = store.widen(a.table_id, a.batch.clone())?;
                        Ok::<_, Error>(())
                    });
                    // Again: a feature created since the rows were inserted has not checked them.
                    let checked = widened
                        .and_then(|()| appends.iter().try_for_each(|a| self.db.features.check(a.table_id, &a.batch)));
                    let committed = match checked {
                        Ok(()) => self.commit(appends).await,
                        Err(e) => Err(e),
                    };
                    self.cursors.end_transaction(committed.is_ok());
                    committed?;
                }
                Ok(Output::TransactionEnded { tag: "COMMIT" })
            }
            SqlStatement::Rollback { savepoint: None, .. } => {
                self.transaction = Transaction::None;
                self.cursors.end_transaction(false);
                Ok(Output::TransactionEnded { tag: "ROLLBACK" })
            }
            SqlStatement::Declare { stmts } => Box::pin(self.declare_cursor(stmts)).await,
            SqlStatement::Fetch { name, direction, into, .. } => {
                if into.is_some() {
                    return Err(Error::unsupported("FETCH ... INTO is not supported"));
                }
                Ok(Output::Fetched(self.cursors.fetch(&ident_name(name), direction).await?))
            }
            SqlStatement::Close { cursor } => {
                let name = match cursor {
                    sqlparser::ast::CloseCursor::All => None,
                    sqlparser::ast::CloseCursor::Specific { name } => Some(ident_name(name)),
                };
                self.cursors.close(name.as_deref())?;
                Ok(Output::Command {
                    tag: if name.is_some() { "CLOSE CURSOR" } else { "CLOSE CURSOR ALL" },
                    rows: None,
                })
            }
            SqlStatement::Set(set) => {
                if !self.set_role(set)? {
                    self.settings.set(set)?;
                }
                Ok(Output::Command { tag: "SET", rows: None })
            }
            SqlStatement::Reset(reset) => {
                self.settings.reset(&reset.reset);
                self.reset_role(&reset.reset);
                Ok(Output::Command { tag: "RESET", rows: None })
            }
            SqlStatement::ShowVariable { variable } => {
                let name = variable.iter().map(ident_name).collect::<Vec<_>>().join(" ");
                let batch = self.settings.show(&name)?;
                Ok(Output::Rows(self.db.ctx.read_batch(batch)?))
            }
            SqlStatement::Discard { object_type } => {
                // DISCARD ALL is SET SESSION AUTHORIZATION DEFAULT and RESET ALL: a pooler
                // hands the next client the session as it logged in.
                if matches!(object_type, sqlparser::ast::DiscardObject::ALL) {
                    self.settings.reset(&sqlparser::ast::Reset::ALL);
                    self.become_role(self.login_role.clone(), true)?;
                }
                Ok(Output::Command { tag: "DISCARD ALL", rows: None })
            }
            SqlStatement::Deallocate { .. } => Ok(Output::Command { tag: "DEALLOCATE", rows: None }),
            SqlStatement::Delete(delete) => {
                if matches!(self.transaction, Transaction::Open(_)) {
                    self.notice(
                        "DELETE inside a transaction block takes effect at once: ROLLBACK will not undo it".into(),
                    );
                }
                let rows = Box::pin(super::delete::delete(&self.db, delete, &self.reads())).await?;
                Ok(Output::Command { tag: "DELETE", rows: Some(rows) })
            }
            SqlStatement::Update(_) | SqlStatement::Truncate(_) => Err(Error::unsupported(
                "event history is immutable: UPDATE and TRUNCATE are not supported (DELETE erases events)",
            )),
            other => Err(Error::unsupported(format!("statement not supported: {}", statement_kind(other)))),
        }
    }

    /// `DECLARE name [BINARY] [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`: the query is
    /// planned and started; FETCH reads its rows. Without HOLD, only inside a transaction.
    async fn declare_cursor(&mut self, declarations: &[sqlparser::ast::Declare]) -> Result<Output> {
        let [declare] = declarations else {
            return Err(Error::syntax("DECLARE declares one cursor"));
        };
        let (Some(sqlparser::ast::DeclareType::Cursor), Some(query), [name]) =
            (&declare.declare_type, &declare.for_query, declare.names.as_slice())
        else {
            return Err(Error::unsupported("DECLARE is supported for cursors only (DECLARE name CURSOR FOR query)"));
        };
        if declare.scroll == Some(true) {
            return Err(Error::unsupported("SCROLL cursors are not supported: cursors here move forward only"));
        }
        if declare.binary == Some(true) {
            return Err(Error::unsupported(
                "BINARY cursors are not supported: FETCH through the extended protocol with binary result formats",
            ));
        }
        let hold = declare.hold == Some(true);
        if !hold && matches!(self.transaction, Transaction::None) {
            return Err(Error::invalid_input(
                SqlState::NoActiveSqlTransaction,
                "DECLARE CURSOR can only be used in transaction blocks",
            ));
        }
        let plan = self.db.plan_query(&SqlStatement::Query(query.clone())).await?;
        let stream = self.run_plan(plan).await?.execute_stream().await?;
        let statement = format!("DECLARE {name} CURSOR{} FOR {query}", if hold { " WITH HOLD" } else { "" });
        let in_transaction = matches!(self.transaction, Transaction::Open(_));
        self.cursors.declare(ident_name(name), statement, stream, (hold, false, in_transaction))?;
        Ok(Output::Command { tag: "DECLARE CURSOR", rows: None })
    }

    /// The columns of cursor `name` and whether it is BINARY (Describe Portal of a cursor).
    pub fn describe_cursor(&self, name: &str) -> Option<(arrow::datatypes::SchemaRef, bool)> {
        self.cursors.describe(name)
    }

    async fn write(&mut self, appends: Vec<Append>) -> Result<()> {
        for append in &appends {
            self.db.features.check(append.table_id, &append.batch)?;
        }
        match &mut self.transaction {
            Transaction::Open(open) => {
                open.add(appends);
                Ok(())
            }
            Transaction::None => self.commit(appends).await,
        }
    }

    /// Writes rows durably and applies them to every feature of their tables, all before the
    /// statement is acknowledged (read-your-writes through features).
    async fn commit(&self, appends: Vec<Append>) -> Result<()> {
        self.db.commit(Write::Rows(appends)).await
    }

    async fn copy_from(&mut self, source: &CopySource, target: &CopyTarget, format: CopyFormat) -> Result<Output> {
        let (def, targets) = copy_destination(&self.db, source)?;
        self.db.require(&self.role, &Securable::Table(def.name.clone()), Privilege::Insert)?;
        let copy = CopyIn::new(def, targets, format);
        match target {
            CopyTarget::Stdin => {
                let (columns, binary) = (copy.column_count(), copy.format.binary);
                self.copy_in = Some(copy);
                Ok(Output::CopyIn { columns, binary })
            }
            CopyTarget::File { filename } => {
                self.require_server_files("COPY from a file")?;
                let rows = self.copy_from_file(copy, filename).await?;
                Ok(Output::Command { tag: "COPY", rows: Some(rows) })
            }
            _ => Err(Error::unsupported("COPY FROM supports STDIN and server-side files")),
        }
    }

    async fn copy_to(&mut self, source: &CopySource, target: &CopyTarget, format: CopyFormat) -> Result<Output> {
        let parquet_file = match target {
            CopyTarget::Stdout => None,
            CopyTarget::File { filename } if filename.ends_with(".parquet") => Some(filename.clone()),
            _ => return Err(Error::unsupported("COPY TO supports STDOUT and server-side '.parquet' files")),
        };
        if parquet_file.is_some() {
            self.require_server_files("COPY to a file")?;
        }
        let query = match source {
            CopySource::Query(query) => SqlStatement::Query(query.clone()),
            CopySource::Table { table_name: name, columns } => {
                let table = table_name(name)?;
                self.db.catalog.require_table(&table)?;
                let list = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| format!("\"{}\"", ident_name(c).replace('"', "\"\"")))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let sql = format!("SELECT {list} FROM \"{}\"", table.replace('"', "\"\""));
                match self.db.parser.parse_single(&sql)? {
                    Some(Statement::Standard(s)) => *s,
                    _ => return Err(Error::internal("COPY's generated query did not parse as a query")),
                }
            }
        };
        let plan = self.db.plan_query(&query).await?;
        let data = self.run_plan(plan).await?;
        match parquet_file {
            None => Ok(Output::CopyOut { format, data }),
            Some(path) => {
                let rows = write_parquet(data, &path).await?;
                Ok(Output::Command { tag: "COPY", rows: Some(rows) })
            }
        }
    }
}

/// Writes a query result into a Parquet file on the server (zstd-compressed row groups), with
/// DataFusion's parquet sink: columns are encoded in parallel while the query runs.
async fn write_parquet(data: DataFrame, path: &str) -> Result<u64> {
    // Opening the file here first gives the PostgreSQL error for a bad path.
    let absolute =
        std::path::absolute(path).and_then(|p| std::fs::File::create(&p).map(|_| p)).map_err(|e| Error::NotFound {
            sqlstate: SqlState::UndefinedFile,
            message: format!("could not open file \"{path}\" for writing: {e}"),
        })?;
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.compression = Some("zstd(3)".into());
    // Row groups encoded several at a time, with room for the query to run ahead of the encoder,
    // so the join and the encoding overlap on separate cores (docs/benchmarks.md).
    let knob = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    options.global.maximum_parallel_row_group_writers = knob("ASOFDB_PARQUET_ROW_GROUP_WRITERS", 4);
    options.global.maximum_buffered_record_batches_per_stream = knob("ASOFDB_PARQUET_BUFFERED_BATCHES", 64);
    let written = data
        .write_parquet(
            &absolute.display().to_string(),
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            Some(options),
        )
        .await?;
    let count = written
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<arrow::array::UInt64Array>().map(|c| c.value(0)))
        .unwrap_or(0);
    Ok(count)
}

/// The table and columns (table indices, in data order) a COPY FROM writes.
fn copy_destination(db: &Database, source: &CopySource) -> Result<(Arc<TableDef>, Vec<usize>)> {
    let CopySource::Table { table_name: name, columns } = source else {
        return Err(Error::syntax("COPY FROM needs a table, not a query"));
    };
    let def = db.catalog.require_table(&table_name(name)?)?;
    let targets = if columns.is_empty() {
        (0..def.columns.len()).collect()
    } else {
        columns
            .iter()
            .map(|c| {
                let n = ident_name(c);
                def.column_index(&n).ok_or_else(|| Error::undefined_column(&n, &def.name))
            })
            .collect::<Result<Vec<_>>>()?
    };
    Ok((def, targets))
}

/// Checks a COPY's options and target when it is prepared, so that drivers, which expect
/// CopyInResponse right after Execute, see a bad COPY as an error of Parse.
pub fn check_copy(db: &Database, sql: &SqlStatement) -> Result<()> {
    if let SqlStatement::Copy { source, to, options, legacy_options, .. } = sql {
        CopyFormat::from_options(options, legacy_options)?;
        if !*to {
            copy_destination(db, source)?;
        }
    }
    Ok(())
}

/// The statement's leading keywords, for "not supported" messages.
fn statement_kind(statement: &SqlStatement) -> String {
    statement.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

impl Session {
    /// `SET ROLE` and `SET SESSION AUTHORIZATION`, as PostgreSQL's: a superuser session may
    /// become any role, any session itself again. False for any other SET.
    fn set_role(&mut self, set: &sqlparser::ast::Set) -> Result<bool> {
        use sqlparser::ast::{ContextModifier, Set, SetSessionAuthorizationParamKind};
        let is_superuser = |name: &str| self.db.catalog.role(name).is_some_and(|r| r.superuser);
        match set {
            Set::SetRole { context_modifier, role_name } => {
                if matches!(context_modifier, Some(ContextModifier::Local)) {
                    return Err(Error::unsupported("SET LOCAL ROLE is not supported: use SET ROLE and RESET ROLE"));
                }
                let target = match role_name {
                    None => self.session_role.clone(),
                    Some(name) => ident_name(name),
                };
                if target != self.session_role && !is_superuser(&self.session_role) {
                    return Err(Error::PermissionDenied(format!("permission denied to set role \"{target}\"")));
                }
                self.become_role(target, false)?;
                Ok(true)
            }
            Set::SetSessionAuthorization(param) => {
                let target = match &param.kind {
                    SetSessionAuthorizationParamKind::Default => self.login_role.clone(),
                    SetSessionAuthorizationParamKind::User(name) => ident_name(name),
                };
                if target != self.login_role && !is_superuser(&self.login_role) {
                    return Err(Error::PermissionDenied(format!(
                        "permission denied to set session authorization \"{target}\""
                    )));
                }
                self.become_role(target, true)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `RESET ROLE` and `RESET SESSION AUTHORIZATION`.
    fn reset_role(&mut self, reset: &sqlparser::ast::Reset) {
        let name = match reset {
            sqlparser::ast::Reset::ALL => "all".to_string(),
            sqlparser::ast::Reset::ConfigurationParameter(name) => name.to_string().to_ascii_lowercase(),
        };
        // RESET ALL leaves both alone, as in PostgreSQL; the settings it resets are put back
        // as the role has them.
        let outcome = match name.as_str() {
            "role" => self.become_role(self.session_role.clone(), false),
            "session authorization" | "session_authorization" => self.become_role(self.login_role.clone(), true),
            "all" => self.become_role(self.role.clone(), false),
            _ => Ok(()),
        };
        // The roles returned to are the session's own, which may have been dropped since.
        if let Err(e) = outcome {
            tracing::debug!("RESET ROLE: {e}");
        }
    }

    /// Ok for a superuser: reading and writing the server's files (PostgreSQL's
    /// `pg_read_server_files` and `pg_write_server_files`) could read any file the server can,
    /// or overwrite the cold tier's.
    fn require_server_files(&self, what: &str) -> Result<()> {
        if self.db.is_superuser(&self.role) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!("permission denied: only a superuser may {what} on the server")))
    }

    fn become_role(&mut self, target: String, session: bool) -> Result<()> {
        let role = self.db.catalog.role(&target).ok_or_else(|| Error::NotFound {
            sqlstate: crate::error::SqlState::UndefinedObject,
            message: format!("role \"{target}\" does not exist"),
        })?;
        self.settings.set_role(role.superuser, session.then_some(target.as_str()));
        if session {
            self.session_role = target.clone();
        }
        self.role = target;
        Ok(())
    }
}
