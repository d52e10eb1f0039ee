//! One stored hot-tier value: a write's rows of one event-time block, or the rows of several
//! consecutive writes of a block merged into one value (`compaction`), with each row's seq.
//!
//! A write's value is an Arrow IPC stream and its rows share the seq in its key. A merged
//! value has *segments*, (seq, rows) of each merged write in arrival order (`segments`), so
//! every row keeps the seq it was written with (feature replay reads rows at or above a
//! snapshot's seq, the tier mark covers rows below a move's seq).
//!
//! A merged value's key holds only its first seq, two lengths and a checksum; its *body*, the IPC stream
//! of its rows followed by its encoded segments, is stored apart in chunks of [`BODY_CHUNK`]
//! bytes (`keys::body_chunk`). sled keeps values inside its B-tree leaves, splits a leaf only
//! past 16 entries (whatever their size), and rewrites a whole leaf every 10 updates, when it
//! cleans the log segment holding it, and when it absorbs an emptied neighbour. Settling a
//! merge deletes thousands of small inputs next to the merged values, so a leaf of merged
//! values was rewritten again and again: first with the streams inline (perf: 57% of the
//! server in `Tree::merge_node` writing blobs), then with only the segments inline, 786 KB
//! for a merge of 65,536 single-row writes (a growing pgbench run wrote 1.1 GB of sled blob
//! files in 15 s while it stored 150K rows; issue #34). Now a merged value's key holds 32
//! bytes and a leaf of chunks about half a megabyte.
//!
//! Merged values written earlier still decode: segments and stream inline; segments inline
//! and the stream under `keys::body` whole (which is the chunks' prefix); or the 28-byte head
//! without a checksum.

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::blocks::{decode_batch, encode_batch, event_times};
use super::cold::TierMark;
use super::keys::{self, EventKey};
use super::{KvOp, KvStore};
use crate::error::{Error, Result};

pub use super::segments::Segments;

/// A decoded hot value.
#[derive(Debug, Clone)]
pub struct HotValue {
    pub key: EventKey,
    pub segments: Segments,
    pub batch: RecordBatch,
}

/// The bytes of one chunk of a merged value's body.
pub const BODY_CHUNK: usize = 32 << 10;

/// The first four bytes of a merged value whose segments are in its body (never a count of
/// segments: that many would take 51 GB).
const SEGMENTS_IN_BODY: u32 = u32::MAX;
/// The bytes of a merged value's key whose segments are in its body.
const HEAD_LEN: usize = 32;

fn corrupt() -> Error {
    Error::Storage("corrupt merged event value".into())
}

/// The seq of the first row of the value stored under `key`, read without decoding rows.
pub fn first_seq(key: &EventKey, value: &[u8]) -> Result<u64> {
    match key.merge {
        0 => Ok(key.seq),
        // Every layout has it there: the first segment's seq, or the seq itself.
        _ => keys::be_u64(value, 4).ok_or_else(corrupt),
    }
}

/// Where a merged value's segments and rows are.
enum Layout<'a> {
    /// Both in its body, `len` bytes whose CRC-32 is `crc`: the IPC stream of `stream_len`
    /// bytes, then the encoded segments. The value is `SEGMENTS_IN_BODY | first seq u64 |
    /// stream_len u64 | len u64 | crc u32`. The checksum tells a body read while a trim
    /// replaced its chunks from the whole one, and so two versions of the value apart.
    /// (A few values were written without it, 28 bytes, `crc` `None`.)
    InBody { stream_len: u64, len: u64, crc: Option<u32> },
    /// Segments in the value, then the body's length; the body is the stream (written
    /// before segments moved into the body).
    StreamInBody { segments: Segments, len: u64 },
    /// Segments and stream in the value (merged before bodies were stored apart).
    Inline { segments: Segments, stream: &'a [u8] },
}

impl Layout<'_> {
    fn body_len(&self) -> Option<u64> {
        match self {
            Layout::InBody { len, .. } | Layout::StreamInBody { len, .. } => Some(*len),
            Layout::Inline { .. } => None,
        }
    }
}

fn layout(value: &[u8]) -> Result<Layout<'_>> {
    if value.get(..4) == Some(&SEGMENTS_IN_BODY.to_be_bytes()[..]) {
        let field = |at| keys::be_u64(value, at).ok_or_else(corrupt);
        let crc = value.get(28..).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
        return match value.len() {
            HEAD_LEN | 28 => Ok(Layout::InBody { stream_len: field(12)?, len: field(20)?, crc }),
            _ => Err(corrupt()),
        };
    }
    let (segments, rest) = split_segments(value)?;
    // A stream is never 8 bytes long (its schema message alone is longer).
    Ok(match rest.len() {
        8 => Layout::StreamInBody { segments, len: keys::be_u64(rest, 0).ok_or_else(corrupt)? },
        _ => Layout::Inline { segments, stream: rest },
    })
}

/// Splits a merged value written before segments moved into the body: its segments
/// (`count u32 | (seq u64 | rows u32) * count`) and what follows them.
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

/// The bytes a hot value takes, its body's included.
pub fn stored_len(key: &EventKey, value: &[u8]) -> Result<u64> {
    if key.merge == 0 {
        return Ok(value.len() as u64);
    }
    Ok(value.len() as u64 + layout(value)?.body_len().unwrap_or(0))
}

/// The deletes that remove the hot value `value` stored under `key`, its body first: a crash
/// between two batches of deletes may leave a value without its body (which every delete of
/// the value's range removes later), never a body nothing names. The chunks are those the
/// value names, or, if it does not parse, those stored under its prefix (read): a damaged
/// value still goes, with all of its body.
pub fn deletes(kv: &dyn KvStore, key: Vec<u8>, value: &[u8]) -> Result<Vec<KvOp>> {
    let mut ops = Vec::new();
    if let Some(parsed) = keys::parse_event(&key).filter(|k| k.merge != 0) {
        // A body stored whole (before chunks) is under the chunks' prefix.
        ops.push(KvOp::Delete(keys::body(&parsed)));
        let named = layout(value).ok().map(|l| l.body_len().unwrap_or(0).div_ceil(BODY_CHUNK as u64));
        match named.and_then(|chunks| u32::try_from(chunks).ok()) {
            Some(chunks) => ops.extend((0..chunks).map(|i| KvOp::Delete(keys::body_chunk(&parsed, i)))),
            None => {
                let prefix = keys::body(&parsed);
                for pair in kv.scan(&prefix, &keys::prefix_end(&prefix)) {
                    ops.push(KvOp::Delete(pair?.0));
                }
            }
        }
    }
    ops.push(KvOp::Delete(key));
    Ok(ops)
}

/// The body of the merged value under `key` as stored now: its chunks joined (or the body
/// stored whole, before chunks); `None` unless it is `len` bytes long.
fn read_body(key: &EventKey, len: u64, kv: &dyn KvStore) -> Result<Option<Vec<u8>>> {
    let prefix = keys::body(key);
    // The length comes from stored bytes: a damaged one must not allocate.
    let mut body = Vec::with_capacity(len.min(64 * BODY_CHUNK as u64) as usize);
    for pair in kv.scan(&prefix, &keys::prefix_end(&prefix)) {
        body.extend_from_slice(&pair?.1);
        if body.len() as u64 > len {
            return Ok(None);
        }
    }
    Ok((body.len() as u64 == len).then_some(body))
}

/// The segments and rows of a body that holds both; `None` if it does not decode (chunks
/// read while a rewrite replaced them).
fn split_body(body: &[u8], stream_len: u64) -> Option<(Segments, RecordBatch)> {
    let (stream, segments) = body.split_at_checked(usize::try_from(stream_len).ok()?)?;
    Some((super::segments::decode(segments)?, decode_batch(stream).ok()?))
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
    /// whose body is missing, does not decode or does not match is corrupt (a value names its
    /// body's checksum, so a rewritten body always changes it).
    pub fn read(key: EventKey, value: &[u8], kv: &dyn KvStore) -> Result<Option<Self>> {
        if key.merge == 0 {
            let batch = decode_batch(value)?;
            return Ok(Some(HotValue { key, segments: vec![(key.seq, batch.num_rows() as u32)], batch }));
        }
        let mut value = std::borrow::Cow::Borrowed(value);
        loop {
            let decoded = match layout(&value)? {
                Layout::Inline { segments, stream } => Some((segments, decode_batch(stream)?)),
                // Chunks read while a rewrite replaced them may not decode: read the value again.
                Layout::StreamInBody { segments, len } => {
                    read_body(&key, len, kv)?.and_then(|body| decode_batch(&body).ok()).map(|batch| (segments, batch))
                }
                Layout::InBody { stream_len, len, crc } => read_body(&key, len, kv)?
                    .filter(|body| crc.is_none_or(|crc| crc32fast::hash(body) == crc))
                    .and_then(|body| split_body(&body, stream_len)),
            };
            let rows = |segments: &Segments| segments.iter().map(|(_, rows)| *rows as usize).sum::<usize>();
            if let Some((segments, batch)) = decoded.filter(|(segments, batch)| rows(segments) == batch.num_rows()) {
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
    /// first seq, lengths and checksum under its key and its body (the stream, then the encoded
    /// segments) apart, in chunks; one atomic batch. Rewriting a stored merged value takes
    /// its [`deletes`] first (a shorter body has fewer chunks).
    pub fn puts(&self) -> Result<Vec<KvOp>> {
        let mut body = encode_batch(&self.batch)?;
        if self.key.merge == 0 {
            return Ok(vec![KvOp::Put(self.key.encode(), body)]);
        }
        let stream_len = body.len() as u64;
        body.extend_from_slice(&super::segments::encode(&self.segments));
        let mut head = Vec::with_capacity(HEAD_LEN);
        head.extend_from_slice(&SEGMENTS_IN_BODY.to_be_bytes());
        head.extend_from_slice(&self.first_seq().to_be_bytes());
        head.extend_from_slice(&stream_len.to_be_bytes());
        head.extend_from_slice(&(body.len() as u64).to_be_bytes());
        head.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        let mut ops: Vec<KvOp> = (0u32..)
            .zip(body.chunks(BODY_CHUNK))
            .map(|(i, chunk)| KvOp::Put(keys::body_chunk(&self.key, i), chunk.to_vec()))
            .collect();
        ops.push(KvOp::Put(self.key.encode(), head));
        Ok(ops)
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

    /// The deletes of the value stored under `key` now.
    fn delete_stored(kv: &MemoryKv, key: EventKey) -> Vec<KvOp> {
        let value = kv.get(&key.encode()).unwrap().unwrap_or_default();
        deletes(kv, key.encode(), &value).unwrap()
    }

    #[test]
    fn merged_values_keep_each_rows_seq() {
        let key = EventKey { table_id: 1, block: 0, seq: 9, merge: 4 };
        let value = HotValue { key, segments: vec![(3, 2), (7, 1), (9, 2)], batch: rows(vec![1, 2, 3, 4, 5]) };
        let kv = crate::storage::MemoryKv::default();
        let puts = value.puts().unwrap();
        let Some(KvOp::Put(_, bytes)) = puts.last() else { panic!("{puts:?}") };
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
        kv.apply(delete_stored(&kv, key)).unwrap();
        assert!(HotValue::read(key, &bytes, &kv).unwrap().is_none(), "deleted after a scan found it");
        kv.apply(value.puts().unwrap()).unwrap();
        let body = kv.get(&keys::body_chunk(&key, 0)).unwrap().unwrap();
        assert_eq!(stored_len(&key, &bytes).unwrap(), (bytes.len() + body.len()) as u64);

        // Layouts written earlier. Segments in the value, `count u32 | (seq u64 | rows u32)*`:
        let stream = encode_batch(&value.batch).unwrap();
        let mut fixed = (value.segments.len() as u32).to_be_bytes().to_vec();
        for (seq, rows) in &value.segments {
            fixed.extend([&seq.to_be_bytes()[..], &rows.to_be_bytes()[..]].concat());
        }
        // then the stream (before bodies were stored apart),
        let inline = [&fixed[..], &stream[..]].concat();
        let read_back = HotValue::read(key, &inline, &MemoryKv::default()).unwrap().unwrap();
        assert_eq!((read_back.segments, read_back.batch), (value.segments.clone(), value.batch.clone()));
        assert_eq!(stored_len(&key, &inline).unwrap(), inline.len() as u64);
        assert_eq!(first_seq(&key, &inline).unwrap(), 3);
        // or the stream's length, and the stream whole under the chunks' prefix.
        let apart = [&fixed[..], &(stream.len() as u64).to_be_bytes()[..]].concat();
        let whole = MemoryKv::default();
        whole.apply(vec![KvOp::Put(keys::body(&key), stream.clone())]).unwrap();
        let read_back = HotValue::read(key, &apart, &whole).unwrap().unwrap();
        assert_eq!((read_back.segments, read_back.batch), (value.segments.clone(), value.batch.clone()));
        assert_eq!(stored_len(&key, &apart).unwrap(), (apart.len() + stream.len()) as u64);
        whole.apply(deletes(&whole, key.encode(), &apart).unwrap()).unwrap();
        assert_eq!(whole.scan(b"", &[0xff]).count(), 0, "deletes of a whole body");

        // The chunks stored go, whatever the value says (a damaged one too).
        kv.apply(vec![KvOp::Put(key.encode(), b"damaged".to_vec())]).unwrap();
        let gone = delete_stored(&kv, key);
        let want = [keys::body(&key), keys::body_chunk(&key, 0), key.encode()];
        assert!(gone.iter().zip(&want).all(|(op, k)| matches!(op, KvOp::Delete(d) if d == k)), "{gone:?}");
        assert_eq!(gone.len(), want.len());
        assert_eq!(deletes(&kv, keys::event(1, 0, 3), b"stream").unwrap().len(), 1);
        // A head written without the checksum (28 bytes) still reads.
        kv.apply(value.puts().unwrap()).unwrap();
        let head = kv.get(&key.encode()).unwrap().unwrap();
        assert_eq!(HotValue::read(key, &head[..28], &kv).unwrap().unwrap().batch, value.batch);
    }

    #[test]
    fn a_large_body_is_stored_in_chunks_and_a_rewrite_leaves_none_behind() {
        let key = EventKey { table_id: 1, block: 0, seq: 99, merge: 2 };
        let ids: Vec<i64> = (0..20_000).map(|i| i * 7919 % 100_003).collect();
        let value = HotValue { key, segments: vec![(50, 10_000), (99, 10_000)], batch: rows(ids) };
        let kv = MemoryKv::default();
        let puts = value.puts().unwrap();
        assert!(puts.len() > 3, "a body of 20,000 rows takes several chunks");
        let Some(KvOp::Put(_, bytes)) = puts.last() else { panic!() };
        let bytes = bytes.clone();
        kv.apply(puts).unwrap();
        assert_eq!(HotValue::read(key, &bytes, &kv).unwrap().unwrap().batch, value.batch);
        let chunks = || kv.scan(keys::BODY, &keys::prefix_end(keys::BODY)).count();
        let stored = chunks();

        // A chunk lost (or replaced by a rewrite mid-read) with the value unchanged is corrupt.
        let last = keys::body_chunk(&key, stored as u32 - 1);
        let saved = kv.get(&last).unwrap().unwrap();
        kv.apply(vec![KvOp::Delete(last.clone())]).unwrap();
        assert!(HotValue::read(key, &bytes, &kv).is_err());
        kv.apply(vec![KvOp::Put(last.clone(), saved.clone())]).unwrap();
        // A body that still decodes but is not the one the value names: the last segment's
        // seq step (49) changed, so its rows would read with seq 98. The checksum refuses it.
        let mut altered = saved.clone();
        let at = altered.len() - 3;
        assert_eq!(altered[at], 49);
        altered[at] = 48;
        kv.apply(vec![KvOp::Put(last.clone(), altered)]).unwrap();
        assert!(HotValue::read(key, &bytes, &kv).is_err());
        kv.apply(vec![KvOp::Put(last, saved)]).unwrap();

        // Trimmed to its last segment: fewer chunks, and no old chunk left.
        let kept = value.clone().within(99..u64::MAX).unwrap();
        let mut rewrite = delete_stored(&kv, key);
        rewrite.extend(kept.puts().unwrap());
        kv.apply(rewrite).unwrap();
        assert!(chunks() < stored);
        let now = kv.get(&key.encode()).unwrap().unwrap();
        assert_eq!(HotValue::read(key, &bytes, &kv).unwrap().unwrap().batch, kept.batch);
        assert_eq!(HotValue::read(key, &now, &kv).unwrap().unwrap().segments, vec![(99, 10_000)]);
        kv.apply(delete_stored(&kv, key)).unwrap();
        assert_eq!(chunks(), 0);
        assert!(kv.get(&key.encode()).unwrap().is_none());
    }
}
