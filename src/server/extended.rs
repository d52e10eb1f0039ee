//! The extended query protocol: Parse (plan once), Describe, Bind (typed parameters), Execute.
//!
//! Queries are planned by DataFusion at Parse (`execute::PreparedStatement`, which plans them
//! again at Execute after DDL) and their parameters substituted into the plan at Execute. Other statements (INSERT, COPY, DDL) are kept as syntax; their parameters are
//! bound as literals and they run through the same path as the simple protocol. Parameter
//! types come from the client when it declares them, else from DataFusion's inference (for an
//! INSERT, the target columns' types).

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use futures::{Sink, SinkExt};
use pgwire::api::DEFAULT_NAME;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::types::format::FormatOptions;

use super::auth::require_login;
use super::coalesce::Deferred;
use super::connection::until_cancelled;
use super::errors::to_pgwire;
use super::executor::Executor;
use super::handlers::QueryHandler;
use super::notices::execute_with_notices;
use super::results::{encode_batch_rows, encode_rows, pg_fields, to_response};
use crate::error::{Error, SqlState};
use crate::execute::{Database, PreparedStatement};
use crate::sql::Statement;
use crate::sql::params::bind_parameters;

/// A prepared statement as the extended protocol keeps it between Parse and Execute.
pub struct Prepared {
    statement: PreparedStatement,
    /// Wire types announced in ParameterDescription and used to decode Bind values.
    param_types: Vec<Type>,
}

/// What a query's Execute produced: a point read's rows, or a plan to run.
enum QueryOutput {
    Batch(arrow::array::RecordBatch),
    Frame(datafusion::dataframe::DataFrame),
}

/// Parses and plans statements for the extended protocol.
pub struct StatementParser {
    db: Arc<Database>,
    executor: Executor,
}

impl StatementParser {
    pub fn new(db: Arc<Database>, executor: Executor) -> Self {
        Self { db, executor }
    }

    async fn prepare(
        db: &Database,
        sql: &str,
        client_types: &[Option<Type>],
    ) -> crate::error::Result<Option<Prepared>> {
        let Some(statement) = db.prepare(sql).await? else { return Ok(None) };
        let inferred_types = &statement.inferred_types;
        let count = inferred_types.len().max(client_types.len());
        let param_types = (0..count)
            .map(|i| match client_types.get(i).cloned().flatten() {
                Some(t) if t != Type::UNKNOWN => Ok(t),
                _ => match inferred_types.get(i).cloned().flatten() {
                    Some(dt) => into_pg_type(&dt).map_err(|e| Error::internal(e.to_string())),
                    None => Ok(Type::TEXT),
                },
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        Ok(Some(Prepared { statement, param_types }))
    }
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        tracing::debug!(sql, "parse");
        let (db, sql, types) = (self.db.clone(), sql.to_owned(), types.to_vec());
        let prepared = self.executor.run(async move { Self::prepare(&db, &sql, &types).await });
        Ok(prepared.await.map_err(to_pgwire)?.map(Arc::new))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.statement.result_schema {
            Some(schema) => pg_fields(schema, column_format.unwrap_or(&Format::UnifiedText), None),
            None => Ok(vec![]),
        }
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
        let state = self.connection(client)?;
        let format = &portal.result_column_format;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let query = &prepared.statement;
        let (flag, zone, params) = {
            let mut conn = state.lock().await;
            let params = bound_parameters(portal, &prepared, conn.session.settings.zone())?;
            conn.start_statement(query.is_query() || query.statement.is_read_only());
            let zone = conn.session.settings.zone().tz();
            // The online-serving query is answered here, on the connection's thread, while
            // its plan is current (DDL since Parse re-plans it below first).
            if let (Some(planned), ParamValues::List(values)) = (query.current(&self.db), &params)
                && let Some(read) = &planned.point_read
            {
                let values: Vec<_> = values.iter().map(|v| v.value.clone()).collect();
                if let Some(batch) = conn.session.prepared_point_read(read, &values).map_err(to_pgwire)? {
                    return Ok(Response::Query(encode_batch_rows(batch, format, options, zone)?));
                }
            }
            (conn.cancel.clone(), zone, params)
        };
        if query.is_query() {
            let (prepared, connection, cancel) = (prepared.clone(), state.clone(), flag.clone());
            let query = async move {
                let mut conn = connection.lock().await;
                let session = &mut conn.session;
                until_cancelled(&cancel, async {
                    let planned = session.plan_prepared(&prepared.statement).await?;
                    let plan = planned.plan.clone().replace_params_with_values(&params)?;
                    Ok(match session.point_read(&plan)? {
                        Some(batch) => QueryOutput::Batch(batch),
                        None => QueryOutput::Frame(session.run_query(plan).await?),
                    })
                })
                .await
            };
            let rows = match self.executor.run(query).await.map_err(to_pgwire)? {
                QueryOutput::Batch(batch) => encode_batch_rows(batch, format, options, zone)?,
                QueryOutput::Frame(frame) => encode_rows(&self.executor, frame, format, options, flag, zone).await?,
            };
            return Ok(Response::Query(rows));
        }
        let mut statement = prepared.statement.statement.clone();
        if let (Statement::Standard(syntax), ParamValues::List(values)) = (&mut statement, &params)
            && !values.is_empty()
        {
            let scalars: Vec<_> = values.iter().map(|v| v.value.clone()).collect();
            bind_parameters(syntax, &scalars).map_err(to_pgwire)?;
        }
        // Writes and DDL are not raced against cancellation: they complete once started.
        let cancel = statement.is_read_only().then_some(flag);
        let output =
            execute_with_notices(&self.executor, &state, statement, cancel, client).await.map_err(to_pgwire)?;
        let mut conn = state.lock().await;
        to_response(output, format, &mut conn, client.metadata(), &self.executor).await
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
            let response = self.do_describe_statement(client, &stored).await?;
            if response.fields.is_empty() {
                let oids = response.parameters.iter().map(|t| t.oid()).collect();
                client.feed(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids))).await?;
                client.feed(PgWireBackendMessage::NoData(NoData::new())).await?;
                return Ok(());
            }
        }
        self._on_describe(client, message).await
    }
}

/// Decodes the Bind message's values with the announced types.
///
/// pgwire reads a text timestamp only in its full form (`2025-12-04 16:50:00`), where
/// PostgreSQL also takes a date alone or minutes without seconds. A text-format timestamp or
/// date parameter the client left untyped is therefore decoded as text and cast here, with
/// the same rules as a literal.
/// Text parameters for TIMESTAMPTZ are read in `zone`, the session's time zone.
fn bound_parameters(
    portal: &Portal<Arc<Prepared>>,
    prepared: &Prepared,
    zone: &crate::plan::time_zone::SessionZone,
) -> PgWireResult<ParamValues> {
    if portal.parameter_len() == 0 {
        return Ok(ParamValues::List(vec![]));
    }
    let inferred: Vec<Option<&DataType>> = prepared.statement.inferred_types.iter().map(|t| t.as_ref()).collect();
    let client_typed =
        |i: usize| portal.statement.parameter_types.get(i).cloned().flatten().is_some_and(|t| t != Type::UNKNOWN);
    let as_text: Vec<bool> = (0..portal.parameter_len())
        .map(|i| {
            let datetime = matches!(
                prepared.param_types.get(i),
                Some(t) if *t == Type::TIMESTAMP || *t == Type::TIMESTAMPTZ || *t == Type::DATE
            );
            datetime && !portal.parameter_format.is_binary(i) && !client_typed(i)
        })
        .collect();
    let announced: Vec<Option<&Type>> = prepared
        .param_types
        .iter()
        .enumerate()
        .map(|(i, t)| Some(if as_text.get(i) == Some(&true) { &Type::TEXT } else { t }))
        .collect();
    let ParamValues::List(mut values) = deserialize_parameters_with_server_types(portal, &inferred, &announced)? else {
        return Err(to_pgwire(Error::internal("positional parameters decoded by name")));
    };
    for (i, value) in values.iter_mut().enumerate().filter(|(i, _)| as_text[*i]) {
        let target = match prepared.statement.inferred_types.get(i).cloned().flatten() {
            Some(t) => t,
            None if prepared.param_types[i] == Type::DATE => DataType::Date32,
            None => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        };
        let text = value.value.clone();
        let read = match (&target, &text) {
            // Without an offset, a local time in the session's zone.
            (DataType::Timestamp(_, Some(_)), datafusion::scalar::ScalarValue::Utf8(Some(t))) => {
                crate::plan::time_zone::parse_instant(t, &zone.tz())
                    .map(|v| {
                        let instant = datafusion::scalar::ScalarValue::TimestampMicrosecond(
                            Some(v),
                            Some(crate::plan::time_zone::UTC_TAG.into()),
                        );
                        instant.cast_to(&target)
                    })
                    .unwrap_or_else(|| text.cast_to(&target))
            }
            (
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                datafusion::scalar::ScalarValue::Utf8(Some(t)),
            ) if crate::plan::infinite_time::infinite_micros(t).is_some() => {
                Ok(datafusion::scalar::ScalarValue::TimestampMicrosecond(
                    crate::plan::infinite_time::infinite_micros(t),
                    None,
                ))
            }
            _ => text.cast_to(&target),
        };
        value.value = read.map_err(|_| {
            to_pgwire(Error::invalid_value(
                SqlState::InvalidDatetimeFormat,
                format!("invalid input syntax for type {}: \"{text}\" (parameter ${})", prepared.param_types[i], i + 1),
            ))
        })?;
    }
    Ok(ParamValues::List(values))
}
