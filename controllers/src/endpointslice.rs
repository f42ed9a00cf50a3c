//! The EndpointSlice controller: for each Service with a selector, EndpointSlices
//! (`<service>-xxxxx`, owned by the Service, labelled with its name and this controller)
//! holding an endpoint per pod it selects that has an IP - terminating ones too, with
//! `ready`, `serving` and `terminating` conditions - and the ports resolved for it; pods
//! with the same ports share slices of at most 100; a Service with no endpoints keeps one
//! empty slice. Existing slices with the same ports are reused, changed ones updated, the
//! rest deleted.

use crate::endpoints::{find_port, hostname, pod_ip, pods_of, target_ref, PortSet};
use crate::util::is_ready;
use crate::wiring::{changed_meta, Informers, SERVICE_NAME_LABEL};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams};
use coxswain_runtime::store::split_key;
use coxswain_runtime::{Action, Queue};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `endpointslice.kubernetes.io/managed-by` value of this controller's slices.
const MANAGED_BY: (&str, &str) = (
    "endpointslice.kubernetes.io/managed-by",
    "endpointslice-controller.k8s.io",
);
/// Endpoints per slice (`--max-endpoints-per-slice`).
const PER_SLICE: usize = 100;

/// What wakes it: Services, their pods, and its own slices.
pub fn watches(inf: &mut Informers, q: &Queue, ctx: &Arc<Ctx>) {
    crate::endpoints::watches_services_and_pods(inf, q, ctx);
    let eq = q.clone();
    inf.endpointslices.on_change(move |c| {
        let m = changed_meta(c);
        if let Some(svc) = m.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
            eq.add(coxswain_runtime::store::key_of(m.namespace.as_deref(), svc));
        }
    });
}

/// The endpoints a Service should have, grouped by their ports.
fn desired(ctx: &Ctx, svc: &Service) -> BTreeMap<PortSet, Vec<Endpoint>> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let mut groups: BTreeMap<PortSet, Vec<Endpoint>> = BTreeMap::new();
    for p in pods_of(ctx, svc) {
        let Some(ip) = pod_ip(&p) else { continue };
        if matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let ports: Vec<(String, i32, String)> = svc_ports
            .iter()
            .filter_map(|sp| {
                Some((
                    sp.name.clone().unwrap_or_default(),
                    find_port(&p, sp)?,
                    sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                ))
            })
            .collect();
        let serving = is_ready(&p);
        let terminating = p.metadata.deletion_timestamp.is_some();
        groups.entry(ports).or_default().push(Endpoint {
            addresses: vec![ip],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: hostname(&p, svc),
            node_name: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(target_ref(&p)),
            ..Default::default()
        });
    }
    groups
}

fn slice_ports(ports: &[(String, i32, String)]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|(name, port, protocol)| EndpointPort {
            name: Some(name.clone()),
            port: Some(*port),
            protocol: Some(protocol.clone()),
            app_protocol: None,
        })
        .collect()
}

/// A new slice of the Service's.
fn new_slice(svc: &Service, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    let mut s = EndpointSlice {
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
        ..Default::default()
    };
    s.metadata.generate_name = Some(format!("{name}-"));
    s.metadata.namespace = svc.metadata.namespace.clone();
    s.metadata.labels = Some(labels);
    s.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name,
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    s
}

/// Reconcile one Service's slices.
pub async fn reconcile(ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some(svc) = ctx.services.get(&key) else {
        return Ok(Action::AwaitChange); // its slices go with it (garbage collector)
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName")
        || spec.selector.is_none()
        || svc.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::AwaitChange);
    }
    let (ns, _) = split_key(&key);
    let api: Api<EndpointSlice> = Api::namespaced(&ctx.client, ns.unwrap_or("default"));
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .endpointslices
        .by_index("service", &key)
        .into_iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY.0))
                .map(String::as_str)
                == Some(MANAGED_BY.1)
        })
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // The slices wanted: per port set, chunks of PER_SLICE; one empty slice if none.
    let mut wanted: Vec<(Vec<EndpointPort>, Vec<Endpoint>)> = Vec::new();
    for (ports, eps) in desired(&ctx, &svc) {
        for chunk in eps.chunks(PER_SLICE) {
            wanted.push((slice_ports(&ports), chunk.to_vec()));
        }
    }
    if wanted.is_empty() {
        wanted.push((Vec::new(), Vec::new()));
    }
    let mut used = vec![false; existing.len()];
    for (ports, endpoints) in wanted {
        let same_ports = |s: &EndpointSlice| s.ports.clone().unwrap_or_default() == ports;
        // An unchanged slice first, else one with the same ports to update.
        let pick = (0..existing.len())
            .find(|&i| !used[i] && same_ports(&existing[i]) && existing[i].endpoints == endpoints)
            .or_else(|| (0..existing.len()).find(|&i| !used[i] && same_ports(&existing[i])));
        match pick {
            Some(i) if existing[i].endpoints == endpoints => used[i] = true,
            Some(i) => {
                used[i] = true;
                let mut s = (*existing[i]).clone();
                s.endpoints = endpoints;
                let name = s.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &s).await?;
            }
            None => {
                api.create(&new_slice(&svc, ports, endpoints)).await?;
            }
        }
    }
    for (s, used) in existing.iter().zip(used) {
        if !used {
            let name = s.metadata.name.clone().unwrap_or_default();
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                if !e.is_not_found() {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(Action::AwaitChange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_name_their_service_and_owner() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.metadata.namespace = Some("default".into());
        svc.metadata.uid = Some("u".into());
        let s = new_slice(
            &svc,
            slice_ports(&[("http".into(), 8080, "TCP".into())]),
            Vec::new(),
        );
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1);
        assert_eq!(s.ports.unwrap()[0].port, Some(8080));
    }
}
