//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods tolerating
//! `node.kubernetes.io/unschedulable`.

use super::{Cycle, Filter};
use crate::cache::NodeInfo;

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
