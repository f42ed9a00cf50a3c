//! Sets of completion indexes as Kubernetes writes them (`0-2,4,6,7`), kept as sorted
//! intervals so a Job of 100,000 completions costs a few numbers, not a set entry each.

/// Sorted, disjoint, non-adjacent closed intervals within `[0, limit)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexes(Vec<(i64, i64)>);

impl Indexes {
    /// Parse `1,3-5,7`, dropping what is malformed and clipping to `[0, limit)` (as the Job
    /// controller does with a status written by someone else).
    pub fn parse(s: &str, limit: i64) -> Indexes {
        let mut out = Indexes::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                let (a, b) = (a.max(0), b.min(limit.saturating_sub(1)));
                if a <= b {
                    out.insert_range(a, b);
                }
            }
        }
        out
    }

    /// Add one index.
    pub fn insert(&mut self, i: i64) {
        self.insert_range(i, i);
    }

    fn insert_range(&mut self, a: i64, b: i64) {
        let mut merged = (a, b);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(x, y) in &self.0 {
            if y.saturating_add(1) < merged.0 {
                out.push((x, y));
            } else if merged.1.saturating_add(1) < x {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push((x, y));
            } else {
                merged = (merged.0.min(x), merged.1.max(y));
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: i64) -> bool {
        let p = self.0.partition_point(|&(_, y)| y < i);
        self.0.get(p).is_some_and(|&(x, _)| x <= i)
    }

    /// How many indexes.
    pub fn len(&self) -> i64 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    /// No index.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many of `other`'s indexes are in this set.
    pub fn overlap(&self, other: &Indexes) -> i64 {
        let mut n = 0;
        for &(a, b) in &other.0 {
            for &(x, y) in &self.0 {
                let (lo, hi) = (a.max(x), b.min(y));
                if lo <= hi {
                    n += hi - lo + 1;
                }
            }
        }
        n
    }

    /// The first `n` indexes of `[0, limit)` in neither this set nor `busy`.
    pub fn missing(
        &self,
        limit: i64,
        busy: &std::collections::BTreeSet<i64>,
        n: usize,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < limit && out.len() < n {
            let p = self.0.partition_point(|&(_, y)| y < i);
            match self.0.get(p) {
                Some(&(x, y)) if x <= i => i = y + 1,
                _ => {
                    if !busy.contains(&i) {
                        out.push(i);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| match b - a {
                0 => a.to_string(),
                1 => format!("{a},{b}"),
                _ => format!("{a}-{b}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_format_and_query() {
        let mut s = Indexes::parse("0-2,4,6,7", 100);
        assert_eq!(s.to_string(), "0-2,4,6,7");
        assert_eq!(s.len(), 6);
        s.insert(3);
        s.insert(5);
        assert_eq!(s.to_string(), "0-7");
        assert!(s.contains(7) && !s.contains(8));
        // Clipped to the completions; nonsense dropped; huge ranges cost nothing.
        assert_eq!(Indexes::parse("3-9,x,5--1,-4", 5).to_string(), "3,4");
        let big = Indexes::parse("0-9223372036854775806", 100_000);
        assert_eq!(big.len(), 100_000);
        let busy = [1].into();
        assert_eq!(
            Indexes::parse("0,3", 10).missing(10, &busy, 3),
            vec![2, 4, 5]
        );
        assert_eq!(
            Indexes::parse("0-4", 10).overlap(&Indexes::parse("3-7", 10)),
            2
        );
    }
}
