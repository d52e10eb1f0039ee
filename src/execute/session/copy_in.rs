//! COPY FROM: the data arrives in pieces and is decoded and written as it comes.
//!
//! Outside a transaction, once the data passes one chunk it is staged in storage chunk by
//! chunk (`storage::StagedWrite`) and committed at the end as one atomic, durable statement,
//! so a COPY of any size holds about one chunk in memory. A COPY that fits in one chunk, or
//! one inside a transaction (whose rows commit with it), goes the ordinary way. Bad data
//! anywhere rejects the whole statement: staged rows are deleted and nothing is written.

use std::io::Read;
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::{Session, Transaction};
use crate::catalog::TableDef;
use crate::error::{Error, Result, SqlState};
use crate::execute::copy_format::{CopyFormat, Position};
use crate::execute::copy_rows::decode_rows;
use crate::execute::database::Write;
use crate::storage::{Append, StagedWrite};

/// A COPY protocol message that came with no COPY FROM STDIN in progress.
fn outside_copy(message: &str) -> Error {
    Error::invalid_input(SqlState::ProtocolViolation, format!("{message} received outside of COPY FROM STDIN"))
}

/// A COPY FROM in progress.
pub struct CopyIn {
    def: Arc<TableDef>,
    /// Table column index of each column in the data, in data order.
    targets: Vec<usize>,
    pub(super) format: CopyFormat,
    /// Data received and not decoded yet (at most a chunk and a record).
    buffer: Vec<u8>,
    position: Position,
    /// Rows decoded but not staged (the single-chunk and in-transaction cases).
    batches: Vec<RecordBatch>,
    staged: Option<StagedWrite>,
    /// The first error: the rest of the data is ignored, and the statement fails with it.
    failed: Option<Error>,
}

impl CopyIn {
    pub(super) fn new(def: Arc<TableDef>, targets: Vec<usize>, format: CopyFormat) -> Self {
        Self {
            def,
            targets,
            format,
            buffer: Vec::new(),
            position: Position::default(),
            batches: Vec::new(),
            staged: None,
            failed: None,
        }
    }

    pub(super) fn column_count(&self) -> usize {
        self.targets.len()
    }

    /// Whether a chunk of data (`chunk_bytes`) waits to be decoded.
    fn holds_chunk(&self, chunk_bytes: usize) -> bool {
        self.failed.is_none() && self.buffer.len() >= chunk_bytes
    }

    /// Buffers the next piece of data; it is decoded a chunk at a time (`Session::copy_in_decode`).
    fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(data);
        }
    }
}

impl Session {
    /// Takes the next piece of data of the COPY FROM STDIN in progress; true when a chunk is
    /// ready for [`Session::copy_decode`] (which callers run where decoding may take time).
    pub fn copy_data(&mut self, data: &[u8]) -> Result<bool> {
        let chunk_bytes = self.db.copy_chunk_bytes;
        let copy = self.copy_in.as_mut().ok_or_else(|| outside_copy("CopyData"))?;
        copy.push(data);
        Ok(copy.holds_chunk(chunk_bytes))
    }

    /// Decodes and stages the chunk of data the COPY in progress holds.
    pub fn copy_decode(&mut self) {
        if let Some(mut copy) = self.copy_in.take() {
            self.copy_in_decode(&mut copy);
            self.copy_in = Some(copy);
        }
    }

    /// Ends the data of the COPY FROM STDIN in progress: writes its rows in one atomic
    /// statement; returns how many.
    pub async fn copy_done(&mut self) -> Result<u64> {
        let copy = self.copy_in.take().ok_or_else(|| outside_copy("CopyDone"))?;
        let outcome = self.finish(copy).await;
        self.abort_on_error(outcome)
    }

    /// The client gave up the COPY FROM STDIN in progress: nothing of it is written.
    pub fn copy_fail(&mut self) {
        self.copy_in = None;
    }

    /// Takes the next piece of COPY data.
    fn copy_in_data(&mut self, copy: &mut CopyIn, data: &[u8]) {
        copy.push(data);
        if copy.holds_chunk(self.db.copy_chunk_bytes) {
            self.copy_in_decode(copy);
        }
    }

    /// Decodes and stages the data `copy` holds.
    fn copy_in_decode(&mut self, copy: &mut CopyIn) {
        if copy.failed.is_none()
            && let Err(e) = self.decode_buffer(copy, false)
        {
            // Dropping the staged write deletes what it wrote.
            copy.staged = None;
            copy.batches.clear();
            copy.buffer = Vec::new();
            copy.failed = Some(e);
        }
    }

    async fn finish(&mut self, mut copy: CopyIn) -> Result<u64> {
        if let Some(e) = copy.failed.take() {
            return Err(e);
        }
        self.decode_buffer(&mut copy, true)?;
        let Some(staged) = copy.staged.take() else {
            let rows = copy.batches.iter().map(|b| b.num_rows() as u64).sum();
            let (table_id, event_time) = (copy.def.id, copy.def.event_time);
            let appends = copy.batches.into_iter().map(|batch| Append { table_id, event_time, batch }).collect();
            self.write(appends).await?;
            return Ok(rows);
        };
        let rows = staged.rows();
        self.db.commit(Write::Staged { staged }).await?;
        Ok(rows)
    }

    /// COPY FROM a server-side file, read a chunk at a time.
    pub(super) async fn copy_from_file(&mut self, mut copy: CopyIn, filename: &str) -> Result<u64> {
        let open_error = |e: std::io::Error| Error::NotFound {
            sqlstate: SqlState::UndefinedFile,
            message: format!("could not open file \"{filename}\" for reading: {e}"),
        };
        let mut file = std::fs::File::open(filename).map_err(open_error)?;
        let mut chunk = vec![0u8; self.db.copy_chunk_bytes];
        loop {
            let n = file.read(&mut chunk).map_err(open_error)?;
            if n == 0 {
                break;
            }
            self.copy_in_data(&mut copy, &chunk[..n]);
        }
        self.finish(copy).await
    }

    /// Decodes the complete records in the buffer (all of it when `last`) and stages them, or
    /// keeps them for the end when the statement will not need staging.
    fn decode_buffer(&mut self, copy: &mut CopyIn, last: bool) -> Result<()> {
        let (batch, consumed) = decode_rows(
            &copy.def,
            &copy.targets,
            &copy.format,
            &mut copy.position,
            &copy.buffer,
            last,
            self.settings.zone(),
        )?;
        copy.buffer.drain(..consumed);
        let in_transaction = !matches!(self.transaction, Transaction::None);
        if in_transaction || (last && copy.staged.is_none()) {
            copy.batches.push(batch);
            return Ok(());
        }
        // Staged rows are checked as they come (the others by `write`).
        self.db.features.check(copy.def.id, &batch)?;
        for earlier in &copy.batches {
            self.db.features.check(copy.def.id, earlier)?;
        }
        let staged = copy
            .staged
            .get_or_insert_with(|| StagedWrite::new(self.db.catalog.store(), copy.def.id, copy.def.event_time));
        for batch in copy.batches.drain(..) {
            staged.add(&batch)?;
        }
        staged.add(&batch)
    }
}
