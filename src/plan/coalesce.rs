//! Joins runs of small stored parts into batches of about the session's batch size.
//!
//! A write lands as one stored part per hour block it touches, so a COPY of rows spread over
//! a month leaves parts of a few hundred rows. Every operator above a scan pays a fixed cost
//! per batch (an ASOF probe restarts its searches, the Parquet writer flushes its buffers), so
//! a scan hands them batches of the configured size instead. Parts of at least half that size
//! pass through without a copy, cut into slices of the target size when larger: a table filled
//! by one large INSERT (no event time, so one part) streams instead of arriving as one batch of
//! a million rows, which every operator and the client encoders then held at once.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result;

pub struct Coalesced<I> {
    parts: I,
    schema: SchemaRef,
    target: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// What came after pending rows (a large part, or an error): given out right after them.
    held: Option<Result<RecordBatch>>,
    /// The rest of a part larger than the target, given out a slice at a time.
    rest: Option<RecordBatch>,
}

impl<I: Iterator<Item = Result<RecordBatch>>> Coalesced<I> {
    pub fn new(parts: I, schema: SchemaRef, target: usize) -> Self {
        Self { parts, schema, target: target.max(1), pending: Vec::new(), pending_rows: 0, held: None, rest: None }
    }

    fn flush(&mut self) -> Option<Result<RecordBatch>> {
        self.pending_rows = 0;
        match self.pending.len() {
            0 => None,
            1 => self.pending.pop().map(Ok),
            _ => {
                let joined = concat_batches(&self.schema, &self.pending).map_err(Into::into);
                self.pending.clear();
                Some(joined)
            }
        }
    }

    /// The first `target` rows of a large part; the others wait in `rest`.
    fn sliced(&mut self, batch: RecordBatch) -> RecordBatch {
        if batch.num_rows() <= self.target {
            return batch;
        }
        self.rest = Some(batch.slice(self.target, batch.num_rows() - self.target));
        batch.slice(0, self.target)
    }

    /// `item` (a large part, or an error), given out after the pending rows.
    fn after_pending(&mut self, item: Result<RecordBatch>) -> Option<Result<RecordBatch>> {
        if self.pending.is_empty() {
            return Some(item.map(|batch| self.sliced(batch)));
        }
        self.held = Some(item);
        self.flush()
    }
}

impl<I: Iterator<Item = Result<RecordBatch>>> Iterator for Coalesced<I> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(rest) = self.rest.take() {
            return Some(Ok(self.sliced(rest)));
        }
        if let Some(held) = self.held.take() {
            return Some(held.map(|batch| self.sliced(batch)));
        }
        loop {
            let batch = match self.parts.next() {
                None => return self.flush(),
                Some(Err(e)) => return self.after_pending(Err(e)),
                Some(Ok(batch)) => batch,
            };
            let rows = batch.num_rows();
            if rows == 0 {
                continue;
            }
            if rows >= self.target / 2 {
                return self.after_pending(Ok(batch));
            }
            self.pending.push(batch);
            self.pending_rows += rows;
            if self.pending_rows >= self.target {
                return self.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(schema: &SchemaRef, from: i64, rows: i64) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(from..from + rows))]).unwrap()
    }

    #[test]
    fn small_parts_are_joined_in_order_and_large_ones_pass_through_in_slices() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let sizes = [3, 0, 2, 2, 1, 9, 1, 1, 6, 5, 2, 20];
        let mut from = 0;
        let parts: Vec<Result<RecordBatch>> = sizes
            .iter()
            .map(|&n| {
                let b = batch(&schema, from, n);
                from += n;
                Ok(b)
            })
            .collect();
        let out: Vec<RecordBatch> =
            Coalesced::new(parts.into_iter(), schema.clone(), 8).collect::<Result<_>>().unwrap();
        let sizes: Vec<usize> = out.iter().map(|b| b.num_rows()).collect();
        // 3+2+2+1 reach the target; 9 passes alone, cut to the target; 1+1 are flushed before
        // 6 (at least half the target, so it passes alone, as 5 does); 2 is flushed before 20,
        // which is cut into slices.
        assert_eq!(sizes, vec![8, 8, 1, 2, 6, 5, 2, 8, 8, 4]);
        let values: Vec<i64> = out
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(values, (0..from).collect::<Vec<_>>());
    }

    #[test]
    fn an_error_is_passed_on_after_the_rows_before_it() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let parts: Vec<Result<RecordBatch>> =
            vec![Ok(batch(&schema, 0, 1)), Err(datafusion::error::DataFusionError::Internal("boom".into()))];
        let mut out = Coalesced::new(parts.into_iter(), schema, 8);
        // The rows before the error first, then the error.
        assert_eq!(out.next().unwrap().unwrap().column(0).len(), 1);
        assert!(out.next().unwrap().is_err());
        assert!(out.next().is_none());
    }
}
