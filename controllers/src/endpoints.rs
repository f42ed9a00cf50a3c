//! The endpoints controller: for each Service with a selector, the Endpoints object of the
//! same name lists the pods it selects - ready ones in `addresses`, the others in
//! `notReadyAddresses` (all ready with `publishNotReadyAddresses`), pods without an IP,
//! finished or being deleted left out - with the target ports resolved per pod (a named
//! port through the pod's container ports; a pod without it is left out of that port only),
//! grouped into subsets by port set, sorted as Kubernetes sorts them. Also what wakes both
//! this and the EndpointSlice controller: a change to a Service, or to a pod a Service
//! selects (before or after the change).

use crate::util::is_ready;
use crate::wiring::{changed_meta, meta_key, Informers};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::events::object_ref;
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Change, Queue};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A pod's resolved ports for a Service: (name, port, protocol) per Service port.
pub type PortSet = Vec<(String, i32, String)>;

/// The label marking a headless Service's Endpoints.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Whether a Service's selector selects a pod with these labels (a Service without a
/// selector selects nothing: its endpoints are its user's).
pub fn selects(svc: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What wakes a Service's endpoints: the Service, and its pods (old labels too).
pub fn watches_services_and_pods(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    let sq = q.clone();
    inf.services
        .on_change(move |c| sq.add(meta_key(changed_meta(c))));
    let (pq, ctx) = (q.clone(), ctx.clone());
    inf.pods.on_change(move |c| {
        let m = changed_meta(c);
        let ns = m.namespace.as_deref().unwrap_or("");
        let old = match c {
            Change::Applied { old: Some(o), .. } => o.metadata.labels.clone(),
            _ => None,
        };
        for svc in ctx.services.by_index("namespace", ns) {
            if selects(&svc, m.labels.as_ref()) || (old.is_some() && selects(&svc, old.as_ref())) {
                pq.add(meta_key(&svc.metadata));
            }
        }
    });
}

/// What wakes the endpoints controller: also a deleted Endpoints object (put back if its
/// Service selects pods); Endpoints written by hand for no Service are left alone.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    watches_services_and_pods(inf, q, ctx);
    let eq = q.clone();
    inf.endpoints.on_change(move |c| {
        if let Change::Deleted(old) = c {
            eq.add(meta_key(&old.metadata));
        }
    });
}

/// The pods a Service selects, from the pod cache.
pub fn pods_of(ctx: &Ctx, svc: &Service) -> Vec<Arc<Pod>> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    let mut pods: Vec<Arc<Pod>> = ctx
        .pods
        .by_index("namespace", ns)
        .into_iter()
        .filter(|p| selects(svc, p.metadata.labels.as_ref()))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

/// A pod's IP, if it has one.
pub fn pod_ip(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    st.pod_ip
        .clone()
        .or_else(|| st.pod_ips.as_ref()?.first().map(|i| i.ip.clone()))
        .filter(|ip| !ip.is_empty())
}

/// The port a Service port reaches on a pod: the number, or the container port of that
/// name and protocol.
pub fn find_port(p: &Pod, sp: &ServicePort) -> Option<i32> {
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            p.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find_map(|cp| {
                    (cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol.as_deref().unwrap_or("TCP") == proto)
                        .then_some(cp.container_port)
                })
        }
    }
}

/// A pod's reference, as endpoints name it.
pub fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: p.metadata.namespace.clone(),
        name: p.metadata.name.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's hostname when it is a member of this (headless) Service's subdomain.
pub fn hostname(p: &Pod, svc: &Service) -> Option<String> {
    let spec = p.spec.as_ref()?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref())
        .then(|| spec.hostname.clone())
        .flatten()
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The subsets of a Service's Endpoints, from its pods.
fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let svc_ports = spec.ports.clone().unwrap_or_default();
    // Port set -> (ready, not ready) addresses.
    let mut groups: BTreeMap<PortSet, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for p in pods {
        let Some(ip) = pod_ip(p) else { continue };
        if finished(p) || (p.metadata.deletion_timestamp.is_some() && !publish) {
            continue;
        }
        let addr = EndpointAddress {
            ip,
            node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(p)),
            hostname: hostname(p, svc),
        };
        let ports: Vec<(String, i32, String)> = svc_ports
            .iter()
            .filter_map(|sp| {
                let port = find_port(p, sp)?;
                Some((
                    sp.name.clone().unwrap_or_default(),
                    port,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        if ports.is_empty() && !(headless && svc_ports.is_empty()) {
            continue;
        }
        let entry = groups.entry(ports).or_default();
        if publish || is_ready(p) {
            entry.0.push(addr);
        } else {
            entry.1.push(addr);
        }
    }
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
                (
                    a.ip.as_str(),
                    a.target_ref.as_ref().and_then(|r| r.uid.clone()),
                )
                    .cmp(&(
                        b.ip.as_str(),
                        b.target_ref.as_ref().and_then(|r| r.uid.clone()),
                    ))
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// Reconcile one Service's Endpoints.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let (ns, name) = split_key(&key);
    let ns = ns.unwrap_or("default");
    let api: Api<Endpoints> = Api::namespaced(&ctx.client, ns);
    let Some(svc) = ctx.services.get(&key) else {
        if ctx.endpoints.get(&key).is_some() {
            api.delete(name, &DeleteParams::default()).await?;
        }
        return Ok(Action::AwaitChange);
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") || spec.selector.is_none() {
        return Ok(Action::AwaitChange);
    }
    let subsets = subsets(&svc, &pods_of(&ctx, &svc));
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if spec
        .cluster_ip
        .as_deref()
        .is_none_or(|ip| ip == "None" || ip.is_empty())
    {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    let subsets = (!subsets.is_empty()).then_some(subsets);
    let current = ctx.endpoints.get(&key);
    if let Some(cur) = &current {
        if cur.subsets == subsets && cur.metadata.labels.clone().unwrap_or_default() == labels {
            return Ok(Action::AwaitChange);
        }
    }
    let mut ep = Endpoints {
        subsets,
        ..Default::default()
    };
    ep.metadata.name = Some(name.to_string());
    ep.metadata.namespace = Some(ns.to_string());
    ep.metadata.labels = Some(labels);
    let res = match current {
        Some(cur) => {
            ep.metadata.resource_version = cur.metadata.resource_version.clone();
            ep.metadata.annotations = cur.metadata.annotations.clone();
            api.replace(name, &ep).await.map(drop)
        }
        None => api.create(&ep).await.map(drop),
    };
    if let Err(e) = res {
        if e.is_conflict() {
            return Ok(Action::RequeueAfter(std::time::Duration::from_millis(200)));
        }
        let verb = if e.is_not_found() { "create" } else { "update" };
        ctx.recorder.record(
            object_ref(&*svc),
            "Warning",
            "FailedToUpdateEndpoint",
            format!(
                "Failed to {verb} endpoint for service {ns}/{name}: {}",
                e.message()
            ),
        );
        return Err(e.into());
    }
    Ok(Action::AwaitChange)
}
