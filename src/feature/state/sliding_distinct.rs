//! The distinct values of a window that only moves forward, with their multiplicities: a
//! sweep's distinct counts, carried from one time to the next.

use std::collections::HashMap;

use crate::feature::accumulate::Events;
use crate::feature::encoding::VALUE;

/// The distinct words of a window that only moves forward, with their multiplicities.
#[derive(Debug, Default)]
pub struct SlidingDistinct {
    /// Events `lo..hi` are in `counts`.
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) counts: Vec<HashMap<u64, u32, ahash::RandomState>>,
}

impl SlidingDistinct {
    pub(super) fn new(aggregates: usize) -> Self {
        SlidingDistinct { lo: 0, hi: 0, counts: (0..aggregates).map(|_| HashMap::default()).collect() }
    }

    /// Moves the window to events `a..b` (`distinct` are the aggregates' indexes).
    /// Words held, over all aggregates (for bounding caches of windows).
    pub fn size(&self) -> usize {
        self.counts.iter().map(|c| c.len()).sum()
    }

    /// Follows the eviction of the first `r` events of the key (which later windows never
    /// reach): they leave the window, and positions shift down by `r`.
    pub(super) fn retire(&mut self, ev: &Events, distinct: &[usize], r: usize) {
        if self.hi <= r {
            self.counts.iter_mut().for_each(|c| c.clear());
            (self.lo, self.hi) = (0, 0);
            return;
        }
        if self.lo < r {
            self.slide(ev, distinct, (r, self.hi));
        }
        (self.lo, self.hi) = (self.lo - r, self.hi - r);
    }

    pub(super) fn slide(&mut self, ev: &Events, distinct: &[usize], (a, b): (usize, usize)) {
        if a < self.lo || b < self.hi || a > self.hi {
            // Not a forward move of an overlapping window: start over.
            self.counts.iter_mut().for_each(|c| c.clear());
            (self.lo, self.hi) = (a, a);
        }
        for i in self.hi..b {
            for (c, j) in self.counts.iter_mut().zip(distinct) {
                if ev.flag(i, *j) == VALUE {
                    *c.entry(ev.word(i, *j)).or_insert(0) += 1;
                }
            }
        }
        for i in self.lo..a {
            for (c, j) in self.counts.iter_mut().zip(distinct) {
                if ev.flag(i, *j) == VALUE {
                    let word = ev.word(i, *j);
                    if let Some(n) = c.get_mut(&word) {
                        *n -= 1;
                        if *n == 0 {
                            c.remove(&word);
                        }
                    }
                }
            }
        }
        (self.lo, self.hi) = (a, b);
    }
}
