//! A source's batch: the messages read since its last commit, as text columns of the target
//! table, and at commit the rows they make. A message whose row does not conform to the table
//! (a wrong type, an out-of-range number, a NULL event time) or fails a feature's check
//! becomes a bad message; the others are stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;

use super::payload::TextRow;
use crate::catalog::{SourceError, TableDef, lsn_text};
use crate::error::Result;
use crate::execute::conform::{RowLabel, conform};
use crate::value::time_zone::SessionZone;

/// Where a message was read: a Kafka partition and offset, an upstream PostgreSQL's WAL, or
/// a row of its initial snapshot.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    Kafka { partition: i32, offset: i64 },
    Wal(u64),
    Snapshot(usize),
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Point::Kafka { partition, offset } => write!(f, "partition {partition} offset {offset}"),
            Point::Wal(lsn) => write!(f, "LSN {}", lsn_text(*lsn)),
            Point::Snapshot(row) => write!(f, "snapshot row {row}"),
        }
    }
}

/// Messages read and not yet committed.
pub struct PendingBatch {
    /// The table columns the text columns fill, in order.
    targets: Vec<usize>,
    builders: Vec<StringBuilder>,
    /// Each row's message timestamp, when the table has an ingest-time column.
    ingest_times: Option<Vec<Option<i64>>>,
    /// Each row's message, an index into `messages`.
    row_message: Vec<usize>,
    messages: Vec<(Point, Vec<u8>)>,
    /// The bad messages found so far.
    pub errors: Vec<SourceError>,
    /// Kafka: per partition, the offset after the last message read.
    pub next_offsets: BTreeMap<i32, i64>,
    /// When its first message was read.
    pub started: Option<Instant>,
}

/// The committed form of a batch: its rows and its bad messages.
pub struct Finished {
    pub rows: Option<RecordBatch>,
    pub errors: Vec<SourceError>,
}

/// A bad message's row of `asofdb.source_errors`; payloads are kept up to 64 KiB.
fn bad_message(point: Point, payload: &[u8], reason: String) -> SourceError {
    let kept = &payload[..payload.len().min(64 << 10)];
    SourceError {
        at: chrono::Utc::now().timestamp_micros(),
        position: point.to_string(),
        payload: String::from_utf8_lossy(kept).into(),
        reason,
    }
}

impl PendingBatch {
    pub fn new(def: &TableDef, targets: Vec<usize>) -> Self {
        PendingBatch {
            builders: targets.iter().map(|_| StringBuilder::new()).collect(),
            targets,
            ingest_times: def.ingest_time.map(|_| Vec::new()),
            row_message: Vec::new(),
            messages: Vec::new(),
            errors: Vec::new(),
            next_offsets: BTreeMap::new(),
            started: None,
        }
    }

    /// Messages read (good and bad).
    pub fn len(&self) -> usize {
        self.messages.len() + self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one message: its rows, or the reason it has none.
    pub fn push(
        &mut self,
        point: Point,
        payload: Option<&[u8]>,
        timestamp: Option<i64>,
        rows: Result<Vec<TextRow>, String>,
    ) {
        self.started.get_or_insert_with(Instant::now);
        if let Point::Kafka { partition, offset } = point {
            self.next_offsets.insert(partition, offset + 1);
        }
        let payload = payload.unwrap_or_default();
        let rows = match rows {
            Ok(rows) => rows,
            Err(reason) => return self.errors.push(bad_message(point, payload, reason)),
        };
        let message = self.messages.len();
        self.messages.push((point, payload.to_vec()));
        for row in rows {
            for (builder, field) in self.builders.iter_mut().zip(row) {
                builder.append_option(field);
            }
            if let Some(times) = &mut self.ingest_times {
                times.push(timestamp);
            }
            self.row_message.push(message);
        }
    }

    /// The batch's rows as the table's rows. `check` is the features' check of rows
    /// (`FeatureEngine::check`). Bad data (SQLSTATE class 22 or 23) sets the offending
    /// messages aside one by one; any other error is the caller's, and nothing is set aside.
    pub fn finish(mut self, def: &TableDef, check: &dyn Fn(&RecordBatch) -> Result<()>) -> Result<Finished> {
        let rows = self.row_message.len();
        if rows == 0 {
            return Ok(Finished { rows: None, errors: self.errors });
        }
        let mut columns: Vec<Option<ArrayRef>> = vec![None; def.columns.len()];
        for (target, builder) in self.targets.iter().zip(&mut self.builders) {
            columns[*target] = Some(Arc::new(builder.finish()));
        }
        if let (Some(times), Some(column)) = (&self.ingest_times, def.ingest_time) {
            let zone = match def.columns[column].ty.arrow_type() {
                arrow::datatypes::DataType::Timestamp(_, zone) => zone,
                _ => None,
            };
            columns[column] = Some(Arc::new(TimestampMicrosecondArray::from(times.clone()).with_timezone_opt(zone)));
        }
        let zone = SessionZone::default();
        match conform(def, columns.clone(), rows, RowLabel::Message, &zone).and_then(|b| check(&b).map(|()| b)) {
            Ok(batch) => return Ok(Finished { rows: Some(batch), errors: self.errors }),
            Err(e) if !e.is_bad_data() => return Err(e),
            Err(_) => {}
        }
        // Some row is bad: try each alone, keep the good ones.
        let mut kept = Vec::new();
        for row in 0..rows {
            let single = columns.iter().map(|c| c.as_ref().map(|c| c.slice(row, 1))).collect();
            match conform(def, single, 1, RowLabel::Message, &zone).and_then(|b| check(&b)) {
                Ok(()) => kept.push(row as u32),
                Err(e) if !e.is_bad_data() => return Err(e),
                Err(e) => {
                    let (point, payload) = &self.messages[self.row_message[row]];
                    self.errors.push(bad_message(*point, payload, e.to_string()));
                }
            }
        }
        if kept.is_empty() {
            return Ok(Finished { rows: None, errors: self.errors });
        }
        let kept = UInt32Array::from(kept);
        let columns = columns
            .iter()
            .map(|c| c.as_ref().map(|c| take(c.as_ref(), &kept, None)).transpose())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = conform(def, columns, kept.len(), RowLabel::Message, &zone)?;
        Ok(Finished { rows: Some(batch), errors: self.errors })
    }
}
