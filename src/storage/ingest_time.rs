//! Ingest time (spec section 1, `ingest_time = 'col'`): a row that omits it or gives NULL gets
//! its commit's time, the same for every row of one statement or transaction.
//!
//! The committer stamps each commit as it applies it (`committer::prepare`), so the times are
//! non-decreasing in commit order even when the wall clock steps back ([`IngestClock`]); the
//! last time is stored with the commit's counters, so a restart does not go back either. A
//! large COPY, whose rows are staged before its commit, takes the time its first chunk was
//! staged.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};

use crate::error::{Error, Result};

/// Commit times in µs since the epoch: the wall clock, never below the last time given.
#[derive(Debug, Default)]
pub struct IngestClock {
    last: AtomicI64,
}

impl IngestClock {
    /// A clock that never gives less than `last` (the time persisted before a restart).
    pub fn starting_at(last: i64) -> Self {
        IngestClock { last: AtomicI64::new(last) }
    }

    /// The last time given.
    pub fn last(&self) -> i64 {
        self.last.load(Ordering::SeqCst)
    }

    pub fn tick(&self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        let previous = self.last.fetch_max(now, Ordering::SeqCst);
        previous.max(now)
    }
}

/// `batch` with the NULLs of column `column` (a µs timestamp) replaced by `at`.
pub fn stamp(batch: RecordBatch, column: usize, at: i64) -> Result<RecordBatch> {
    let times = batch
        .column(column)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::internal("the ingest-time column is not a microsecond timestamp"))?;
    if times.null_count() == 0 {
        return Ok(batch);
    }
    let stamped = TimestampMicrosecondArray::from_iter(times.iter().map(|t| Some(t.unwrap_or(at))))
        .with_timezone_opt(times.timezone().map(Arc::<str>::from));
    let mut columns = batch.columns().to_vec();
    columns[column] = Arc::new(stamped);
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    #[test]
    fn nulls_take_the_commit_time_and_given_times_stay() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "known",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        let times = TimestampMicrosecondArray::from(vec![Some(5), None]).with_timezone("UTC");
        let batch = RecordBatch::try_new(schema, vec![Arc::new(times)]).unwrap();
        let stamped = stamp(batch, 0, 42).unwrap();
        let column = stamped.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(column.values().to_vec(), vec![5, 42]);
        assert_eq!(column.null_count(), 0);
        let clock = IngestClock::default();
        let (a, b) = (clock.tick(), clock.tick());
        assert!(b >= a);
    }
}
