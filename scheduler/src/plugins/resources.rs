//! NodeResourcesFit: enough allocatable cpu, memory and pod slots (a filter), and
//! LeastAllocated: prefer the node with the most free cpu and memory after placing the pod.

use super::{Cycle, Filter, Score};
use crate::cache::NodeInfo;

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
