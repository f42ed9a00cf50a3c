//! Preemption (kube-scheduler's DefaultPreemption PostFilter), as plain functions: on a node
//! where evicting could help, the victims are the fewest lower-priority pods whose removal
//! lets the pod fit (all lower ones removed, then the most important given back while it
//! still fits, those whose eviction would break a PodDisruptionBudget first); among the nodes
//! with victims, the one with the fewest budget violations whose victims matter least is chosen.

use crate::algorithm::Profile;
use crate::framework::{Cycle, NodeInfo, PodInfo};
use coxswain_api::selector::LabelSelector;
use std::cmp::Ordering;
use std::collections::HashSet;

/// A PodDisruptionBudget as preemption weighs it.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Its namespace.
    pub namespace: String,
    /// `spec.selector` (an empty one protects nothing here, as in kube-scheduler).
    pub selector: LabelSelector,
    /// `status.disruptionsAllowed`.
    pub allowed: i32,
    /// `status.disruptedPods`: names already counted.
    pub disrupted: HashSet<String>,
}

/// Why a node offers no victims when no pod of lower priority runs there.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Why a node whose rejection evicting cannot lift offers no victims.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// A pod to evict: (pod key, priority, start time).
pub type Victim = (String, i32, Option<String>);

/// A node where preemption would make room, and the pods to evict there.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// Most important first.
    pub victims: Vec<Victim>,
    /// How many victims' eviction breaks a PodDisruptionBudget.
    pub violations: usize,
}

/// Pods whose eviction would take a budget below zero (in this order), and the others
/// (kube-scheduler's `filterPodsWithPDBViolation`).
type Victims<'a> = Vec<(&'a str, &'a PodInfo)>;
fn split_by_budgets<'a>(pods: Victims<'a>, budgets: &[Budget]) -> (Victims<'a>, Victims<'a>) {
    let mut allowed: Vec<i32> = budgets.iter().map(|b| b.allowed).collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for (k, p) in pods {
        let name = k.rsplit('/').next().unwrap_or(k);
        let mut violated = false;
        for (i, b) in budgets.iter().enumerate() {
            if p.labels.is_empty()
                || b.namespace != p.namespace
                || b.selector.is_empty()
                || !b.selector.matches(&p.labels)
                || b.disrupted.contains(name)
            {
                continue;
            }
            allowed[i] -= 1;
            violated |= allowed[i] < 0;
        }
        if violated {
            violating.push((k, p));
        } else {
            fine.push((k, p));
        }
    }
    (violating, fine)
}

/// The first filter's rejection of the pod on the node, if any.
pub fn rejection(profile: &Profile, c: &Cycle, n: &NodeInfo) -> Option<String> {
    profile.filters.iter().find_map(|f| f.filter(c, n).err())
}

/// kube-scheduler's `MoreImportantPod`: higher priority, then started earlier (a pod not
/// started yet counts as starting now, so after every started one).
fn more_important(a: &PodInfo, b: &PodInfo) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (&a.start_time, &b.start_time) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

/// The victims on one node (most important first) and how many of them break a budget, or
/// why the node offers none.
pub fn victims_on_node(
    profile: &Profile,
    c: &Cycle,
    node: &NodeInfo,
    pods: &[(&str, &PodInfo)],
    budgets: &[Budget],
) -> Result<(Vec<Victim>, usize), String> {
    let mut lower: Vec<(&str, &PodInfo)> = pods
        .iter()
        .filter(|(_, p)| p.priority < c.pod.priority)
        .copied()
        .collect();
    if lower.is_empty() {
        return Err(NO_VICTIMS.into());
    }
    let mut n = node.clone();
    for (_, p) in &lower {
        n.add(p, -1);
    }
    if let Some(reason) = rejection(profile, c, &n) {
        return Err(reason);
    }
    lower.sort_by(|a, b| more_important(a.1, b.1));
    let (violating, fine) = split_by_budgets(lower, budgets);
    let mixed = !violating.is_empty() && !fine.is_empty();
    let mut victims: Vec<(&str, &PodInfo)> = Vec::new();
    let mut violations = 0;
    // Given back while the pod still fits: the budget-breaking ones first.
    for (group, breaks) in [(violating, true), (fine, false)] {
        for (k, p) in group {
            n.add(p, 1);
            if rejection(profile, c, &n).is_some() {
                n.add(p, -1);
                victims.push((k, p));
                violations += usize::from(breaks);
            }
        }
    }
    if mixed {
        victims.sort_by(|a, b| more_important(a.1, b.1));
    }
    let victims = victims
        .into_iter()
        .map(|(k, p)| (k.to_string(), p.priority, p.start_time.clone()))
        .collect();
    Ok((victims, violations))
}

/// The candidate whose victims matter least: the fewest budget violations, the lowest
/// highest-priority victim, then the smallest sum of priorities, the fewest victims, the
/// latest start among the most important victims, then the first.
pub fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let top = c.victims.first().map_or(i32::MIN, |v| v.1);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.1 as i64 + i32::MAX as i64 + 1)
            .sum();
        // The earliest start among the victims of the top priority ("now" when not started).
        let earliest = c
            .victims
            .iter()
            .filter(|v| v.1 == top)
            .map(|v| v.2.clone().unwrap_or_else(|| "~".into()))
            .min()
            .unwrap_or_default();
        (
            c.violations,
            top,
            sum,
            c.victims.len(),
            std::cmp::Reverse(earliest),
        )
    };
    let mut best: Option<(Candidate, _)> = None;
    for c in candidates {
        let k = key(&c);
        if best.as_ref().is_none_or(|(_, bk)| k < *bk) {
            best = Some((c, k));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins;

    fn pod(prio: i32, cpu: i64, start: &str) -> PodInfo {
        PodInfo {
            namespace: "default".into(),
            priority: prio,
            cpu,
            start_time: Some(start.into()),
            ..Default::default()
        }
    }

    fn profile() -> Profile {
        let (filters, scores) = plugins::defaults();
        Profile { filters, scores }
    }

    #[test]
    fn evicts_the_fewest_least_important_pods_that_make_room() {
        let mut node = plugins::testing::node("n", &[]);
        let pods = [
            ("a", pod(10, 1500, "2026-01-01T00:00:00Z")),
            ("b", pod(5, 1500, "2026-01-01T00:00:00Z")),
            ("c", pod(5, 1000, "2026-01-02T00:00:00Z")),
            ("high", pod(1000, 0, "2026-01-01T00:00:00Z")),
        ];
        for (_, p) in &pods {
            node.add(p, 1);
        }
        let refs: Vec<(&str, &PodInfo)> = pods.iter().map(|(k, p)| (*k, p)).collect();
        let me = pod(100, 1500, "2026-01-03T00:00:00Z");
        let c = Cycle::new(&me);
        // 4000m, all used: 1500m must go. Given back in order a (10), b (5, older), c (5):
        // a fits back (3000m), b does not (4500m), c does (4000m).
        let (v, violations) = victims_on_node(&profile(), &c, &node, &refs, &[]).unwrap();
        assert_eq!(v.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(violations, 0);
        // Nothing of lower priority: no victims.
        let top = pod(1, 1500, "2026-01-03T00:00:00Z");
        let c = Cycle::new(&top);
        assert_eq!(
            victims_on_node(&profile(), &c, &node, &refs, &[]),
            Err(NO_VICTIMS.into())
        );
        // Too big even with every lower pod gone.
        let huge = pod(100, 5000, "2026-01-03T00:00:00Z");
        let c = Cycle::new(&huge);
        assert_eq!(
            victims_on_node(&profile(), &c, &node, &refs, &[]),
            Err("Insufficient cpu".into())
        );
    }

    #[test]
    fn the_node_whose_victims_matter_least_is_chosen() {
        let cand = |node: &str, victims: &[(i32, &str)]| Candidate {
            node: node.into(),
            violations: 0,
            victims: victims
                .iter()
                .enumerate()
                .map(|(i, (p, s))| (format!("{node}-{i}"), *p, Some(s.to_string())))
                .collect(),
        };
        let t = "2026-01-01T00:00:00Z";
        let later = "2026-01-05T00:00:00Z";
        let chosen = |cs: Vec<Candidate>| pick(cs).map(|c| c.node);
        assert_eq!(
            chosen(vec![cand("x", &[(10, t)]), cand("y", &[(5, t)])]).as_deref(),
            Some("y")
        );
        assert_eq!(
            chosen(vec![cand("x", &[(5, t), (5, t)]), cand("y", &[(5, t)])]).as_deref(),
            Some("y")
        );
        assert_eq!(
            chosen(vec![
                cand("x", &[(5, t), (1, t)]),
                cand("y", &[(5, t), (2, t)])
            ])
            .as_deref(),
            Some("x")
        );
        assert_eq!(
            chosen(vec![cand("x", &[(5, t)]), cand("y", &[(5, later)])]).as_deref(),
            Some("y")
        );
        assert_eq!(
            chosen(vec![cand("x", &[(5, t)]), cand("y", &[(5, t)])]).as_deref(),
            Some("x")
        );
        // Fewer budget violations come first, whatever the priorities.
        let mut x = cand("x", &[(1, t)]);
        x.violations = 1;
        assert_eq!(chosen(vec![x, cand("y", &[(50, t)])]).as_deref(), Some("y"));
    }

    #[test]
    fn pods_a_budget_protects_are_given_back_first() {
        let mut node = plugins::testing::node("n", &[]);
        let labelled = |prio: i32, app: &str| PodInfo {
            labels: [("app".to_string(), app.to_string())].into(),
            ..pod(prio, 2000, "2026-01-01T00:00:00Z")
        };
        // Two 2000m pods of priority 5: "guarded" has a budget allowing no disruption.
        let pods = [
            ("default/guarded", labelled(5, "db")),
            ("default/free", labelled(5, "web")),
        ];
        for (_, p) in &pods {
            node.add(p, 1);
        }
        let refs: Vec<(&str, &PodInfo)> = pods.iter().map(|(k, p)| (*k, p)).collect();
        let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("app".to_string(), "db".to_string())].into()),
            ..Default::default()
        };
        let budget = Budget {
            namespace: "default".into(),
            selector: LabelSelector::from_k8s(&selector).unwrap(),
            allowed: 0,
            disrupted: HashSet::new(),
        };
        let budgets = std::slice::from_ref(&budget);
        // Room for 2000m: without the budget "guarded" (first in order) would be given back
        // and "free" evicted anyway; with "guarded" listed second it still is spared.
        let me = pod(100, 2000, "2026-01-03T00:00:00Z");
        let c = Cycle::new(&me);
        let (v, n) = victims_on_node(&profile(), &c, &node, &refs, budgets).unwrap();
        assert_eq!((v.len(), v[0].0.as_str(), n), (1, "default/free", 0));
        let reversed: Vec<(&str, &PodInfo)> = refs.iter().rev().copied().collect();
        let (v, _) = victims_on_node(&profile(), &c, &node, &reversed, budgets).unwrap();
        assert_eq!(v[0].0, "default/free");
        let (v, _) = victims_on_node(&profile(), &c, &node, &reversed, &[]).unwrap();
        assert_eq!(
            v[0].0, "default/guarded",
            "without the budget, the order decides"
        );
        // Room for 4000m: both go, one of them breaking the budget.
        let big = pod(100, 4000, "2026-01-03T00:00:00Z");
        let c = Cycle::new(&big);
        let (v, n) = victims_on_node(&profile(), &c, &node, &refs, budgets).unwrap();
        assert_eq!((v.len(), n), (2, 1));
    }
}
