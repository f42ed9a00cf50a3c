//! From a metric's proposal to the replicas the autoscaler sets, as Kubernetes normalizes
//! it: without `behavior`, the highest recommendation of the downscale window
//! (`--horizontal-pod-autoscaler-downscale-stabilization`, 5 min) and a scale-up of at most
//! double (at least 4); with `behavior`, each direction's stabilization window and its
//! policies (Pods or Percent per period, the Max, Min or Disabled of them) over the scale
//! events of the period. Recommendations and scale events live in memory, per HPA.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use std::collections::HashMap;
use std::sync::Mutex;

/// What a normalization says about the AbleToScale and ScalingLimited conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The replicas to set.
    pub replicas: i32,
    /// AbleToScale's reason and message (stabilization).
    pub able: (&'static str, &'static str),
    /// ScalingLimited's status, reason and message.
    pub limited: (bool, &'static str, &'static str),
}

/// What the autoscaler remembers per HPA (lost on restart, as in Kubernetes).
#[derive(Default)]
pub struct Memory {
    inner: Mutex<HashMap<String, History>>,
}

#[derive(Default, Clone)]
struct History {
    /// Recommendations: (when, replicas).
    recommendations: Vec<(DateTime<Utc>, i32)>,
    /// Scale-ups and scale-downs done: (when, replicas changed).
    ups: Vec<(DateTime<Utc>, i32)>,
    downs: Vec<(DateTime<Utc>, i32)>,
}

const STABILIZED_UP: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const STABILIZED_DOWN: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const READY: (&str, &str) = ("ReadyForNewScale", "recommended size matches current size");
const WITHIN: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);

fn limited(
    result: i32,
    stabilized: i32,
    why: (&'static str, &'static str),
) -> (bool, &'static str, &'static str) {
    (result != stabilized, why.0, why.1)
}

impl Memory {
    /// Forget an HPA that is gone.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first time an HPA is seen, its current count is its first recommendation.
    pub fn first_seen(&self, key: &str, current: i32, now: DateTime<Utc>) {
        let mut m = self.lock();
        let h = m.entry(key.to_string()).or_default();
        if h.recommendations.is_empty() {
            h.recommendations.push((now, current));
        }
    }

    /// Note a rescale (for the policies' periods).
    pub fn scaled(&self, key: &str, from: i32, to: i32, now: DateTime<Utc>, keep: Duration) {
        let mut m = self.lock();
        let h = m.entry(key.to_string()).or_default();
        let list = if to > from { &mut h.ups } else { &mut h.downs };
        list.retain(|(t, _)| *t > now - keep);
        list.push((now, (to - from).abs()));
    }

    /// Without `behavior`: the highest recommendation of the last `window`, at most
    /// `max(2 x current, 4)` and within min..max.
    pub fn legacy(
        &self,
        key: &str,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        window: Duration,
        now: DateTime<Utc>,
    ) -> Normalized {
        let mut m = self.lock();
        let h = m.entry(key.to_string()).or_default();
        h.recommendations.retain(|(t, _)| *t >= now - window);
        let stabilized = h
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .fold(desired, i32::max);
        h.recommendations.push((now, desired));
        let able = if stabilized != desired {
            STABILIZED_DOWN
        } else {
            READY
        };
        let up_limit = (2 * current).max(4);
        let (cap, cap_why) = if max > up_limit {
            (up_limit, UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        let (replicas, why) = if stabilized < min {
            (min, TOO_FEW)
        } else if stabilized > cap {
            (cap, cap_why)
        } else {
            (stabilized, WITHIN)
        };
        Normalized {
            replicas,
            able,
            limited: limited(replicas, stabilized, why),
        }
    }

    /// With `behavior`: each direction's stabilization window, then its rate policies.
    #[allow(clippy::too_many_arguments)]
    pub fn with_behavior(
        &self,
        key: &str,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        b: &HorizontalPodAutoscalerBehavior,
        default_down_window: Duration,
        now: DateTime<Utc>,
    ) -> Normalized {
        let up = b.scale_up.clone().unwrap_or_default();
        let down = b.scale_down.clone().unwrap_or_default();
        let up_window = Duration::seconds(up.stabilization_window_seconds.unwrap_or(0).into());
        let down_window = down
            .stabilization_window_seconds
            .map_or(default_down_window, |s| Duration::seconds(s.into()));
        let mut m = self.lock();
        let h = m.entry(key.to_string()).or_default();
        let (mut up_rec, mut down_rec) = (desired, desired);
        for (t, r) in &h.recommendations {
            if *t > now - up_window {
                up_rec = up_rec.min(*r);
            }
            if *t > now - down_window {
                down_rec = down_rec.max(*r);
            }
        }
        let keep = up_window.max(down_window);
        h.recommendations.retain(|(t, _)| *t > now - keep);
        h.recommendations.push((now, desired));
        let stabilized = current.max(up_rec).min(down_rec);
        let able = match (stabilized == desired, desired >= current) {
            (true, _) => READY,
            (false, true) => STABILIZED_UP,
            (false, false) => STABILIZED_DOWN,
        };
        let in_period = |events: &[(DateTime<Utc>, i32)], period: i32| -> i32 {
            events
                .iter()
                .filter(|(t, _)| *t > now - Duration::seconds(period.into()))
                .map(|(_, n)| *n)
                .sum()
        };
        let (replicas, why) = if stabilized > current {
            let limit = up_limit(&up, current, |p| {
                in_period(&h.ups, p) - in_period(&h.downs, p)
            })
            .max(current);
            let (cap, why) = if max > limit {
                (limit, UP_LIMIT)
            } else {
                (max, TOO_MANY)
            };
            if stabilized > cap {
                (cap, why)
            } else {
                (stabilized, WITHIN)
            }
        } else if stabilized < current {
            let limit = down_limit(&down, current, |p| {
                in_period(&h.downs, p) - in_period(&h.ups, p)
            })
            .min(current);
            let (floor, why) = if min < limit {
                (limit, DOWN_LIMIT)
            } else {
                (min, TOO_FEW)
            };
            if stabilized < floor {
                (floor, why)
            } else {
                (stabilized, WITHIN)
            }
        } else {
            (stabilized, WITHIN)
        };
        Normalized {
            replicas,
            able,
            limited: limited(replicas, stabilized, why),
        }
    }
}

/// The most replicas the scale-up policies allow now; `net(period)` is the replicas added
/// (net of removed) within the period.
fn up_limit(r: &HPAScalingRules, current: i32, net: impl Fn(i32) -> i32) -> i32 {
    let select = r.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let proposals = r.policies.iter().flatten().map(|p| {
        let start = current - net(p.period_seconds);
        if p.type_ == "Pods" {
            start + p.value
        } else {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        }
    });
    if select == "Min" {
        proposals.min().unwrap_or(current)
    } else {
        proposals.max().unwrap_or(current)
    }
}

/// The fewest replicas the scale-down policies allow now; `net(period)` is the replicas
/// removed (net of added) within the period.
fn down_limit(r: &HPAScalingRules, current: i32, net: impl Fn(i32) -> i32) -> i32 {
    let select = r.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let proposals = r.policies.iter().flatten().map(|p| {
        let start = current + net(p.period_seconds);
        if p.type_ == "Pods" {
            start - p.value
        } else {
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        }
    });
    if select == "Min" {
        proposals.max().unwrap_or(current)
    } else {
        proposals.min().unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    #[test]
    fn legacy_holds_the_highest_recent_recommendation_and_caps_growth() {
        let m = Memory::default();
        let now = Utc::now();
        m.first_seen("k", 2, now);
        let n = m.legacy("k", 2, 10, (1, 20), Duration::seconds(300), now);
        assert_eq!(n.replicas, 4, "at most double, at least 4");
        assert_eq!(n.limited.1, "ScaleUpLimit");
        let n = m.legacy("k", 4, 1, (1, 20), Duration::seconds(300), now);
        // The recent 10 holds (capped at double the current 4).
        assert_eq!((n.replicas, n.able.0), (8, "ScaleDownStabilized"));
        let later = now + Duration::seconds(301);
        let n = m.legacy("k", 4, 1, (1, 20), Duration::seconds(300), later);
        assert_eq!(n.replicas, 1);
    }

    #[test]
    fn behavior_policies_limit_the_rate() {
        let m = Memory::default();
        let now = Utc::now();
        let pods = |v, period| HPAScalingPolicy {
            type_: "Pods".into(),
            value: v,
            period_seconds: period,
        };
        let b = HorizontalPodAutoscalerBehavior {
            scale_up: Some(HPAScalingRules {
                policies: Some(vec![pods(2, 60)]),
                select_policy: None,
                stabilization_window_seconds: Some(0),
            }),
            scale_down: Some(HPAScalingRules {
                policies: Some(vec![pods(1, 60)]),
                select_policy: None,
                stabilization_window_seconds: Some(0),
            }),
        };
        let n = m.with_behavior("k", 2, 6, (1, 10), &b, Duration::seconds(300), now);
        assert_eq!((n.replicas, n.limited.1), (4, "ScaleUpLimit"));
        m.scaled("k", 2, 4, now, Duration::seconds(60));
        // Within the period the two added count: no more now.
        let n = m.with_behavior("k", 4, 6, (1, 10), &b, Duration::seconds(300), now);
        assert_eq!(n.replicas, 4);
        // The period started at 2 replicas (4, less the 2 added): one down from there.
        let n = m.with_behavior("k", 4, 1, (1, 10), &b, Duration::seconds(300), now);
        assert_eq!(n.replicas, 1);
        let n = m.with_behavior("other", 4, 1, (1, 10), &b, Duration::seconds(300), now);
        assert_eq!((n.replicas, n.limited.1), (3, "ScaleDownLimit"));
    }
}
