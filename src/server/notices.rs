//! NOTICE messages sent while a statement runs (CREATE FEATURE's backfill progress): the
//! session pushes them into a channel, and they are forwarded to the client as they come,
//! before the statement's CommandComplete.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::common::ParamValues;
use futures::{Sink, SinkExt};
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::NoticeResponse;
use tokio::sync::Mutex;

use super::cancel::CancelFlag;
use super::connection::{Connection, until_cancelled};
use super::executor::Executor;
use super::prepare::Prepared;
use crate::error::{Result, SqlState};
use crate::execute::Output;
use crate::sql::Statement;

/// What a connection's session is to run.
pub enum Run {
    /// A statement of a Query message.
    Statement(Statement),
    /// A prepared statement (extended protocol) with its bound parameters.
    Prepared(Arc<Prepared>, ParamValues),
}

/// Runs `run` on `executor`, sending its notices to `client` while it runs. With `cancel`, a
/// cancel request or timeout abandons it (`until_cancelled`). A prepared INSERT of one row of
/// literals runs here instead, on the connection's thread: it costs little besides waiting
/// for its commit, and two thread hand-offs per statement were a fifth of its cost
/// (docs/benchmarks.md, issue #24).
pub async fn execute_with_notices<C>(
    executor: &Executor,
    connection: &Arc<Mutex<Connection>>,
    run: Run,
    cancel: Option<Arc<CancelFlag>>,
    client: &mut C,
) -> Result<Output>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
{
    let (sender, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let connection = connection.clone();
    let here = matches!(&run, Run::Prepared(prepared, _) if prepared.statement.small_write);
    let work = async move {
        let mut connection = connection.lock().await;
        let session = &mut connection.session;
        let execution = async {
            match &run {
                Run::Statement(statement) => session.execute_reporting(statement, sender).await,
                Run::Prepared(prepared, params) => session.execute_prepared(&prepared.statement, params, sender).await,
            }
        };
        match cancel {
            Some(flag) => until_cancelled(&flag, execution).await,
            None => execution.await,
        }
    };
    let execution = async move { if here { work.await } else { executor.run(work).await } };
    tokio::pin!(execution);
    let outcome = loop {
        tokio::select! {
            outcome = &mut execution => break outcome,
            Some(message) = notices.recv() => send(client, message).await,
        }
    };
    while let Ok(message) = notices.try_recv() {
        send(client, message).await;
    }
    outcome
}

async fn send<C>(client: &mut C, message: String)
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
{
    let notice =
        NoticeResponse::from(ErrorInfo::new("NOTICE".into(), SqlState::SuccessfulCompletion.code().into(), message));
    // A client that went away cannot be told; the statement still completes.
    if let Err(e) = client.send(PgWireBackendMessage::NoticeResponse(notice)).await {
        tracing::debug!(?e, "could not send a notice");
    }
}
