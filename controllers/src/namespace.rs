//! The namespace controller: when a namespace is being deleted, delete everything in it, then
//! clear its `kubernetes` finalizer so the API server removes it.

use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_api::resources::RESOURCES;
use coxswain_runtime::Action;
use coxswain_runtime::Queue;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What wakes a namespace: a change to it.
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let nq = q.clone();
    inf.namespaces
        .on_change(move |c| nq.add(meta_key(changed_meta(c))));
}

/// Reconcile one namespace.
pub async fn reconcile(ctx: Arc<Ctx>, name: String) -> anyhow::Result<Action> {
    let Some(ns) = ctx.namespaces.get(&name) else {
        return Ok(Action::AwaitChange);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::AwaitChange);
    }
    let mut remaining = 0;
    for r in RESOURCES.iter().filter(|r| r.namespaced) {
        let path = r.collection_path(Some(&name));
        let list = ctx
            .client
            .request(reqwest::Method::GET, &path, &[], None, None)
            .await?;
        for item in list["items"].as_array().into_iter().flatten() {
            remaining += 1;
            if item.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let obj = item["metadata"]["name"].as_str().unwrap_or_default();
            let res = ctx
                .client
                .request(
                    reqwest::Method::DELETE,
                    &format!("{path}/{obj}"),
                    &[],
                    Some(&json!({"propagationPolicy": "Background"})),
                    None,
                )
                .await;
            if let Err(e) = res {
                if !e.is_not_found() {
                    return Err(e.into());
                }
            }
        }
    }
    if remaining > 0 {
        return Ok(Action::RequeueAfter(Duration::from_millis(500)));
    }
    let body: Value = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name}, "spec": {"finalizers": []}});
    ctx.client
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/namespaces/{name}/finalize"),
            &[],
            Some(&body),
            None,
        )
        .await?;
    Ok(Action::AwaitChange)
}
