//! The greatest ingest time of each run of 64 events of a key, built by a known-at sweep of
//! the key's rows the first time a row's window holds an unknown event: a run wholly known at
//! K gives its maximum and holds no unknown event, so only the runs holding one are read
//! event by event.

use crate::feature::accumulate::Events;

/// Events per run.
const RUN: usize = 64;

pub(super) struct IngestChunks {
    /// `max[c]`: the greatest ingest time of events `c * RUN .. (c + 1) * RUN`.
    max: Vec<i64>,
    /// The ingest time's word in each event (after the aggregates' words).
    word: usize,
    /// The key's events; the last run may be shorter than [`RUN`].
    len: usize,
}

impl IngestChunks {
    pub(super) fn new(ev: &Events, word: usize) -> IngestChunks {
        let max = (0..ev.len().div_ceil(RUN))
            .map(|c| (c * RUN..ev.len().min((c + 1) * RUN)).map(|i| ev.word(i, word) as i64).max().unwrap_or(i64::MIN))
            .collect();
        IngestChunks { max, word, len: ev.len() }
    }

    /// The greatest ingest time at or before `known` among events `from..to`.
    pub(super) fn greatest_known(&self, ev: &Events, from: usize, to: usize, known: i64) -> Option<i64> {
        let mut greatest = None;
        self.runs(from, to, |a, b, c| match c.map(|c| self.max[c]) {
            Some(m) if m <= known => greatest = greatest.max(Some(m)),
            _ => {
                let known_ones = (a..b).map(|i| ev.word(i, self.word) as i64).filter(|t| *t <= known);
                greatest = greatest.max(known_ones.max());
            }
        });
        greatest
    }

    /// Appends to `out` the events of `from..to` ingested after `known`, in order.
    pub(super) fn late(&self, ev: &Events, from: usize, to: usize, known: i64, out: &mut Vec<usize>) {
        self.runs(from, to, |a, b, c| {
            if c.is_none_or(|c| self.max[c] > known) {
                out.extend((a..b).filter(|i| ev.word(*i, self.word) as i64 > known));
            }
        });
    }

    /// Calls `each(a, b, run)` for consecutive pieces `a..b` covering `from..to`: `run` is
    /// `Some(c)` where the piece is the whole run `c` (the last, shorter one included), None
    /// for a part of a run.
    fn runs(&self, from: usize, to: usize, mut each: impl FnMut(usize, usize, Option<usize>)) {
        let mut a = from;
        while a < to {
            let c = a / RUN;
            let b = to.min((c + 1) * RUN);
            let whole = a == c * RUN && (b == (c + 1) * RUN || b == self.len) && c < self.max.len();
            each(a, b, whole.then_some(c));
            a = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(ingest: &[i64]) -> Vec<u64> {
        // time, arrival, flags, then the ingest word (no aggregates).
        ingest.iter().enumerate().flat_map(|(i, t)| [i as u64, i as u64, 0, *t as u64]).collect()
    }

    #[test]
    fn runs_give_what_a_scan_of_every_event_gives() {
        let mut state = 12345u64;
        let ingest: Vec<i64> = (0..1000)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 40) as i64 % 500
            })
            .collect();
        let words = events(&ingest);
        let ev = Events { words: &words, stride: 4, others: &[] };
        let chunks = IngestChunks::new(&ev, 0);
        // A known time equal to a run's maximum leaves that run wholly known.
        let maxima: Vec<i64> = chunks.max.clone();
        for (from, to) in
            [(0, 1000), (0, 0), (3, 64), (64, 128), (63, 65), (100, 999), (960, 1000), (990, 1000), (500, 501)]
        {
            for known in [-1, 0, 100, 250, 499, 500].into_iter().chain(maxima.iter().copied()) {
                let scan = ingest[from..to].iter().copied().filter(|t| *t <= known).max();
                assert_eq!(chunks.greatest_known(&ev, from, to, known), scan, "{from}..{to} at {known}");
                let mut late = Vec::new();
                chunks.late(&ev, from, to, known, &mut late);
                let expected: Vec<usize> = (from..to).filter(|i| ingest[*i] > known).collect();
                assert_eq!(late, expected, "{from}..{to} at {known}");
            }
        }
    }
}
