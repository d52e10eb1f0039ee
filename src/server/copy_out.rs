//! COPY TO STDOUT: a result streamed as COPY data in text, CSV or binary format.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_pg::encoder::encode_value;
use bytes::{Bytes, BytesMut};
use datafusion::dataframe::DataFrame;
use futures::StreamExt;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyCsvOptions, CopyEncoder, CopyResponse, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::types::format::FormatOptions;

use super::binary_tuples;
use super::cancel::CancelFlag;
use super::copy_frames::Buffers;
use super::encode::{encode_with, pg_fields, start, zoned_as_text};
use super::errors::to_pgwire;
use super::executor::Executor;
use super::pg_text::PgText;
use super::text_tuples::{self, TextLayout};
use crate::execute::copy_format::CopyFormat;

/// Streams `frame` as COPY data in text, CSV or binary format, one CopyData message per row,
/// run and encoded on `executor`. TIMESTAMPTZ values are shown in `zone`, the session's time
/// zone (text and CSV).
pub async fn copy_out_response(
    executor: &Executor,
    format: &CopyFormat,
    frame: DataFrame,
    format_options: Arc<FormatOptions>,
    cancel: Arc<CancelFlag>,
    zone: arrow::array::timezone::Tz,
) -> PgWireResult<CopyResponse> {
    if format.binary {
        return copy_out_binary(executor, frame, format_options, cancel, zone).await;
    }
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let fields = Arc::new(pg_fields(&schema, &Format::UnifiedText, Some(format_options))?);
    let columns = fields.len();
    let mut encoder = PgText(new_encoder(format, fields.clone()));
    let layout = TextLayout::new(format, columns);
    let names = schema.fields().iter().map(|f| crate::sql::output_names::client_name(f.name()));
    // The header goes with the first row, or alone at the end when there is none.
    let header = Arc::new(std::sync::Mutex::new(format.header.then(|| layout.header(names))));
    let unsent = header.clone();
    // The common types are written column by column (`text_tuples`), batch by batch.
    let fast = text_tuples::supported(&schema, &fields);
    let mut buffers = Buffers::default();
    let batches = start(executor, frame).await?;
    let batches = cancel.guard(batches.map(|b| b.map_err(|e| to_pgwire(e.into()))));
    let data = executor.stream(batches.map(move |batch| -> Vec<PgWireResult<CopyData>> {
        let mut header = header.lock().unwrap_or_else(|e| e.into_inner());
        match batch {
            Ok(batch) => {
                let batch = zoned_as_text(&batch, &fields, &zone);
                if fast && let Some(rows) = text_tuples::framed_rows(&batch, &layout, &mut header, &mut buffers) {
                    return rows.into_iter().map(Ok).collect();
                }
                encode_rows(&mut encoder, &batch, &fields, &mut header)
            }
            Err(e) => vec![Err(e)],
        }
    }));
    let header_if_empty = futures::stream::once(async move {
        let header = unsent.lock().unwrap_or_else(|e| e.into_inner()).take();
        header.map(|h| Ok(CopyData::not_a_row(h)))
    })
    .filter_map(futures::future::ready);
    Ok(CopyResponse::new(0, columns, data.flat_map(futures::stream::iter).chain(header_if_empty)))
}

/// PostgreSQL's binary COPY format: the header (sent with the first tuple, or alone when there
/// is none), one tuple per row with each value in its type's binary send format, the trailer
/// (added by pgwire). Values are encoded as binary result columns are.
async fn copy_out_binary(
    executor: &Executor,
    frame: DataFrame,
    format_options: Arc<FormatOptions>,
    cancel: Arc<CancelFlag>,
    zone: arrow::array::timezone::Tz,
) -> PgWireResult<CopyResponse> {
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let fields = Arc::new(pg_fields(&schema, &Format::UnifiedBinary, Some(format_options))?);
    let columns = fields.len();
    let mut encoder = PgText(CopyEncoder::new_binary(fields.clone()));
    let batches = start(executor, frame).await?;
    let batches = cancel.guard(batches.map(|b| b.map_err(|e| to_pgwire(e.into()))));
    let sent_rows = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = sent_rows.clone();
    // The common types are written column by column (`binary_tuples`), all batches alike.
    let fast = binary_tuples::supported(&schema);
    let mut buffers = Buffers::default();
    let data = executor.stream(batches.map(move |batch| -> Vec<PgWireResult<CopyData>> {
        match batch {
            Ok(batch) if batch.num_rows() > 0 => {
                let first = !sent.swap(true, std::sync::atomic::Ordering::Relaxed);
                if fast
                    && let Some(tuples) =
                        binary_tuples::framed_tuples(&batch, first.then_some(BINARY_HEADER), &mut buffers)
                {
                    return tuples.into_iter().map(Ok).collect();
                }
                encode_with(&mut encoder, &batch, &fields, &zone)
            }
            Ok(_) => Vec::new(),
            Err(e) => vec![Err(e)],
        }
    }));
    // Without a tuple, the header goes alone (not counted as a row).
    let header_if_empty = futures::stream::once(async move {
        let empty = !sent_rows.load(std::sync::atomic::Ordering::Relaxed);
        empty.then(|| Ok(CopyData::not_a_row(Bytes::from_static(BINARY_HEADER))))
    })
    .filter_map(futures::future::ready);
    Ok(CopyResponse::new(1, columns, data.flat_map(futures::stream::iter).chain(header_if_empty)))
}

/// Signature, flags (no OIDs) and an empty header extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

fn new_encoder(format: &CopyFormat, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
    let delimiter = (format.delimiter as char).to_string();
    if format.csv {
        CopyEncoder::new_csv(
            fields,
            CopyCsvOptions {
                delimiter: delimiter.into(),
                quote: (format.quote as char).to_string().into(),
                escape: (format.escape as char).to_string().into(),
                null_string: format.null.clone().into(),
                force_quote: vec![],
            },
        )
    } else {
        CopyEncoder::new_text(
            fields,
            pgwire::api::results::CopyTextOptions {
                delimiter: delimiter.into(),
                null_string: format.null.clone().into(),
            },
        )
    }
}

/// Encodes every row of `batch`; the header, if still pending, is prepended to the first row
/// so that pgwire's row count (one per CopyData) stays exact.
fn encode_rows(
    encoder: &mut PgText<CopyEncoder>,
    batch: &RecordBatch,
    fields: &[FieldInfo],
    header: &mut Option<Bytes>,
) -> Vec<PgWireResult<CopyData>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (i, column) in batch.columns().iter().enumerate() {
            if let Err(e) = encode_value(encoder, column, row, schema.field(i), &fields[i]) {
                out.push(Err(e));
                return out;
            }
        }
        let data = encoder.0.take_copy();
        out.push(Ok(match header.take() {
            Some(h) => {
                let mut joined = BytesMut::from(h.as_ref());
                joined.extend_from_slice(&data.data);
                CopyData::new(joined.freeze())
            }
            None => data,
        }));
    }
    out
}
