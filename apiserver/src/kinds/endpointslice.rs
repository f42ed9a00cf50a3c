//! discovery.k8s.io/v1 EndpointSlice: a Service's endpoints in slices of at most 1,000 (the
//! endpointslice controller writes 100): `addressType` IPv4, IPv6 or FQDN and immutable,
//! 1-100 addresses per endpoint of that type, at most 100 ports; kubectl's columns (PORTS,
//! ENDPOINTS: the first three, then `+ N more...`; `<unset>` when none).

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, ENDPOINTSLICES};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::discovery::v1 as discovery;
use serde_json::{json, Value};

/// The EndpointSlice kind.
pub struct EndpointSlice;

fn first_three(items: Vec<String>) -> String {
    if items.is_empty() {
        return "<unset>".into();
    }
    let n = items.len();
    let shown = items.into_iter().take(3).collect::<Vec<_>>().join(",");
    if n > 3 {
        format!("{shown} + {} more...", n - 3)
    } else {
        shown
    }
}

impl Kind for EndpointSlice {
    fn info(&self) -> &'static ResourceInfo {
        &ENDPOINTSLICES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<discovery::EndpointSlice>(v)
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let ty = v["addressType"].as_str().unwrap_or("");
        if !["IPv4", "IPv6", "FQDN"].contains(&ty) {
            c.push(Cause::not_supported(
                "addressType",
                ty,
                &["FQDN", "IPv4", "IPv6"],
            ));
        }
        let endpoints = v["endpoints"].as_array().cloned().unwrap_or_default();
        if endpoints.len() > 1000 {
            c.push(Cause {
                reason: "FieldValueTooMany".into(),
                message: format!(
                    "Too many: {}: must have at most 1000 items",
                    endpoints.len()
                ),
                field: "endpoints".into(),
            });
        }
        for (i, e) in endpoints.iter().enumerate() {
            let addrs = e["addresses"].as_array().cloned().unwrap_or_default();
            if addrs.is_empty() || addrs.len() > 100 {
                c.push(Cause::invalid(
                    &format!("endpoints[{i}].addresses"),
                    addrs.len(),
                    "must contain at least 1 and at most 100 addresses",
                ));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = a.as_str().unwrap_or("");
                let ok = match ty {
                    "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                    "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                    _ => coxswain_api::validation::is_dns1123_subdomain(a),
                };
                if !ok {
                    c.push(Cause::invalid(
                        &format!("endpoints[{i}].addresses[{j}]"),
                        format!("\"{a}\""),
                        &format!("must be a valid {ty} address"),
                    ));
                }
            }
        }
        let ports = v["ports"].as_array().cloned().unwrap_or_default();
        if ports.len() > 100 {
            c.push(Cause {
                reason: "FieldValueTooMany".into(),
                message: format!("Too many: {}: must have at most 100 items", ports.len()),
                field: "ports".into(),
            });
        }
        for (i, p) in ports.iter().enumerate() {
            if let Some(n) = p["port"].as_i64() {
                if !(1..=65535).contains(&n) {
                    c.push(Cause::invalid(
                        &format!("ports[{i}].port"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        if old["addressType"] != new["addressType"] {
            c.push(Cause::invalid(
                "addressType",
                &new["addressType"],
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("AddressType", "string", 0),
            col("Ports", "string", 0),
            col("Endpoints", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let ports: Vec<String> = v["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) if !n.is_empty() => n.to_string(),
                _ => "*".to_string(),
            })
            .collect();
        let addrs: Vec<String> = v["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        vec![
            json!(s(v, "/metadata/name")),
            json!(v.at("/addressType").and_then(Value::as_str).unwrap_or("")),
            json!(first_three(ports)),
            json!(first_three(addrs)),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
