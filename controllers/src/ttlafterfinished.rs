//! The TTL-after-finished controller: deletes a finished Job (Complete or Failed)
//! `spec.ttlSecondsAfterFinished` seconds after it finished (the transition time of that
//! condition), in the foreground so its pods go first, after confirming with a fresh read
//! that the TTL still says so.

use crate::job::finished;
use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::batch::v1::Job;
use std::sync::Arc;
use std::time::Duration;

/// What wakes it: a finished Job with a TTL that is not being deleted.
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let q = q.clone();
    inf.jobs.on_change(move |c| {
        if let coxswain_runtime::Change::Applied { new, .. } = c {
            if wants_cleanup(new) {
                q.add(meta_key(changed_meta(c)));
            }
        }
    });
}

fn wants_cleanup(j: &Job) -> bool {
    j.metadata.deletion_timestamp.is_none()
        && j.spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished)
            .is_some()
        && finished(j)
}

/// When the Job expires: its finishing condition's transition time plus the TTL.
fn expires_at(j: &Job) -> Option<chrono::DateTime<chrono::Utc>> {
    let ttl = j.spec.as_ref()?.ttl_seconds_after_finished?;
    let done = j
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?
        .last_transition_time
        .as_ref()?
        .0;
    Some(done + chrono::Duration::seconds(i64::from(ttl)))
}

/// Reconcile one Job.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(job) = ctx.jobs.get(&key).filter(|j| wants_cleanup(j)) else {
        return Ok(Action::AwaitChange);
    };
    let Some(at) = expires_at(&job) else {
        return Ok(Action::AwaitChange);
    };
    if let Ok(wait) = (at - chrono::Utc::now()).to_std() {
        if !wait.is_zero() {
            return Ok(Action::RequeueAfter(wait + Duration::from_millis(50)));
        }
    }
    let (ns, name) = split_key(&key);
    let api: Api<Job> = Api::namespaced(&ctx.client, ns.unwrap_or("default"));
    // The TTL may have changed since the cache saw it.
    let Some(fresh) = api.get_opt(name).await?.filter(wants_cleanup) else {
        return Ok(Action::AwaitChange);
    };
    if expires_at(&fresh).is_some_and(|t| t > chrono::Utc::now()) {
        return Ok(Action::RequeueAfter(Duration::from_millis(100)));
    }
    tracing::info!(job = %key, "deleting a finished Job whose TTL expired");
    let p = DeleteParams {
        propagation_policy: Some("Foreground".into()),
        uid: fresh.metadata.uid.clone(),
        ..Default::default()
    };
    match api.delete(name, &p).await {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(e) => Err(e.into()),
    }
}
