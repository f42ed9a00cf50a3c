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
        // No owner, or none of its pods placed yet: every node is as good.
        let Some(id) = c.owner_id else {
            return 100;
        };
        100 / (1 + n.owned_by(id) as i64)
    }
}
