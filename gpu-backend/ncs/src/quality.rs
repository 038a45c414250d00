//! Clustering agreement: the adjusted Rand index, used to score NCS against true labels and
//! batched mode against exact mode.

use std::collections::HashMap;
use std::hash::Hash;

/// Pairs among `n` items.
fn pairs(n: u64) -> f64 {
    (n as f64) * (n.saturating_sub(1) as f64) / 2.0
}

/// Adjusted Rand index (Hubert and Arabie) of two labelings of the same items: 1 for identical
/// partitions whatever the label names, about 0 for independent ones, negative for worse than
/// chance. Every distinct label is one group (NCS outliers, `-1`, form one group). Two labelings
/// that are both a single group, or both all singletons, score 1. `None` when the lengths
/// differ.
pub fn adjusted_rand_index<A: Eq + Hash, B: Eq + Hash>(a: &[A], b: &[B]) -> Option<f64> {
    if a.len() != b.len() {
        return None;
    }
    let mut joint: HashMap<(&A, &B), u64> = HashMap::new();
    let mut rows: HashMap<&A, u64> = HashMap::new();
    let mut cols: HashMap<&B, u64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index: f64 = joint.values().map(|&n| pairs(n)).sum();
    let sum_a: f64 = rows.values().map(|&n| pairs(n)).sum();
    let sum_b: f64 = cols.values().map(|&n| pairs(n)).sum();
    let total = pairs(a.len() as u64);
    if total == 0.0 {
        return Some(1.0);
    }
    let expected = sum_a * sum_b / total;
    let max = (sum_a + sum_b) / 2.0;
    if max == expected {
        return Some(1.0);
    }
    Some((index - expected) / (max - expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ari(a: &[i64], b: &[i64]) -> f64 {
        adjusted_rand_index(a, b).unwrap()
    }

    #[test]
    fn identical_partitions_score_one_whatever_the_names() {
        assert_eq!(ari(&[0, 0, 1, 1, 2], &[0, 0, 1, 1, 2]), 1.0);
        assert_eq!(ari(&[0, 0, 1, 1, 2], &[5, 5, -1, -1, 9]), 1.0);
    }

    #[test]
    fn known_small_cases() {
        // Worked by hand: index 1, sums 2 and 1 over 6 pairs.
        assert!((ari(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 4.0 / 7.0).abs() < 1e-12);
        // Every pair split differently: worse than chance.
        assert!((ari(&[0, 0, 1, 1], &[0, 1, 0, 1]) + 0.5).abs() < 1e-12);
        // One group against all singletons carries no information.
        assert_eq!(ari(&[0, 0, 0, 0], &[0, 1, 2, 3]), 0.0);
    }

    #[test]
    fn degenerate_labelings() {
        assert_eq!(ari(&[], &[]), 1.0);
        assert_eq!(ari(&[3], &[4]), 1.0);
        assert_eq!(ari(&[1, 1, 1], &[2, 2, 2]), 1.0);
        assert_eq!(ari(&[1, 2, 3], &[4, 5, 6]), 1.0);
        assert_eq!(adjusted_rand_index(&[1, 2], &[1]), None);
    }

    #[test]
    fn is_symmetric() {
        let a = [0, 0, 1, 1, 1, 2, 2, 0, 3];
        let b = [1, 1, 1, 0, 0, 2, 2, 2, 2];
        assert!((ari(&a, &b) - ari(&b, &a)).abs() < 1e-12);
    }
}
