//! An open transaction block: its pending writes, its savepoints, and whether an error aborted it.
//!
//! Writes are kept in order; a savepoint remembers how many there were when it was set, so
//! `ROLLBACK TO` truncates back to that count and `RELEASE` only forgets the mark. This is
//! PostgreSQL's behaviour for an append-only store: nothing reaches storage before COMMIT.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result, SqlState};
use crate::storage::Append;

pub struct OpenTransaction {
    /// When BEGIN ran: `now()` for every statement of the block.
    started: DateTime<Utc>,
    pending: Vec<Append>,
    /// (name, writes pending when it was set, the session's cursor mark then), oldest first.
    /// Names may repeat: the latest wins.
    savepoints: Vec<(String, usize, u64)>,
    /// An error aborted the transaction: only ROLLBACK, COMMIT (which rolls back) and
    /// ROLLBACK TO a savepoint are accepted (25P02).
    failed: bool,
}

impl OpenTransaction {
    pub fn begin() -> Self {
        Self { started: Utc::now(), pending: Vec::new(), savepoints: Vec::new(), failed: false }
    }

    pub fn started(&self) -> DateTime<Utc> {
        self.started
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    pub fn fail(&mut self) {
        self.failed = true;
    }

    pub fn add(&mut self, appends: Vec<Append>) {
        self.pending.extend(appends);
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The writes to commit, in the order they were made.
    pub fn into_pending(self) -> Vec<Append> {
        self.pending
    }

    /// The pending rows by table id, for the transaction's own reads.
    pub fn pending_by_table(&self) -> HashMap<u64, Vec<RecordBatch>> {
        let mut tables: HashMap<u64, Vec<RecordBatch>> = HashMap::new();
        for append in self.pending.iter().filter(|a| a.batch.num_rows() > 0) {
            tables.entry(append.table_id).or_default().push(append.batch.clone());
        }
        tables
    }

    /// `SAVEPOINT name`; `cursor_mark` tells the cursors declared after it
    /// (`Cursors::mark`).
    pub fn savepoint(&mut self, name: String, cursor_mark: u64) -> Result<()> {
        if self.failed {
            return Err(Error::TransactionAborted);
        }
        self.savepoints.push((name, self.pending.len(), cursor_mark));
        Ok(())
    }

    /// `RELEASE [SAVEPOINT] name`: forgets it and every savepoint set after it; keeps the writes.
    pub fn release(&mut self, name: &str) -> Result<()> {
        if self.failed {
            return Err(Error::TransactionAborted);
        }
        let at = self.find(name)?;
        self.savepoints.truncate(at);
        Ok(())
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: undoes the writes made after it, forgets the savepoints
    /// set after it (it stays), and clears the aborted state. Returns the cursor mark it was
    /// set at: the cursors declared since close, as in PostgreSQL.
    pub fn rollback_to(&mut self, name: &str) -> Result<u64> {
        let at = self.find(name)?;
        let (_, writes, cursor_mark) = self.savepoints[at];
        self.pending.truncate(writes);
        self.savepoints.truncate(at + 1);
        self.failed = false;
        Ok(cursor_mark)
    }

    /// The latest savepoint of that name.
    fn find(&self, name: &str) -> Result<usize> {
        self.savepoints.iter().rposition(|(n, _, _)| n == name).ok_or_else(|| {
            Error::invalid_input(
                SqlState::InvalidSavepointSpecification,
                format!("savepoint \"{name}\" does not exist"),
            )
        })
    }
}
