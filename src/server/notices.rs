//! NOTICE messages sent while a statement runs (CREATE FEATURE's backfill progress): the
//! session pushes them into a channel, and they are forwarded to the client as they come,
//! before the statement's CommandComplete.

use std::fmt::Debug;

use futures::{Sink, SinkExt};
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::NoticeResponse;

use crate::error::Result;
use crate::execute::{Output, Session};
use crate::sql::Statement;

/// Runs `statement`, sending its notices to `client` while it runs.
pub async fn execute_with_notices<C>(session: &mut Session, statement: &Statement, client: &mut C) -> Result<Output>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
{
    let (sender, mut notices) = tokio::sync::mpsc::unbounded_channel();
    session.notices = Some(sender);
    let outcome = {
        let execution = session.execute(statement);
        tokio::pin!(execution);
        loop {
            tokio::select! {
                outcome = &mut execution => break outcome,
                Some(message) = notices.recv() => send(client, message).await,
            }
        }
    };
    session.notices = None;
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
    let notice = NoticeResponse::from(ErrorInfo::new("NOTICE".into(), "00000".into(), message));
    // A client that went away cannot be told; the statement still completes.
    if let Err(e) = client.send(PgWireBackendMessage::NoticeResponse(notice)).await {
        tracing::debug!(?e, "could not send a notice");
    }
}
