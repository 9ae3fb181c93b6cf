//! Sets of input positions, the record of what a step has finished.
//!
//! A step's input is the concatenation of its upstream steps' committed rows, each with
//! a position (0, 1, 2, … in `after` order, parts in order). Every commit names the
//! positions it finished; their union is the step's done set. Teacher steps finish
//! records in completion order, so the set has gaps (calls still in flight, records
//! left pending by a transient fault) that a resume fills. Several processes that each
//! own part of the input could write their own commits and the union would still say
//! exactly what is done, which is why positions and not a cursor are recorded.

use serde::{Deserialize, Serialize};

/// A set of `u64` positions stored as sorted, disjoint, non-adjacent half-open ranges.
/// Compact for what steps produce: a long finished prefix plus a few gaps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PositionSet {
    ranges: Vec<(u64, u64)>,
}

impl PositionSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The positions `start..end`.
    pub fn range(start: u64, end: u64) -> Self {
        let mut s = Self::new();
        s.insert_range(start, end);
        s
    }

    /// Build from any positions, in any order, duplicates allowed.
    pub fn from_positions(positions: impl IntoIterator<Item = u64>) -> Self {
        let mut v: Vec<u64> = positions.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for p in v {
            match ranges.last_mut() {
                Some(last) if last.1 == p => last.1 = p + 1,
                _ => ranges.push((p, p + 1)),
            }
        }
        PositionSet { ranges }
    }

    /// Add `start..end`.
    pub fn insert_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Ranges that touch or overlap [start, end) merge into one.
        let first = self.ranges.partition_point(|r| r.1 < start);
        let last = self.ranges.partition_point(|r| r.0 <= end);
        if first == last {
            self.ranges.insert(first, (start, end));
            return;
        }
        let lo = start.min(self.ranges[first].0);
        let hi = end.max(self.ranges[last - 1].1);
        self.ranges.drain(first..last);
        self.ranges.insert(first, (lo, hi));
    }

    /// Add one position.
    pub fn insert(&mut self, p: u64) {
        self.insert_range(p, p + 1);
    }

    /// Add every position of `other`.
    pub fn union(&mut self, other: &PositionSet) {
        for &(a, b) in &other.ranges {
            self.insert_range(a, b);
        }
    }

    /// Remove one position.
    pub fn remove(&mut self, p: u64) {
        let i = self.ranges.partition_point(|r| r.1 <= p);
        if let Some(&(a, b)) = self.ranges.get(i) {
            if a <= p && p < b {
                self.ranges.remove(i);
                if p + 1 < b {
                    self.ranges.insert(i, (p + 1, b));
                }
                if a < p {
                    self.ranges.insert(i, (a, p));
                }
            }
        }
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 <= p);
        self.ranges.get(i).is_some_and(|r| r.0 <= p)
    }

    /// Number of positions.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Length of the finished prefix `0..n` (what a step that commits in input order
    /// calls its cursor).
    pub fn prefix(&self) -> u64 {
        match self.ranges.first() {
            Some(&(0, b)) => b,
            _ => 0,
        }
    }

    /// One past the largest position, 0 when empty.
    pub fn end(&self) -> u64 {
        self.ranges.last().map(|r| r.1).unwrap_or(0)
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Every position, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_splits() {
        let mut s = PositionSet::new();
        s.insert(5);
        s.insert(3);
        s.insert(4);
        assert_eq!(s.ranges(), &[(3, 6)]);
        s.insert_range(0, 2);
        assert_eq!(s.ranges(), &[(0, 2), (3, 6)]);
        assert_eq!(s.prefix(), 2);
        s.insert(2);
        assert_eq!(s.ranges(), &[(0, 6)]);
        s.remove(3);
        assert_eq!(s.ranges(), &[(0, 3), (4, 6)]);
        assert!(!s.contains(3) && s.contains(4) && s.contains(0) && !s.contains(6));
        assert_eq!(s.len(), 5);
        s.insert_range(1, 10);
        assert_eq!(s.ranges(), &[(0, 10)]);
    }

    #[test]
    fn matches_a_plain_set_on_random_operations() {
        // xorshift so the test needs no rand dependency.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = PositionSet::new();
        let mut plain = std::collections::BTreeSet::new();
        for _ in 0..5000 {
            let a = next() % 200;
            match next() % 3 {
                0 => {
                    let b = a + next() % 7;
                    s.insert_range(a, b);
                    plain.extend(a..b);
                }
                1 => {
                    s.remove(a);
                    plain.remove(&a);
                }
                _ => assert_eq!(s.contains(a), plain.contains(&a)),
            }
            assert_eq!(s.len(), plain.len() as u64);
        }
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            plain.into_iter().collect::<Vec<_>>()
        );
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PositionSet>(&json).unwrap(), s);
        let rebuilt = PositionSet::from_positions(s.iter().collect::<Vec<_>>().into_iter().rev());
        assert_eq!(rebuilt, s);
    }
}
