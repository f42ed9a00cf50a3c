//! The Job controller: runs a Job's pods to completion. Every finished pod is counted exactly
//! once through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods` (recorded there, then its finalizer removed, then moved
//! into `succeeded`/`failed`; status writes are conditional on the resourceVersion, and
//! [`Memory`] covers the caches' lag). It keeps `min(parallelism, what is left)` pods
//! running (one per index in `Indexed` mode, `pods.rs`), waits the failure back-off before
//! replacing failed pods, applies `podFailurePolicy`, `successPolicy`, `backoffLimit`,
//! `activeDeadlineSeconds` and `suspend`, and finishes the Job with Kubernetes' two steps
//! (SuccessCriteriaMet then Complete, FailureTarget then Failed) once no pod is left to count.

mod indexes;
mod memory;
mod pods;

use crate::util::{is_ready, phase};
use crate::wiring::{changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Change, Queue};
use indexes::Indexes;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
pub use memory::Memory;
use pods::{delete_pod, drop_finalizer, failure_action, manage};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The finalizer that keeps a pod until the Job has counted it.
pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label of an Indexed Job's pod index.
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The most finished pods recorded in one pass (Kubernetes' `MaxUncountedPods`).
const MAX_UNCOUNTED: usize = 500;
/// The controller Kubernetes' `spec.managedBy` names for this controller.
const MANAGER: &str = "kubernetes.io/job-controller";

/// How the controller is tuned (Kubernetes hard-codes these; tests shorten the back-off).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// The first delay before a failed pod is replaced (Kubernetes: 10 s), doubled per
    /// failure since the last success up to `max_backoff`.
    pub backoff: Duration,
    /// The longest delay (Kubernetes: 10 min).
    pub max_backoff: Duration,
}

/// What wakes a Job: a change to it; a change to a pod it controls (at once when the pod
/// appeared, went or finished; otherwise after a batch that grows with the Job); a pod with
/// the tracking finalizer whose Job is gone.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let (jq, mem) = (q.clone(), ctx.clone());
    inf.jobs.on_change(move |c| {
        let m = changed_meta(c);
        if matches!(c, Change::Deleted(_)) {
            mem.job_memory.forget(m.uid.as_deref().unwrap_or(""));
        }
        jq.add(meta_key(m));
    });
    let (jq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        if let Change::Applied { new, .. } = c {
            let job = crate::util::controller_uid(&new.metadata)
                .filter(|u| !ctx.jobs.by_index("uid", u).is_empty());
            if has_tracking(new) && job.is_none() {
                jq.add(format!("pod:{}", meta_key(&new.metadata)));
            }
        }
        for uid in owner_refs(c) {
            let Some(j) = ctx.jobs.by_index("uid", &uid).first().cloned() else {
                continue;
            };
            let k = meta_key(&j.metadata);
            let now = ctx.expectations.observe(&k, c).unwrap_or_else(|| match c {
                Change::Applied { old: Some(o), new } => {
                    phase(o) != phase(new)
                        || o.metadata.deletion_timestamp != new.metadata.deletion_timestamp
                }
                _ => true,
            });
            if now {
                jq.add(k);
            } else {
                let n = ctx.pods.count_index("controller", &uid);
                jq.add_after(k, crate::replicaset::status_batch(n));
            }
        }
    });
}

fn has_tracking(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING)
}

fn uid(m: &ObjectMeta) -> String {
    m.uid.clone().unwrap_or_default()
}

/// The pod's completion index, if it has one below `completions`.
fn index_of(p: &Pod, completions: i64) -> Option<i64> {
    let i: i64 = p.metadata.annotations.as_ref()?.get(INDEX)?.parse().ok()?;
    (0..completions).contains(&i).then_some(i)
}

/// Whether a pod succeeded (`Some(true)`), failed (`Some(false)`: phase Failed, or deleted
/// before it succeeded when the Job has no podFailurePolicy), or still runs.
fn outcome(p: &Pod, job: &Job) -> Option<bool> {
    let pfp = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    match phase(p) {
        "Succeeded" => Some(true),
        "Failed" => Some(false),
        _ if p.metadata.deletion_timestamp.is_some() && pfp.is_none() => Some(false),
        _ => None,
    }
}

/// A condition of the Job holds.
pub fn has_condition(job: &Job, t: &str) -> bool {
    condition(job, t).is_some()
}

/// The (reason, message) of a condition that holds.
fn condition(job: &Job, t: &str) -> Option<(String, String)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t && c.status == "True")
        .map(|c| {
            (
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// The Job has finished (Complete or Failed).
pub fn finished(job: &Job) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// What a Job's pods add up to after counting.
pub struct Tally {
    succeeded: i32,
    failed: i32,
    /// Completed indexes (Indexed Jobs).
    completed: Indexes,
    /// A podFailurePolicy `FailJob` match's message.
    fail_job: Option<String>,
    /// The Job's resourceVersion after counting (status writes are conditional on it).
    rv: Option<String>,
    /// More finished pods wait to be counted.
    more: bool,
}

/// How a Job ends: the target condition's reason and message.
struct Ending {
    success: bool,
    reason: String,
    message: String,
}

/// Count finished pods once: record them in `uncountedTerminatedPods` (at most
/// [`MAX_UNCOUNTED`] a pass), remove their finalizer, then move them into the counters.
async fn count(
    ctx: &Ctx,
    job: &Job,
    pods: &[Arc<Pod>],
    jobs: &Api<Job>,
    pods_api: &Api<Pod>,
) -> anyhow::Result<Tally> {
    let st = job.status.clone().unwrap_or_default();
    let job_uid = uid(&job.metadata);
    let mem = &ctx.job_memory;
    mem.settle(&job_uid, |key, pod| {
        ctx.pods
            .get(key)
            .is_some_and(|p| uid(&p.metadata) == pod && has_tracking(&p))
    });
    let unc = st.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut us: HashSet<String> = unc.succeeded.unwrap_or_default().into_iter().collect();
    let mut uf: HashSet<String> = unc.failed.unwrap_or_default().into_iter().collect();
    let (mut fail_job, mut added, mut more) = (None, 0, false);
    let succeeding = has_condition(job, "SuccessCriteriaMet");
    for p in pods.iter().filter(|p| has_tracking(p)) {
        let u = uid(&p.metadata);
        if us.contains(&u) || uf.contains(&u) || mem.is_removed(&job_uid, &u) {
            continue;
        }
        let Some(ok) = outcome(p, job) else { continue };
        if added == MAX_UNCOUNTED {
            more = true;
            break;
        }
        // Pods deleted once the Job succeeded, and failures the policy ignores, count for
        // nothing: only their finalizer goes.
        let (action, msg) = if ok || succeeding {
            ("Count".into(), None)
        } else {
            failure_action(job, p)
        };
        if (!ok && succeeding) || action == "Ignore" {
            drop_finalizer(pods_api, p).await?;
            mem.removed(&job_uid, &u, &meta_key(&p.metadata));
            continue;
        }
        if action == "FailJob" && fail_job.is_none() {
            fail_job = msg;
        }
        if ok {
            us.insert(u)
        } else {
            uf.insert(u)
        };
        added += 1;
    }
    let mut rv = job.metadata.resource_version.clone();
    if added > 0 {
        let patch = json!({"metadata": {"resourceVersion": rv},
            "status": {"uncountedTerminatedPods": {"succeeded": us, "failed": uf}}});
        let written = jobs
            .patch_status(job.metadata.name.as_deref().unwrap_or(""), &patch)
            .await?;
        rv = written.metadata.resource_version;
        mem.wrote(&job_uid, rv.as_deref());
    }
    let completions = job
        .spec
        .as_ref()
        .and_then(|s| s.completions)
        .map_or(0, |c| i64::from(c.max(0)));
    let mut completed = Indexes::parse(st.completed_indexes.as_deref().unwrap_or(""), completions);
    let counted: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| {
            let u = uid(&p.metadata);
            us.contains(&u) || uf.contains(&u)
        })
        .collect();
    for p in &counted {
        if us.contains(&uid(&p.metadata)) {
            if let Some(i) = index_of(p, completions) {
                completed.insert(i);
            }
        }
    }
    let drops = counted
        .iter()
        .filter(|p| has_tracking(p))
        .map(|p| drop_finalizer(pods_api, p));
    for r in futures::future::join_all(drops).await {
        r?;
    }
    for p in counted.iter().filter(|p| has_tracking(p)) {
        mem.removed(&job_uid, &uid(&p.metadata), &meta_key(&p.metadata));
    }
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    let add = |n: Option<i32>, k: usize| {
        n.unwrap_or(0)
            .saturating_add(k.min(i32::MAX as usize) as i32)
    };
    Ok(Tally {
        succeeded: if indexed {
            completed.len().min(i64::from(i32::MAX)) as i32
        } else {
            add(st.succeeded, us.len())
        },
        failed: add(st.failed, uf.len()),
        completed,
        fail_job,
        rv,
        more,
    })
}

/// `t + secs`, or `None` past the end of time.
fn plus(t: chrono::DateTime<chrono::Utc>, secs: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    t.checked_add_signed(chrono::Duration::try_seconds(secs)?)
}

/// Whether and how the Job ends, in Kubernetes' order: a condition already set, a FailJob
/// rule, the back-off limit, the deadline, the success policy, the completions.
fn ending(
    job: &Job,
    t: &Tally,
    active: &[&Arc<Pod>],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Ending> {
    let spec = job.spec.clone().unwrap_or_default();
    let end = |success: bool, reason: &str, message: &str| {
        Some(Ending {
            success,
            reason: reason.into(),
            message: message.into(),
        })
    };
    if let Some((r, m)) = condition(job, "SuccessCriteriaMet") {
        return end(true, &r, &m);
    }
    if let Some((r, m)) = condition(job, "FailureTarget") {
        return end(false, &r, &m);
    }
    if let Some(m) = &t.fail_job {
        return end(false, "PodFailurePolicy", m);
    }
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    let restarts = if on_failure {
        active
            .iter()
            .map(|p| restart_count(p))
            .fold(0i32, i32::saturating_add)
    } else {
        0
    };
    let limit = spec.backoff_limit.unwrap_or(6);
    if t.failed > limit
        || (on_failure
            && if limit == 0 {
                restarts > 0
            } else {
                restarts >= limit
            })
    {
        return end(
            false,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    }
    let start = job
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    let deadline = start
        .zip(spec.active_deadline_seconds)
        .and_then(|(s, d)| plus(s, d));
    if spec.suspend != Some(true) && deadline.is_some_and(|d| now >= d) {
        return end(
            false,
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
    }
    if let Some(i) = success_policy_met(job, &t.completed) {
        return end(
            true,
            "SuccessPolicy",
            &format!("Matched rules at index {i}"),
        );
    }
    let done = match spec.completions {
        Some(c) => t.succeeded >= c,
        None => t.succeeded > 0,
    };
    if done && active.is_empty() && !t.more {
        return end(
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
    }
    None
}

fn restart_count(p: &Pod) -> i32 {
    let st = p.status.as_ref();
    st.into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .fold(0, i32::saturating_add)
}

/// The index of the first successPolicy rule the completed indexes meet (none before any
/// index succeeded).
fn success_policy_met(job: &Job, completed: &Indexes) -> Option<usize> {
    let spec = job.spec.as_ref()?;
    let c = i64::from(spec.completions?.max(0));
    if completed.is_empty() {
        return None;
    }
    spec.success_policy.as_ref()?.rules.iter().position(|r| {
        let count = r.succeeded_count.map(i64::from);
        match &r.succeeded_indexes {
            Some(s) => {
                let within = Indexes::parse(s, c);
                let done = completed.overlap(&within);
                count.map_or(done == within.len(), |n| done >= n)
            }
            None => count.is_some_and(|n| completed.len() >= n),
        }
    })
}

/// Reconcile one Job (or, for a `pod:` key, release a pod whose Job is gone).
pub async fn reconcile(ctx: Arc<Ctx>, key: String, tuning: Tuning) -> anyhow::Result<Action> {
    if let Some(pod_key) = key.strip_prefix("pod:") {
        return release_orphan(&ctx, pod_key).await;
    }
    let Some(job) = ctx.jobs.get(&key) else {
        ctx.expectations.remove(&key);
        return Ok(Action::AwaitChange);
    };
    let spec = job.spec.clone().unwrap_or_default();
    let job_uid = uid(&job.metadata);
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGER) {
        return Ok(Action::AwaitChange);
    }
    if finished(&job) {
        ctx.job_memory.forget(&job_uid);
        return Ok(Action::AwaitChange);
    }
    if ctx.job_memory.stale(&job, &job_uid) {
        return Ok(Action::RequeueAfter(Duration::from_millis(100)));
    }
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let (jobs, pods_api) = (
        Api::<Job>::namespaced(&ctx.client, ns),
        Api::<Pod>::namespaced(&ctx.client, ns),
    );
    let pods = ctx.pods.by_index("controller", &job_uid);
    let now = chrono::Utc::now();
    let tally = count(&ctx, &job, &pods, &jobs, &pods_api).await?;
    let active: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| outcome(p, &job).is_none() && p.metadata.deletion_timestamp.is_none())
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .count();
    let end = ending(&job, &tally, &active, now);
    let suspended = end.is_none() && spec.suspend == Some(true);
    let deleting = job.metadata.deletion_timestamp.is_some();
    let mut requeue = tally.more.then_some(Duration::ZERO);
    if let Some(e) = &end {
        // A failing Job's running pods are deleted and counted as failed; a succeeding
        // Job's leftovers count for nothing.
        for p in &active {
            delete_pod(&ctx, &job, &pods_api, p, e.success).await?;
        }
    } else if suspended || deleting {
        for p in &active {
            delete_pod(&ctx, &job, &pods_api, p, true).await?;
        }
    } else if ctx.expectations.satisfied(&key) {
        let wait = manage(
            &ctx,
            &job,
            &key,
            &pods_api,
            &active,
            terminating,
            &tally,
            &pods,
            tuning,
        )
        .await?;
        requeue = requeue.or(wait);
    }
    // Pods still to go before the Job is finished: those not counted yet.
    let lingering = pods
        .iter()
        .filter(|p| has_tracking(p) && outcome(p, &job).is_none())
        .count();
    let settled = lingering == 0 && terminating == 0 && !tally.more;
    let mut st = next_status(
        &ctx,
        &job,
        &tally,
        &active,
        end.as_ref().map(|e| (e, settled)),
        suspended,
        now,
    );
    st.terminating = Some(terminating as i32);
    if end.is_none() && !suspended {
        let start = st.start_time.as_ref().map_or(now, |t| t.0);
        if let Some(d) = spec.active_deadline_seconds.and_then(|d| plus(start, d)) {
            let left = (d - now).to_std().unwrap_or_default();
            requeue = Some(requeue.map_or(left, |r| r.min(left)));
        }
    }
    if job.status.as_ref() != Some(&st) || tally.rv != job.metadata.resource_version {
        let patch =
            json!({"metadata": {"resourceVersion": tally.rv}, "status": status_patch(&st)?});
        let written = jobs.patch_status(name, &patch).await?;
        ctx.job_memory
            .wrote(&job_uid, written.metadata.resource_version.as_deref());
    }
    Ok(requeue.map_or(Action::AwaitChange, |d| {
        Action::RequeueAfter(d + Duration::from_millis(50))
    }))
}

/// The Job's next status (and the Events of what changed): counters, active/ready/
/// terminating, start time, and the conditions of suspending, resuming and ending (the
/// final Complete/Failed only once `settled`: no pod left to count or terminating).
fn next_status(
    ctx: &Ctx,
    job: &Job,
    t: &Tally,
    active: &[&Arc<Pod>],
    end: Option<(&Ending, bool)>,
    suspended: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> JobStatus {
    let mut st = job.status.clone().unwrap_or_default();
    let time = Time(now);
    let mut conds = st.conditions.clone().unwrap_or_default();
    let mut set = |ty: &str, status: &str, reason: &str, msg: &str| -> bool {
        let c = JobCondition {
            type_: ty.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_transition_time: Some(time.clone()),
            last_probe_time: Some(time.clone()),
        };
        match conds.iter_mut().find(|c| c.type_ == ty) {
            Some(old) if old.status == status => false,
            Some(old) => {
                *old = c;
                true
            }
            None => {
                conds.push(c);
                true
            }
        }
    };
    let me = object_ref(job);
    match end {
        Some((e, settled)) => {
            let (target, last) = if e.success {
                ("SuccessCriteriaMet", "Complete")
            } else {
                ("FailureTarget", "Failed")
            };
            set(target, "True", &e.reason, &e.message);
            if settled && set(last, "True", &e.reason, &e.message) {
                if e.success {
                    st.completion_time = Some(time.clone());
                    ctx.recorder
                        .record(me, "Normal", "Completed", "Job completed".into());
                } else {
                    ctx.recorder
                        .record(me, "Warning", &e.reason, e.message.clone());
                }
            }
        }
        None if suspended => {
            if set("Suspended", "True", "JobSuspended", "Job suspended") {
                ctx.recorder
                    .record(me, "Normal", "Suspended", "Job suspended".into());
            }
        }
        None => {
            if has_condition(job, "Suspended")
                && set("Suspended", "False", "JobResumed", "Job resumed")
            {
                ctx.recorder
                    .record(me, "Normal", "Resumed", "Job resumed".into());
                st.start_time = Some(time.clone());
            }
            st.start_time.get_or_insert(time.clone());
        }
    }
    st.conditions = (!conds.is_empty()).then_some(conds);
    st.succeeded = Some(t.succeeded).filter(|n| *n > 0);
    st.failed = Some(t.failed).filter(|n| *n > 0);
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    st.completed_indexes = indexed.then(|| t.completed.to_string());
    st.uncounted_terminated_pods = Some(Default::default());
    st.active = Some(if end.is_some() || suspended {
        0
    } else {
        active.len() as i32
    });
    st.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
    st
}

/// A merge patch that makes the stored status `st`: fields `st` leaves out are removed.
fn status_patch(st: &JobStatus) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(st)?;
    for k in [
        "active",
        "completedIndexes",
        "completionTime",
        "conditions",
        "failed",
        "failedIndexes",
        "ready",
        "startTime",
        "succeeded",
        "terminating",
    ] {
        if v.get(k).is_none() {
            v[k] = Value::Null;
        }
    }
    v["uncountedTerminatedPods"] = json!({"succeeded": null, "failed": null});
    Ok(v)
}

/// A pod whose Job is gone keeps the tracking finalizer no more.
async fn release_orphan(ctx: &Ctx, pod_key: &str) -> anyhow::Result<Action> {
    let Some(p) = ctx.pods.get(pod_key) else {
        return Ok(Action::AwaitChange);
    };
    let owner = crate::util::controller_uid(&p.metadata);
    let cached = owner
        .as_ref()
        .is_some_and(|u| !ctx.jobs.by_index("uid", u).is_empty());
    if !has_tracking(&p) || cached {
        return Ok(Action::AwaitChange);
    }
    // The cache may lag: ask the API server whether the Job is gone.
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let refs = p.metadata.owner_references.iter().flatten();
    if let Some(r) = refs
        .clone()
        .find(|r| r.controller == Some(true) && r.kind == "Job")
    {
        let live = Api::<Job>::namespaced(&ctx.client, &ns)
            .get_opt(&r.name)
            .await?;
        if live.is_some_and(|j| j.metadata.uid == owner) {
            return Ok(Action::AwaitChange);
        }
    }
    drop_finalizer(&Api::namespaced(&ctx.client, &ns), &p).await?;
    Ok(Action::AwaitChange)
}
