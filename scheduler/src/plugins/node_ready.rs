//! NodeReady: only nodes whose Ready condition is True take pods (kube-scheduler gets the
//! same effect from the `node.kubernetes.io/not-ready` taint).

use super::{Cycle, Filter};
use crate::cache::NodeInfo;

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
