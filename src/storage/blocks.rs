//! Event blocks: a write's rows grouped by event-time block, and their Arrow IPC encoding.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::buffer::Buffer;
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::{StreamReader, read_record_batch};
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamWriter, write_message};

use crate::error::{Error, Result};

/// Rows of one table and event-time block as stored, with their arrival sequence number:
/// rows are ordered by (seq, row index) in arrival order.
#[derive(Debug, Clone)]
pub struct StoredPart {
    pub table_id: u64,
    pub seq: u64,
    pub batch: RecordBatch,
}

/// Width of one event-time block: one hour, in microseconds. A block is the unit of time
/// pruning in scans and, later, of moving rows to the cold tier.
pub const BLOCK_MICROS: i64 = 3_600_000_000;

/// The block an event time (µs since the Unix epoch) falls into.
pub fn block_of(event_time_us: i64) -> i64 {
    event_time_us.div_euclid(BLOCK_MICROS)
}

/// Splits `batch` by the block of its event-time column, keeping arrival order within a block.
/// Without an event-time column every row goes to block 0.
pub fn split_by_block(batch: &RecordBatch, event_time: Option<usize>) -> Result<Vec<(i64, RecordBatch)>> {
    let Some(col) = event_time else {
        return Ok(vec![(0, batch.clone())]);
    };
    let times = event_times(batch.column(col))?;
    let blocks: Vec<i64> = times.values().iter().map(|t| block_of(*t)).collect();
    match blocks.first() {
        None => return Ok(vec![]),
        Some(first) if blocks.iter().all(|b| b == first) => return Ok(vec![(*first, batch.clone())]),
        Some(_) => {}
    }
    let mut rows_by_block: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    for (row, block) in blocks.iter().enumerate() {
        rows_by_block.entry(*block).or_default().push(row as u32);
    }
    rows_by_block
        .into_iter()
        .map(|(block, rows)| Ok((block, take_record_batch(batch, &UInt32Array::from(rows))?)))
        .collect()
}

/// The event-time column as µs since the epoch (TIMESTAMP and TIMESTAMPTZ are both stored so).
pub fn event_times(column: &ArrayRef) -> Result<&TimestampMicrosecondArray> {
    column
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::internal("event-time column is not a microsecond timestamp"))
}

/// Encodes one batch as a self-describing Arrow IPC stream, its buffers compressed.
///
/// Compressed because sled keeps every page it has read or written in memory until the
/// database closes (docs/benchmarks.md): the hot tier's footprint in RAM is its size on disk.
/// LZ4 by default: it decompresses several times faster than zstd, and scans read every
/// block. `ASOFDB_BLOCK_COMPRESSION` (`lz4`, `zstd`, `none`) picks another, for measuring;
/// blocks in any of them decode. A batch of a few rows (a single-row INSERT's) is stored
/// uncompressed: its buffers are too small to shrink, and compressing them was a tenth of the
/// committer's time (docs/benchmarks.md, issue #24).
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 2 + 512);
    let compression = if batch.num_rows() < SMALL_BATCH_ROWS { None } else { block_compression() };
    let options = IpcWriteOptions::default().try_with_compression(compression)?;
    let mut writer = StreamWriter::try_new_with_options(&mut out, &batch.schema(), options)?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Batches with fewer rows than this are stored uncompressed, and a write's name its schema
/// instead of carrying it ([`encode_named`]).
pub(super) const SMALL_BATCH_ROWS: usize = 64;

/// The first bytes of a value that names its schema: never the start of a stream arrow-rs
/// writes, which begins with the continuation marker (0xFFFFFFFF).
const NAMED: [u8; 4] = [0xfe, b'a', b's', b'1'];

/// Encodes a few rows as `NAMED | schema id u64 | the record-batch message`, the schema stored
/// once under its id (`schema_ids`). `None` where the batch needs dictionary messages, which
/// only a stream carries (callers check [`can_name`] first; this is the backstop). Buffers
/// are aligned to 8 bytes, not 64: padding would be most of a one-row value.
pub(super) fn encode_named(batch: &RecordBatch, schema_id: u64) -> Result<Option<Vec<u8>>> {
    let options = IpcWriteOptions::try_new(8, false, arrow::ipc::MetadataVersion::V5)?;
    let mut tracker = DictionaryTracker::new(false);
    let (dictionaries, message) =
        IpcDataGenerator::default().encode(batch, &mut tracker, &options, &mut Default::default())?;
    if !dictionaries.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(12 + 16 + message.ipc_message.len() + message.arrow_data.len());
    out.extend_from_slice(&NAMED);
    out.extend_from_slice(&schema_id.to_be_bytes());
    write_message(&mut out, message, &options)?;
    Ok(Some(out))
}

fn block_compression() -> Option<CompressionType> {
    static CHOICE: std::sync::OnceLock<Option<CompressionType>> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("ASOFDB_BLOCK_COMPRESSION").as_deref() {
        Ok("none") => None,
        Ok("zstd") => Some(CompressionType::ZSTD),
        _ => Some(CompressionType::LZ4_FRAME),
    })
}

/// Decodes what [`encode_batch`] wrote.
///
/// Every stored value starts with its schema. Parsing it (flatbuffer verification, then one
/// `Field` per column) cost more than the rows of a one-row value, and compaction decodes
/// thousands of those per pass (docs/benchmarks.md, issue #34), so the schemas already seen
/// are kept by their bytes and only the batch message is read.
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch> {
    if let Some(named) = bytes.strip_prefix(&NAMED) {
        return decode_named(named);
    }
    let framed = ipc_message(bytes);
    if let Some((schema_bytes, rest)) = framed
        && let Some(schema) = SCHEMAS.with(|seen| seen.borrow().get(schema_bytes).cloned())
        && let Some(batch) = decode_batch_message(rest, schema)?
    {
        return Ok(batch);
    }
    let mut reader = StreamReader::try_new(bytes, None)?;
    let batch = match reader.next() {
        Some(batch) => batch?,
        None => return Err(Error::Storage("empty event block".into())),
    };
    if let Some((schema_bytes, _)) = framed {
        SCHEMAS.with(|seen| {
            let mut seen = seen.borrow_mut();
            if seen.len() >= SCHEMAS_KEPT {
                seen.clear();
            }
            seen.insert(schema_bytes.to_vec(), batch.schema());
        });
    }
    Ok(batch)
}

/// Whether values of `schema` can name it: no dictionary-encoded column.
pub(super) fn can_name(schema: &arrow::datatypes::Schema) -> bool {
    !schema.fields().iter().any(|f| matches!(f.data_type(), arrow::datatypes::DataType::Dictionary(..)))
}

/// Decodes the rest of an [`encode_named`] value: schema id, then the batch message.
fn decode_named(bytes: &[u8]) -> Result<RecordBatch> {
    let id = super::keys::be_u64(bytes, 0).ok_or_else(|| Error::Storage("event value: truncated schema id".into()))?;
    let schema = super::schema_ids::known(id)
        .ok_or_else(|| Error::Storage(format!("event value names schema {id:016x}, which is not stored")))?;
    decode_batch_message(&bytes[8..], schema)?.ok_or_else(|| Error::Storage("event value: no record batch".into()))
}

/// How many distinct schemas each thread keeps; a table has one until ADD COLUMN.
const SCHEMAS_KEPT: usize = 64;

thread_local! {
    static SCHEMAS: std::cell::RefCell<std::collections::HashMap<Vec<u8>, SchemaRef>> =
        Default::default();
}

/// Splits one encapsulated IPC message off the front of `bytes`: its metadata (flatbuffer) and
/// everything after the metadata. None where the framing is not the continuation-marker form
/// [`encode_batch`] writes.
fn ipc_message(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let marker = bytes.get(..4)?;
    let len = i32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if marker != [0xff; 4] || len <= 0 {
        return None;
    }
    let end = 8usize.checked_add(len as usize)?;
    Some((bytes.get(8..end)?, bytes.get(end..)?))
}

/// Reads the record batch message at the front of `bytes` with a known schema. None where the
/// message is anything else (a dictionary batch, say), for the general reader to handle.
fn decode_batch_message(bytes: &[u8], schema: SchemaRef) -> Result<Option<RecordBatch>> {
    let Some((metadata, rest)) = ipc_message(bytes) else { return Ok(None) };
    let message = arrow::ipc::root_as_message(metadata).map_err(|e| Error::Storage(format!("event block: {e}")))?;
    let Some(header) = message.header_as_record_batch() else { return Ok(None) };
    let body_len =
        usize::try_from(message.bodyLength()).map_err(|_| Error::Storage("event block: negative body".into()))?;
    let body = rest.get(..body_len).ok_or_else(|| Error::Storage("event block: truncated body".into()))?;
    let batch = read_record_batch(&Buffer::from(body), header, schema, &Default::default(), None, &message.version())?;
    Ok(Some(batch))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    /// Rows of (v, ts) with v equal to the event time: the storage tests' table.
    pub(crate) fn rows(times: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        let v = Int64Array::from(times.clone());
        RecordBatch::try_new(schema, vec![Arc::new(v), Arc::new(TimestampMicrosecondArray::from(times))]).unwrap()
    }

    fn batch(times: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        ]));
        let ids = Int64Array::from((0..times.len() as i64).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(TimestampMicrosecondArray::from(times))]).unwrap()
    }

    #[test]
    fn split_groups_rows_by_hour_in_arrival_order() {
        let h = BLOCK_MICROS;
        let b = batch(vec![2 * h + 5, -1, 2 * h, 0, 2 * h + 1]);
        let parts = split_by_block(&b, Some(1)).unwrap();
        let blocks: Vec<i64> = parts.iter().map(|(b, _)| *b).collect();
        assert_eq!(blocks, vec![-1, 0, 2]);
        let ids = parts[2].1.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values().to_vec(), vec![0, 2, 4]);
    }

    #[test]
    fn ipc_round_trip() {
        let b = batch(vec![1, 2, 3]);
        assert_eq!(decode_batch(&encode_batch(&b).unwrap()).unwrap(), b);
        assert!(decode_batch(b"garbage").is_err());
    }

    #[test]
    fn a_schema_seen_before_is_not_parsed_again_and_bad_bytes_still_fail() {
        let small = batch(vec![7]);
        let large = batch((0..10_000).map(|i| i * 1_000).collect());
        for b in [&small, &large, &small, &large] {
            let bytes = encode_batch(b).unwrap();
            assert_eq!(&decode_batch(&bytes).unwrap(), b);
            for cut in [bytes.len() - 9, bytes.len() / 2, 12, 9] {
                assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut} of {}", bytes.len());
            }
        }
        assert!(SCHEMAS.with(|seen| seen.borrow().len()) >= 1);
    }

    #[test]
    fn a_named_value_is_small_and_decodes_once_its_schema_is_known() {
        let one = batch(vec![42]);
        let ids = super::super::schema_ids::SchemaIds::default();
        let id = ids.name(&one.schema(), &mut Vec::new(), &mut Vec::new()).unwrap();
        let named = encode_named(&one, id).unwrap().unwrap();
        let stream = encode_batch(&one).unwrap();
        assert!(named.len() * 2 < stream.len(), "{} vs {} bytes", named.len(), stream.len());
        assert_eq!(decode_batch(&named).unwrap(), one);
        for cut in [named.len() - 1, 13, 11, 4] {
            assert!(decode_batch(&named[..cut]).is_err(), "cut at {cut}");
        }
        let mut unknown = named.clone();
        unknown[4..12].copy_from_slice(&(id ^ 1).to_be_bytes());
        let message = decode_batch(&unknown).unwrap_err().to_string();
        assert!(message.contains("not stored"), "{message}");
    }

    #[test]
    fn blocks_are_compressed_and_uncompressed_ones_still_decode() {
        let b = batch((0..10_000).map(|i| i * 1_000).collect());
        let compressed = encode_batch(&b).unwrap();
        let mut plain = Vec::new();
        let mut writer = StreamWriter::try_new(&mut plain, &b.schema()).unwrap();
        writer.write(&b).unwrap();
        writer.finish().unwrap();
        drop(writer);
        assert!(compressed.len() < plain.len(), "{} vs {} bytes", compressed.len(), plain.len());
        assert_eq!(decode_batch(&plain).unwrap(), b);
        assert_eq!(decode_batch(&compressed).unwrap(), b);
    }
}
