//! The extended query protocol: Parse (plan once), Describe, Bind (typed parameters), Execute.
//!
//! Queries are planned by DataFusion at Parse and their parameters substituted into the plan
//! at Execute. Other statements (INSERT, COPY, DDL) are kept as syntax; their parameters are
//! bound as literals and they run through the same path as the simple protocol. Parameter
//! types come from the client when it declares them, else from DataFusion's inference (for an
//! INSERT, the target columns' types).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, into_pg_type};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, LogicalPlan, TryCast};
use datafusion::sql::parser::Statement as DfStatement;
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
use sqlparser::ast::Statement as SqlStatement;

use super::auth::require_login;
use super::coalesce::Deferred;
use super::connection::until_cancelled;
use super::errors::to_pgwire;
use super::executor::Executor;
use super::handlers::QueryHandler;
use super::notices::execute_with_notices;
use super::results::{encode_batch_rows, encode_rows, to_response};
use crate::error::Error;
use crate::execute::{Database, check_copy};
use crate::plan::PointRead;
use crate::sql::Statement;
use crate::sql::names::ident_name;
use crate::sql::params::bind_parameters;

/// A parsed statement as the extended protocol keeps it between Parse and Execute.
pub struct Prepared {
    statement: Statement,
    /// The DataFusion plan of a query, with `$n` placeholders.
    plan: Option<LogicalPlan>,
    /// Wire types announced in ParameterDescription and used to decode Bind values.
    param_types: Vec<Type>,
    /// DataFusion's inferred type of each parameter, where it has one.
    inferred_types: Vec<Option<DataType>>,
    /// The columns the statement returns, if it returns rows.
    result_schema: Option<SchemaRef>,
    /// Set when the query is a feature point read, answered without the plan.
    point_read: Option<PointRead>,
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
        let Some(statement) = db.parser.parse_single(sql)? else { return Ok(None) };
        let Statement::Standard(syntax) = &statement else {
            let rows = matches!(statement, Statement::ShowFeatures);
            let schema =
                rows.then(|| crate::plan::SystemSchema::features(&db.catalog).map(|b| b.schema())).transpose()?;
            return Ok(Some(Prepared {
                statement,
                plan: None,
                param_types: vec![],
                inferred_types: vec![],
                result_schema: schema,
                point_read: None,
            }));
        };
        let (plan, inferred_types, result_schema) = match syntax.as_ref() {
            SqlStatement::Query(_) | SqlStatement::Explain { .. } => {
                let plan = db.plan_query(syntax).await?;
                let types = parameter_types(&plan)?;
                let schema = Arc::new(plan.schema().as_arrow().clone());
                (Some(plan), types, Some(schema))
            }
            SqlStatement::ShowVariable { variable } => {
                let name = variable.iter().map(ident_name).collect::<Vec<_>>().join(" ");
                (None, vec![], Some(Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))))
            }
            SqlStatement::Insert(_) => {
                // Planning the INSERT itself (never executed) types its placeholders from
                // the target columns.
                let state = db.ctx.state();
                let types = match state.statement_to_plan(DfStatement::Statement(syntax.clone())).await {
                    Ok(plan) => parameter_types(&plan).unwrap_or_default(),
                    Err(_) => vec![],
                };
                (None, types, None)
            }
            SqlStatement::Copy { .. } => {
                check_copy(db, syntax)?;
                (None, vec![], None)
            }
            _ => (None, vec![], None),
        };
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
        let point_read = plan.as_ref().and_then(PointRead::recognise);
        Ok(Some(Prepared { statement, plan, param_types, inferred_types, result_schema, point_read }))
    }
}

/// Placeholder types `$1..$n` of a plan, in order. DataFusion infers a type from comparisons
/// and INSERT targets. A placeholder it leaves untyped is typed as PostgreSQL would type it
/// from its use: by a cast (`$1::BIGINT`), or by the numeric literal it is computed with
/// (`$1 / 100.0`).
fn parameter_types(plan: &LogicalPlan) -> crate::error::Result<Vec<Option<DataType>>> {
    let by_name = plan.get_parameter_types()?;
    let count = by_name.keys().filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok()).max().unwrap_or(0);
    let mut from_use: HashMap<String, DataType> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Some((id, data_type)) = placeholder_type_from_use(e) {
                    from_use.entry(id).or_insert(data_type);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok((1..=count)
        .map(|i| {
            let id = format!("${i}");
            by_name.get(&id).cloned().flatten().or_else(|| from_use.get(&id).cloned())
        })
        .collect())
}

/// The type `expr` gives an untyped placeholder directly inside it, if any.
fn placeholder_type_from_use(expr: &Expr) -> Option<(String, DataType)> {
    let untyped = |e: &Expr| match e {
        Expr::Placeholder(p) if p.field.is_none() => Some(p.id.clone()),
        _ => None,
    };
    match expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            Some((untyped(expr)?, field.data_type().clone()))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if op.is_numerical_operators() => {
            let (id, other) = match (untyped(left), untyped(right)) {
                (Some(id), None) => (id, right),
                (None, Some(id)) => (id, left),
                _ => return None,
            };
            match other.as_ref() {
                Expr::Literal(value, _) if value.data_type().is_numeric() => Some((id, value.data_type())),
                _ => None,
            }
        }
        _ => None,
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
        match &stmt.result_schema {
            Some(schema) => arrow_schema_to_pg_fields(schema, column_format.unwrap_or(&Format::UnifiedText), None),
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
        let params = bound_parameters(portal, &prepared)?;
        let state = self.connection(client)?;
        let format = &portal.result_column_format;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let flag = {
            let mut conn = state.lock().await;
            conn.start_statement(prepared.plan.is_some() || prepared.statement.is_read_only());
            // The online-serving query is answered here, on the connection's thread.
            if let (Some(read), ParamValues::List(values)) = (&prepared.point_read, &params) {
                let values: Vec<_> = values.iter().map(|v| v.value.clone()).collect();
                if let Some(batch) = conn.session.prepared_point_read(read, &values).map_err(to_pgwire)? {
                    return Ok(Response::Query(encode_batch_rows(batch, format, options)?));
                }
            }
            conn.cancel.clone()
        };
        if let Some(plan) = &prepared.plan {
            let (plan, connection, cancel) = (plan.clone(), state.clone(), flag.clone());
            let query = async move {
                let plan = plan.replace_params_with_values(&params)?;
                let mut conn = connection.lock().await;
                let session = &mut conn.session;
                until_cancelled(&cancel, async {
                    Ok(match session.point_read(&plan)? {
                        Some(batch) => QueryOutput::Batch(batch),
                        None => QueryOutput::Frame(session.run_query(plan).await?),
                    })
                })
                .await
            };
            let rows = match self.executor.run(query).await.map_err(to_pgwire)? {
                QueryOutput::Batch(batch) => encode_batch_rows(batch, format, options)?,
                QueryOutput::Frame(frame) => encode_rows(&self.executor, frame, format, options, flag).await?,
            };
            return Ok(Response::Query(rows));
        }
        let mut statement = prepared.statement.clone();
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
                let known = statement.statement.plan.is_some() || count > 0;
                (Some(statement), known.then_some(count))
            }
            Some(Entry::Empty) => (None, Some(0)),
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        };
        if let Some(expected) = expected
            && message.parameters.len() != expected
        {
            return Err(to_pgwire(Error::invalid_input(
                "08P01",
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
fn bound_parameters(portal: &Portal<Arc<Prepared>>, prepared: &Prepared) -> PgWireResult<ParamValues> {
    if portal.parameter_len() == 0 {
        return Ok(ParamValues::List(vec![]));
    }
    let inferred: Vec<Option<&DataType>> = prepared.inferred_types.iter().map(|t| t.as_ref()).collect();
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
        let target = match prepared.inferred_types.get(i).cloned().flatten() {
            Some(t) => t,
            None if prepared.param_types[i] == Type::DATE => DataType::Date32,
            None => DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        };
        let text = value.value.clone();
        value.value = text.cast_to(&target).map_err(|_| {
            to_pgwire(Error::invalid_value(
                "22007",
                format!("invalid input syntax for type {}: \"{text}\" (parameter ${})", prepared.param_types[i], i + 1),
            ))
        })?;
    }
    Ok(ParamValues::List(values))
}
