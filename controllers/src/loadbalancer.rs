//! The simulated cloud's service controller (as kind's cloud-provider-kind or k3s'
//! ServiceLB): a LoadBalancer Service gets an ingress IP from `--load-balancer-ip-range`
//! (the one it asks for in `spec.loadBalancerIP` when that is free), written to
//! `status.loadBalancer.ingress` with Kubernetes' events; a Service that stops being a
//! LoadBalancer loses it. Coxswain has no packets to carry: the address is bookkeeping.

use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_client::Api;
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The addresses handed out, inclusive.
#[derive(Debug, Clone, Copy)]
pub struct Pool(pub Ipv4Addr, pub Ipv4Addr);

/// Parse `172.18.255.200-172.18.255.250`.
pub fn parse_pool(s: &str) -> Result<Pool, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected FIRST-LAST, e.g. 172.18.255.200-172.18.255.250")?;
    let (a, b): (Ipv4Addr, Ipv4Addr) = (
        a.trim().parse().map_err(|e| format!("{a}: {e}"))?,
        b.trim().parse().map_err(|e| format!("{b}: {e}"))?,
    );
    if u32::from(b) < u32::from(a) {
        return Err(format!("{s}: the last address comes before the first"));
    }
    Ok(Pool(a, b))
}

/// What wakes it: any Service change.
pub fn watches(inf: &mut Informers, q: &Queue, _ctx: &Arc<Ctx>) {
    let q = q.clone();
    inf.services
        .on_change(move |c| q.add(meta_key(changed_meta(c))));
}

fn ingress_ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// Reconcile one Service.
pub async fn reconcile(ctx: Arc<Ctx>, pool: Pool, key: String) -> anyhow::Result<Action> {
    let Some(svc) = ctx.services.get(&key) else {
        return Ok(Action::AwaitChange);
    };
    let spec = svc.spec.clone().unwrap_or_default();
    let is_lb = spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none();
    let current = ingress_ips(&svc);
    let (ns, name) = split_key(&key);
    let api: Api<Service> = Api::namespaced(&ctx.client, ns.unwrap_or("default"));
    let record = |reason: &str, msg: &str| {
        ctx.recorder
            .record(object_ref(&*svc), "Normal", reason, msg.to_string())
    };
    if !is_lb {
        if !current.is_empty() && spec.type_.as_deref() != Some("LoadBalancer") {
            record("DeletingLoadBalancer", "Deleting load balancer");
            api.patch_status(
                name,
                &json!({"status": {"loadBalancer": {"ingress": null}}}),
            )
            .await?;
            record("DeletedLoadBalancer", "Deleted load balancer");
        }
        return Ok(Action::AwaitChange);
    }
    if !current.is_empty() {
        return Ok(Action::AwaitChange);
    }
    let taken: HashSet<String> = ctx
        .services
        .list()
        .iter()
        .flat_map(|s| ingress_ips(s))
        .collect();
    let free = |ip: &str| !taken.contains(ip);
    let in_pool = |ip: Ipv4Addr| (u32::from(pool.0)..=u32::from(pool.1)).contains(&u32::from(ip));
    let asked = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty());
    let ip = match asked {
        Some(a) => a
            .parse::<Ipv4Addr>()
            .ok()
            .filter(|ip| in_pool(*ip) && free(a))
            .map(|ip| ip.to_string()),
        None => (u32::from(pool.0)..=u32::from(pool.1))
            .map(|n| Ipv4Addr::from(n).to_string())
            .find(|ip| free(ip)),
    };
    record("EnsuringLoadBalancer", "Ensuring load balancer");
    let Some(ip) = ip else {
        let why = match asked {
            Some(a) => format!(
                "requested IP {a} is not free in the pool {}-{}",
                pool.0, pool.1
            ),
            None => format!("no free IP left in the pool {}-{}", pool.0, pool.1),
        };
        ctx.recorder.record(
            object_ref(&*svc),
            "Warning",
            "SyncLoadBalancerFailed",
            format!("Error syncing load balancer: failed to ensure load balancer: {why}"),
        );
        return Ok(Action::RequeueAfter(std::time::Duration::from_secs(30)));
    };
    api.patch_status(
        name,
        &json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}}),
    )
    .await?;
    record("EnsuredLoadBalancer", "Ensured load balancer");
    Ok(Action::AwaitChange)
}
