//! The scheduler's view of the cluster: nodes with their pre-aggregated requests, fed by the
//! node and pod informers, plus pods the scheduler has bound but not yet seen bound
//! ("assumed"), so a node is never double-booked while the watch catches up. Placed pods are
//! indexed by namespace (and those with required anti-affinity kept apart), so the per-pod
//! counts that inter-pod affinity and topology spread need ([`Cycle`]) only visit the pods
//! that can match.

use crate::framework::{AffinityTerm, Cycle, NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Inner {
    nodes: BTreeMap<String, NodeInfo>,
    /// Pod key -> (node, info) for every pod counted on a node (bound or assumed).
    placed: HashMap<String, (String, Arc<PodInfo>)>,
    /// Namespace -> keys of placed pods in it.
    by_ns: HashMap<String, HashSet<String>>,
    /// Node -> keys of pods placed on it (preemption looks for victims there).
    by_node: HashMap<String, HashSet<String>>,
    /// Keys of placed pods with required anti-affinity (checked against every new pod).
    with_anti: HashSet<String>,
    /// Priority -> placed pods of it (whether any pod could be a victim at all).
    priorities: BTreeMap<i32, usize>,
    /// Where the next decision starts looking (kube-scheduler's `nextStartNodeIndex`).
    next_start: String,
    /// Owner UID -> (its number, placed pods it owns).
    owner_ids: HashMap<String, (u32, usize)>,
    /// The next owner number.
    next_owner_id: u32,
}

impl Inner {
    fn unplace(&mut self, key: &str) {
        if let Some((node, p)) = self.placed.remove(key) {
            if let Some(n) = self.nodes.get_mut(&node) {
                n.add(&p, -1);
            }
            if let Some(keys) = self.by_ns.get_mut(&p.namespace) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_ns.remove(&p.namespace);
                }
            }
            if let Some(keys) = self.by_node.get_mut(&node) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_node.remove(&node);
                }
            }
            self.with_anti.remove(key);
            if let Some(n) = self.priorities.get_mut(&p.priority) {
                *n -= 1;
                if *n == 0 {
                    self.priorities.remove(&p.priority);
                }
            }
            if let Some(o) = &p.owner {
                if let Some(e) = self.owner_ids.get_mut(o) {
                    e.1 -= 1;
                    if e.1 == 0 {
                        self.owner_ids.remove(o);
                    }
                }
            }
        }
    }

    /// The number of a placed pod's owner, counting one more pod of it.
    fn intern_owner(&mut self, owner: &str) -> u32 {
        if let Some(e) = self.owner_ids.get_mut(owner) {
            e.1 += 1;
            return e.0;
        }
        let id = self.next_owner_id;
        self.next_owner_id = self.next_owner_id.wrapping_add(1);
        self.owner_ids.insert(owner.to_string(), (id, 1));
        id
    }

    /// The placed pods a term can match, with their node's labels.
    fn candidates<'a>(
        &'a self,
        namespaces: &'a [String],
    ) -> Box<dyn Iterator<Item = (&'a PodInfo, &'a BTreeMap<String, String>)> + 'a> {
        let keys: Box<dyn Iterator<Item = &String>> = if namespaces.is_empty() {
            Box::new(self.placed.keys())
        } else {
            Box::new(
                namespaces
                    .iter()
                    .filter_map(|ns| self.by_ns.get(ns))
                    .flatten(),
            )
        };
        Box::new(keys.filter_map(|k| {
            let (node, p) = self.placed.get(k)?;
            Some((&**p, &self.nodes.get(node)?.labels))
        }))
    }

    /// Per-domain counts of the placed pods `term` matches.
    fn term_counts(&self, term: &AffinityTerm) -> HashMap<String, i64> {
        let mut counts = HashMap::new();
        for (p, labels) in self.candidates(&term.namespaces) {
            if let Some(v) = labels.get(&term.topology_key) {
                if term.matches(p) {
                    *counts.entry(v.clone()).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    /// Everything one scheduling attempt of `pod` needs beyond a single node.
    fn cycle<'a>(&self, pod: &'a PodInfo) -> Cycle<'a> {
        let mut c = Cycle::new(pod);
        c.owner_id = pod
            .owner
            .as_ref()
            .and_then(|o| self.owner_ids.get(o))
            .map(|e| e.0);
        c.affinity = pod.affinity.iter().map(|t| self.term_counts(t)).collect();
        c.anti_affinity = pod
            .anti_affinity
            .iter()
            .map(|t| self.term_counts(t))
            .collect();
        c.preferred = pod
            .preferred
            .iter()
            .map(|(_, t)| self.term_counts(t))
            .collect();
        for key in &self.with_anti {
            let Some((node, q)) = self.placed.get(key) else {
                continue;
            };
            let Some(labels) = self.nodes.get(node).map(|n| &n.labels) else {
                continue;
            };
            for t in q.anti_affinity.iter().filter(|t| t.matches(pod)) {
                if let Some(v) = labels.get(&t.topology_key) {
                    c.forbidden.insert((t.topology_key.clone(), v.clone()));
                }
            }
        }
        for sc in &pod.spread {
            // Domains: nodes that pass the pod's node selection and carry the key.
            let mut counts: HashMap<String, i64> = HashMap::new();
            for n in self.nodes.values() {
                if let Some(v) = n.labels.get(&sc.topology_key) {
                    if crate::framework::node_selection_matches(pod, n) {
                        counts.entry(v.clone()).or_insert(0);
                    }
                }
            }
            let ns = [pod.namespace.clone()];
            for (p, labels) in self.candidates(&ns) {
                let Some(v) = labels.get(&sc.topology_key) else {
                    continue;
                };
                if let Some(count) = counts.get_mut(v) {
                    if sc.selector.as_ref().is_some_and(|s| s.matches(&p.labels)) {
                        *count += 1;
                    }
                }
            }
            c.spread.push(counts);
        }
        c
    }
}

/// The cache; share behind an `Arc`.
#[derive(Default)]
pub struct SchedCache(Mutex<Inner>);

/// What scheduling reads of a node: a change elsewhere (a heartbeat) retries nothing.
fn scheduling_view(n: &NodeInfo) -> impl PartialEq + '_ {
    (
        n.ready,
        n.unschedulable,
        &n.labels,
        &n.taints,
        (n.alloc_cpu, n.alloc_mem, n.alloc_pods),
    )
}

impl SchedCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node was added or changed; true when the change can make a pod fit.
    pub fn set_node(&self, n: &Node) -> bool {
        let mut g = self.lock();
        let mut info = NodeInfo::from_node(n);
        let name = info.name.clone();
        let changed = match g.nodes.get_mut(&name) {
            Some(old) => {
                // A known node (a heartbeat, a label): its pod aggregates carry over, so a
                // status update costs nothing per pod.
                let changed = scheduling_view(old) != scheduling_view(&info);
                info.req_cpu = old.req_cpu;
                info.req_mem = old.req_mem;
                info.req_cpu_scored = old.req_cpu_scored;
                info.req_mem_scored = old.req_mem_scored;
                info.pods = old.pods;
                info.owners = std::mem::take(&mut old.owners);
                *old = info;
                changed
            }
            None => {
                // A new node: count the pods already placed on it (a node deleted and
                // re-registered while its pods stayed).
                for (node, p) in g.placed.values() {
                    if *node == name {
                        info.add(p, 1);
                    }
                }
                g.nodes.insert(name, info);
                true
            }
        };
        changed
    }

    /// A node was deleted.
    pub fn remove_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    /// Count a pod on a node (bound, or assumed by us). Idempotent per pod key.
    pub fn place(&self, key: &str, node: &str, mut p: PodInfo) {
        let mut g = self.lock();
        g.unplace(key);
        p.owner_id = p.owner.as_deref().map(|o| g.intern_owner(o));
        if let Some(n) = g.nodes.get_mut(node) {
            n.add(&p, 1);
        }
        g.by_ns
            .entry(p.namespace.clone())
            .or_default()
            .insert(key.to_string());
        g.by_node
            .entry(node.to_string())
            .or_default()
            .insert(key.to_string());
        *g.priorities.entry(p.priority).or_default() += 1;
        if !p.anti_affinity.is_empty() {
            g.with_anti.insert(key.to_string());
        }
        g.placed
            .insert(key.to_string(), (node.to_string(), Arc::new(p)));
    }

    /// Stop counting a pod (deleted, finished, or a failed bind).
    pub fn unplace(&self, key: &str) {
        self.lock().unplace(key);
    }

    /// Preemption's dry run for `pod` (which fits nowhere): the chosen candidate, or why each
    /// node offers none (reason -> nodes). At most max(10 %, 100) candidates are compared.
    pub fn preemption(
        &self,
        pod: &PodInfo,
        volumes: Option<&crate::volumes::Check>,
        profile: &crate::algorithm::Profile,
        budgets: &[crate::preemption::Budget],
    ) -> Result<crate::preemption::Candidate, BTreeMap<String, usize>> {
        use crate::preemption::{pick, victims_on_node, Candidate, NOT_HELPFUL};
        let g = self.lock();
        let mut cycle = g.cycle(pod);
        cycle.volumes = volumes;
        let enough = (g.nodes.len() / 10).max(100);
        let mut candidates = Vec::new();
        let mut why: BTreeMap<String, usize> = BTreeMap::new();
        for n in g.nodes.values() {
            if candidates.len() >= enough {
                break;
            }
            let helps = profile.filters.iter().find_map(|f| {
                f.filter(&cycle, n)
                    .err()
                    .map(|r| f.preemption_could_help(&r))
            });
            if helps != Some(true) {
                *why.entry(NOT_HELPFUL.into()).or_default() += 1;
                continue;
            }
            let pods: Vec<(&str, &PodInfo)> = g
                .by_node
                .get(&n.name)
                .into_iter()
                .flatten()
                .filter_map(|k| Some((k.as_str(), &*g.placed.get(k)?.1)))
                .collect();
            match victims_on_node(profile, &cycle, n, &pods, budgets) {
                Ok((victims, violations)) if !victims.is_empty() => candidates.push(Candidate {
                    node: n.name.clone(),
                    victims,
                    violations,
                }),
                Ok(_) => {}
                Err(reason) => *why.entry(reason).or_default() += 1,
            }
        }
        pick(candidates).ok_or(why)
    }

    /// Whether any placed pod has a lower priority (could be a victim).
    pub fn any_below(&self, priority: i32) -> bool {
        self.lock()
            .priorities
            .keys()
            .next()
            .is_some_and(|p| *p < priority)
    }

    /// Whether a pod of lower priority than `priority` is being deleted on the node (a
    /// preemption there is still under way).
    pub fn terminating_below(&self, node: &str, priority: i32) -> bool {
        let g = self.lock();
        g.by_node.get(node).into_iter().flatten().any(|k| {
            g.placed
                .get(k)
                .is_some_and(|(_, p)| p.terminating && p.priority < priority)
        })
    }

    /// How many nodes there are.
    pub fn node_count(&self) -> usize {
        self.lock().nodes.len()
    }

    /// A copy of one node's view.
    pub fn node(&self, name: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(name).cloned()
    }

    /// Whether a pod is counted on some node.
    pub fn is_placed(&self, key: &str) -> bool {
        self.lock().placed.contains_key(key)
    }

    /// Run one scheduling decision for `pod` under the cache lock (no copies: a decision is
    /// arithmetic on the aggregates and the cycle's counts). The nodes come round-robin from
    /// where the previous decision stopped; `f` returns the last node it looked at.
    pub fn decide<T>(
        &self,
        pod: &PodInfo,
        volumes: Option<&crate::volumes::Check>,
        f: impl FnOnce(&Cycle, &mut dyn Iterator<Item = &NodeInfo>, usize) -> (T, Option<String>),
    ) -> T {
        let mut g = self.lock();
        let mut cycle = g.cycle(pod);
        cycle.volumes = volumes;
        let n = g.nodes.len();
        let start = g.next_start.clone();
        let mut nodes = g
            .nodes
            .range(start.clone()..)
            .chain(g.nodes.range(..start))
            .map(|(_, n)| n);
        let (out, last) = f(&cycle, &mut nodes, n);
        drop(nodes);
        if let Some(mut last) = last {
            last.push('\0'); // the next decision starts just after it
            g.next_start = last;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, ready: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
            }
        }))
        .unwrap_or_default()
    }

    fn pod_on(owner: &str) -> PodInfo {
        PodInfo {
            cpu: 500,
            mem: 1 << 20,
            owner: Some(owner.into()),
            namespace: "default".into(),
            ..Default::default()
        }
    }

    fn counted(c: &SchedCache, name: &str) -> (i64, i64, u32) {
        let g = c.lock();
        let n = &g.nodes[name];
        let id = g.owner_ids.get("rs-1").map_or(u32::MAX, |e| e.0);
        (n.pods, n.req_cpu, n.owned_by(id))
    }

    #[test]
    fn node_updates_keep_the_pods_counted_on_it() {
        let c = SchedCache::default();
        assert!(
            c.set_node(&node("n1", true)),
            "a new node can make pods fit"
        );
        c.place("default/a", "n1", pod_on("rs-1"));
        c.place("default/b", "n1", pod_on("rs-1"));
        assert_eq!(counted(&c, "n1"), (2, 1000, 2));
        // A heartbeat (same scheduling view) changes nothing and keeps the counts.
        assert!(!c.set_node(&node("n1", true)));
        assert_eq!(counted(&c, "n1"), (2, 1000, 2));
        // A readiness change matters to scheduling, and still keeps the counts.
        assert!(c.set_node(&node("n1", false)));
        assert_eq!(counted(&c, "n1"), (2, 1000, 2));
        c.unplace("default/a");
        assert_eq!(counted(&c, "n1"), (1, 500, 1));
        // Deleted and registered again: the pods still placed there are counted anew.
        c.remove_node("n1");
        assert!(c.set_node(&node("n1", true)));
        assert_eq!(counted(&c, "n1"), (1, 500, 1));
    }
}
