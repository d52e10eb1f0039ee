//! Statement outputs as pgwire responses.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::types::format::FormatOptions;

use super::cancel::CancelFlag;
use super::copy_out::copy_out_response;
use super::encode::{encode_batch_rows, encode_rows};
use super::executor::Executor;
use crate::error::SqlState;
use crate::execute::Output;

/// Turns an output into the response pgwire sends; result rows are produced and encoded on
/// `executor`, TIMESTAMPTZ values shown in `zone` (the session's), and `cancel` ends them.
pub async fn to_response(
    output: Output,
    format: &Format,
    (zone, cancel): (Tz, Arc<CancelFlag>),
    client_metadata: &HashMap<String, String>,
    executor: &Executor,
) -> PgWireResult<Response> {
    let format_options = Arc::new(FormatOptions::from_client_metadata(client_metadata));
    Ok(match output {
        Output::Rows(frame) => {
            Response::Query(encode_rows(executor, frame, format, format_options, cancel, zone).await?)
        }
        Output::Batch(batch) => Response::Query(encode_batch_rows(batch, format, format_options, zone)?),
        Output::Fetched(batch) => {
            let mut rows = encode_batch_rows(batch, format, format_options, zone)?;
            rows.set_command_tag("FETCH");
            Response::Query(rows)
        }
        Output::Command { tag, rows } => {
            let mut t = Tag::new(tag);
            if tag == "INSERT" {
                t = t.with_oid(0);
            }
            if let Some(rows) = rows {
                t = t.with_rows(rows as usize);
            }
            Response::Execution(t)
        }
        Output::TransactionStarted => Response::TransactionStart(Tag::new("BEGIN")),
        Output::TransactionEnded { tag } => Response::TransactionEnd(Tag::new(tag)),
        // pgwire (vendor/README.md) takes a transaction start in the failed state as a resume.
        Output::TransactionResumed { tag } => Response::TransactionStart(Tag::new(tag)),
        Output::CopyIn { columns, binary } => {
            Response::CopyIn(CopyResponse::new(i8::from(binary), columns, futures::stream::empty()))
        }
        Output::CopyOut { format, data } => {
            Response::CopyOut(copy_out_response(executor, &format, data, format_options, cancel, zone).await?)
        }
    })
}

/// An error as an in-band response (simple protocol: the remaining statements are skipped).
pub fn error_response(error: PgWireError) -> Response {
    match error {
        PgWireError::UserError(info) => Response::Error(info),
        other => Response::Error(Box::new(ErrorInfo::new(
            "ERROR".into(),
            SqlState::InternalError.code().into(),
            other.to_string(),
        ))),
    }
}
