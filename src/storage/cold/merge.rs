//! Merging cold files of one day, each sorted by event time, into one sorted stream of slices
//! (compaction), holding one slice of each input at a time rather than the files decoded whole.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;

use super::file::FileWriter;
use crate::error::Result;
use crate::storage::blocks::event_times;

/// Rows per slice handed to the writer.
const SLICE_ROWS: usize = 64 * 1024;

/// One input's position: its current batch, that batch's event times, the next row.
struct Cursor<I> {
    input: I,
    batch: RecordBatch,
    times: Vec<i64>,
    row: usize,
    /// Where `batch` sits in the slice being gathered.
    slot: usize,
}

impl<I: Iterator<Item = Result<RecordBatch>>> Cursor<I> {
    /// The input's first non-empty batch, if it has one.
    fn open(mut input: I, event_time: usize) -> Result<Option<Self>> {
        let Some((batch, times)) = next_batch(&mut input, event_time)? else { return Ok(None) };
        Ok(Some(Self { input, batch, times, row: 0, slot: 0 }))
    }

    /// Moves past the current row; false once the input is exhausted.
    fn advance(&mut self, event_time: usize, slice: &mut Vec<RecordBatch>) -> Result<bool> {
        self.row += 1;
        if self.row < self.times.len() {
            return Ok(true);
        }
        let Some((batch, times)) = next_batch(&mut self.input, event_time)? else { return Ok(false) };
        (self.batch, self.times, self.row, self.slot) = (batch, times, 0, slice.len());
        slice.push(self.batch.clone());
        Ok(true)
    }
}

fn next_batch(
    input: &mut impl Iterator<Item = Result<RecordBatch>>,
    event_time: usize,
) -> Result<Option<(RecordBatch, Vec<i64>)>> {
    for batch in input {
        let batch = batch?;
        if batch.num_rows() > 0 {
            let times = event_times(batch.column(event_time))?.values().to_vec();
            return Ok(Some((batch, times)));
        }
    }
    Ok(None)
}

/// Writes the rows of `inputs` (each in event-time order) to `writer` in event-time order.
/// Rows sharing an event time come in input order, then in their order within the input: the
/// order a stable sort of the inputs, concatenated, would give.
pub fn merge_sorted<I: Iterator<Item = Result<RecordBatch>>>(
    inputs: Vec<I>,
    event_time: usize,
    writer: &mut FileWriter,
) -> Result<()> {
    let mut cursors = Vec::with_capacity(inputs.len());
    for input in inputs {
        if let Some(cursor) = Cursor::open(input, event_time)? {
            cursors.push(cursor);
        }
    }
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> =
        cursors.iter().enumerate().map(|(i, c)| Reverse((c.times[0], i))).collect();
    let mut slice: Vec<RecordBatch> = Vec::new();
    let mut indices: Vec<(usize, usize)> = Vec::with_capacity(SLICE_ROWS);
    while !heap.is_empty() {
        // A slice refers to the current batch of every input, and to those it moves on to.
        slice.clear();
        indices.clear();
        for cursor in cursors.iter_mut() {
            cursor.slot = slice.len();
            slice.push(cursor.batch.clone());
        }
        while indices.len() < SLICE_ROWS
            && let Some(Reverse((_, i))) = heap.pop()
        {
            let cursor = &mut cursors[i];
            indices.push((cursor.slot, cursor.row));
            if cursor.advance(event_time, &mut slice)? {
                heap.push(Reverse((cursor.times[cursor.row], i)));
            }
        }
        let inputs: Vec<&RecordBatch> = slice.iter().collect();
        writer.add_sorted(&interleave_record_batch(&inputs, &indices)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;
    use crate::storage::cold::file;

    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn ids(bytes: Vec<u8>) -> Vec<i64> {
        file::read(bytes.into(), &[])
            .unwrap()
            .1
            .flat_map(|b| {
                let b = b.unwrap();
                b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
            })
            .collect()
    }

    /// The merge gives the order a stable sort of the inputs' concatenation gives, across
    /// batch boundaries and with empty batches and inputs.
    #[test]
    fn merge_equals_a_stable_sort_of_the_concatenation() {
        // (id, time); ids say the expected position among equal times.
        let inputs: Vec<Vec<RecordBatch>> = vec![
            vec![batch(&[(1, 10), (2, 20)]), batch(&[]), batch(&[(3, 20), (4, 40)])],
            vec![],
            vec![batch(&[(5, 5), (6, 20)]), batch(&[(7, 40), (8, 50)])],
            vec![batch(&[(9, 20)])],
        ];
        let mut writer = FileWriter::new(inputs[0][0].schema(), 1).unwrap();
        merge_sorted(inputs.into_iter().map(|bs| bs.into_iter().map(Ok)).collect(), 1, &mut writer).unwrap();
        let merged = writer.finish().unwrap();
        assert_eq!((merged.rows, merged.min_time, merged.max_time), (9, 5, 50));
        // Time 20: input 0's rows 2 and 3 (across an empty batch), then input 2's, then 3's.
        assert_eq!(ids(merged.bytes), vec![5, 1, 2, 3, 6, 9, 4, 7, 8]);
    }
}
