//! The serviceaccounts controller: every active namespace has a `default` ServiceAccount;
//! a new namespace gets one at once and a deleted one is created again.

use crate::wiring::{changed_meta, Informers};
use crate::Ctx;
use coxswain_client::Api;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{Action, Change, Queue};
use k8s_openapi::api::core::v1::ServiceAccount;
use std::sync::Arc;

/// The ServiceAccount every namespace has.
const DEFAULT: &str = "default";

/// What wakes a namespace: it appearing or changing, or its ServiceAccount being deleted.
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let nq = q.clone();
    inf.namespaces.on_change(move |c| {
        if let Change::Applied { new, .. } = c {
            nq.add(new.metadata.name.clone().unwrap_or_default());
        }
    });
    let sq = q.clone();
    inf.serviceaccounts.on_change(move |c| {
        if let Change::Deleted(_) = c {
            sq.add(changed_meta(c).namespace.clone().unwrap_or_default());
        }
    });
}

/// Reconcile one namespace.
pub async fn reconcile(ctx: Arc<Ctx>, ns: String) -> anyhow::Result<Action> {
    let Some(n) = ctx.namespaces.get(&ns) else {
        return Ok(Action::AwaitChange);
    };
    let active = n.metadata.deletion_timestamp.is_none()
        && n.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Active");
    if !active
        || ctx
            .serviceaccounts
            .get(&key_of(Some(&ns), DEFAULT))
            .is_some()
    {
        return Ok(Action::AwaitChange);
    }
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(DEFAULT.into());
    let api: Api<ServiceAccount> = Api::namespaced(&ctx.client, &ns);
    match api.create(&sa).await {
        Ok(_) => Ok(Action::AwaitChange),
        // Already there (our cache trails), or the namespace began terminating.
        Err(e) if e.is_conflict() || e.code() == Some(403) => Ok(Action::AwaitChange),
        Err(e) => Err(e.into()),
    }
}
