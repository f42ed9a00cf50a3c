//! SelectorSpread: prefer nodes with fewer pods of the same controller (what kube-scheduler's
//! default topology spreading does for ReplicaSets).

use super::{Cycle, Score};
use crate::cache::NodeInfo;

/// The score.
pub struct SelectorSpread;

impl Score for SelectorSpread {
    fn name(&self) -> &'static str {
        "SelectorSpread"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        let Some(owner) = &c.pod.owner else {
            return 100;
        };
        let same = n.owners.get(owner).copied().unwrap_or(0);
        100 / (1 + same as i64)
    }
}
