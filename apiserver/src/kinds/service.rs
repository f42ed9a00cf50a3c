//! v1 Service: defaults (type ClusterIP, TCP, targetPort = port, traffic policies, one IPv4
//! family), validation (ports, types, ExternalName, cluster IPs, session affinity, with
//! Kubernetes' messages), update rules (cluster IPs may not change once set; values the user
//! left out are kept, as `kubectl apply` of the original manifest expects; changing type
//! drops what the new type does not hold), what it holds across the cluster (its cluster IP
//! and node ports, taken and given back by `crate::allocator`), kubectl's columns, and the
//! `kubernetes` Service of the `default` namespace with its Endpoints and EndpointSlice,
//! pointing at the API server.

use super::Kind;
use crate::allocator::{Holding, Pool};
use crate::state::AppState;
use crate::table::{age, col, s, Column};
use coxswain_api::protobuf::{Schema, SERVICE_SCHEMA};
use coxswain_api::resources::{ResourceInfo, ENDPOINTS, ENDPOINTSLICES, SERVICES};
use coxswain_api::status::Cause;
use coxswain_api::validation::{is_dns1123_label, is_dns1123_subdomain, DNS1123_LABEL_MSG};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The Service kind.
pub struct Service;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn type_of(v: &Value) -> &str {
    v.at("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn cluster_ip(v: &Value) -> &str {
    v.at("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn headless(v: &Value) -> bool {
    cluster_ip(v) == "None"
}

fn has_node_ports(v: &Value) -> bool {
    match type_of(v) {
        "NodePort" => true,
        "LoadBalancer" => v.at("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

fn ports(v: &Value) -> Vec<Value> {
    v.at("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// An IANA service name, as a named targetPort must be.
fn is_port_name(s: &str) -> bool {
    s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn check_port(p: &Value, i: usize, need_name: bool, names: &mut Vec<String>, c: &mut Vec<Cause>) {
    let f = |k: &str| format!("spec.ports[{i}].{k}");
    match p["name"].as_str().unwrap_or("") {
        "" if need_name => c.push(Cause::required(&f("name"))),
        "" => {}
        n if !is_dns1123_label(n) => c.push(Cause::invalid(
            &f("name"),
            format!("\"{n}\""),
            DNS1123_LABEL_MSG,
        )),
        n if names.iter().any(|x| x == n) => c.push(Cause {
            reason: "FieldValueDuplicate".into(),
            message: format!("Duplicate value: \"{n}\""),
            field: f("name"),
        }),
        n => names.push(n.to_string()),
    }
    let range = "must be between 1 and 65535, inclusive";
    match p["port"].as_i64() {
        Some(n) if (1..=65535).contains(&n) => {}
        other => c.push(Cause::invalid(&f("port"), other.unwrap_or(0), range)),
    }
    match p["protocol"].as_str() {
        Some("TCP" | "UDP" | "SCTP") => {}
        Some(x) => c.push(Cause::not_supported(
            &f("protocol"),
            x,
            &["SCTP", "TCP", "UDP"],
        )),
        None => c.push(Cause::required(&f("protocol"))),
    }
    match &p["targetPort"] {
        Value::Number(n) if !n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {
            c.push(Cause::invalid(&f("targetPort"), n, range))
        }
        Value::String(s) if !is_port_name(s) => c.push(Cause::invalid(
            &f("targetPort"),
            format!("\"{s}\""),
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, at least one letter, no leading or trailing hyphen and no adjacent hyphens",
        )),
        _ => {}
    }
    if let Some(n) = p["nodePort"].as_i64().filter(|n| *n != 0) {
        if !(1..=65535).contains(&n) {
            c.push(Cause::invalid(&f("nodePort"), n, range));
        }
    }
}

/// Whether a spec is reachable from outside (NodePort, LoadBalancer, or external IPs).
fn accessible_spec(spec: &serde_json::Map<String, Value>) -> bool {
    matches!(
        spec.get("type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    ) || spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The cells' EXTERNAL-IP, as kubectl's printer forms it.
fn external_ip(v: &Value) -> String {
    let external: Vec<&str> = v
        .at("/spec/externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match type_of(v) {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut lb = super::shared::load_balancer_addresses(v);
            lb.extend(external.iter().map(|s| s.to_string()));
            if lb.is_empty() {
                "<pending>".into()
            } else {
                let s = lb.join(",");
                if s.len() > 16 {
                    format!("{}...", &s[..13])
                } else {
                    s
                }
            }
        }
        "ExternalName" => s(v, "/spec/externalName"),
        _ => "<unknown>".into(),
    }
}

/// PORT(S): `80/TCP`, `80:30080/TCP`, joined by commas.
fn port_string(v: &Value) -> String {
    let out: Vec<String> = ports(v)
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n > 0) {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    }
}

impl Kind for Service {
    fn info(&self) -> &'static ResourceInfo {
        &SERVICES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Service>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(SERVICE_SCHEMA)
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::Dns1035
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        let ty = type_of(v).to_string();
        let accessible = matches!(ty.as_str(), "NodePort" | "LoadBalancer")
            || (ty == "ClusterIP"
                && v.at("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()));
        let selectorless = v
            .at("/spec/selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        let headless = headless(v);
        let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let mut put = |k: &str, val: Value| {
            if spec.get(k).is_none_or(|x| x.is_null() || x == "") {
                spec.insert(k.into(), val);
            }
        };
        put("type", json!("ClusterIP"));
        put("sessionAffinity", json!("None"));
        if accessible {
            put("externalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            put("allocateLoadBalancerNodePorts", json!(true));
        }
        if ty != "ExternalName" {
            put("internalTrafficPolicy", json!("Cluster"));
            if headless && selectorless {
                put("ipFamilyPolicy", json!("RequireDualStack"));
                put("ipFamilies", json!(["IPv4", "IPv6"]));
            } else {
                put("ipFamilyPolicy", json!("SingleStack"));
                put("ipFamilies", json!(["IPv4"]));
            }
        }
        if spec.get("sessionAffinity") == Some(&json!("None")) {
            spec.remove("sessionAffinityConfig");
        }
        if ty != "ExternalName" {
            let ip = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ips_empty = spec
                .get("clusterIPs")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
            if ips_empty {
                spec.insert(
                    "clusterIPs".into(),
                    if ip.is_empty() {
                        json!([])
                    } else {
                        json!([ip])
                    },
                );
            }
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if p.get("protocol").is_none_or(|x| x.is_null() || x == "") {
                    p.insert("protocol".into(), json!("TCP"));
                }
                let unset = p
                    .get("targetPort")
                    .is_none_or(|t| t.is_null() || t == 0 || t == "");
                if unset {
                    if let Some(port) = p.get("port").cloned() {
                        p.insert("targetPort".into(), port);
                    }
                }
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let ty = type_of(v);
        let ports = ports(v);
        if !TYPES.contains(&ty) {
            c.push(Cause::not_supported("spec.type", ty, TYPES));
        }
        if ports.is_empty() && !headless(v) && ty != "ExternalName" {
            c.push(Cause::required("spec.ports"));
        }
        let mut names = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            check_port(p, i, ports.len() > 1, &mut names, c);
            if ty == "ClusterIP" && p["nodePort"].as_i64().is_some_and(|n| n != 0) {
                c.push(Cause::forbidden(
                    &format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
        let mut seen = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let key = (p["protocol"].clone(), p["port"].clone());
            if seen.contains(&key) {
                c.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    message: format!(
                        "Duplicate value: {{Protocol:{}, Port:{}}}",
                        p["protocol"], p["port"]
                    ),
                    field: format!("spec.ports[{i}]"),
                });
            }
            seen.push(key);
        }
        let ips: Vec<String> = v
            .at("/spec/clusterIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|x| x.as_str().unwrap_or("").to_string())
            .collect();
        if ty == "ExternalName" {
            if !ips.is_empty() || !cluster_ip(v).is_empty() {
                c.push(Cause::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            match v
                .at("/spec/externalName")
                .and_then(Value::as_str)
                .map(|n| n.trim_end_matches('.'))
            {
                None | Some("") => c.push(Cause::required("spec.externalName")),
                Some(n) if !is_dns1123_subdomain(n) => c.push(Cause::invalid(
                    "spec.externalName",
                    format!("\"{n}\""),
                    coxswain_api::validation::DNS1123_SUBDOMAIN_MSG,
                )),
                Some(_) => {}
            }
        } else {
            let ip = cluster_ip(v);
            if headless(v) && matches!(ty, "LoadBalancer" | "NodePort") {
                c.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    "\"None\"",
                    &format!("may not be set to 'None' for {ty} services"),
                ));
            }
            if !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_err() {
                c.push(Cause::invalid(
                    "spec.clusterIPs[0]",
                    format!("\"{ip}\""),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            } else if !ip.is_empty() && ips.first().map(String::as_str) != Some(ip) {
                c.push(Cause::invalid(
                    "spec.clusterIPs",
                    format!("{ips:?}"),
                    "first value must match `clusterIP`",
                ));
            } else if ips.len() > 1 {
                c.push(Cause::invalid(
                    "spec.clusterIPs",
                    format!("{ips:?}"),
                    "may specify no more than one IP for each IP family",
                ));
            }
        }
        match v.at("/spec/sessionAffinity").and_then(Value::as_str) {
            Some("None" | "ClientIP") => {}
            Some(x) => c.push(Cause::not_supported(
                "spec.sessionAffinity",
                x,
                &["ClientIP", "None"],
            )),
            None => c.push(Cause::required("spec.sessionAffinity")),
        }
        let accessible = matches!(ty, "NodePort" | "LoadBalancer")
            || (ty == "ClusterIP"
                && v.at("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()));
        if let Some(p) = v.at("/spec/externalTrafficPolicy").and_then(Value::as_str) {
            if !accessible {
                c.push(Cause::invalid(
                    "spec.externalTrafficPolicy",
                    format!("\"{p}\""),
                    "may only be set for externally-accessible services",
                ));
            } else if !["Cluster", "Local"].contains(&p) {
                c.push(Cause::not_supported(
                    "spec.externalTrafficPolicy",
                    p,
                    &["Cluster", "Local"],
                ));
            }
        }
        if ty != "LoadBalancer"
            && v.at("/spec/allocateLoadBalancerNodePorts")
                .is_some_and(|x| !x.is_null())
        {
            c.push(Cause::forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, x) in v
            .at("/spec/externalIPs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let ip = x.as_str().unwrap_or("");
            match ip.parse::<std::net::Ipv4Addr>() {
                Err(_) => c.push(Cause::invalid(
                    &format!("spec.externalIPs[{i}]"),
                    format!("\"{ip}\""),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )),
                Ok(a) if a.is_loopback() => c.push(Cause::invalid(
                    &format!("spec.externalIPs[{i}]"),
                    format!("\"{ip}\""),
                    "may not be in the loopback range (127.0.0.0/8, ::1/128)",
                )),
                Ok(_) => {}
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        if type_of(old) == "ExternalName"
            || type_of(new) == "ExternalName"
            || (headless(old) && headless(new))
        {
            return;
        }
        let (was, now) = (cluster_ip(old), cluster_ip(new));
        if !was.is_empty() && was != now {
            c.push(Cause::invalid(
                "spec.clusterIPs[0]",
                format!("[]string{{\"{now}\"}}"),
                "may not change once set",
            ));
        }
    }

    fn keep_on_update(&self, cur: &Value, new: &mut Value) {
        // What the user left out of an update keeps its allocated value (Kubernetes'
        // patchAllocatedValues), so re-applying the original manifest changes nothing.
        let needs_ip = |v: &Value| type_of(v) != "ExternalName";
        if needs_ip(cur) && needs_ip(new) && cluster_ip(new).is_empty() {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                for k in ["clusterIP", "clusterIPs"] {
                    if let Some(x) = cur.at(&format!("/spec/{k}")) {
                        spec.insert(k.into(), x.clone());
                    }
                }
            }
        }
        if has_node_ports(cur) && has_node_ports(new) {
            let old = ports(cur);
            if let Some(ps) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ps.iter_mut() {
                    if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                        continue;
                    }
                    let name = p["name"].clone();
                    if let Some(np) = old
                        .iter()
                        .find(|o| o["name"] == name)
                        .and_then(|o| o["nodePort"].as_i64())
                    {
                        if let Some(m) = p.as_object_mut() {
                            m.insert("nodePort".into(), json!(np));
                        }
                    }
                }
            }
        }
        // A type that no longer holds them drops the cluster IP and node ports it kept.
        if needs_ip(cur) && !needs_ip(new) && cluster_ip(new) == cluster_ip(cur) {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                for k in [
                    "clusterIP",
                    "clusterIPs",
                    "ipFamilies",
                    "ipFamilyPolicy",
                    "internalTrafficPolicy",
                ] {
                    spec.remove(k);
                }
            }
        }
        let was_lb = type_of(cur) == "LoadBalancer";
        let cur_spec = cur
            .get("spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
            let same =
                |spec: &serde_json::Map<String, Value>, k: &str| cur_spec.get(k) == spec.get(k);
            if accessible_spec(&cur_spec)
                && !accessible_spec(spec)
                && same(spec, "externalTrafficPolicy")
            {
                spec.remove("externalTrafficPolicy");
            }
            let is_lb = spec.get("type").and_then(Value::as_str) == Some("LoadBalancer");
            if was_lb && !is_lb && same(spec, "allocateLoadBalancerNodePorts") {
                spec.remove("allocateLoadBalancerNodePorts");
            }
        }
        if has_node_ports(cur) && !has_node_ports(new) {
            if let Some(ps) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("nodePort");
                }
            }
        }
    }

    fn quota_usage(&self, v: &Value) -> Vec<(String, i128)> {
        let lb = i128::from(type_of(v) == "LoadBalancer") * 1000;
        let node_ports = if has_node_ports(v) {
            ports(v).len() as i128 * 1000
        } else {
            0
        };
        vec![
            ("services.loadbalancers".into(), lb),
            ("services.nodeports".into(), node_ports),
        ]
    }

    fn quota_keys(&self) -> &'static [&'static str] {
        &["services.loadbalancers", "services.nodeports"]
    }

    fn holdings(&self, v: &Value) -> Vec<Holding> {
        let mut out = Vec::new();
        if type_of(v) == "ExternalName" || headless(v) {
            return out;
        }
        let ip = cluster_ip(v);
        out.push(Holding {
            pool: Pool::ServiceIp,
            value: (!ip.is_empty()).then(|| ip.to_string()),
            pointers: vec!["/spec/clusterIP".into(), "/spec/clusterIPs/0".into()],
            field: "spec.clusterIPs".into(),
        });
        if has_node_ports(v) {
            for (i, p) in ports(v).iter().enumerate() {
                let np = p["nodePort"].as_i64().unwrap_or(0);
                out.push(Holding {
                    pool: Pool::NodePort,
                    value: (np != 0).then(|| np.to_string()),
                    pointers: vec![format!("/spec/ports/{i}/nodePort")],
                    field: format!("spec.ports[{i}].nodePort"),
                });
            }
        }
        out
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let ip = v
            .at("/spec/clusterIPs/0")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>");
        vec![
            json!(s(v, "/metadata/name")),
            json!(type_of(v)),
            json!(ip),
            json!(external_ip(v)),
            json!(port_string(v)),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(super::shared::selector_cell(
                v.at("/spec/selector")
                    .map(|m| json!({"matchLabels": m}))
                    .as_ref()
            )),
        ]
    }
}

/// The API server's own Service, `default/kubernetes` (the first address of the service
/// network, port 443 to the API server's port), with the Endpoints and EndpointSlice that
/// name this server: created if missing, checked every 10 s (Kubernetes' endpoint
/// reconciler interval).
pub async fn keep_kubernetes_service(st: std::sync::Arc<AppState>, addr: std::net::SocketAddr) {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) if !a.is_unspecified() => a.to_string(),
        _ => "127.0.0.1".to_string(),
    };
    let port = addr.port();
    loop {
        ensure_kubernetes_service(&st, &ip, port).await;
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

async fn ensure_kubernetes_service(st: &AppState, ip: &str, port: u16) {
    use crate::verbs::create::create_object;
    let cluster_ip = st.ranges.service_ip(1).to_string();
    let wanted = [
        (
            &SERVICES,
            json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
        ),
        (
            &ENDPOINTS,
            json!({"metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        ),
        (
            &ENDPOINTSLICES,
            json!({"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        ),
    ];
    for (r, body) in wanted {
        if st.cache.get(r, "default", "kubernetes").is_some()
            || st
                .cache
                .get(&coxswain_api::resources::NAMESPACES, "", "default")
                .is_none()
        {
            continue;
        }
        if let Err(e) = create_object(st, r, Some("default"), body).await {
            if e.reason != "AlreadyExists" {
                tracing::warn!(error = %e, resource = r.plural, "creating the kubernetes service failed");
            }
        }
    }
}
