//! A merged hot value's segments, (seq, rows) of each write it holds in arrival order, and
//! their compact encoding.
//!
//! A merge of single-row writes has one segment per row. At 12 fixed bytes a segment, the
//! segments of a 65,536-row merge took 786 KB, stored in the value next to its key, so sled's
//! leaves of merged values grew to 10 MB and were rewritten whole whenever an emptied
//! neighbour was merged into them (issue #34). Encoded as varints of the seq's step from the
//! previous segment and of the row count, a segment of a single-row write takes 2–3 bytes.

/// (seq, rows) of each write a value holds, in arrival order.
pub type Segments = Vec<(u64, u32)>;

/// `count`, then per segment its seq minus the previous one's (the first: minus 0) and its
/// rows, each an unsigned LEB128 varint. Steps wrap, so any order of seqs encodes.
pub fn encode(segments: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 3 * segments.len());
    put_varint(&mut out, segments.len() as u64);
    let mut previous = 0u64;
    for (seq, rows) in segments {
        put_varint(&mut out, seq.wrapping_sub(previous));
        put_varint(&mut out, u64::from(*rows));
        previous = *seq;
    }
    out
}

/// The segments `encode` wrote; `None` if `bytes` are not exactly such an encoding.
pub fn decode(bytes: &[u8]) -> Option<Segments> {
    let mut rest = bytes;
    let count = usize::try_from(take_varint(&mut rest)?).ok()?;
    // Each segment takes at least two bytes: a corrupt count must not allocate.
    let mut segments = Vec::with_capacity(count.min(rest.len() / 2));
    let mut previous = 0u64;
    for _ in 0..count {
        let seq = previous.wrapping_add(take_varint(&mut rest)?);
        let rows = u32::try_from(take_varint(&mut rest)?).ok()?;
        segments.push((seq, rows));
        previous = seq;
    }
    rest.is_empty().then_some(segments)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        // The tenth byte may carry only the top bit of a u64.
        if i == 9 && bits > 1 {
            return None;
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn single_row_writes_take_two_bytes_a_segment() {
        let segments: Segments = (1_000_000..1_065_536).map(|seq| (seq, 1)).collect();
        let bytes = encode(&segments);
        assert!(bytes.len() < 2 * segments.len() + 8, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes), Some(segments));
    }

    #[test]
    fn corrupt_encodings_are_refused() {
        let bytes = encode(&[(5, 2), (9, 1)]);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None, "cut short");
        assert_eq!(decode(&[bytes.clone(), vec![0]].concat()), None, "trailing bytes");
        assert_eq!(decode(&[0xff; 11]), None, "a varint longer than a u64");
        assert_eq!(decode(&[0x80 | 0x7f, 0xff, 0xff, 0xff, 0x0f]), None, "a count with no segments");
    }

    proptest! {
        #[test]
        fn any_segments_round_trip(segments in prop::collection::vec((any::<u64>(), any::<u32>()), 0..50)) {
            prop_assert_eq!(decode(&encode(&segments)), Some(segments));
        }
    }
}
