//! NodeReady: only nodes whose Ready condition is True take pods (kube-scheduler gets the
//! same effect from the `node.kubernetes.io/not-ready` taint).

use super::{Cycle, Filter};
use crate::framework::NodeInfo;

/// The filter.
pub struct NodeReady;

impl Filter for NodeReady {
    fn name(&self) -> &'static str {
        "NodeReady"
    }
    fn filter(&self, _: &Cycle, n: &NodeInfo) -> Result<(), String> {
        if n.ready {
            Ok(())
        } else {
            Err("node(s) were not ready".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn only_ready_nodes() {
        let p = pod(json!({"containers": []}), json!({}));
        let c = Cycle::new(&p);
        let mut n = node("a", &[]);
        assert_eq!(NodeReady.filter(&c, &n), Ok(()));
        n.ready = false;
        assert_eq!(
            NodeReady.filter(&c, &n),
            Err("node(s) were not ready".into())
        );
        assert!(!NodeReady.preemption_could_help("node(s) were not ready"));
    }
}
