//! The one place pgwire's query handlers meet the session: the simple protocol (a Query
//! message of any number of statements), the extended protocol (Parse, Bind, Describe,
//! Execute, without flushing until Sync) and COPY FROM STDIN data. Each turns messages into
//! `execute::Session` calls and the outputs into responses (`results`).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_describe_response};
use pgwire::api::results::{DescribePortalResponse, Response, Tag};
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::types::format::FormatOptions;
use tokio::sync::Mutex;

use super::auth::require_login;
use super::cancel::Cancellations;
use super::coalesce::Deferred;
use super::connection::{Connection, connection_of, output_context};
use super::encode::{encode_batch_rows, pg_fields};
use super::errors::to_pgwire;
use super::executor::Executor;
use super::notices::{Run, execute_with_notices};
use super::prepare::{Prepared, StatementParser, bound_parameters};
use super::results::{error_response, to_response};
use super::statement_log::StatementTimer;
use crate::error::{Error, SqlState};
use crate::execute::{Database, Output};

/// Answers queries and COPY data for one connection at a time; its state lives in the
/// connection (see `connection`), so one instance serves all.
#[derive(Clone)]
pub struct QueryHandler {
    pub(super) db: Arc<Database>,
    pub(super) parser: Arc<StatementParser>,
    pub(super) executor: Executor,
    pub(super) cancellations: Arc<Cancellations>,
    /// Statements taking longer are logged at INFO.
    pub(super) log_slow: std::time::Duration,
}

impl QueryHandler {
    fn timer(&self, text: Arc<str>) -> StatementTimer {
        StatementTimer::new(self.db.metrics().clone(), self.log_slow, text)
    }

    /// The connection state of `client`, created on first use (`connection::connection_of`).
    fn connection<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<Mutex<Connection>>> {
        connection_of(client, &self.db, &self.cancellations)
    }
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    /// Runs the statements in order; the first error is reported and the rest are skipped,
    /// as PostgreSQL does. A COPY FROM STDIN ends the list: its data comes next.
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(query = crate::sql::role::redact_passwords(query), "simple query");
        }
        let statements = match self.db.parse(query) {
            Ok(statements) => statements,
            Err(e) => {
                super::audit::unparsed(client, query, &e);
                // A syntax error inside BEGIN aborts the transaction, as any other error.
                self.connection(client)?.lock().await.session.abort_transaction();
                return Ok(vec![error_response(to_pgwire(e))]);
            }
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let state = self.connection(client)?;
        let mut responses = Vec::with_capacity(statements.len());
        // A string of several statements is logged whole with each slow one; the audit log
        // has each statement's own text (`parse` parsed exactly these).
        let text: Arc<str> = query.into();
        let audited = statements.iter().any(|s| s.audited_kind().is_some());
        let own_texts = if audited { crate::sql::split_statements(query) } else { vec![""; statements.len()] };
        for (statement, own_text) in statements.into_iter().zip(own_texts) {
            let timer = self.timer(text.clone());
            // As PostgreSQL, the timeout applies to each statement of the string separately.
            let read_only = statement.is_read_only();
            let cancel = {
                let mut conn = state.lock().await;
                conn.start_statement(read_only);
                read_only.then(|| conn.cancel.clone())
            };
            let audited = statement.audited_kind().is_some().then(|| statement.clone());
            let executed =
                execute_with_notices(&self.executor, &state, Run::Statement(statement), cancel, client).await;
            if let Some(statement) = &audited {
                super::audit::statement(client, statement, own_text, &executed);
            }
            let shown_with = {
                let mut conn = state.lock().await;
                if executed.is_err() {
                    // A cancelled or timed-out statement never reached the session's own error
                    // handling; its transaction is aborted all the same.
                    conn.session.abort_transaction();
                }
                output_context(&conn)
            };
            let timer = timer.point_read(matches!(executed, Ok(Output::Batch(_))));
            let response = match executed {
                Ok(output) => {
                    to_response(output, &Format::UnifiedText, shown_with, client.metadata(), &self.executor).await
                }
                Err(e) => Err(to_pgwire(e)),
            };
            match response.map(|response| timer.until_sent(response)) {
                Ok(response) => {
                    let copying = matches!(response, Response::CopyIn(_));
                    responses.push(response);
                    if copying {
                        break;
                    }
                }
                Err(e) => {
                    responses.push(error_response(e));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Arc<Prepared>;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        let timer = self.timer(prepared.text.clone()).point_read(prepared.statement.is_point_read());
        let state = self.connection(client)?;
        let format = &portal.result_column_format;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let query = &prepared.statement;
        let (flag, params) = {
            let mut conn = state.lock().await;
            let params = bound_parameters(portal, &prepared, conn.session.settings.zone())?;
            conn.start_statement(query.is_query() || query.statement.is_read_only());
            // The online-serving query is answered here, on the connection's thread, while
            // its plan is current (DDL since Parse re-plans it on the execution runtime).
            if let Some(batch) = conn.session.prepared_point_read(query, &params).map_err(to_pgwire)? {
                let zone = conn.session.settings.zone().tz();
                return Ok(Response::Query(encode_batch_rows(batch, format, options, zone)?));
            }
            (conn.cancel.clone(), params)
        };
        // Writes and DDL are not raced against cancellation: they complete once started.
        let cancel = (query.is_query() || query.statement.is_read_only()).then_some(flag);
        let run = Run::Prepared(prepared.clone(), params);
        let output = execute_with_notices(&self.executor, &state, run, cancel, client).await;
        super::audit::statement(client, &query.statement, &prepared.text, &output);
        let response = match output {
            Ok(output) => {
                let shown_with = output_context(&*state.lock().await);
                to_response(output, format, shown_with, client.metadata(), &self.executor).await
            }
            Err(e) => Err(to_pgwire(e)),
        };
        response.map(|response| timer.until_sent(response))
    }

    /// As pgwire's, without flushing until Sync (`coalesce`).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        require_login(client)?;
        let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_owned());
        match StoredStatement::parse(client, &message, self.query_parser()).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client.portal_store().put_empty_statement(&name),
        }
        client.feed(PgWireBackendMessage::ParseComplete(ParseComplete::new())).await?;
        Ok(())
    }

    /// As pgwire's, without flushing until Sync (`coalesce`).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        require_login(client)?;
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        // The statement, and the parameter count a Bind must supply where it is known (an
        // empty statement, a query, or any statement whose parameters were typed).
        let (statement, expected) = match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let count = statement.statement.param_types.len();
                let known = statement.statement.statement.is_query() || count > 0;
                (Some(statement), known.then_some(count))
            }
            Some(Entry::Empty) => (None, Some(0)),
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        };
        if let Some(expected) = expected
            && message.parameters.len() != expected
        {
            return Err(to_pgwire(Error::invalid_input(
                SqlState::ProtocolViolation,
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires {expected}",
                    message.parameters.len()
                ),
            )));
        }
        match statement {
            Some(statement) => client.portal_store().put_portal(Arc::new(Portal::try_new(&message, statement)?)),
            None => client.portal_store().put_empty_portal(portal_name),
        }
        client.feed(PgWireBackendMessage::BindComplete(BindComplete::new())).await?;
        Ok(())
    }

    /// As pgwire's, without flushing until Sync (`coalesce`).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self._on_execute(&mut Deferred(client), message).await?;
        // A COPY FROM STDIN waits for the client's data, which waits for CopyInResponse.
        if matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.flush().await?;
        }
        Ok(())
    }

    /// As pgwire's, without flushing until Sync (`coalesce`), and a statement with parameters
    /// and no result columns (an INSERT) is described as ParameterDescription + NoData, as
    /// PostgreSQL does: pgwire sends an empty RowDescription, after which pgjdbc counts every
    /// batched INSERT as 0 rows.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        require_login(client)?;
        let client = &mut Deferred(client);
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(stored)) = client.portal_store().get_statement(name)
        {
            let mut response = self.do_describe_statement(client, &stored).await?;
            let described = match fetched_cursor(&stored.statement) {
                Some(cursor) => self.connection(client)?.lock().await.session.describe_cursor(&cursor),
                None => None,
            };
            if let Some((schema, _)) = described {
                response.fields = pg_fields(&schema, &Format::UnifiedText, None)?;
            }
            if response.fields.is_empty() {
                let oids = response.parameters.iter().map(|t| t.oid()).collect();
                client.feed(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids))).await?;
                client.feed(PgWireBackendMessage::NoData(NoData::new())).await?;
                return Ok(());
            }
            return send_describe_response(client, &response).await;
        }
        if message.target_type == TARGET_TYPE_BYTE_PORTAL {
            // A cursor DECLAREd in SQL is a portal too (psycopg's named cursors describe it),
            // and a FETCH returns its cursor's columns.
            let (cursor, format) = match client.portal_store().get_portal(name) {
                None => (Some(name.to_string()), None),
                Some(Entry::Value(portal)) => {
                    (fetched_cursor(&portal.statement.statement), Some(portal.result_column_format.clone()))
                }
                Some(Entry::Empty) => (None, None),
            };
            let described = match cursor {
                Some(cursor) => self.connection(client)?.lock().await.session.describe_cursor(&cursor),
                None => None,
            };
            if let Some((schema, binary)) = described {
                let format = format.unwrap_or(if binary { Format::UnifiedBinary } else { Format::UnifiedText });
                let fields = pg_fields(&schema, &format, None)?;
                return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
            }
        }
        self._on_describe(client, message).await
    }
}

/// The cursor a FETCH statement reads, if `prepared` is one.
fn fetched_cursor(prepared: &Prepared) -> Option<String> {
    match &prepared.statement.statement {
        crate::sql::Statement::Standard(sql) => match sql.as_ref() {
            sqlparser::ast::Statement::Fetch { name, .. } => Some(crate::sql::names::ident_name(name)),
            _ => None,
        },
        _ => None,
    }
}

#[async_trait]
impl CopyHandler for QueryHandler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = self.connection(client)?;
        let chunk_full = {
            let mut conn = state.lock().await;
            let conn = &mut *conn;
            conn.session.copy_data(&copy_data.data).map_err(to_pgwire)?
        };
        if chunk_full {
            let decode = async move {
                state.lock().await.session.copy_decode();
                Ok(())
            };
            self.executor.run(decode).await.map_err(to_pgwire)?;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = self.connection(client)?;
        let finish = async move { state.lock().await.session.copy_done().await };
        let rows = self.executor.run(finish).await.map_err(to_pgwire)?;
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client.send(PgWireBackendMessage::CommandComplete(tag.into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let state = match self.connection(client) {
            Ok(state) => state,
            Err(e) => return e,
        };
        state.lock().await.session.copy_fail();
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            SqlState::QueryCanceled.code().into(),
            format!("COPY from stdin failed: {}", fail.message),
        )))
    }
}
