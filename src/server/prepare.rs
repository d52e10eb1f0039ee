//! The extended protocol's statements: prepared at Parse (planned once), their parameter
//! types, and Bind values decoded with them.
//!
//! Queries are planned by DataFusion at Parse (`execute::PreparedStatement`, which plans them
//! again at Execute after DDL) and their parameters substituted into the plan at Execute. Other statements (INSERT, COPY, DDL) are kept as syntax; their parameters are
//! bound as literals and they run through the same path as the simple protocol. Parameter
//! types come from the client when it declares them, else from DataFusion's inference (for an
//! INSERT, the target columns' types).

use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use arrow_pg::datatypes::into_pg_type;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;

use super::encode::pg_fields;
use super::errors::to_pgwire;
use super::executor::Executor;
use crate::error::{Error, SqlState};
use crate::execute::{Database, PreparedStatement};

/// A prepared statement as the extended protocol keeps it between Parse and Execute.
pub struct Prepared {
    pub statement: PreparedStatement,
    /// Wire types announced in ParameterDescription and used to decode Bind values.
    pub param_types: Vec<Type>,
    /// The statement's text, for the slow-statement log.
    pub text: Arc<str>,
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
        Ok(Some(Prepared { statement, param_types, text: sql.into() }))
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
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(sql = crate::sql::role::redact_passwords(sql), "parse");
        }
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

/// Decodes the Bind message's values with the announced types.
///
/// pgwire reads a text timestamp only in its full form (`2025-12-04 16:50:00`), where
/// PostgreSQL also takes a date alone or minutes without seconds. A text-format timestamp or
/// date parameter the client left untyped is therefore decoded as text and cast here, with
/// the same rules as a literal.
/// Text parameters for TIMESTAMPTZ are read in `zone`, the session's time zone.
pub fn bound_parameters(
    portal: &Portal<Arc<Prepared>>,
    prepared: &Prepared,
    zone: &crate::value::time_zone::SessionZone,
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
                crate::value::time_zone::parse_instant(t, &zone.tz())
                    .map(|v| {
                        let instant = datafusion::scalar::ScalarValue::TimestampMicrosecond(
                            Some(v),
                            Some(crate::value::time_zone::UTC_TAG.into()),
                        );
                        instant.cast_to(&target)
                    })
                    .unwrap_or_else(|| text.cast_to(&target))
            }
            (
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
                datafusion::scalar::ScalarValue::Utf8(Some(t)),
            ) if crate::value::infinite::infinite_micros(t).is_some() => Ok(
                datafusion::scalar::ScalarValue::TimestampMicrosecond(crate::value::infinite::infinite_micros(t), None),
            ),
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
