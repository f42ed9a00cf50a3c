//! networking.k8s.io/v1 Ingress: validation as Kubernetes (rules or a default backend, hosts
//! DNS names or `*.` wildcards and never IPs, `pathType` required with absolute paths,
//! backends naming a Service port or a resource, TLS hosts and secret names), the
//! DefaultIngressClass admission (an Ingress naming no class gets the newest class marked
//! `ingressclass.kubernetes.io/is-default-class: "true"`), `status`, and kubectl's columns.
//! Stored and shown only: Coxswain has no packets to route.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, INGRESSES};
use coxswain_api::status::Cause;
use coxswain_api::validation::{
    is_dns1035_label, is_dns1123_subdomain, DNS1035_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use coxswain_api::At;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

/// The Ingress kind.
pub struct Ingress;

/// The annotation that marks the default IngressClass.
pub const DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";

const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn check_host(h: &str, field: &str, c: &mut Vec<Cause>, ip_ok: bool) {
    if !ip_ok && h.parse::<std::net::IpAddr>().is_ok() {
        c.push(Cause::invalid(
            field,
            format!("\"{h}\""),
            "must be a DNS name, not an IP address",
        ));
    } else if h.contains('*') {
        if !h.strip_prefix("*.").is_some_and(is_dns1123_subdomain) {
            c.push(Cause::invalid(field, format!("\"{h}\""), WILDCARD_MSG));
        }
    } else if !is_dns1123_subdomain(h) {
        c.push(Cause::invalid(
            field,
            format!("\"{h}\""),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
}

fn check_backend(b: &Value, p: &str, c: &mut Vec<Cause>) {
    let (svc, res) = (
        b.get("service").filter(|x| !x.is_null()),
        b.get("resource").filter(|x| !x.is_null()),
    );
    match (svc, res) {
        (Some(_), Some(_)) => c.push(Cause::invalid(
            p,
            "\"\"",
            "cannot set both resource and service backends",
        )),
        (None, None) => c.push(Cause::invalid(
            p,
            "\"\"",
            "resource or service backend is required",
        )),
        (None, Some(r)) => {
            for k in ["kind", "name"] {
                if r[k].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&format!("{p}.resource.{k}")));
                }
            }
        }
        (Some(s), None) => {
            match s["name"].as_str().unwrap_or("") {
                "" => c.push(Cause::required(&format!("{p}.service.name"))),
                n if !is_dns1035_label(n) => c.push(Cause::invalid(
                    &format!("{p}.service.name"),
                    format!("\"{n}\""),
                    DNS1035_LABEL_MSG,
                )),
                _ => {}
            }
            let port = &s["port"];
            let (name, number) = (
                port["name"].as_str().filter(|n| !n.is_empty()),
                port["number"].as_i64().filter(|n| *n != 0),
            );
            match (name, number) {
                (Some(_), Some(_)) => c.push(Cause::invalid(
                    p,
                    "\"\"",
                    "cannot set both port name & port number",
                )),
                (None, None) => c.push(Cause::required_because(
                    p,
                    "port name or number is required",
                )),
                (None, Some(n)) if !(1..=65535).contains(&n) => c.push(Cause::invalid(
                    &format!("{p}.service.port.number"),
                    n,
                    "must be between 1 and 65535, inclusive",
                )),
                _ => {}
            }
        }
    }
}

fn check_path(path: &Value, p: &str, c: &mut Vec<Cause>) {
    let text = path["path"].as_str().unwrap_or("");
    match path["pathType"].as_str() {
        None => {
            c.push(Cause::required_because(
                &format!("{p}.pathType"),
                "pathType must be specified",
            ));
            return;
        }
        Some("Exact" | "Prefix") => {
            if !text.starts_with('/') {
                c.push(Cause::invalid(
                    &format!("{p}.path"),
                    format!("\"{text}\""),
                    "must be an absolute path",
                ));
            } else {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if text.contains(seq) {
                        c.push(Cause::invalid(
                            &format!("{p}.path"),
                            format!("\"{text}\""),
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suf in ["/..", "/."] {
                    if text.ends_with(suf) {
                        c.push(Cause::invalid(
                            &format!("{p}.path"),
                            format!("\"{text}\""),
                            &format!("cannot end with '{suf}'"),
                        ));
                    }
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !text.is_empty() && !text.starts_with('/') {
                c.push(Cause::invalid(
                    &format!("{p}.path"),
                    format!("\"{text}\""),
                    "must be an absolute path",
                ));
            }
        }
        Some(other) => {
            c.push(Cause::not_supported(
                &format!("{p}.pathType"),
                other,
                &["Exact", "ImplementationSpecific", "Prefix"],
            ));
        }
    }
    check_backend(&path["backend"], &format!("{p}.backend"), c);
}

/// kubectl's HOSTS: up to three, then `+ N more...`; `*` when none.
fn hosts(v: &Value) -> String {
    let rules = v
        .at("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let list: Vec<&str> = rules
        .iter()
        .filter_map(|r| r["host"].as_str())
        .filter(|h| !h.is_empty())
        .take(3)
        .collect();
    if list.is_empty() {
        return "*".into();
    }
    let mut out = list.join(",");
    if rules.len() > 3 {
        out.push_str(&format!(" + {} more...", rules.len() - 3));
    }
    out
}

/// The newest IngressClass marked default, for an Ingress that names none.
pub fn default_class(st: &crate::state::AppState) -> Option<String> {
    let (classes, _) = st.cache.list(
        &coxswain_api::resources::INGRESSCLASSES,
        &crate::cache::Filter::default(),
    );
    classes
        .iter()
        .filter_map(|o| serde_json::from_slice::<Value>(&o.bytes).ok())
        .filter(|v| {
            v.at(&format!(
                "/metadata/annotations/{}",
                DEFAULT_CLASS.replace('/', "~1")
            )) == Some(&json!("true"))
        })
        .max_by(|a, b| {
            (
                s(a, "/metadata/creationTimestamp"),
                std::cmp::Reverse(s(a, "/metadata/name")),
            )
                .cmp(&(
                    s(b, "/metadata/creationTimestamp"),
                    std::cmp::Reverse(s(b, "/metadata/name")),
                ))
        })
        .map(|v| s(&v, "/metadata/name"))
}

impl Kind for Ingress {
    fn info(&self) -> &'static ResourceInfo {
        &INGRESSES
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::INGRESS_SCHEMA)
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<networking::Ingress>(v)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn admit_create(
        &self,
        st: &crate::state::AppState,
        v: &mut Value,
    ) -> Result<(), coxswain_api::status::ApiError> {
        let named = v.at("/spec/ingressClassName").is_some_and(|x| !x.is_null())
            || v.at("/metadata/annotations/kubernetes.io~1ingress.class")
                .is_some();
        if !named {
            if let (Some(class), Some(spec)) = (
                default_class(st),
                v.get_mut("spec").and_then(Value::as_object_mut),
            ) {
                spec.insert("ingressClassName".into(), json!(class));
            }
        }
        Ok(())
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let rules = v
            .at("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let default_backend = v.at("/spec/defaultBackend").filter(|b| !b.is_null());
        if rules.is_empty() && default_backend.is_none() {
            c.push(Cause::invalid(
                "spec",
                "[]networking.IngressRule(nil)",
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(b) = default_backend {
            check_backend(b, "spec.defaultBackend", c);
        }
        for (i, r) in rules.iter().enumerate() {
            if let Some(h) = r["host"].as_str().filter(|h| !h.is_empty()) {
                check_host(h, &format!("spec.rules[{i}].host"), c, false);
            }
            if let Some(http) = r.get("http").filter(|h| !h.is_null()) {
                let paths = http["paths"].as_array().cloned().unwrap_or_default();
                if paths.is_empty() {
                    c.push(Cause::required(&format!("spec.rules[{i}].http.paths")));
                }
                for (j, p) in paths.iter().enumerate() {
                    check_path(p, &format!("spec.rules[{i}].http.paths[{j}]"), c);
                }
            }
        }
        for (i, t) in v
            .at("/spec/tls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, h) in t["hosts"].as_array().into_iter().flatten().enumerate() {
                check_host(
                    h.as_str().unwrap_or(""),
                    &format!("spec.tls[{i}].hosts[{j}]"),
                    c,
                    true,
                );
            }
            if let Some(n) = t["secretName"]
                .as_str()
                .filter(|n| !n.is_empty() && !is_dns1123_subdomain(n))
            {
                c.push(Cause::invalid(
                    &format!("spec.tls[{i}].secretName"),
                    format!("\"{n}\""),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
        }
        if let Some(n) = v
            .at("/spec/ingressClassName")
            .and_then(Value::as_str)
            .filter(|n| !is_dns1123_subdomain(n))
        {
            c.push(Cause::invalid(
                "spec.ingressClassName",
                format!("\"{n}\""),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Class", "string", 0),
            col("Hosts", "string", 0),
            col("Address", "string", 0),
            col("Ports", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let addrs = super::shared::load_balancer_addresses(v);
        let tls = v
            .at("/spec/tls")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty());
        vec![
            json!(s(v, "/metadata/name")),
            json!(v
                .at("/spec/ingressClassName")
                .and_then(Value::as_str)
                .unwrap_or("<none>")),
            json!(hosts(v)),
            json!(addrs.join(",")),
            json!(if tls { "80, 443" } else { "80" }),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
