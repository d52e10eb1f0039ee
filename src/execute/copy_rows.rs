//! One chunk of COPY FROM data to rows of the table: the text, CSV or binary decoder, then
//! the conversion to column types. Pure (no storage), so the COPY fuzz target runs exactly
//! what a COPY statement runs.

use arrow::array::{ArrayRef, RecordBatch};

use crate::catalog::TableDef;
use crate::error::Result;
use crate::execute::conform::{RowLabel, conform};
use crate::execute::copy_binary;
use crate::execute::copy_format::{CopyFormat, Position, decode_chunk};
use crate::value::time_zone::SessionZone;

/// Decodes the complete records at the start of `data` (all of it if `last`) into a batch of
/// `def`'s schema; `targets` are the table column indices of the data's columns, in data
/// order. Returns the batch and the number of bytes it took; `position` carries the stream's
/// line count and header/trailer state to the next chunk. Text is read in `zone`, the
/// session's time zone.
pub fn decode_rows(
    def: &TableDef,
    targets: &[usize],
    format: &CopyFormat,
    position: &mut Position,
    data: &[u8],
    last: bool,
    zone: &SessionZone,
) -> Result<(RecordBatch, usize)> {
    let (decoded, consumed) = if format.binary {
        let types: Vec<_> = targets.iter().map(|i| def.columns[*i].ty).collect();
        copy_binary::decode_chunk(data, &types, position, last)?
    } else {
        let names: Vec<String> = targets.iter().map(|i| def.columns[*i].name.clone()).collect();
        decode_chunk(data, format, &names, position, last)?
    };
    let rows = decoded.lines.len();
    let mut columns: Vec<Option<ArrayRef>> = vec![None; def.columns.len()];
    for (column, target) in decoded.columns.into_iter().zip(targets) {
        columns[*target] = Some(column);
    }
    let batch = conform(def, columns, rows, RowLabel::Lines(&decoded.lines), zone)?;
    Ok((batch, consumed))
}
