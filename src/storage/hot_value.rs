//! One stored hot-tier value: a write's rows of one event-time block, or the rows of several
//! consecutive writes of a block merged into one value (`compaction`), with each row's seq.
//!
//! A write's value is an Arrow IPC stream and its rows share the seq in its key. A merged
//! value holds its *segments*, `count u32 | (seq u64 | rows u32) * count`, one per merged
//! write in arrival order, so every row keeps the seq it was written with (feature replay
//! reads rows at or above a snapshot's seq, the tier mark covers rows below a move's seq).
//!
//! The IPC stream of a merged value's rows, its *body*, is stored under its own key
//! (`keys::body`), and the value ends with the body's length. sled keeps values inside its
//! tree nodes and rewrites a whole node when it absorbs an emptied neighbour: deleting a
//! merge's inputs (thousands of small values next to the merged ones) made sled rewrite the
//! node of megabytes of merged values again and again (perf: 57% of the server in
//! `Tree::merge_node` writing blobs; INSERT throughput fell to 700–1,700 tps in the seconds
//! merges settled; issue #34). Merged values written before this hold the stream inline and
//! still decode.

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::blocks::{decode_batch, encode_batch, event_times};
use super::cold::TierMark;
use super::keys::{self, EventKey};
use super::{KvOp, KvStore};
use crate::error::{Error, Result};

/// (seq, rows) of each write a value holds, in arrival order.
pub type Segments = Vec<(u64, u32)>;

/// A decoded hot value.
#[derive(Debug, Clone)]
pub struct HotValue {
    pub key: EventKey,
    pub segments: Segments,
    pub batch: RecordBatch,
}

fn corrupt() -> Error {
    Error::Storage("corrupt merged event value".into())
}

/// The seq of the first row of the value stored under `key`, read without decoding rows.
pub fn first_seq(key: &EventKey, value: &[u8]) -> Result<u64> {
    match key.merge {
        0 => Ok(key.seq),
        _ => keys::be_u64(value, 4).ok_or_else(corrupt),
    }
}

/// Where a merged value's rows are.
enum Body<'a> {
    /// Under `keys::body`, this many bytes.
    Apart(u64),
    /// After the segments (values merged before bodies were stored apart).
    Inline(&'a [u8]),
}

/// A merged value's segments and where its rows are.
fn split_merged(value: &[u8]) -> Result<(Segments, Body<'_>)> {
    let (segments, rest) = split_segments(value)?;
    // A stream is never 8 bytes long (its schema message alone is longer).
    let body = match rest.len() {
        8 => Body::Apart(keys::be_u64(rest, 0).ok_or_else(corrupt)?),
        _ => Body::Inline(rest),
    };
    Ok((segments, body))
}

/// The bytes a hot value takes, its body's included.
pub fn stored_len(key: &EventKey, value: &[u8]) -> Result<u64> {
    if key.merge == 0 {
        return Ok(value.len() as u64);
    }
    Ok(match split_merged(value)?.1 {
        Body::Apart(len) => value.len() as u64 + len,
        Body::Inline(_) => value.len() as u64,
    })
}

/// The deletes that remove the hot value stored under `key`, its body first: a crash between
/// two batches of deletes may leave a value without its body (which every delete of the
/// value's range removes later), never a body nothing names.
pub fn deletes(key: Vec<u8>) -> impl Iterator<Item = KvOp> {
    let body = keys::parse_event(&key).filter(|k| k.merge != 0).map(|k| KvOp::Delete(keys::body(&k)));
    body.into_iter().chain(std::iter::once(KvOp::Delete(key)))
}

/// Splits a merged value into its segments and what follows them.
fn split_segments(value: &[u8]) -> Result<(Segments, &[u8])> {
    let count = value.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(corrupt)? as usize;
    let body = 4 + count.checked_mul(12).ok_or_else(corrupt)?;
    let header = value.get(4..body).ok_or_else(corrupt)?;
    let segments = header
        .chunks_exact(12)
        .map(|s| {
            (
                u64::from_be_bytes(s[..8].try_into().unwrap_or_default()),
                u32::from_be_bytes(s[8..].try_into().unwrap_or_default()),
            )
        })
        .collect();
    Ok((segments, &value[body..]))
}

impl HotValue {
    /// Decodes the value a scan of `kv` found under `key`, reading a merged value's body.
    /// `None` where the value was deleted since the scan found it.
    ///
    /// The value and its body are two reads, and collection may rewrite both (rows moved to
    /// the cold tier trimmed off) or DROP TABLE delete both in between; a scan may also hand
    /// out a value from a node it read a moment ago. So where the body does not match, the
    /// value is read again: a changed value is decoded as it is now (a trim only removes rows
    /// every live reader's tier mark covers), a deleted one is `None`, and an unchanged one
    /// whose body is missing or does not match is corrupt.
    pub fn read(key: EventKey, value: &[u8], kv: &dyn KvStore) -> Result<Option<Self>> {
        if key.merge == 0 {
            let batch = decode_batch(value)?;
            return Ok(Some(HotValue { key, segments: vec![(key.seq, batch.num_rows() as u32)], batch }));
        }
        let mut value = std::borrow::Cow::Borrowed(value);
        loop {
            let (segments, body) = split_merged(&value)?;
            let batch = match body {
                Body::Inline(stream) => Some(decode_batch(stream)?),
                Body::Apart(_) => kv.get(&keys::body(&key))?.map(|body| decode_batch(&body)).transpose()?,
            };
            let rows = segments.iter().map(|(_, rows)| *rows as usize).sum::<usize>();
            if let Some(batch) = batch.filter(|b| b.num_rows() == rows) {
                return Ok(Some(HotValue { key, segments, batch }));
            }
            match kv.get(&key.encode())? {
                None => return Ok(None),
                Some(now) if now[..] == value[..] => return Err(corrupt()),
                Some(now) => value = std::borrow::Cow::Owned(now),
            }
        }
    }

    /// The puts that store this value: a write's IPC stream under its key; for a merge, its
    /// segments and body length under its key and the body apart (one atomic batch).
    pub fn puts(&self) -> Result<Vec<KvOp>> {
        let stream = encode_batch(&self.batch)?;
        if self.key.merge == 0 {
            return Ok(vec![KvOp::Put(self.key.encode(), stream)]);
        }
        let mut head = Vec::with_capacity(4 + 12 * self.segments.len() + 8);
        head.extend_from_slice(&(self.segments.len() as u32).to_be_bytes());
        for (seq, rows) in &self.segments {
            head.extend_from_slice(&seq.to_be_bytes());
            head.extend_from_slice(&rows.to_be_bytes());
        }
        head.extend_from_slice(&(stream.len() as u64).to_be_bytes());
        Ok(vec![KvOp::Put(keys::body(&self.key), stream), KvOp::Put(self.key.encode(), head)])
    }

    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(self.key.seq, |(seq, _)| *seq)
    }

    /// The seq of each row, in row order.
    pub fn row_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.iter().flat_map(|(seq, rows)| std::iter::repeat_n(*seq, *rows as usize))
    }

    /// The rows written with a seq in `seqs` (a contiguous run: segments ascend).
    pub fn within(self, seqs: std::ops::Range<u64>) -> Option<Self> {
        let skipped = self.segments.iter().take_while(|(seq, _)| *seq < seqs.start).count();
        let kept = self.segments[skipped..].iter().take_while(|(seq, _)| *seq < seqs.end).count();
        if skipped == 0 && kept == self.segments.len() {
            return Some(self);
        }
        let rows = |segments: &[(u64, u32)]| segments.iter().map(|(_, rows)| *rows as usize).sum::<usize>();
        let offset = rows(&self.segments[..skipped]);
        let length = rows(&self.segments[skipped..skipped + kept]);
        (length > 0).then(|| HotValue {
            key: self.key,
            batch: self.batch.slice(offset, length),
            segments: self.segments[skipped..skipped + kept].to_vec(),
        })
    }

    /// Per row: whether `mark` covers it (its rows live in the cold tier).
    pub fn moved_rows(&self, event_time: usize, mark: TierMark) -> Result<BooleanArray> {
        let times = event_times(self.batch.column(event_time))?;
        Ok(times
            .values()
            .iter()
            .zip(self.row_seqs())
            .map(|(t, seq)| Some(seq < mark.below_seq && *t < mark.before_time))
            .collect())
    }

    /// The rows where `keep` is true, segments recounted; `None` if no row is kept.
    pub fn filter(&self, keep: &BooleanArray) -> Result<Option<Self>> {
        let batch = filter_record_batch(&self.batch, keep)?;
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let mut segments = Vec::new();
        let mut row = 0;
        for (seq, rows) in &self.segments {
            let kept = (row..row + *rows as usize).filter(|r| keep.value(*r)).count() as u32;
            row += *rows as usize;
            if kept > 0 {
                segments.push((*seq, kept));
            }
        }
        Ok(Some(HotValue { key: self.key, segments, batch }))
    }

    /// The rows `mark` does not cover, without looking at rows when it touches none of them
    /// (or the table has no event-time column); `None` if it covers them all.
    pub fn unmoved(self, event_time: Option<usize>, mark: TierMark) -> Result<Option<Self>> {
        match event_time {
            Some(col) if mark.touches_block(self.first_seq(), self.key.block) => self.still_hot(col, mark),
            _ => Ok(Some(self)),
        }
    }

    /// The rows `mark` does not cover; `None` if it covers them all.
    pub fn still_hot(&self, event_time: usize, mark: TierMark) -> Result<Option<Self>> {
        let moved = self.moved_rows(event_time, mark)?;
        self.filter(&arrow::compute::not(&moved)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryKv;
    use crate::storage::blocks::tests::rows;

    #[test]
    fn merged_values_keep_each_rows_seq() {
        let key = EventKey { table_id: 1, block: 0, seq: 9, merge: 4 };
        let value = HotValue { key, segments: vec![(3, 2), (7, 1), (9, 2)], batch: rows(vec![1, 2, 3, 4, 5]) };
        let kv = crate::storage::MemoryKv::default();
        let puts = value.puts().unwrap();
        let KvOp::Put(_, bytes) = &puts[1] else { panic!("{puts:?}") };
        let bytes = bytes.clone();
        assert!(HotValue::read(key, &bytes, &kv).unwrap().is_none(), "nothing stored yet");
        kv.apply(vec![KvOp::Put(key.encode(), bytes.clone())]).unwrap();
        assert!(HotValue::read(key, &bytes, &kv).is_err(), "a value without its body");
        kv.apply(puts).unwrap();
        assert_eq!(first_seq(&key, &bytes).unwrap(), 3);
        let back = HotValue::read(key, &bytes, &kv).unwrap().unwrap();
        assert_eq!(back.row_seqs().collect::<Vec<_>>(), vec![3, 3, 7, 9, 9]);
        assert_eq!(back.batch, value.batch);

        let later = back.clone().within(5..u64::MAX).unwrap();
        assert_eq!((later.segments.clone(), later.batch.num_rows()), (vec![(7, 1), (9, 2)], 3));
        assert!(back.clone().within(10..u64::MAX).is_none());
        let middle = back.clone().within(4..9).unwrap();
        assert_eq!((middle.segments.clone(), middle.batch), (vec![(7, 1)], rows(vec![3])));
        assert!(back.clone().within(4..7).is_none());
        assert_eq!(back.clone().within(0..8).unwrap().segments, vec![(3, 2), (7, 1)]);

        // Rows of seq < 8 and time < 4 are cold: rows 1, 2, 3 (seqs 3, 3, 7).
        let hot = back.still_hot(1, TierMark { below_seq: 8, before_time: 4 }).unwrap().unwrap();
        assert_eq!(hot.segments, vec![(9, 2)]);
        assert!(HotValue::read(key, &bytes[..10], &kv).is_err());

        // Rewritten (collection trimmed it) after a scan found it: read as it is now.
        let trimmed = HotValue { key, segments: vec![(9, 2)], batch: rows(vec![4, 5]) };
        kv.apply(trimmed.puts().unwrap()).unwrap();
        assert_eq!(HotValue::read(key, &bytes, &kv).unwrap().unwrap().segments, vec![(9, 2)]);
        kv.apply(deletes(key.encode()).collect()).unwrap();
        assert!(HotValue::read(key, &bytes, &kv).unwrap().is_none(), "deleted after a scan found it");
        kv.apply(value.puts().unwrap()).unwrap();
        let body = kv.get(&keys::body(&key)).unwrap().unwrap();
        assert_eq!(stored_len(&key, &bytes).unwrap(), (bytes.len() + body.len()) as u64);

        // The layout before bodies were stored apart: the stream after the segments.
        let inline = [&bytes[..bytes.len() - 8], &body[..]].concat();
        assert_eq!(HotValue::read(key, &inline, &MemoryKv::default()).unwrap().unwrap().batch, value.batch);
        assert_eq!(stored_len(&key, &inline).unwrap(), inline.len() as u64);

        let gone: Vec<_> = deletes(key.encode()).collect();
        assert!(
            matches!(&gone[..], [KvOp::Delete(b), KvOp::Delete(k)] if *b == keys::body(&key) && *k == key.encode())
        );
        assert_eq!(deletes(keys::event(1, 0, 3)).count(), 1);
    }
}
