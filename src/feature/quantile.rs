//! `approx_percentile`: exact over small windows, a mergeable t-digest over large ones.
//!
//! A partial keeps raw values until it holds [`EXACT_VALUES`] of them, then sketches them
//! into a t-digest of at most [`CENTROIDS`] centroids (DataFusion's, the one its own
//! `approx_percentile_cont` uses). Tiles therefore carry at most a few sketches each, and a
//! window merges them without reading its events again. A window whose values were never
//! sketched (fewer than [`EXACT_VALUES`] non-NULL values) gets the exact `percentile_cont`;
//! `q = 0` and `q = 1` are always the exact minimum and maximum (the digest keeps them).
//! docs/features.md states the error bound measured for larger windows.

use datafusion_functions_aggregate_common::tdigest::TDigest;

/// Raw values a partial keeps before sketching them.
pub const EXACT_VALUES: usize = 256;

/// The t-digest's compression: centroids per sketch.
pub const CENTROIDS: usize = 100;

/// Sketches for a partial kept separately before they are merged into one.
const SKETCHES: usize = 8;

/// Sketches `values` once there are enough, and merges sketches once there are many.
pub fn compact(values: &mut Vec<f64>, digests: &mut Vec<TDigest>) {
    if values.len() >= EXACT_VALUES {
        digests.push(TDigest::new(CENTROIDS).merge_unsorted_f64(std::mem::take(values)));
    }
    if digests.len() > SKETCHES {
        let merged = TDigest::merge_digests(digests.iter());
        *digests = vec![merged];
    }
}

/// The q-quantile of everything a partial holds; None when it holds nothing.
pub fn estimate(values: &[f64], digests: &[TDigest], q: f64) -> Option<f64> {
    if digests.is_empty() {
        return exact(values, q);
    }
    let mut all: Vec<TDigest> = digests.to_vec();
    if !values.is_empty() {
        all.push(TDigest::new(CENTROIDS).merge_unsorted_f64(values.to_vec()));
    }
    let merged = TDigest::merge_digests(all.iter());
    Some(merged.estimate_quantile(q))
}

/// PostgreSQL's `percentile_cont(q)`: linear interpolation between the values at ranks
/// `floor(q (n - 1))` and `ceil(q (n - 1))`, NaN sorting above every number.
pub fn exact(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (sorted[lo], sorted[hi]);
    Some(if lo == hi { a } else { a + (rank - lo as f64) * (b - a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_percentile_cont() {
        let values = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(exact(&values, 0.0), Some(1.0));
        assert_eq!(exact(&values, 1.0), Some(4.0));
        assert_eq!(exact(&values, 0.5), Some(2.5));
        assert_eq!(exact(&[7.0], 0.3), Some(7.0));
        assert_eq!(exact(&[], 0.3), None);
    }

    #[test]
    fn sketched_values_stay_close_and_keep_the_extremes() {
        let values: Vec<f64> = (0..100_000).map(|i| ((i * 7919) % 100_000) as f64).collect();
        let (mut kept, mut digests) = (Vec::new(), Vec::new());
        for chunk in values.chunks(1000) {
            let (mut v, mut d) = (Vec::new(), Vec::new());
            for x in chunk {
                v.push(*x);
                compact(&mut v, &mut d);
            }
            kept.extend(v);
            digests.extend(d);
            compact(&mut kept, &mut digests);
        }
        assert_eq!(estimate(&kept, &digests, 0.0), Some(0.0));
        assert_eq!(estimate(&kept, &digests, 1.0), Some(99_999.0));
        // The documented bound: between the exact quantiles at q - 0.01 and q + 0.01.
        for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99] {
            let got = estimate(&kept, &digests, q).unwrap();
            let (low, high) =
                (exact(&values, (q - 0.01f64).max(0.0)).unwrap(), exact(&values, (q + 0.01f64).min(1.0)).unwrap());
            assert!(low <= got && got <= high, "q {q}: {got} not within [{low}, {high}]");
        }
    }
}
