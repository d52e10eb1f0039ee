//! SQL cursors (`DECLARE CURSOR`, `FETCH`, `CLOSE`): a query's rows read a few at a time,
//! as psycopg's named cursors, SQLAlchemy's `stream_results` and Ibis read large results.
//!
//! A cursor streams its plan: rows are computed as FETCH asks for them, never all at once.
//! Cursors move forward only (FETCH NEXT, FETCH n, FETCH FORWARD n | ALL); the others are 0A000.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use sqlparser::ast::FetchDirection;

use crate::error::{Error, Result, SqlState};
use crate::plan::{CursorRow, OpenCursors};

/// One open cursor.
struct Cursor {
    /// In a mutex only to make the session `Sync`; reached through `get_mut`, never locked.
    stream: std::sync::Mutex<SendableRecordBatchStream>,
    /// Rows read from the stream and not fetched yet.
    buffered: Option<RecordBatch>,
    /// WITH HOLD: it outlives the transaction that declared it.
    hold: bool,
    /// Declared in the open transaction: a ROLLBACK closes it even WITH HOLD.
    in_transaction: bool,
    /// The stream has ended: it is not polled again (some of DataFusion's streams panic).
    exhausted: bool,
    /// A FETCH failed or was cancelled part way: rows may have been lost, so the cursor can
    /// only be closed (55000), as PostgreSQL fails such a portal.
    failed: bool,
    binary: bool,
    schema: SchemaRef,
    /// Its place in the order of the session's DECLAREs (`Cursors::mark`).
    number: u64,
    /// The DECLARE statement, and when it ran (µs since 1970), for `pg_cursors`.
    statement: String,
    declared_at: i64,
}

/// The cursors of one session, by name.
#[derive(Default)]
pub struct Cursors {
    open: HashMap<String, Cursor>,
    /// `open` as `pg_cursors` lists it, rebuilt when a cursor opens or closes: every statement
    /// of the session takes it (`Session::reads`), INSERTs too, so it is not rebuilt for each.
    listed: Arc<OpenCursors>,
    /// The number the next DECLARE gets.
    declared: u64,
}

impl Cursors {
    /// Opens cursor `name` over `stream`; a name in use is 42P03. `in_transaction`: declared
    /// inside a transaction block.
    pub fn declare(
        &mut self,
        name: String,
        statement: String,
        stream: SendableRecordBatchStream,
        (hold, binary, in_transaction): (bool, bool, bool),
    ) -> Result<()> {
        if self.open.contains_key(&name) {
            return Err(Error::Conflict {
                sqlstate: SqlState::DuplicateCursor,
                message: format!("cursor \"{name}\" already exists"),
            });
        }
        self.open.insert(
            name,
            Cursor {
                schema: stream.schema(),
                stream: std::sync::Mutex::new(stream),
                buffered: None,
                hold,
                in_transaction,
                exhausted: false,
                failed: false,
                binary,
                number: self.declared,
                statement,
                declared_at: chrono::Utc::now().timestamp_micros(),
            },
        );
        self.declared += 1;
        self.relist();
        Ok(())
    }

    /// The open cursors as `pg_cursors` shows them.
    pub fn rows(&self) -> Arc<OpenCursors> {
        self.listed.clone()
    }

    fn relist(&mut self) {
        let rows = self.open.iter().map(|(name, c)| CursorRow {
            name: name.clone(),
            statement: c.statement.clone(),
            is_holdable: c.hold,
            is_binary: c.binary,
            creation_time: c.declared_at,
        });
        self.listed = Arc::new(OpenCursors(rows.collect()));
    }

    /// The columns of cursor `name` and whether it is BINARY, for Describe Portal.
    pub fn describe(&self, name: &str) -> Option<(SchemaRef, bool)> {
        self.open.get(name).map(|c| (c.schema.clone(), c.binary))
    }

    /// The next rows of cursor `name`, as many as `direction` asks (fewer at the end).
    pub async fn fetch(&mut self, name: &str, direction: &FetchDirection) -> Result<RecordBatch> {
        let count = forward_count(direction)?;
        let cursor = self.open.get_mut(name).ok_or_else(|| missing(name))?;
        if cursor.failed {
            return Err(Error::invalid_input(
                SqlState::ObjectNotInPrerequisiteState,
                format!("cursor \"{name}\" cannot be fetched from: an earlier FETCH failed or was cancelled"),
            ));
        }
        // Cleared only when this FETCH returns its rows: an error or a cancel (this future
        // dropped) leaves it set.
        cursor.failed = true;
        let schema = cursor.schema.clone();
        let stream = cursor.stream.get_mut().map_err(|_| Error::internal("cursor stream poisoned"))?;
        let mut taken: Vec<RecordBatch> = Vec::new();
        let mut rows = 0usize;
        while count.is_none_or(|n| rows < n) {
            let batch = match cursor.buffered.take() {
                Some(batch) => batch,
                None if cursor.exhausted => break,
                None => match stream.next().await {
                    Some(batch) => batch?,
                    None => {
                        cursor.exhausted = true;
                        break;
                    }
                },
            };
            let wanted = count.map_or(batch.num_rows(), |n| n - rows);
            if batch.num_rows() > wanted {
                cursor.buffered = Some(batch.slice(wanted, batch.num_rows() - wanted));
                taken.push(batch.slice(0, wanted));
                rows += wanted;
            } else {
                rows += batch.num_rows();
                taken.push(batch);
            }
        }
        let rows = arrow::compute::concat_batches(&schema, &taken)?;
        cursor.failed = false;
        Ok(rows)
    }

    /// CLOSE name (34000 if there is none) or CLOSE ALL (`None`).
    pub fn close(&mut self, name: Option<&str>) -> Result<()> {
        match name {
            None => self.open.clear(),
            Some(name) => {
                self.open.remove(name).ok_or_else(|| missing(name))?;
            }
        }
        self.relist();
        Ok(())
    }

    /// A mark between the cursors declared so far and those declared after (a savepoint's).
    pub fn mark(&self) -> u64 {
        self.declared
    }

    /// ROLLBACK TO a savepoint set at `mark`: the cursors declared since close.
    pub fn close_declared_since(&mut self, mark: u64) {
        let before = self.open.len();
        self.open.retain(|_, c| c.number < mark);
        if self.open.len() != before {
            self.relist();
        }
    }

    /// The transaction ended: cursors without HOLD close, and at a rollback so do those it
    /// declared.
    pub fn end_transaction(&mut self, committed: bool) {
        let before = self.open.len();
        self.open.retain(|_, c| c.hold && (committed || !c.in_transaction));
        for cursor in self.open.values_mut() {
            cursor.in_transaction = false;
        }
        if self.open.len() != before {
            self.relist();
        }
    }
}

fn missing(name: &str) -> Error {
    Error::NotFound { sqlstate: SqlState::InvalidCursorName, message: format!("cursor \"{name}\" does not exist") }
}

/// How many rows a forward FETCH takes (`None`: all that are left).
fn forward_count(direction: &FetchDirection) -> Result<Option<usize>> {
    let number = |limit: &sqlparser::ast::ValueWithSpan| -> Result<usize> {
        let text = limit.to_string();
        match text.parse::<usize>() {
            Ok(0) | Err(_) => {
                Err(Error::unsupported(format!("FETCH {text}: cursors here move forward only, by a positive count")))
            }
            Ok(n) => Ok(n),
        }
    };
    match direction {
        FetchDirection::Next => Ok(Some(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => number(limit).map(Some),
        FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        other => Err(Error::unsupported(format!(
            "FETCH {other}: cursors here move forward only (NEXT, a count, FORWARD, ALL)"
        ))),
    }
}
