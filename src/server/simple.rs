//! The simple query protocol: one Query message, any number of statements.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::errors::to_pgwire;
use super::handlers::QueryHandler;
use super::notices::execute_with_notices;
use super::results::{error_response, to_response};

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
        tracing::debug!(query, "simple query");
        let statements = match self.db.parser.parse_many(query) {
            Ok(statements) => statements,
            Err(e) => {
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
        for statement in statements {
            // As PostgreSQL, the timeout applies to each statement of the string separately.
            let read_only = statement.is_read_only();
            let cancel = {
                let mut conn = state.lock().await;
                conn.start_statement(read_only);
                read_only.then(|| conn.cancel.clone())
            };
            let executed = execute_with_notices(&self.executor, &state, statement, cancel, client).await;
            let mut conn = state.lock().await;
            if executed.is_err() {
                // A cancelled or timed-out statement never reached the session's own error
                // handling; its transaction is aborted all the same.
                conn.session.abort_transaction();
            }
            let response = match executed {
                Ok(output) => {
                    to_response(output, &Format::UnifiedText, &mut conn, client.metadata(), &self.executor).await
                }
                Err(e) => Err(to_pgwire(e)),
            };
            match response {
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
