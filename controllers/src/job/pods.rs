//! A Job's pods: what a new one looks like (Indexed: its index in an annotation, a label,
//! the hostname and `JOB_COMPLETION_INDEX`), what podFailurePolicy says about a failed one,
//! removing the tracking finalizer, deleting, and [`manage`]: creating what is left to run
//! after the failure back-off, and removing what is too much.

use super::{has_tracking, index_of, Tally, INDEX, TRACKING};
use crate::util::controller_ref;
use crate::util::phase;
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The most pods created or deleted in one pass.
const BURST: usize = 500;

/// A new pod for the Job (with its index in Indexed mode).
fn new_pod(job: &Job, index: Option<i64>) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            labels.insert(INDEX.into(), i.to_string());
            annotations.insert(INDEX.into(), i.to_string());
            spec.hostname.get_or_insert_with(|| format!("{name}-{i}"));
            let containers = spec.containers.iter_mut();
            for c in containers.chain(spec.init_containers.iter_mut().flatten()) {
                let env = c.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                    env.push(EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value: None,
                        value_from: Some(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                api_version: None,
                                field_path: format!("metadata.labels['{INDEX}']"),
                            }),
                            ..Default::default()
                        }),
                    });
                }
            }
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![controller_ref(job)]),
            finalizers: Some(vec![TRACKING.into()]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// What podFailurePolicy says about a failed pod: the action of the first rule it matches
/// (`Count` when none) and, for a match, Kubernetes' message.
pub fn failure_action(job: &Job, p: &Pod) -> (String, Option<String>) {
    let Some(pfp) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return ("Count".into(), None);
    };
    let pod_name = format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    );
    let status = p.status.clone().unwrap_or_default();
    let terminated: Vec<(String, i32)> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| (c.name.clone(), t.exit_code))
        })
        .collect();
    for (i, r) in pfp.rules.iter().enumerate() {
        if let Some(req) = &r.on_exit_codes {
            for (c, code) in &terminated {
                if req.container_name.as_ref().is_some_and(|n| n != c) {
                    continue;
                }
                let listed = req.values.contains(code);
                if (req.operator == "In") == listed {
                    let msg = format!("Container {c} for pod {pod_name} failed with exit code {code} matching {} rule at index {i}", r.action);
                    return (r.action.clone(), Some(msg));
                }
            }
        }
        for pat in r.on_pod_conditions.iter().flatten() {
            let conds = status.conditions.iter().flatten();
            if conds
                .clone()
                .any(|c| c.type_ == pat.type_ && c.status == pat.status)
            {
                let msg = format!(
                    "Pod {pod_name} has condition {} matching {} rule at index {i}",
                    pat.type_, r.action
                );
                return (r.action.clone(), Some(msg));
            }
        }
    }
    ("Count".into(), None)
}

/// Remove the tracking finalizer (no precondition: only this controller touches it).
pub async fn drop_finalizer(api: &Api<Pod>, p: &Pod) -> anyhow::Result<()> {
    let rest: Vec<&String> = p
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING)
        .collect();
    let rest = if rest.is_empty() {
        Value::Null
    } else {
        json!(rest)
    };
    let patch = json!({"metadata": {"finalizers": rest}});
    match api
        .patch(p.metadata.name.as_deref().unwrap_or(""), &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete a pod; `uncounted` pods lose their finalizer first (a suspended or scaled-down
/// Job's pods are not failures), the others are counted when they are gone.
pub async fn delete_pod(
    ctx: &Ctx,
    job: &Job,
    api: &Api<Pod>,
    p: &Pod,
    uncounted: bool,
) -> anyhow::Result<()> {
    if uncounted && has_tracking(p) {
        drop_finalizer(api, p).await?;
        let key = crate::wiring::meta_key(&p.metadata);
        let uid = p.metadata.uid.clone().unwrap_or_default();
        ctx.job_memory
            .removed(job.metadata.uid.as_deref().unwrap_or(""), &uid, &key);
    }
    let name = p.metadata.name.clone().unwrap_or_default();
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.recorder.record(
                object_ref(job),
                "Normal",
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            );
            Ok(())
        }
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => {
            ctx.recorder.record(
                object_ref(job),
                "Warning",
                "FailedDelete",
                format!("Error deleting: {e}"),
            );
            Err(e.into())
        }
    }
}

/// When the pod's last container finished.
fn finished_at(p: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    let st = p.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            Some(
                c.state
                    .as_ref()?
                    .terminated
                    .as_ref()?
                    .finished_at
                    .as_ref()?
                    .0,
            )
        })
        .max()
}

/// How long to wait before replacing failed pods: 10 s doubled per failure since the last
/// success (at most `max`), from the last failure.
fn backoff(all: &[Arc<Pod>], base: Duration, max: Duration) -> Option<Duration> {
    let last_success = all
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<_> = all
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = *failures.iter().max()?;
    let exp = (failures.len() as u32).saturating_sub(1).min(20);
    let delay = base.saturating_mul(1u32 << exp).min(max);
    let ready_at = last.checked_add_signed(chrono::Duration::from_std(delay).ok()?)?;
    (ready_at - chrono::Utc::now())
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
}

/// Create the pods that are missing (at most [`BURST`]) and delete the ones too many; the
/// back-off to wait before creating, if any.
#[allow(clippy::too_many_arguments)]
pub async fn manage(
    ctx: &Ctx,
    job: &Job,
    key: &str,
    api: &Api<Pod>,
    active: &[&Arc<Pod>],
    terminating: usize,
    tally: &Tally,
    all: &[Arc<Pod>],
    tuning: super::Tuning,
) -> anyhow::Result<Option<Duration>> {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let completions = spec.completions.map(|c| i64::from(c.max(0)));
    // Pods being deleted still hold their place when they must fail before they are replaced.
    let held = if spec.pod_replacement_policy.as_deref() == Some("Failed") {
        terminating
    } else {
        0
    };
    let mut extra: Vec<&Arc<Pod>> = Vec::new();
    let (want, create): (usize, Vec<Option<i64>>) =
        match (spec.completion_mode.as_deref(), completions) {
            (Some("Indexed"), Some(c)) => {
                // One pod per index: pods without a valid index, or with a duplicate, go.
                let mut busy = BTreeSet::new();
                let mut keep = 0;
                for p in active {
                    match index_of(p, c) {
                        Some(i) if !tally.completed.contains(i) && busy.insert(i) => keep += 1,
                        _ => extra.push(p),
                    }
                }
                let left = (c - tally.completed.len()).max(0) as usize;
                let want = parallelism.min(left);
                let n = want.saturating_sub(keep + held).min(BURST);
                (
                    want,
                    tally
                        .completed
                        .missing(c, &busy, n)
                        .into_iter()
                        .map(Some)
                        .collect(),
                )
            }
            _ => {
                let left = match completions {
                    Some(c) => (c - i64::from(tally.succeeded)).max(0) as usize,
                    None if tally.succeeded > 0 => 0,
                    None => parallelism,
                };
                let want = parallelism.min(left);
                let n = want.saturating_sub(active.len() + held).min(BURST);
                (want, vec![None; n])
            }
        };
    let kept = active.len() - extra.len();
    if kept > want {
        let mut rest: Vec<&Arc<Pod>> = active
            .iter()
            .copied()
            .filter(|p| !extra.iter().any(|e| Arc::ptr_eq(e, p)))
            .collect();
        rest.sort_by_key(|p| {
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        extra.extend(rest.into_iter().take(kept - want));
    }
    for p in extra.iter().take(BURST) {
        delete_pod(ctx, job, api, p, true).await?;
    }
    if create.is_empty() {
        return Ok(None);
    }
    if let Some(wait) = backoff(all, tuning.backoff, tuning.max_backoff) {
        return Ok(Some(wait));
    }
    ctx.expectations.expect(key, create.len() as i64, 0);
    let pods: Vec<Pod> = create.iter().map(|i| new_pod(job, *i)).collect();
    let results = futures::future::join_all(pods.iter().map(|p| api.create(p))).await;
    let mut failures = 0;
    for r in results {
        match r {
            Ok(p) => ctx.recorder.record(
                object_ref(job),
                "Normal",
                "SuccessfulCreate",
                format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
            ),
            Err(e) => {
                failures += 1;
                ctx.recorder.record(
                    object_ref(job),
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {e}"),
                );
            }
        }
    }
    if failures > 0 {
        ctx.expectations.lower(key, failures, 0);
        anyhow::bail!("{failures} pod creations failed");
    }
    Ok(None)
}
