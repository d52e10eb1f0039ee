//! Merges whose inputs may still be stored, and which of a block's values a reader reads.
//!
//! A merge (`compaction`) writes one new value holding the rows of consecutive values of a
//! block and leaves its inputs in place: a scan that began before it reads the inputs and must
//! find them all. Each merge has a number, and each manifest version the number of the last
//! merge it knows (`epoch`) and the merges it knows whose inputs are not yet deleted. A reader
//! of a version reads a value unless the value comes from a later merge, or a merge the version
//! knows holds its rows. Inputs are deleted once no live version predates their merge.

use std::collections::BTreeMap;

use super::keys::EventKey;

#[derive(Debug, Clone, Default)]
pub struct PendingMerges {
    /// The number of the last merge this version knows (every stored merged value, at open).
    pub epoch: u64,
    /// (table, block, last seq, merge) of merged values whose inputs may remain -> first seq.
    pending: BTreeMap<(u64, i64, u64, u64), u64>,
}

impl PendingMerges {
    pub fn new(epoch: u64) -> Self {
        PendingMerges { epoch, pending: BTreeMap::new() }
    }

    /// Whether a reader of this version reads the value stored under `key`.
    pub fn shows(&self, key: &EventKey) -> bool {
        if key.merge > self.epoch {
            return false;
        }
        let later = (key.table_id, key.block, key.seq, 0)..=(key.table_id, key.block, u64::MAX, u64::MAX);
        !self.pending.range(later).any(|(&(_, _, _, merge), &first)| merge > key.merge && first <= key.seq)
    }

    /// Whether `key` is a merged value whose inputs are still stored.
    pub fn is_pending(&self, key: &EventKey) -> bool {
        self.pending.contains_key(&(key.table_id, key.block, key.seq, key.merge))
    }

    /// Records a merge: its merged value's key and the seq of its first row.
    pub fn add(&mut self, merged: &EventKey, first_seq: u64) {
        self.pending.insert((merged.table_id, merged.block, merged.seq, merged.merge), first_seq);
        self.epoch = self.epoch.max(merged.merge);
    }

    /// Forgets a merge whose inputs are deleted.
    pub fn settled(&mut self, merged: &EventKey) {
        self.pending.remove(&(merged.table_id, merged.block, merged.seq, merged.merge));
    }

    /// The merges whose inputs remain, with their first seq.
    pub fn iter(&self) -> impl Iterator<Item = (EventKey, u64)> + '_ {
        self.pending
            .iter()
            .map(|(&(table_id, block, seq, merge), &first)| (EventKey { table_id, block, seq, merge }, first))
    }

    pub fn drop_table(&mut self, table_id: u64) {
        self.pending.retain(|(t, ..), _| *t != table_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seq: u64, merge: u64) -> EventKey {
        EventKey { table_id: 1, block: 0, seq, merge }
    }

    #[test]
    fn readers_see_either_the_inputs_or_the_merge() {
        let before = PendingMerges::new(0);
        let mut after = before.clone();
        after.add(&key(5, 1), 3);
        for seq in 3..=5 {
            assert!(before.shows(&key(seq, 0)) && !after.shows(&key(seq, 0)), "input {seq}");
        }
        assert!(!before.shows(&key(5, 1)) && after.shows(&key(5, 1)));
        assert!(after.shows(&key(2, 0)) && after.shows(&key(6, 0)), "neighbours stay");

        // A second merge takes the first one's value and the next write.
        let mut again = after.clone();
        again.add(&key(6, 2), 3);
        assert!(!again.shows(&key(5, 1)) && !again.shows(&key(6, 0)) && again.shows(&key(6, 2)));
        again.settled(&key(5, 1));
        assert!(!again.shows(&key(4, 0)), "still hidden by the later merge");
        assert!(after.shows(&key(5, 1)) && !after.shows(&key(6, 2)));
    }
}
