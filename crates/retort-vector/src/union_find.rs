//! Union-find over row indices: turns "these pairs are near-duplicates" into duplicate groups.
//!
//! Similarity is not transitive, but duplicate groups are: if a≈b and b≈c then keeping one of
//! {a, b, c} is what a user wants, even when a and c fall just under the threshold.

/// Disjoint-set forest with path halving and union by size.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// `n` singleton sets, one per row.
    pub fn new(n: usize) -> Self {
        assert!(n <= u32::MAX as usize, "more rows than u32 indices");
        UnionFind {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// Representative of `x`'s set.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Merges the sets holding `a` and `b`; returns false when they were already one set.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        true
    }
}

/// Groups of rows connected by `pairs` (the third field, a similarity, is ignored here).
///
/// Only groups with two or more members are returned — singletons are not duplicates of
/// anything. Members are sorted ascending and groups are ordered by their smallest member,
/// so the output is deterministic whatever order the pairs arrive in.
pub fn groups(n: usize, pairs: &[(u32, u32, f32)]) -> Vec<Vec<u32>> {
    let mut uf = UnionFind::new(n);
    for &(a, b, _) in pairs {
        assert!(
            (a as usize) < n && (b as usize) < n,
            "pair ({a}, {b}) out of range for {n} rows"
        );
        uf.union(a, b);
    }
    let mut by_root: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for &(a, b, _) in pairs {
        for x in [a, b] {
            let r = uf.find(x);
            by_root.entry(r).or_default().push(x);
        }
    }
    let mut out: Vec<Vec<u32>> = by_root
        .into_values()
        .map(|mut g| {
            g.sort_unstable();
            g.dedup();
            g
        })
        .filter(|g| g.len() > 1)
        .collect();
    out.sort_unstable_by_key(|g| g[0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_merge_transitively_and_singletons_are_dropped() {
        let pairs = [(0, 1, 0.97), (1, 2, 0.96), (5, 4, 0.99), (7, 7, 1.0)];
        let g = groups(8, &pairs);
        assert_eq!(g, vec![vec![0, 1, 2], vec![4, 5]]);
    }

    #[test]
    fn output_does_not_depend_on_pair_order() {
        let mut pairs = vec![(3, 9, 0.96), (9, 1, 0.95), (2, 6, 0.99), (6, 8, 0.97)];
        let a = groups(10, &pairs);
        pairs.reverse();
        assert_eq!(a, groups(10, &pairs));
    }
}
