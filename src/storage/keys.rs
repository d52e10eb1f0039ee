//! The key layout of the hot tier. All integers are big-endian so byte order is numeric order.
//!
//! ```text
//!  catalog   'c' 't' <table name utf8>                      -> TableDef (JSON)
//!            'c' 'f' <feature name utf8>                    -> FeatureDef (JSON)
//!            'c' 's' <source name utf8>                     -> SourceDef (JSON)
//!            'c' 'p' <source name utf8>                     -> SourcePosition (JSON)
//!            'c' 'e' <source name utf8> 0x00 <number u64>   -> SourceError (JSON)
//!  counter   'n' <counter name utf8>                        -> u64
//!  stats     's' <table id u64>                             -> watermark i64 | row count u64
//!  events    'e' <table id u64> <block i64*> <seq u64>      -> Arrow IPC stream, one batch, or
//!                                                              for a few rows: schema id | batch
//!                                                              (storage::blocks)
//!  merged    'e' <table id u64> <block i64*> <seq u64> <merge id u64>
//!                                                           -> 0xFFFFFFFF | first seq u64 | stream length u64
//!                                                              | body length u64 | body crc32 u32
//!                                                              (storage::hot_value)
//!  body      'b' <the merged key after 'e'> <chunk u32>     -> up to 32 KiB of its body: its rows' Arrow
//!                                                              IPC stream, then its segments (storage::segments)
//!  feature   'f' 'm' <feature name utf8>                    -> next seq u64 | chunks u32 | generation u64
//!  state     'f' 's' <feature name utf8> 0x00 <generation u64> <chunk u32>
//!                                                           -> Arrow IPC stream (feature::snapshot)
//!  cold file 'k' 'f' <table id u64> <day i64*> <file no u64> -> ColdFile (JSON, storage::cold)
//!  tier mark 'k' 'm' <table id u64>                          -> TierMark (JSON, storage::cold)
//!  staged    'x' 's' <copy id u64> <piece u32>  -> table id u64 | block i64 | Arrow IPC batch
//!  rolling   'x' 'r' <copy id u64>              -> table id u64 | first seq u64 (storage::staging)
//!  schema    'a' <schema id u64>               -> Arrow IPC schema message (storage::schema_ids)
//!  merging   'x' 'm' <table id u64> <block i64*> <seq u64> <merge id u64>
//!                                               -> first seq u64 (storage::compaction)
//!
//!  * the block number is floor(event_time_us / BLOCK_MICROS) with its sign bit flipped, so
//!    negative (pre-1970) blocks sort before positive ones.
//! ```
//! One events value holds the rows of one write that fall into one block, in arrival order;
//! a merged value holds the rows of consecutive values of one block (`storage::compaction`),
//! keyed by the last seq it holds. Keys of a table sort by block then by seq, so a scan yields
//! rows grouped by event-time block (ascending) and, within a block, in arrival order; a
//! time-range scan is a key range.

pub const CATALOG_TABLE: &[u8] = b"ct";
pub const CATALOG_FEATURE: &[u8] = b"cf";
pub const CATALOG_SOURCE: &[u8] = b"cs";
pub const CATALOG_SOURCE_POSITION: &[u8] = b"cp";
pub const CATALOG_SOURCE_ERROR: &[u8] = b"ce";
pub const CATALOG_ROLE: &[u8] = b"cr";
pub const CATALOG_GRANTS: &[u8] = b"cg";
pub const COUNTER: &[u8] = b"n";
pub const STATS: &[u8] = b"s";
pub const EVENTS: &[u8] = b"e";
pub const FEATURE_SNAPSHOT: &[u8] = b"fm";
pub const FEATURE_STATE: &[u8] = b"fs";
pub const COLD_FILE: &[u8] = b"kf";
pub const TIER_MARK: &[u8] = b"km";
pub const STAGED: &[u8] = b"xs";
pub const ROLLING: &[u8] = b"xr";
pub const MERGING: &[u8] = b"xm";
pub const SCHEMA: &[u8] = b"a";
pub const BODY: &[u8] = b"b";

pub fn schema(id: u64) -> Vec<u8> {
    [SCHEMA, &id.to_be_bytes()[..]].concat()
}

/// The prefix of every staged piece of one write.
pub fn staged_of(id: u64) -> Vec<u8> {
    [STAGED, &id.to_be_bytes()[..]].concat()
}

pub fn staged(id: u64, piece: u32) -> Vec<u8> {
    [staged_of(id), piece.to_be_bytes().to_vec()].concat()
}

pub fn rolling(id: u64) -> Vec<u8> {
    [ROLLING, &id.to_be_bytes()[..]].concat()
}

/// The big-endian u64 at `at` in `bytes`, if there is one.
pub fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The manifest entry of a cold file.
pub fn cold_file(table_id: u64, day: i64, file_no: u64) -> Vec<u8> {
    let mut key = COLD_FILE.to_vec();
    key.extend_from_slice(&table_id.to_be_bytes());
    key.extend_from_slice(&((day as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&file_no.to_be_bytes());
    key
}

/// The prefix of every cold-file entry of a table.
pub fn cold_files_of(table_id: u64) -> Vec<u8> {
    [COLD_FILE, &table_id.to_be_bytes()[..]].concat()
}

pub fn tier_mark(table_id: u64) -> Vec<u8> {
    [TIER_MARK, &table_id.to_be_bytes()[..]].concat()
}

/// The table id of a tier-mark key.
pub fn parse_tier_mark(key: &[u8]) -> Option<u64> {
    if key.len() != 10 || &key[..2] != TIER_MARK {
        return None;
    }
    Some(u64::from_be_bytes(key[2..10].try_into().ok()?))
}

/// The key of a feature's snapshot description.
pub fn feature_snapshot(name: &str) -> Vec<u8> {
    [FEATURE_SNAPSHOT, name.as_bytes()].concat()
}

/// The prefix of every state chunk of a feature (names cannot contain NUL).
pub fn feature_state_prefix(name: &str) -> Vec<u8> {
    [FEATURE_STATE, name.as_bytes(), &[0]].concat()
}

/// The prefix of the state chunks of one snapshot generation of a feature. Generation 0 is
/// the layout before generations, whose chunk keys have no generation.
pub fn feature_generation(name: &str, generation: u64) -> Vec<u8> {
    match generation {
        0 => feature_state_prefix(name),
        g => [feature_state_prefix(name), g.to_be_bytes().to_vec()].concat(),
    }
}

pub fn feature_state(name: &str, generation: u64, chunk: u32) -> Vec<u8> {
    [feature_generation(name, generation), chunk.to_be_bytes().to_vec()].concat()
}

pub fn counter(name: &str) -> Vec<u8> {
    [COUNTER, name.as_bytes()].concat()
}

pub fn stats(table_id: u64) -> Vec<u8> {
    [STATS, &table_id.to_be_bytes()[..]].concat()
}

/// The first key of a table's events in `block` (use `i64::MIN` for the table's start).
pub fn events_from(table_id: u64, block: i64) -> Vec<u8> {
    event(table_id, block, 0)
}

/// The key just past a table's events in blocks `<= block` (use `i64::MAX` for the table's end).
pub fn events_until(table_id: u64, block: i64) -> Vec<u8> {
    match block.checked_add(1) {
        Some(next) => event(table_id, next, 0),
        None => [EVENTS, &(table_id + 1).to_be_bytes()[..]].concat(),
    }
}

pub fn event(table_id: u64, block: i64, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.extend_from_slice(EVENTS);
    key.extend_from_slice(&table_id.to_be_bytes());
    key.extend_from_slice(&((block as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of a merged value whose last row has `seq`, made by merge `merge` (never 0). It
/// sorts just after the plain value of that seq and before every later seq of the block.
pub fn merged_event(table_id: u64, block: i64, seq: u64, merge: u64) -> Vec<u8> {
    let mut key = event(table_id, block, seq);
    key.extend_from_slice(&merge.to_be_bytes());
    key
}

/// An events key, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKey {
    pub table_id: u64,
    pub block: i64,
    /// The write's seq, or for a merged value the seq of its last row.
    pub seq: u64,
    /// The merge that made the value; 0 for a write's own value.
    pub merge: u64,
}

impl EventKey {
    pub fn encode(&self) -> Vec<u8> {
        match self.merge {
            0 => event(self.table_id, self.block, self.seq),
            m => merged_event(self.table_id, self.block, self.seq, m),
        }
    }
}

/// The parts of an events key, or `None` for a key of another kind.
pub fn parse_event(key: &[u8]) -> Option<EventKey> {
    if (key.len() != 25 && key.len() != 33) || &key[..1] != EVENTS {
        return None;
    }
    let table_id = be_u64(key, 1)?;
    let block = (be_u64(key, 9)? ^ (1 << 63)) as i64;
    let seq = be_u64(key, 17)?;
    let merge = if key.len() == 33 { be_u64(key, 25).filter(|m| *m != 0)? } else { 0 };
    Some(EventKey { table_id, block, seq, merge })
}

/// Where the rows of the merged value under `at` are stored (`storage::hot_value`): the
/// prefix of its body's chunks (a body stored whole, before chunks, is under the prefix itself).
pub fn body(at: &EventKey) -> Vec<u8> {
    [BODY, &at.encode()[1..]].concat()
}

/// The `index`th chunk of the body of the merged value under `at`.
pub fn body_chunk(at: &EventKey, index: u32) -> Vec<u8> {
    [&body(at)[..], &index.to_be_bytes()[..]].concat()
}

/// The record of a merge whose inputs may still be stored (`storage::compaction`).
pub fn merging(at: &EventKey) -> Vec<u8> {
    [MERGING, &at.encode()[1..]].concat()
}

/// The merged value's key of a merge record's key.
pub fn parse_merging(key: &[u8]) -> Option<EventKey> {
    let rest = key.strip_prefix(MERGING)?;
    parse_event(&[EVENTS, rest].concat()).filter(|k| k.merge != 0)
}

/// The prefix of every merge record of a table.
pub fn merging_of(table_id: u64) -> Vec<u8> {
    [MERGING, &table_id.to_be_bytes()[..]].concat()
}

/// The key just past every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_table_block_seq() {
        let keys =
            [event(1, -5, 9), event(1, -1, 0), event(1, 0, 3), event(1, 0, 4), event(1, 7, 0), event(2, i64::MIN, 0)];
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(sorted, keys.to_vec());
        assert_eq!(parse_event(&keys[0]), Some(EventKey { table_id: 1, block: -5, seq: 9, merge: 0 }));
        assert_eq!(parse_event(&keys[4]).map(|k| (k.block, k.seq)), Some((7, 0)));
        let merged = merged_event(1, 0, 3, 12);
        assert!(event(1, 0, 3) < merged && merged < event(1, 0, 4), "a merge sorts after its last write");
        let parsed = parse_event(&merged).unwrap();
        assert_eq!((parsed.seq, parsed.merge, parsed.encode()), (3, 12, merged));
        assert_eq!(parse_merging(&merging(&parsed)), Some(parsed));
    }

    #[test]
    fn ranges_cover_exactly_the_blocks() {
        let k = event(3, 10, 77);
        assert!(events_from(3, 10) <= k && k < events_until(3, 10));
        assert!(k >= events_until(3, 9));
        assert!(events_until(3, i64::MAX) > event(3, i64::MAX, u64::MAX));
        assert!(events_until(3, i64::MAX) <= events_from(4, i64::MIN));
    }
}
