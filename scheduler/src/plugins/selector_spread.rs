//! SelectorSpread: prefer nodes with fewer pods of the same controller (what kube-scheduler's
//! default topology spreading does for ReplicaSets).

use super::{Cycle, Score};
use crate::framework::NodeInfo;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn fewer_pods_of_the_owner_score_higher() {
        let p = pod(json!({"containers": []}), json!({}));
        let mut c = Cycle::new(&p);
        let empty = node("a", &[]);
        let mut two = node("b", &[]);
        two.owners = vec![(7, 2)];
        assert_eq!(SelectorSpread.score(&c, &two), 100, "no owner: all equal");
        c.owner_id = Some(7);
        assert_eq!(SelectorSpread.score(&c, &empty), 100);
        assert_eq!(SelectorSpread.score(&c, &two), 33);
    }
}
