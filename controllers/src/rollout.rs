//! Rollout planning, pure: given the Deployment's strategy and its ReplicaSets (desired and
//! available counts), the replica count each ReplicaSet should have next. RollingUpdate keeps
//! the total at most `replicas + maxSurge` and the available at least
//! `replicas - maxUnavailable` at every step; Recreate removes every old pod before the new
//! ReplicaSet scales up.

/// One ReplicaSet as planning sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsView {
    /// Name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.replicas` (pods that exist).
    pub current: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// The strategy, resolved against the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `maxSurge` (rounded up) and `maxUnavailable` (rounded down).
    RollingUpdate {
        /// Extra pods allowed above the desired count.
        max_surge: i32,
        /// Pods allowed to be unavailable below the desired count.
        max_unavailable: i32,
    },
    /// Old pods all go before new ones start.
    Recreate,
}

/// Target replicas per ReplicaSet name; only the ones that change.
pub fn plan(desired: i32, strategy: Strategy, new: &RsView, olds: &[RsView]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    match strategy {
        Strategy::Recreate => {
            for o in olds.iter().filter(|o| o.replicas > 0) {
                out.push((o.name.clone(), 0));
            }
            let old_pods: i32 = olds.iter().map(|o| o.current.max(o.replicas)).sum();
            if old_pods == 0 && new.replicas != desired {
                out.push((new.name.clone(), desired));
            }
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let (max_surge, max_unavailable) = if max_surge == 0 && max_unavailable == 0 {
                (0, 1)
            } else {
                (max_surge, max_unavailable)
            };
            let old_total: i32 = olds.iter().map(|o| o.replicas).sum();
            // Scale the new ReplicaSet up within the surge budget.
            let mut new_replicas = new.replicas;
            if new.replicas > desired {
                new_replicas = desired;
            } else if new.replicas < desired {
                let max_total = desired + max_surge;
                let room = max_total - (old_total + new.replicas);
                if room > 0 {
                    new_replicas = new.replicas + room.min(desired - new.replicas);
                }
            }
            if new_replicas != new.replicas {
                // One move per pass, as Kubernetes does: scale up now, scale old down on a
                // later pass, once the new pods' availability is known.
                out.push((new.name.clone(), new_replicas));
                return out;
            }
            // Scale old ReplicaSets down within the availability budget: first their
            // unavailable pods, then available ones, oldest ReplicaSet first.
            let min_available = desired - max_unavailable;
            let all_total = old_total + new_replicas;
            let new_unavailable = (new.replicas - new.available).max(0);
            let mut budget = all_total - min_available - new_unavailable;
            let mut targets: Vec<(String, i32)> =
                olds.iter().map(|o| (o.name.clone(), o.replicas)).collect();
            for (o, t) in olds.iter().zip(targets.iter_mut()) {
                if budget <= 0 {
                    break;
                }
                let unhealthy = (o.replicas - o.available).max(0).min(budget);
                t.1 -= unhealthy;
                budget -= unhealthy;
            }
            let available: i32 = olds.iter().map(|o| o.available).sum::<i32>() + new.available;
            let mut healthy_budget = (available - min_available).min(budget).max(0);
            for t in targets.iter_mut() {
                if healthy_budget <= 0 {
                    break;
                }
                let n = t.1.min(healthy_budget);
                t.1 -= n;
                healthy_budget -= n;
            }
            for (o, t) in olds.iter().zip(targets) {
                if t.1 != o.replicas {
                    out.push(t);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, replicas: i32, available: i32) -> RsView {
        RsView {
            name: name.into(),
            replicas,
            current: replicas,
            available,
        }
    }

    fn check(desired: i32, s: Strategy, new: RsView, olds: &[RsView], want: &[(&str, i32)]) {
        let got = plan(desired, s, &new, olds);
        let want: Vec<(String, i32)> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
        assert_eq!(got, want);
    }

    const RU_1_1: Strategy = Strategy::RollingUpdate {
        max_surge: 1,
        max_unavailable: 1,
    };
    const RU_1_0: Strategy = Strategy::RollingUpdate {
        max_surge: 1,
        max_unavailable: 0,
    };

    #[test]
    fn rolling_update_steps() {
        // Start: surge one new pod; the old one goes down on the next pass.
        check(
            3,
            RU_1_1,
            rs("new", 0, 0),
            &[rs("old", 3, 3)],
            &[("new", 1)],
        );
        check(
            3,
            RU_1_1,
            rs("new", 1, 0),
            &[rs("old", 3, 3)],
            &[("old", 2)],
        );
        // maxUnavailable 0: only surge until the new pod is available.
        check(
            3,
            RU_1_0,
            rs("new", 0, 0),
            &[rs("old", 3, 3)],
            &[("new", 1)],
        );
        check(3, RU_1_0, rs("new", 1, 0), &[rs("old", 3, 3)], &[]);
        check(
            3,
            RU_1_0,
            rs("new", 1, 1),
            &[rs("old", 3, 3)],
            &[("old", 2)],
        );
        // Finish: old goes to zero once the new one is fully available.
        check(
            3,
            RU_1_1,
            rs("new", 3, 3),
            &[rs("old", 1, 1)],
            &[("old", 0)],
        );
        // Steady state: nothing to do.
        check(3, RU_1_1, rs("new", 3, 3), &[rs("old", 0, 0)], &[]);
        // Plain scaling with no old ReplicaSets.
        check(5, RU_1_1, rs("new", 3, 3), &[], &[("new", 5)]);
        check(2, RU_1_1, rs("new", 3, 3), &[], &[("new", 2)]);
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        check(
            3,
            Strategy::Recreate,
            rs("new", 0, 0),
            &[rs("old", 3, 3)],
            &[("old", 0)],
        );
        let mut terminating = rs("old", 0, 0);
        terminating.current = 2;
        check(3, Strategy::Recreate, rs("new", 0, 0), &[terminating], &[]);
        check(
            3,
            Strategy::Recreate,
            rs("new", 0, 0),
            &[rs("old", 0, 0)],
            &[("new", 3)],
        );
    }

    #[test]
    fn bounds_hold_through_a_simulated_rollout() {
        // Simulate: every step, pods become available at once; check the invariants.
        for (surge, unavail) in [(1, 1), (1, 0), (0, 1), (2, 3), (3, 0)] {
            let s = Strategy::RollingUpdate {
                max_surge: surge,
                max_unavailable: unavail,
            };
            let desired = 5;
            let mut new = rs("new", 0, 0);
            let mut old = rs("old", desired, desired);
            for _ in 0..50 {
                for (name, n) in plan(desired, s, &new, std::slice::from_ref(&old)) {
                    let target = if name == "new" { &mut new } else { &mut old };
                    target.replicas = n;
                }
                assert!(
                    new.replicas + old.replicas
                        <= desired + surge.max(if surge == 0 && unavail == 0 { 0 } else { surge })
                );
                // Scale-downs take effect at once; new pods become available next round.
                old.available = old.available.min(old.replicas);
                old.current = old.replicas;
                assert!(
                    new.available + old.available
                        >= desired - unavail.max(if surge == 0 { 1 } else { 0 })
                );
                new.available = new.replicas;
                new.current = new.replicas;
            }
            assert_eq!(
                (new.replicas, old.replicas),
                (desired, 0),
                "surge {surge} unavailable {unavail}"
            );
        }
    }
}
