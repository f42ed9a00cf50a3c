//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods tolerating
//! `node.kubernetes.io/unschedulable`.

use super::{Cycle, Filter};
use crate::framework::NodeInfo;

/// The filter.
pub struct NodeUnschedulable;

impl Filter for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        if n.unschedulable && !c.pod.tolerates_unschedulable {
            Err("node(s) were unschedulable".into())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_unless_tolerated() {
        let mut n = node("a", &[]);
        n.unschedulable = true;
        let p = pod(json!({"containers": []}), json!({}));
        assert_eq!(
            NodeUnschedulable.filter(&Cycle::new(&p), &n),
            Err("node(s) were unschedulable".into())
        );
        let tolerant = pod(
            json!({"containers": [], "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
            json!({}),
        );
        assert_eq!(NodeUnschedulable.filter(&Cycle::new(&tolerant), &n), Ok(()));
        n.unschedulable = false;
        assert_eq!(NodeUnschedulable.filter(&Cycle::new(&p), &n), Ok(()));
    }
}
