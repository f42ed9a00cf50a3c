//! The CronJob controller: creates a Job for the most recent schedule time not yet run
//! (named `<cronjob>-<minutes since the epoch>`, as Kubernetes names them), honouring
//! `suspend`, `startingDeadlineSeconds`, `timeZone` and `concurrencyPolicy` (Allow, Forbid,
//! Replace); keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; deletes the
//! oldest finished Jobs beyond the history limits; and sleeps until the next schedule time.
//!
//! Its clock is the system's, or, for tests, the RFC 3339 time in `--cronjob-clock-file`, so a
//! test can move time forward instead of waiting minutes.

use crate::job::{finished, has_condition};
use crate::util::controller_ref;
use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use chrono::{DateTime, Utc};
use coxswain_api::cron::{time_zone, Schedule};
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The annotation with the time a Job was scheduled for.
const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// The controller's clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Read the time from this file (tests); `None`: the system clock.
    pub file: Option<PathBuf>,
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
    }

    /// How long to sleep until `at` by this clock (a test clock is polled instead).
    fn until(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
        let d = (at - now).to_std().unwrap_or_default() + Duration::from_millis(100);
        if self.file.is_some() {
            d.min(Duration::from_millis(250))
        } else {
            d
        }
    }
}

/// What wakes a CronJob: a change to it or to a Job it controls.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let cq = q.clone();
    inf.cronjobs
        .on_change(move |c| cq.add(meta_key(changed_meta(c))));
    let (cq, ctx) = (q.clone(), ctx.clone());
    inf.jobs.on_change(move |c| {
        let m = changed_meta(c);
        if let Some(uid) = crate::util::controller_uid(m) {
            if let Some(cj) = ctx.cronjobs.by_index("uid", &uid).first() {
                cq.add(meta_key(&cj.metadata));
            }
        }
    });
}

/// The most recent schedule time in `(earliest, now]`, and whether more than 100 were missed.
fn most_recent(
    sched: &Schedule,
    tz: coxswain_api::cron::Tz,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, bool) {
    let Some(t1) = sched.next_after(earliest, tz).filter(|t| *t <= now) else {
        return (None, false);
    };
    let Some(t2) = sched.next_after(t1, tz).filter(|t| *t <= now) else {
        return (Some(t1), false);
    };
    // Look back from `now` in doubling windows (not from `earliest`: a day of missed
    // minutes is not walked), then walk the window that holds a schedule time.
    let interval = (t2 - t1).num_seconds().max(1);
    let n = (now - t1).num_seconds() / interval + 1;
    let mut window = chrono::Duration::seconds(interval);
    let from = loop {
        let from = (now - window).max(earliest);
        if from == earliest || sched.next_after(from, tz).is_some_and(|x| x <= now) {
            break from;
        }
        window = window * 2;
    };
    let mut last = None;
    let mut t = from;
    while let Some(next) = sched.next_after(t, tz).filter(|x| *x <= now) {
        last = Some(next);
        t = next;
    }
    (last, n > 100)
}

/// The Job for schedule time `at`.
fn job_for(cj: &CronJob, at: DateTime<Utc>, tz: coxswain_api::cron::Tz) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = tmpl.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED.into(),
        at.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let name = format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        at.timestamp() / 60
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

fn reference(j: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: j.metadata.name.clone(),
        namespace: j.metadata.namespace.clone(),
        uid: j.metadata.uid.clone(),
        resource_version: j.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// Delete the oldest finished Jobs beyond the history limits.
async fn prune(ctx: &Ctx, cj: &CronJob, jobs: &[Arc<Job>], api: &Api<Job>) {
    let spec = cj.spec.clone().unwrap_or_default();
    for (ty, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| has_condition(j, ty) && j.metadata.deletion_timestamp.is_none())
            .collect();
        // Oldest first by start time; Jobs that never started last, then by name.
        done.sort_by_key(|j| {
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            (start.is_none(), start, j.metadata.name.clone())
        });
        let extra = done.len().saturating_sub(limit.max(0) as usize);
        for j in done.into_iter().take(extra) {
            let name = j.metadata.name.clone().unwrap_or_default();
            let p = DeleteParams {
                propagation_policy: Some("Background".into()),
                ..Default::default()
            };
            match api.delete(&name, &p).await {
                Ok(_) => ctx.recorder.record(
                    object_ref(cj),
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted job {name}"),
                ),
                Err(e) => ctx.recorder.record(
                    object_ref(cj),
                    "Warning",
                    "FailedDelete",
                    format!("Deleted job: {e}"),
                ),
            }
        }
    }
}

/// Reconcile one CronJob.
pub async fn reconcile(ctx: Arc<Ctx>, key: String, clock: Clock) -> anyhow::Result<Action> {
    let Some(cj) = ctx.cronjobs.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let (job_api, cj_api) = (
        Api::<Job>::namespaced(&ctx.client, ns),
        Api::<CronJob>::namespaced(&ctx.client, ns),
    );
    let jobs = ctx
        .jobs
        .by_index("controller", cj.metadata.uid.as_deref().unwrap_or(""));
    let spec = cj.spec.clone().unwrap_or_default();
    let now = clock.now();
    let mut st = cj.status.clone().unwrap_or_default();
    let mut active = st.active.clone().unwrap_or_default();

    // What ran: finished Jobs leave `active`, successes move lastSuccessfulTime.
    for j in &jobs {
        let in_active = active.iter().any(|r| r.uid == j.metadata.uid);
        if finished(j) && in_active {
            active.retain(|r| r.uid != j.metadata.uid);
            let how = if has_condition(j, "Complete") {
                "Complete"
            } else {
                "Failed"
            };
            let jn = j.metadata.name.clone().unwrap_or_default();
            ctx.recorder.record(
                object_ref(&*cj),
                "Normal",
                "SawCompletedJob",
                format!("Saw completed job: {jn}, condition: {how}"),
            );
        }
        if let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone()) {
            if has_condition(j, "Complete")
                && st
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|t| t.0 < done.0)
            {
                st.last_successful_time = Some(done);
            }
        }
    }
    let missing: Vec<String> = active
        .iter()
        .filter(|r| !jobs.iter().any(|j| j.metadata.uid == r.uid))
        .filter_map(|r| r.name.clone())
        .collect();
    for m in missing {
        if job_api.get_opt(&m).await?.is_none() {
            active.retain(|r| r.name.as_deref() != Some(&m));
            ctx.recorder.record(
                object_ref(&*cj),
                "Normal",
                "MissingJob",
                format!("Active job went missing: {m}"),
            );
        }
    }
    prune(&ctx, &cj, &jobs, &job_api).await;

    // What to run next.
    let mut requeue = None;
    let runnable = cj.metadata.deletion_timestamp.is_none() && spec.suspend != Some(true);
    let sched = Schedule::parse(&spec.schedule).map_err(|e| {
        let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
        ctx.recorder
            .record(object_ref(&*cj), "Warning", "UnparseableSchedule", msg);
    });
    let tz = time_zone(spec.time_zone.as_deref()).map_err(|e| {
        let tz = spec.time_zone.clone().unwrap_or_default();
        let msg = format!("invalid timeZone: {tz:?}: {e}");
        ctx.recorder
            .record(object_ref(&*cj), "Warning", "UnknownTimeZone", msg);
    });
    if let (true, Ok(sched), Ok(tz)) = (runnable, sched, tz) {
        let mut earliest = st
            .last_schedule_time
            .as_ref()
            .or(cj.metadata.creation_timestamp.as_ref())
            .map_or(now, |t| t.0);
        if let Some(d) = spec.starting_deadline_seconds {
            earliest = earliest.max(now - chrono::Duration::seconds(d));
        }
        let (scheduled, many) = most_recent(&sched, tz, earliest, now);
        if many {
            ctx.recorder.record(object_ref(&*cj), "Warning", "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into());
        }
        if let Some(at) = scheduled {
            let job = job_for(&cj, at, tz);
            let already = active.iter().any(|r| r.name == job.metadata.name)
                || st.last_schedule_time.as_ref().is_some_and(|t| t.0 == at);
            let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
            if already {
            } else if policy == "Forbid" && !active.is_empty() {
                ctx.recorder.record(object_ref(&*cj), "Normal", "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid".into());
            } else {
                if policy == "Replace" {
                    for r in std::mem::take(&mut active) {
                        let jn = r.name.clone().unwrap_or_default();
                        let p = DeleteParams {
                            propagation_policy: Some("Background".into()),
                            ..Default::default()
                        };
                        match job_api.delete(&jn, &p).await {
                            Ok(_) => ctx.recorder.record(
                                object_ref(&*cj),
                                "Normal",
                                "SuccessfulDelete",
                                format!("Deleted job {jn}"),
                            ),
                            Err(e) if e.is_not_found() => {}
                            Err(e) => {
                                active.push(r);
                                anyhow::bail!("could not replace job {ns}/{jn}: {e}");
                            }
                        }
                    }
                }
                let created = match job_api.create(&job).await {
                    Ok(j) => {
                        let jn = j.metadata.name.clone().unwrap_or_default();
                        ctx.recorder.record(
                            object_ref(&*cj),
                            "Normal",
                            "SuccessfulCreate",
                            format!("Created job {jn}"),
                        );
                        Some(j)
                    }
                    Err(e) if e.code() == Some(409) => job_api
                        .get_opt(job.metadata.name.as_deref().unwrap_or(""))
                        .await?
                        .filter(|j| crate::util::controller_uid(&j.metadata) == cj.metadata.uid),
                    Err(e) => {
                        ctx.recorder.record(
                            object_ref(&*cj),
                            "Warning",
                            "FailedCreate",
                            format!("Error creating job: {e}"),
                        );
                        return Err(e.into());
                    }
                };
                if let Some(j) = created {
                    if !active.iter().any(|r| r.uid == j.metadata.uid) {
                        active.push(reference(&j));
                    }
                    st.last_schedule_time = Some(Time(at));
                }
            }
        }
        if let Some(next) = sched.next_after(now, tz) {
            requeue = Some(clock.until(next, now));
        }
    }
    st.active = (!active.is_empty()).then_some(active);
    if cj.status.as_ref() != Some(&st) {
        let mut status = serde_json::to_value(&st)?;
        if st.active.is_none() {
            status["active"] = serde_json::Value::Null;
        }
        cj_api
            .patch_status(
                name,
                &json!({"metadata": {"resourceVersion": cj.metadata.resource_version}, "status": status}),
            )
            .await?;
    }
    Ok(requeue.map_or(Action::AwaitChange, Action::RequeueAfter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn most_recent_unmet_time() {
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        let tz = coxswain_api::cron::Tz::UTC;
        let created = at("2026-01-01T10:01:00Z");
        assert_eq!(
            most_recent(&every5, tz, created, at("2026-01-01T10:04:00Z")),
            (None, false)
        );
        assert_eq!(
            most_recent(&every5, tz, created, at("2026-01-01T10:07:00Z")),
            (Some(at("2026-01-01T10:05:00Z")), false)
        );
        assert_eq!(
            most_recent(&every5, tz, created, at("2026-01-01T10:31:00Z")),
            (Some(at("2026-01-01T10:30:00Z")), false)
        );
        // A day of missed runs: only the latest runs, and it is reported.
        let (t, many) = most_recent(&every5, tz, created, at("2026-01-02T10:31:00Z"));
        assert_eq!((t, many), (Some(at("2026-01-02T10:30:00Z")), true));
        // Irregular schedules too.
        let weekdays = Schedule::parse("0 9 * * 1-5").unwrap();
        let (t, _) = most_recent(
            &weekdays,
            tz,
            at("2026-01-01T00:00:00Z"),
            at("2026-03-01T12:00:00Z"),
        );
        assert_eq!(t, Some(at("2026-02-27T09:00:00Z")));
    }
}
