//! The Job controller: runs a Job's pods to completion. It counts every finished pod exactly
//! once through the `batch.kubernetes.io/job-tracking` finalizer and
//! `status.uncountedTerminatedPods` (a finished pod is first recorded there, then its
//! finalizer is removed, then it moves into `succeeded`/`failed`), keeps
//! `min(parallelism, what is left)` pods running (one per index in `Indexed` mode), waits the
//! pod-failure back-off before replacing failed pods, applies `podFailurePolicy`,
//! `successPolicy`, `backoffLimit`, `activeDeadlineSeconds` and `suspend`, and finishes the
//! Job with Kubernetes' conditions (SuccessCriteriaMet then Complete, FailureTarget then
//! Failed) once its remaining pods are gone.

use crate::util::{controller_ref, is_ready};
use crate::wiring::{changed_meta, meta_key, owner_refs, Informers};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The finalizer that keeps a pod until the Job has counted it.
pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label of an Indexed Job's pod index.
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The most pods created in one pass.
const BURST: usize = 500;

/// What wakes a Job: a change to it, or to a pod it controls.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let jq = q.clone();
    inf.jobs
        .on_change(move |c| jq.add(meta_key(changed_meta(c))));
    let (jq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        if let coxswain_runtime::Change::Applied { new, .. } = c {
            let job = crate::util::controller_uid(&new.metadata)
                .filter(|u| !ctx.jobs.by_index("uid", u).is_empty());
            if has_tracking(new) && job.is_none() {
                jq.add(format!("pod:{}", meta_key(&new.metadata)));
            }
        }
        for uid in owner_refs(c) {
            if let Some(j) = ctx.jobs.by_index("uid", &uid).first() {
                let k = meta_key(&j.metadata);
                match c {
                    coxswain_runtime::Change::Applied { old: None, .. } => {
                        ctx.expectations.observed_add(&k);
                    }
                    coxswain_runtime::Change::Deleted(_) => {
                        ctx.expectations.observed_delete(&k);
                    }
                    _ => {}
                }
                jq.add(k);
            }
        }
    });
}

/// How the controller is tuned (Kubernetes hard-codes these; tests shorten the back-off).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// The first delay before a failed pod is replaced (Kubernetes: 10 s), doubled per
    /// failure up to `max_backoff`.
    pub backoff: Duration,
    /// The longest delay (Kubernetes: 10 min).
    pub max_backoff: Duration,
}

/// One pod as the Job sees it.
fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
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

/// The pod's completion index, if it has a valid one.
pub fn index_of(p: &Pod) -> Option<i64> {
    p.metadata.annotations.as_ref()?.get(INDEX)?.parse().ok()
}

/// Whether the pod counts as failed (Failed, or deleted before it succeeded when the Job has
/// no podFailurePolicy) or succeeded; `None` while it still runs.
fn outcome(p: &Pod, job: &Job) -> Option<bool> {
    match phase(p) {
        "Succeeded" => Some(true),
        "Failed" => Some(false),
        _ if p.metadata.deletion_timestamp.is_some()
            && job
                .spec
                .as_ref()
                .and_then(|s| s.pod_failure_policy.as_ref())
                .is_none() =>
        {
            Some(false)
        }
        _ => None,
    }
}

/// A condition of the Job holds.
pub fn has_condition(job: &Job, t: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
}

/// The Job has finished (Complete or Failed).
pub fn finished(job: &Job) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

/// A set of indexes as Kubernetes writes them: `1,3-5,7`.
pub fn format_indexes(ix: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = ix.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(match end - start {
            0 => start.to_string(),
            1 => format!("{start},{end}"),
            _ => format!("{start}-{end}"),
        });
    }
    out.join(",")
}

/// Parse `1,3-5,7`.
pub fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
            if b - a <= 1_000_000 {
                out.extend(a..=b);
            }
        }
    }
    out
}

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
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
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

/// What podFailurePolicy says about a failed pod: `Ignore`, `FailJob` (with its message),
/// `FailIndex` or `Count`.
fn failure_action(job: &Job, p: &Pod) -> (String, Option<String>) {
    let rules = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
        .map(|pfp| pfp.rules.clone())
        .unwrap_or_default();
    let pod_name = format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    );
    for (i, r) in rules.iter().enumerate() {
        if let Some(req) = &r.on_exit_codes {
            let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone());
            for c in statuses.iter().flatten() {
                if req.container_name.as_ref().is_some_and(|n| *n != c.name) {
                    continue;
                }
                let Some(code) = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                let listed = req.values.contains(&code);
                let hit = match req.operator.as_str() {
                    "In" => listed,
                    _ => !listed && code != 0,
                };
                if hit {
                    let msg = format!(
                        "Container {} for pod {pod_name} failed with exit code {code} matching {} rule at index {i}",
                        c.name, r.action
                    );
                    return (r.action.clone(), Some(msg));
                }
            }
        }
        for pat in r.on_pod_conditions.iter().flatten() {
            let hit = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == pat.type_ && c.status == pat.status)
                });
            if hit {
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

/// Pods whose tracking finalizer this controller removed, until the pod cache shows it
/// gone (pod UID -> Job UID): a lagging cache must not make a pod count twice.
#[derive(Default)]
pub struct Removed(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl Removed {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget what the cache now shows for the Job's pods; whether `pod` is still pending.
    fn settle(&self, job_uid: &str, pods: &[Arc<Pod>]) {
        let tracked: std::collections::HashSet<String> = pods
            .iter()
            .filter(|p| has_tracking(p))
            .map(|p| uid(&p.metadata))
            .collect();
        self.lock()
            .retain(|pod, job| job != job_uid || tracked.contains(pod));
    }

    fn contains(&self, pod: &str) -> bool {
        self.lock().contains_key(pod)
    }

    fn add(&self, pod: String, job: String) {
        self.lock().insert(pod, job);
    }
}

/// What a Job's pods add up to after counting: the counters, the completed indexes, and a
/// podFailurePolicy `FailJob` match.
struct Tally {
    succeeded: i32,
    failed: i32,
    completed: BTreeSet<i64>,
    fail_job: Option<String>,
    /// The Job's resourceVersion after counting (status writes are conditional on it).
    rv: Option<String>,
}

/// How a Job ends: the target condition's reason and message.
struct Ending {
    success: bool,
    reason: String,
    message: String,
}

/// Count every finished pod once: record it in `uncountedTerminatedPods`, remove its
/// finalizer, then move it into the counters (each step survives a restart).
async fn count(
    ctx: &Ctx,
    job: &Job,
    pods: &[Arc<Pod>],
    jobs: &Api<Job>,
    pods_api: &Api<Pod>,
) -> anyhow::Result<Tally> {
    let st = job.status.clone().unwrap_or_default();
    let job_uid = uid(&job.metadata);
    ctx.removed.settle(&job_uid, pods);
    let mut rv = job.metadata.resource_version.clone();
    let unc = st.uncounted_terminated_pods.clone().unwrap_or_default();
    let (mut us, mut uf) = (
        unc.succeeded.unwrap_or_default(),
        unc.failed.unwrap_or_default(),
    );
    let mut fail_job = None;
    let succeeding = has_condition(job, "SuccessCriteriaMet");
    let mut added = false;
    for p in pods.iter().filter(|p| has_tracking(p)) {
        let u = uid(&p.metadata);
        if us.contains(&u) || uf.contains(&u) || ctx.removed.contains(&u) {
            continue;
        }
        match outcome(p, job) {
            Some(true) => us.push(u),
            // Pods deleted once the Job succeeded, and failures the policy ignores, count
            // for nothing: only their finalizer goes.
            Some(false) if succeeding => drop_finalizer(pods_api, p).await?,
            Some(false) => match failure_action(job, p) {
                (a, _) if a == "Ignore" => drop_finalizer(pods_api, p).await?,
                (a, msg) => {
                    if a == "FailJob" && fail_job.is_none() {
                        fail_job = msg;
                    }
                    uf.push(u)
                }
            },
            None => continue,
        }
        added = true;
    }
    if added {
        let unc = json!({"succeeded": us, "failed": uf});
        let patch = json!({"metadata": {"resourceVersion": rv},
            "status": {"uncountedTerminatedPods": unc}});
        let written = jobs
            .patch_status(job.metadata.name.as_deref().unwrap_or(""), &patch)
            .await?;
        rv = written.metadata.resource_version;
    }
    let mut completed = parse_indexes(st.completed_indexes.as_deref().unwrap_or(""));
    for p in pods.iter() {
        let u = uid(&p.metadata);
        if us.contains(&u) || uf.contains(&u) {
            if us.contains(&u) {
                completed.extend(index_of(p));
            }
            if has_tracking(p) && !ctx.removed.contains(&u) {
                drop_finalizer(pods_api, p).await?;
                ctx.removed.add(u.clone(), job_uid.clone());
            }
        }
    }
    let indexed = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
    Ok(Tally {
        succeeded: if indexed {
            completed.len() as i32
        } else {
            st.succeeded.unwrap_or(0) + us.len() as i32
        },
        failed: st.failed.unwrap_or(0) + uf.len() as i32,
        completed,
        fail_job,
        rv,
    })
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
    let restarts: i32 = if on_failure {
        active.iter().map(|p| restart_count(p)).sum()
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
    if let Some((ads, start)) = spec.active_deadline_seconds.zip(start) {
        if spec.suspend != Some(true) && now >= start + chrono::Duration::seconds(ads) {
            return end(
                false,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            );
        }
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
    if done && active.is_empty() {
        return end(
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
    }
    None
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
    if finished(&job) {
        return Ok(Action::AwaitChange);
    }
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let (jobs, pods_api) = (
        Api::<Job>::namespaced(&ctx.client, ns),
        Api::<Pod>::namespaced(&ctx.client, ns),
    );
    let pods = ctx.pods.by_index("controller", &uid(&job.metadata));
    let now = chrono::Utc::now();
    let tally = count(&ctx, &job, &pods, &jobs, &pods_api).await?;
    let active: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| outcome(p, &job).is_none() && p.metadata.deletion_timestamp.is_none())
        .collect();
    let end = ending(&job, &tally, &active, now);
    let suspended = end.is_none() && job.spec.as_ref().and_then(|s| s.suspend) == Some(true);
    let mut requeue = None;
    if end.is_some() || suspended {
        for p in &active {
            delete_pod(&ctx, &job, &pods_api, p).await?;
        }
    } else if ctx.expectations.satisfied(&key) {
        requeue = manage(&ctx, &job, &key, &pods_api, &active, &tally, &pods, tuning).await?;
    }
    // Pods still to go before the Job is finished: those not counted yet.
    let lingering = pods
        .iter()
        .filter(|p| has_tracking(p) && outcome(p, &job).is_none())
        .count();
    let terminating = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .count() as i32;
    let end = end.as_ref().map(|e| (e, lingering == 0));
    let mut st = next_status(&ctx, &job, &tally, &active, end, suspended, now);
    st.terminating = Some(terminating);
    if let Some(ads) = job
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .filter(|_| end.is_none() && !suspended)
    {
        let start = st.start_time.as_ref().map_or(now, |t| t.0);
        let left = (start + chrono::Duration::seconds(ads) - now)
            .to_std()
            .unwrap_or_default();
        requeue = Some(requeue.map_or(left, |r: Duration| r.min(left)));
    }
    if job.status.as_ref() != Some(&st) || tally.rv != job.metadata.resource_version {
        let patch =
            json!({"metadata": {"resourceVersion": tally.rv}, "status": status_patch(&st)?});
        jobs.patch_status(name, &patch).await?;
    }
    Ok(requeue.map_or(Action::AwaitChange, |d| {
        Action::RequeueAfter(d + Duration::from_millis(50))
    }))
}

/// The Job's next status (and the Events of what changed): counters, active/ready/
/// terminating, start time, and the conditions of suspending, resuming and ending (the
/// final Complete/Failed only once no pod is left to count).
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
            let was_suspended = has_condition(job, "Suspended");
            if was_suspended && set("Suspended", "False", "JobResumed", "Job resumed") {
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
    st.completed_indexes = indexed.then(|| format_indexes(&t.completed));
    st.uncounted_terminated_pods = Some(Default::default());
    st.active = Some(if end.is_some() || suspended {
        0
    } else {
        active.len() as i32
    });
    st.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
    st
}

/// A pod whose Job is gone keeps the tracking finalizer no more.
async fn release_orphan(ctx: &Ctx, pod_key: &str) -> anyhow::Result<Action> {
    let Some(p) = ctx.pods.get(pod_key) else {
        return Ok(Action::AwaitChange);
    };
    let owner = crate::util::controller_uid(&p.metadata);
    if !has_tracking(&p)
        || owner
            .as_ref()
            .is_some_and(|u| !ctx.jobs.by_index("uid", u).is_empty())
    {
        return Ok(Action::AwaitChange);
    }
    // The cache may lag: ask the API server whether the Job is gone.
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let job_name = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == "Job")
        .map(|r| r.name.clone());
    if let Some(jn) = job_name {
        let live = Api::<Job>::namespaced(&ctx.client, &ns)
            .get_opt(&jn)
            .await?;
        if live.is_some_and(|j| j.metadata.uid == owner) {
            return Ok(Action::AwaitChange);
        }
    }
    drop_finalizer(&Api::namespaced(&ctx.client, &ns), &p).await?;
    Ok(Action::AwaitChange)
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

fn restart_count(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

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

/// The index of the first successPolicy rule the completed indexes meet.
fn success_policy_met(job: &Job, completed: &BTreeSet<i64>) -> Option<usize> {
    let rules = job.spec.as_ref()?.success_policy.as_ref()?.rules.clone();
    rules.iter().position(|r| {
        let within: BTreeSet<i64> = match &r.succeeded_indexes {
            Some(s) => parse_indexes(s),
            None => completed.clone(),
        };
        let done = within.intersection(completed).count() as i32;
        match (r.succeeded_indexes.is_some(), r.succeeded_count) {
            (true, Some(c)) => done >= c,
            (true, None) => done as usize == within.len(),
            (false, Some(c)) => done >= c,
            (false, None) => false,
        }
    })
}

/// Create or delete pods so that what is left runs; the back-off to wait, if any.
#[allow(clippy::too_many_arguments)]
async fn manage(
    ctx: &Ctx,
    job: &Job,
    key: &str,
    pod_api: &Api<Pod>,
    active: &[&Arc<Pod>],
    tally: &Tally,
    all: &[Arc<Pod>],
    tuning: Tuning,
) -> anyhow::Result<Option<Duration>> {
    let (completed, succeeded, failed) = (&tally.completed, tally.succeeded, tally.failed);
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0) as usize;
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    // Which pods to have: in Indexed mode, the indexes not completed and not running.
    let (want, missing): (usize, Vec<Option<i64>>) = if indexed {
        let c = spec.completions.unwrap_or(0) as i64;
        let running: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
        let todo: Vec<i64> = (0..c)
            .filter(|i| !completed.contains(i) && !running.contains(i))
            .collect();
        let want = parallelism.min(todo.len() + running.len());
        let n = want.saturating_sub(active.len());
        (want, todo.into_iter().take(n).map(Some).collect())
    } else {
        let left = match spec.completions {
            Some(c) => (c - succeeded).max(0) as usize,
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let want = parallelism.min(left);
        (want, vec![None; want.saturating_sub(active.len())])
    };
    if active.len() > want {
        let mut extra: Vec<&Arc<Pod>> = active.to_vec();
        extra.sort_by_key(|p| {
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        for p in extra.into_iter().take(active.len() - want) {
            delete_pod(ctx, job, pod_api, p).await?;
        }
        return Ok(None);
    }
    if missing.is_empty() {
        return Ok(None);
    }
    // The pod-failure back-off: 10 s, doubled per failure, from the last failure.
    if failed > 0 {
        let delay = tuning
            .backoff
            .saturating_mul(1u32 << (failed - 1).clamp(0, 20) as u32)
            .min(tuning.max_backoff);
        let last = all
            .iter()
            .filter(|p| phase(p) == "Failed")
            .filter_map(|p| finished_at(p))
            .max();
        if let Some(last) = last {
            let ready_at = last + chrono::Duration::from_std(delay).unwrap_or_default();
            if let Ok(wait) = (ready_at - chrono::Utc::now()).to_std() {
                if !wait.is_zero() {
                    return Ok(Some(wait));
                }
            }
        }
    }
    let missing: Vec<Option<i64>> = missing.into_iter().take(BURST).collect();
    ctx.expectations.expect(key, missing.len() as i64, 0);
    let new: Vec<Pod> = missing.iter().map(|i| new_pod(job, *i)).collect();
    let results = futures::future::join_all(new.iter().map(|p| pod_api.create(p))).await;
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

/// When the pod's last container finished.
fn finished_at(p: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    p.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| {
            c.state
                .as_ref()?
                .terminated
                .as_ref()?
                .finished_at
                .as_ref()
                .map(|t| t.0)
        })
        .max()
}

async fn drop_finalizer(api: &Api<Pod>, p: &Pod) -> anyhow::Result<()> {
    let rest: Vec<&String> = p
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING)
        .collect();
    let patch = json!({"metadata": {"finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        "resourceVersion": p.metadata.resource_version}});
    match api
        .patch(p.metadata.name.as_deref().unwrap_or(""), &patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn delete_pod(ctx: &Ctx, job: &Job, api: &Api<Pod>, p: &Pod) -> anyhow::Result<()> {
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
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists() {
        let s: BTreeSet<i64> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_indexes(&s), "0-2,4,6,7");
        assert_eq!(parse_indexes("0-2,4,6,7"), s);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }
}
