//! The replica calculator: from the pods' usage (metrics.k8s.io) and requests, how many
//! replicas a Resource or ContainerResource metric asks for, by Kubernetes' formula
//! (`ceil(ratio x ready pods)` outside the tolerance; pods being deleted or failed ignored;
//! pending or still-starting pods and pods without metrics filled in so they damp a change
//! rather than cause one).

use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, HashMap};

/// How pods are judged and how much change is ignored.
#[derive(Debug, Clone, Copy)]
pub struct Judgement {
    /// Ratios within `1 +- tolerance` keep the current count (`--horizontal-pod-autoscaler-tolerance`).
    pub tolerance: f64,
    /// A pod this young has its CPU sampled only once ready for a window
    /// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
    pub cpu_initialization: chrono::Duration,
    /// After it, a pod that never became ready within this delay of starting is ignored
    /// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
    pub readiness_delay: chrono::Duration,
}

/// One pod's metric sample: its usage (milli-units) and when it was taken over what window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Usage in milli-units (millicores, milli-bytes).
    pub milli: i64,
    /// When it was taken.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Over how long.
    pub window: chrono::Duration,
}

/// What a target asks for: a utilization of the request (percent) or an average value
/// (milli-units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// `averageUtilization`.
    Utilization(i64),
    /// `averageValue`.
    AverageValue(i64),
}

/// A proposal: replicas, and what was measured (utilization percent when the target is one,
/// and the average usage in milli-units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Replicas wanted.
    pub replicas: i32,
    /// Average utilization of the request, percent.
    pub utilization: Option<i64>,
    /// Average usage, milli-units.
    pub average: i64,
}

/// Why no proposal could be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CalcError(pub String);

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// A pod's request for `resource` (milli-units) summed over its containers (or only
/// `container`), and sidecars (init containers that keep running).
fn requests(
    p: &Pod,
    resource: &str,
    container: Option<&str>,
    milli: fn(&str, &str) -> Option<i64>,
) -> Result<i64, CalcError> {
    let Some(spec) = p.spec.as_ref() else {
        return Ok(0);
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut total = 0i64;
    for c in spec.containers.iter().chain(sidecars) {
        if container.is_some_and(|n| n != c.name) {
            continue;
        }
        let q = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource));
        match q.and_then(|q| milli(resource, &q.0)) {
            Some(v) => total = total.saturating_add(v),
            None => {
                return Err(CalcError(format!(
                    "missing request for {resource} in container {} of Pod {}",
                    c.name,
                    pod_name(p)
                )))
            }
        }
    }
    Ok(total)
}

fn ready_condition(p: &Pod) -> Option<(bool, chrono::DateTime<chrono::Utc>)> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status == "True", c.last_transition_time.as_ref()?.0))
}

/// Whether a pod's CPU sample is left out as the pod is not ready yet (or was sampled before
/// it had been ready a whole window).
fn unready_cpu(p: &Pod, s: &Sample, j: &Judgement, now: chrono::DateTime<chrono::Utc>) -> bool {
    let start = p.status.as_ref().and_then(|s| s.start_time.as_ref());
    let (Some(start), Some((ready, since))) = (start, ready_condition(p)) else {
        return true;
    };
    if start.0 + j.cpu_initialization > now {
        !ready || s.at < since + s.window
    } else {
        !ready && start.0 + j.readiness_delay > since
    }
}

/// The replicas `pods` (the target's, by its selector) need for `target` of `resource`,
/// given their samples (by pod name), as Kubernetes' replica calculator works it out.
#[allow(clippy::too_many_arguments)]
pub fn calculate(
    current: i32,
    target: Target,
    resource: &str,
    container: Option<&str>,
    pods: &[std::sync::Arc<Pod>],
    samples: &HashMap<String, Sample>,
    j: &Judgement,
    milli: fn(&str, &str) -> Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Proposal, CalcError> {
    if pods.is_empty() {
        return Err(CalcError(
            "no pods returned by selector while calculating replica count".into(),
        ));
    }
    let mut usage: BTreeMap<String, i64> = BTreeMap::new();
    let (mut unready, mut missing) = (Vec::new(), Vec::new());
    let mut ready_count = 0usize;
    for p in pods {
        let name = pod_name(p);
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if p.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            continue;
        }
        if phase == Some("Pending") {
            unready.push(name);
            continue;
        }
        let Some(s) = samples.get(&name) else {
            missing.push(name);
            continue;
        };
        if resource == "cpu" && unready_cpu(p, s, j, now) {
            unready.push(name);
            continue;
        }
        usage.insert(name, s.milli);
        ready_count += 1;
    }
    if usage.is_empty() {
        return Err(CalcError(
            "did not receive metrics for targeted pods (pods might be unready)".into(),
        ));
    }
    let mut reqs: HashMap<String, i64> = HashMap::new();
    for p in pods {
        reqs.insert(pod_name(p), requests(p, resource, container, milli)?);
    }
    let ratio_of = |usage: &BTreeMap<String, i64>| -> Result<(f64, Option<i64>, i64), CalcError> {
        let total: i64 = usage.values().sum();
        let average = total / usage.len().max(1) as i64;
        match target {
            Target::Utilization(t) => {
                let requested: i64 = usage.keys().filter_map(|n| reqs.get(n)).sum();
                if requested == 0 {
                    return Err(CalcError("no metrics returned matched known pods".into()));
                }
                let util = total.saturating_mul(100) / requested;
                Ok((util as f64 / t as f64, Some(util), average))
            }
            Target::AverageValue(t) => Ok((average as f64 / t.max(1) as f64, None, average)),
        }
    };
    let (ratio, utilization, average) = ratio_of(&usage)?;
    let proposal = |replicas: i32| Proposal {
        replicas,
        utilization,
        average,
    };
    let within = |r: f64| (1.0 - r).abs() <= j.tolerance;
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if within(ratio) {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * ready_count as f64).ceil() as i32));
    }
    // Fill in the pods without a usable sample so they hold the change back: on a way down
    // missing pods count as using their target, on a way up as using nothing.
    let mut filled = usage.clone();
    for name in &missing {
        let v = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => reqs.get(name).copied().unwrap_or(0) * t.max(100) / 100,
                Target::AverageValue(t) => t,
            }
        } else {
            0
        };
        filled.insert(name.clone(), v);
    }
    if scale_up_with_unready {
        for name in &unready {
            filled.insert(name.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&filled)?;
    if within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * filled.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Arc;

    fn milli(_: &str, q: &str) -> Option<i64> {
        coxswain_api::quantity::cpu_millis(q)
    }

    fn pod(name: &str, ready_for_secs: i64) -> Arc<Pod> {
        let now = chrono::Utc::now();
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some([("cpu".to_string(), Quantity("100m".into()))].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            start_time: Some(Time(now - chrono::Duration::seconds(600))),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(now - chrono::Duration::seconds(ready_for_secs))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(p)
    }

    fn judgement() -> Judgement {
        Judgement {
            tolerance: 0.1,
            cpu_initialization: chrono::Duration::seconds(300),
            readiness_delay: chrono::Duration::seconds(30),
        }
    }

    fn samples(v: &[(&str, i64)]) -> HashMap<String, Sample> {
        v.iter()
            .map(|(n, m)| {
                (
                    n.to_string(),
                    Sample {
                        milli: *m,
                        at: chrono::Utc::now(),
                        window: chrono::Duration::seconds(15),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn scales_by_the_ratio_of_utilization() {
        let pods = vec![pod("a", 600), pod("b", 600)];
        let now = chrono::Utc::now();
        let calc = |s: &[(&str, i64)]| {
            calculate(
                2,
                Target::Utilization(50),
                "cpu",
                None,
                &pods,
                &samples(s),
                &judgement(),
                milli,
                now,
            )
            .unwrap()
        };
        // 150% of request against a 50% target: three times the pods.
        let p = calc(&[("a", 150), ("b", 150)]);
        assert_eq!((p.replicas, p.utilization, p.average), (6, Some(150), 150));
        // Within the tolerance: no change.
        assert_eq!(calc(&[("a", 52), ("b", 53)]).replicas, 2);
        // Low usage: down.
        assert_eq!(calc(&[("a", 10), ("b", 10)]).replicas, 1);
        // A pod without metrics on the way up counts as idle and damps it.
        let p = calc(&[("a", 150)]);
        assert_eq!(p.replicas, 3);
        let err = calculate(
            2,
            Target::Utilization(50),
            "cpu",
            None,
            &[],
            &samples(&[]),
            &judgement(),
            milli,
            now,
        );
        assert!(err.is_err());
    }
}
