//! NodeResourcesFit: enough allocatable cpu, memory and pod slots (a filter), and
//! LeastAllocated: prefer the node with the most free cpu and memory after placing the pod.

use super::{Cycle, Filter, Score};
use crate::framework::NodeInfo;

/// The filter.
pub struct Fit;

impl Filter for Fit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }
    fn filter(&self, c: &Cycle, n: &NodeInfo) -> Result<(), String> {
        let p = c.pod;
        if n.pods + 1 > n.alloc_pods {
            return Err("Too many pods".into());
        }
        if n.req_cpu + p.cpu > n.alloc_cpu {
            return Err("Insufficient cpu".into());
        }
        if n.req_mem + p.mem > n.alloc_mem {
            return Err("Insufficient memory".into());
        }
        Ok(())
    }
    fn preemption_could_help(&self, _reason: &str) -> bool {
        true
    }
}

/// The score.
pub struct LeastAllocated;

impl Score for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesLeastAllocated"
    }
    fn score(&self, c: &Cycle, n: &NodeInfo) -> i64 {
        let p = c.pod;
        let free = |used: i64, cap: i64| {
            if cap <= 0 {
                0
            } else {
                ((cap - used).max(0) * 100) / cap
            }
        };
        // Pods without requests still count a little, as kube-scheduler's defaults do.
        let cpu = if p.cpu == 0 { 100 } else { p.cpu };
        let mem = if p.mem == 0 { 200 * 1024 * 1024 } else { p.mem };
        (free(n.req_cpu_scored + cpu, n.alloc_cpu) + free(n.req_mem_scored + mem, n.alloc_mem)) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn fit_and_least_allocated() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}),
            json!({}),
        );
        let c = Cycle::new(&p);
        let mut n = node("a", &[]);
        assert_eq!(Fit.filter(&c, &n), Ok(()));
        n.req_cpu = 3500;
        assert_eq!(Fit.filter(&c, &n), Err("Insufficient cpu".into()));
        n.req_cpu = 0;
        n.req_mem = (7 << 30) + (1 << 29);
        assert_eq!(Fit.filter(&c, &n), Err("Insufficient memory".into()));
        n.pods = 110;
        assert_eq!(Fit.filter(&c, &n), Err("Too many pods".into()));
        assert!(Fit.preemption_could_help("Insufficient cpu"));
        // Least allocated: an empty node scores (75 + 87) / 2 for 1 of 4 cpus, 1 of 8 GiB.
        let empty = node("e", &[]);
        let mut busy = node("b", &[]);
        busy.req_cpu_scored = 2000;
        busy.req_mem_scored = 4 << 30;
        assert_eq!(LeastAllocated.score(&c, &empty), (75 + 87) / 2);
        assert!(LeastAllocated.score(&c, &busy) < LeastAllocated.score(&c, &empty));
    }
}
