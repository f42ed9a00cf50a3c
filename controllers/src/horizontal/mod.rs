//! The horizontal pod autoscaler controller: every sync period
//! (`--horizontal-pod-autoscaler-sync-period`, 15 s) each HorizontalPodAutoscaler reads its
//! target's `scale` subresource, its pods' usage from metrics.k8s.io and their requests,
//! works out the replicas each metric asks for (`replicas`), takes the largest, normalizes
//! it (`normalize`: stabilization windows, rate policies, min/max), sets the target's scale
//! when it differs (event `SuccessfulRescale`), and writes the status: current and desired
//! replicas, current metrics, last scale time, and the AbleToScale, ScalingActive and
//! ScalingLimited conditions with Kubernetes' reasons. Only Resource and ContainerResource
//! metrics can be measured (there is no custom or external metrics API).

mod normalize;
mod replicas;

pub use normalize::Memory;
use replicas::{Judgement, Sample, Target};

use crate::wiring::{meta_key, Informers};
use crate::Ctx;
use coxswain_api::resources::by_kind;
use coxswain_api::selector::LabelSelector;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Change, Queue};
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The autoscaler's flags (kube-controller-manager's names and defaults).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// How often each HPA is looked at.
    pub sync: Duration,
    /// The scale-down stabilization window when `behavior` does not give one.
    pub downscale_window: chrono::Duration,
    /// Tolerance and pod readiness rules.
    pub judgement: Judgement,
}

impl Tuning {
    /// Kubernetes' defaults, with `sync` and `downscale_window` from the flags.
    pub fn new(sync: Duration, downscale_window: Duration) -> Tuning {
        Tuning {
            sync,
            downscale_window: chrono::Duration::from_std(downscale_window)
                .unwrap_or(chrono::Duration::seconds(300)),
            judgement: Judgement {
                tolerance: 0.1,
                cpu_initialization: chrono::Duration::seconds(300),
                readiness_delay: chrono::Duration::seconds(30),
            },
        }
    }
}

/// What wakes an HPA: a new one or a change to its spec (its own status writes do not; the
/// sync period brings it back).
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let q = q.clone();
    inf.hpas.on_change(move |c| match c {
        Change::Applied { old, new } if old.as_ref().is_none_or(|o| o.spec != new.spec) => {
            q.add(meta_key(&new.metadata))
        }
        Change::Deleted(old) => q.add(meta_key(&old.metadata)),
        _ => {}
    });
}

/// A value in milli-units, as Kubernetes' `MilliValue` (rounded up): millicores for `cpu`,
/// milli-bytes for the rest.
fn milli(resource: &str, q: &str) -> Option<i64> {
    if resource == "cpu" {
        coxswain_api::quantity::cpu_nanos(q).map(|n| (n + 999_999).div_euclid(1_000_000))
    } else {
        coxswain_api::quantity::bytes(q).map(|b| b.saturating_mul(1000))
    }
}

/// A milli-unit value as a DecimalSI quantity (`250m`, `1`, `64M`).
fn quantity(milli: i64) -> String {
    if milli == 0 {
        return "0".into();
    }
    let (mut m, mut exp) = (milli, -3);
    while m % 1000 == 0 && exp < 18 {
        m /= 1000;
        exp += 3;
    }
    let suffix = match exp {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    format!("{m}{suffix}")
}

/// Set a condition in the list, its transition time moving only when its status does.
fn set_condition(conds: &mut Vec<Value>, type_: &str, status: bool, reason: &str, message: String) {
    let status = if status { "True" } else { "False" };
    let now = json!(Time(chrono::Utc::now()));
    match conds.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = now;
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conds.push(
            json!({"type": type_, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message}),
        ),
    }
}

/// The target's scale (autoscaling/v1 `Scale`) and its path.
async fn scale_of(
    ctx: &Ctx,
    ns: &str,
    hpa: &HorizontalPodAutoscaler,
) -> Result<(String, Value), String> {
    let r = &hpa
        .spec
        .as_ref()
        .map(|s| s.scale_target_ref.clone())
        .unwrap_or_default();
    let api_version = r.api_version.clone().unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let res = by_kind(&api_version, &r.kind)
        .filter(|x| x.has_scale)
        .ok_or_else(|| format!("no matches for kind \"{}\" in group \"{group}\"", r.kind))?;
    let path = format!("{}/scale", res.object_path(Some(ns), &r.name));
    let scale = ctx
        .client
        .request(reqwest::Method::GET, &path, &[], None, None)
        .await
        .map_err(|e| e.message())?;
    Ok((path, scale))
}

/// The pods' samples of `resource` (or one container's), by pod name.
async fn samples(
    ctx: &Ctx,
    ns: &str,
    selector: &str,
    resource: &str,
    container: Option<&str>,
) -> Result<HashMap<String, Sample>, String> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
    let list = ctx
        .client
        .request(
            reqwest::Method::GET,
            &path,
            &[("labelSelector", selector.to_string())],
            None,
            None,
        )
        .await
        .map_err(|e| {
            format!(
                "unable to fetch metrics from resource metrics API: {}",
                e.message()
            )
        })?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return Err("no metrics returned from resource metrics API".into());
    }
    let mut out = HashMap::new();
    for pm in items {
        let cs = pm["containers"].as_array().cloned().unwrap_or_default();
        let chosen: Vec<&Value> = cs
            .iter()
            .filter(|c| container.is_none_or(|n| c["name"] == n))
            .collect();
        if let (Some(n), true) = (container, chosen.is_empty()) {
            return Err(format!(
                "failed to get container metrics: container {n} not present in metrics for pod {ns}/{}",
                pm["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        let values: Option<Vec<i64>> = chosen
            .iter()
            .map(|c| {
                c["usage"][resource]
                    .as_str()
                    .and_then(|q| milli(resource, q))
            })
            .collect();
        let (Some(values), false) = (values, chosen.is_empty()) else {
            continue;
        };
        let at = pm["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
        let window = pm["window"]
            .as_str()
            .and_then(|w| coxswain_runtime::leader::parse_duration(w).ok())
            .and_then(|w| chrono::Duration::from_std(w).ok())
            .unwrap_or(chrono::Duration::seconds(15));
        let name = pm["metadata"]["name"].as_str().unwrap_or("").to_string();
        out.insert(
            name,
            Sample {
                milli: values.iter().sum(),
                at,
                window,
            },
        );
    }
    Ok(out)
}

/// One metric's proposal and its status entry, or why it cannot be measured (the
/// ScalingActive reason and the message).
async fn proposal(
    ctx: &Ctx,
    ns: &str,
    m: &MetricSpec,
    current: i32,
    selector: &str,
    tuning: &Tuning,
) -> Result<(i32, String, Value), (&'static str, String)> {
    let (resource, container, target, key, reason) = match (&m.resource, &m.container_resource) {
        (Some(r), _) if m.type_ == "Resource" => (
            r.name.clone(),
            None,
            r.target.clone(),
            "resource",
            "FailedGetResourceMetric",
        ),
        (_, Some(c)) if m.type_ == "ContainerResource" => (
            c.name.clone(),
            Some(c.container.clone()),
            c.target.clone(),
            "containerResource",
            "FailedGetContainerResourceMetric",
        ),
        _ => {
            let reason = match m.type_.as_str() {
                "Pods" => "FailedGetPodsMetric",
                "Object" => "FailedGetObjectMetric",
                "External" => "FailedGetExternalMetric",
                _ => "InvalidMetricSourceType",
            };
            return Err((
                reason,
                format!(
                    "unable to get {} metric: no custom or external metrics API is served",
                    m.type_
                ),
            ));
        }
    };
    let target = match (&target.average_value, target.average_utilization) {
        (Some(v), _) => Target::AverageValue(milli(&resource, &v.0).unwrap_or(0)),
        (None, Some(u)) => Target::Utilization(u.into()),
        (None, None) => return Err((reason, "no target utilization or value set".into())),
    };
    let what = if matches!(target, Target::Utilization(_)) {
        "utilization"
    } else {
        "usage"
    };
    let fail = |e: String| {
        (reason, format!("failed to get {resource} {what}: unable to get metrics for resource {resource}: {e}"))
    };
    let samples = samples(ctx, ns, selector, &resource, container.as_deref())
        .await
        .map_err(fail)?;
    let sel = LabelSelector::parse(selector).map_err(|e| (reason, e.0))?;
    let pods: Vec<_> = ctx
        .pods
        .by_index("namespace", ns)
        .into_iter()
        .filter(|p| p.metadata.labels.as_ref().is_some_and(|l| sel.matches(l)))
        .collect();
    let p = replicas::calculate(
        current,
        target,
        &resource,
        container.as_deref(),
        &pods,
        &samples,
        &tuning.judgement,
        milli,
        chrono::Utc::now(),
    )
    .map_err(|e| (reason, format!("failed to get {resource} {what}: {e}")))?;
    let mut cur = json!({"averageValue": quantity(p.average)});
    if let Some(u) = p.utilization {
        cur["averageUtilization"] = json!(u);
    }
    let mut src = json!({"name": resource, "current": cur});
    if let Some(c) = &container {
        src["container"] = json!(c);
    }
    let name = match (key, matches!(target, Target::Utilization(_))) {
        ("resource", true) => format!("{resource} resource utilization (percentage of request)"),
        ("resource", false) => format!("{resource} resource"),
        (_, true) => format!("{resource} container resource utilization (percentage of request)"),
        (_, false) => format!("{resource} container resource"),
    };
    Ok((p.replicas, name, json!({"type": m.type_, key: src})))
}

/// Reconcile one HPA.
pub async fn reconcile(
    ctx: Arc<Ctx>,
    mem: Arc<Memory>,
    tuning: Tuning,
    key: String,
) -> anyhow::Result<Action> {
    let Some(hpa) = ctx.hpas.get(&key) else {
        mem.forget(&key);
        return Ok(Action::AwaitChange);
    };
    let (ns, _) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let spec = hpa.spec.clone().unwrap_or_default();
    let old = serde_json::to_value(hpa.status.clone().unwrap_or_default())?;
    let mut conds: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let warn = |reason: &str, msg: &str| {
        ctx.recorder
            .record(object_ref(&*hpa), "Warning", reason, msg.to_string())
    };
    let now = chrono::Utc::now();
    let mut status = json!({"currentReplicas": old["currentReplicas"], "desiredReplicas": old["desiredReplicas"],
        "lastScaleTime": old["lastScaleTime"], "currentMetrics": Value::Null});
    let (path, mut scale) = match scale_of(&ctx, ns, &hpa).await {
        Ok(s) => s,
        Err(e) => {
            warn("FailedGetScale", &e);
            set_condition(
                &mut conds,
                "AbleToScale",
                false,
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            write_status(&ctx, &hpa, &old, status, conds).await?;
            return Ok(Action::RequeueAfter(tuning.sync));
        }
    };
    set_condition(
        &mut conds,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    );
    let current = scale["spec"]["replicas"].as_i64().unwrap_or(0) as i32;
    status["currentReplicas"] = json!(current);
    mem.first_seen(&key, current, now);
    let (min, max) = (spec.min_replicas.unwrap_or(1), spec.max_replicas);
    let (desired, reason) = if current == 0 && min != 0 {
        set_condition(
            &mut conds,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        );
        (0, String::new())
    } else if current > max {
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_string(),
        )
    } else if current < min {
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_string(),
        )
    } else {
        let selector = scale["status"]["selector"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut best: Option<(i32, String)> = None;
        let mut statuses = Vec::new();
        let mut failed: Option<(&str, String)> = None;
        for m in spec.metrics.iter().flatten() {
            match proposal(&ctx, ns, m, current, &selector, &tuning).await {
                Ok((r, name, st)) => {
                    statuses.push(st);
                    if best.as_ref().is_none_or(|(b, _)| r > *b) {
                        best = Some((r, name));
                    }
                }
                Err(e) => {
                    statuses.push(json!({"type": ""}));
                    failed.get_or_insert(e);
                }
            }
        }
        status["currentMetrics"] = json!(statuses);
        let count = statuses.len();
        match (best, failed) {
            (best, Some((why, msg))) if best.as_ref().is_none_or(|(b, _)| *b < current) => {
                warn(why, &msg);
                set_condition(
                    &mut conds,
                    "ScalingActive",
                    false,
                    why,
                    format!("the HPA was unable to compute the replica count: {msg}"),
                );
                let invalid = count - usize::from(best.is_some());
                warn(
                    "FailedComputeMetricsReplicas",
                    &format!(
                        "invalid metrics ({invalid} invalid out of {count}), first error is: {msg}"
                    ),
                );
                write_status(&ctx, &hpa, &old, status, conds).await?;
                return Ok(Action::RequeueAfter(tuning.sync));
            }
            (Some((proposed, name)), _) => {
                set_condition(
                    &mut conds,
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    format!(
                        "the HPA was able to successfully calculate a replica count from {name}"
                    ),
                );
                let n = match &spec.behavior {
                    None => mem.legacy(
                        &key,
                        current,
                        proposed,
                        (min, max),
                        tuning.downscale_window,
                        now,
                    ),
                    Some(b) => mem.with_behavior(
                        &key,
                        current,
                        proposed,
                        (min, max),
                        b,
                        tuning.downscale_window,
                        now,
                    ),
                };
                set_condition(&mut conds, "AbleToScale", true, n.able.0, n.able.1.into());
                set_condition(
                    &mut conds,
                    "ScalingLimited",
                    n.limited.0,
                    n.limited.1,
                    n.limited.2.into(),
                );
                let reason = if n.replicas > current {
                    format!("{name} above target")
                } else {
                    "All metrics below target".into()
                };
                (n.replicas, reason)
            }
            (None, _) => (current, String::new()),
        }
    };
    if desired != current && !(current == 0 && min != 0) {
        scale["spec"]["replicas"] = json!(desired);
        match ctx
            .client
            .request(reqwest::Method::PUT, &path, &[], Some(&scale), None)
            .await
        {
            Ok(_) => {
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    true,
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                ctx.recorder.record(
                    object_ref(&*hpa),
                    "Normal",
                    "SuccessfulRescale",
                    format!("New size: {desired}; reason: {reason}"),
                );
                let keep = chrono::Duration::seconds(1800);
                mem.scaled(&key, current, desired, now, keep);
                status["lastScaleTime"] = json!(Time(now));
                status["desiredReplicas"] = json!(desired);
            }
            Err(e) => {
                let e = e.message();
                warn(
                    "FailedRescale",
                    &format!("New size: {desired}; reason: {reason}; error: {e}"),
                );
                set_condition(
                    &mut conds,
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
            }
        }
    } else {
        status["desiredReplicas"] = json!(if current == 0 && min != 0 { 0 } else { current });
    }
    write_status(&ctx, &hpa, &old, status, conds).await?;
    Ok(Action::RequeueAfter(tuning.sync))
}

/// Write the status when it changed.
async fn write_status(
    ctx: &Ctx,
    hpa: &HorizontalPodAutoscaler,
    old: &Value,
    mut status: Value,
    conds: Vec<Value>,
) -> anyhow::Result<()> {
    status["conditions"] = json!(conds);
    if status["currentReplicas"].is_null() {
        status["currentReplicas"] = json!(0);
    }
    if status["desiredReplicas"].is_null() {
        status["desiredReplicas"] = json!(0);
    }
    let same = [
        "currentReplicas",
        "desiredReplicas",
        "lastScaleTime",
        "currentMetrics",
        "conditions",
    ]
    .iter()
    .all(|k| old.get(*k).filter(|v| !v.is_null()) == status.get(*k).filter(|v| !v.is_null()));
    if same {
        return Ok(());
    }
    let ns = hpa.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(&ctx.client, ns);
    let name = hpa.metadata.name.as_deref().unwrap_or("");
    if let Err(e) = api.patch_status(name, &json!({ "status": status })).await {
        ctx.recorder.record(
            object_ref(hpa),
            "Warning",
            "FailedUpdateStatus",
            e.message(),
        );
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values_and_quantities() {
        assert_eq!(milli("cpu", "123456789n"), Some(124));
        assert_eq!(milli("cpu", "300m"), Some(300));
        assert_eq!(milli("memory", "4Mi"), Some(4 * 1024 * 1024 * 1000));
        assert_eq!(quantity(250), "250m");
        assert_eq!(quantity(1000), "1");
        assert_eq!(quantity(64_000_000_000), "64M");
        assert_eq!(quantity(0), "0");
    }
}
