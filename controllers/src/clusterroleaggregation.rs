//! The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` holds the
//! rules of every ClusterRole its selectors match (selectors in order, matches by name, each
//! rule once), kept in step whenever any ClusterRole changes - how `admin`, `edit` and
//! `view` gain the rules of the `aggregate-to-*` roles and of CRD authors' roles.

use crate::wiring::Informers;
use crate::Ctx;
use coxswain_api::selector::LabelSelector;
use coxswain_client::Api;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use serde_json::json;
use std::sync::Arc;

/// What wakes it: any ClusterRole change wakes every aggregated ClusterRole.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let (q, ctx) = (q.clone(), ctx.clone());
    inf.clusterroles.on_change(move |_| {
        for r in ctx.clusterroles.list() {
            if r.aggregation_rule.is_some() {
                q.add(r.metadata.name.clone().unwrap_or_default());
            }
        }
    });
}

/// Reconcile one aggregated ClusterRole.
pub async fn reconcile(ctx: Arc<Ctx>, name: String) -> anyhow::Result<Action> {
    let Some(role) = ctx.clusterroles.get(&name) else {
        return Ok(Action::AwaitChange);
    };
    let Some(agg) = role.aggregation_rule.as_ref() else {
        return Ok(Action::AwaitChange);
    };
    let mut all: Vec<Arc<ClusterRole>> = ctx.clusterroles.list();
    all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for sel in agg.cluster_role_selectors.iter().flatten() {
        let Ok(sel) = LabelSelector::from_k8s(sel) else {
            continue;
        };
        for m in &all {
            if m.metadata.name.as_deref() == Some(name.as_str()) {
                continue;
            }
            let empty = Default::default();
            if !sel.matches(m.metadata.labels.as_ref().unwrap_or(&empty)) {
                continue;
            }
            for r in m.rules.iter().flatten() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
    }
    if role.rules.clone().unwrap_or_default() == rules {
        return Ok(Action::AwaitChange);
    }
    let api: Api<ClusterRole> = Api::all(&ctx.client);
    api.patch(&name, &json!({"rules": rules})).await?;
    Ok(Action::AwaitChange)
}
