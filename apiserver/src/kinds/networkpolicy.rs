//! networking.k8s.io/v1 NetworkPolicy: defaults (TCP ports; `policyTypes` Ingress, plus
//! Egress when egress rules are given), validation (ports and port ranges, peers, ipBlock
//! CIDRs and strict-subset exceptions, policy types), kubectl's POD-SELECTOR column. Stored
//! and shown only: Coxswain has no packets to filter.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, NETWORKPOLICIES};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

/// The NetworkPolicy kind.
pub struct NetworkPolicy;

const CIDR_MSG: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn contains(net: (std::net::IpAddr, u8), ip: std::net::IpAddr) -> bool {
    match (net.0, ip) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn check_rules(v: &Value, dir: &str, peers: &str, c: &mut Vec<Cause>) {
    for (i, rule) in v
        .at(&format!("/spec/{dir}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, p) in rule["ports"].as_array().into_iter().flatten().enumerate() {
            let f = format!("spec.{dir}[{i}].ports[{j}]");
            if let Some(proto) = p["protocol"]
                .as_str()
                .filter(|x| !["TCP", "UDP", "SCTP"].contains(x))
            {
                c.push(Cause::not_supported(
                    &format!("{f}.protocol"),
                    proto,
                    &["TCP", "UDP", "SCTP"],
                ));
            }
            let end = p["endPort"].as_i64();
            match &p["port"] {
                Value::Number(n) => {
                    let n = n.as_i64().unwrap_or(0);
                    if !(1..=65535).contains(&n) {
                        c.push(Cause::invalid(
                            &format!("{f}.port"),
                            n,
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                    if let Some(e) = end.filter(|e| *e < n) {
                        c.push(Cause::invalid(
                            &format!("{f}.endPort"),
                            e,
                            "must be greater than or equal to `port`",
                        ));
                    }
                }
                Value::String(_) => {
                    if let Some(e) = end {
                        c.push(Cause::invalid(
                            &format!("{f}.endPort"),
                            e,
                            "may not be specified when `port` is non-numeric",
                        ));
                    }
                }
                _ => {
                    if let Some(e) = end {
                        c.push(Cause::invalid(
                            &format!("{f}.endPort"),
                            e,
                            "may not be specified when `port` is not specified",
                        ));
                    }
                }
            }
        }
        for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
            let f = format!("spec.{dir}[{i}].{peers}[{j}]");
            let set = |k: &str| peer.get(k).is_some_and(|x| !x.is_null());
            let n = ["podSelector", "namespaceSelector", "ipBlock"]
                .iter()
                .filter(|k| set(k))
                .count();
            if n == 0 {
                c.push(Cause::required_because(&f, "must specify a peer"));
            } else if n > 1 && set("ipBlock") {
                c.push(Cause::forbidden(
                    &f,
                    "may not specify both ipBlock and another peer",
                ));
            }
            if let Some(b) = peer.get("ipBlock").filter(|b| !b.is_null()) {
                let cidr = b["cidr"].as_str().unwrap_or("");
                let net = parse_cidr(cidr);
                if cidr.is_empty() {
                    c.push(Cause::required(&format!("{f}.ipBlock.cidr")));
                } else if net.is_none() {
                    c.push(Cause::invalid(
                        &format!("{f}.ipBlock.cidr"),
                        format!("\"{cidr}\""),
                        CIDR_MSG,
                    ));
                }
                for (k, e) in b["except"].as_array().into_iter().flatten().enumerate() {
                    let e = e.as_str().unwrap_or("");
                    let field = format!("{f}.ipBlock.except[{k}]");
                    match (parse_cidr(e), net) {
                        (None, _) => c.push(Cause::invalid(&field, format!("\"{e}\""), CIDR_MSG)),
                        (Some(x), Some(n)) if !(contains(n, x.0) && n.1 < x.1) => {
                            c.push(Cause::invalid(
                                &field,
                                format!("\"{e}\""),
                                "must be a strict subset of `cidr`",
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

impl Kind for NetworkPolicy {
    fn info(&self) -> &'static ResourceInfo {
        &NETWORKPOLICIES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<networking::NetworkPolicy>(v)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn defaults(&self, v: &mut Value) {
        for dir in ["ingress", "egress"] {
            let n = v
                .at(&format!("/spec/{dir}"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..n {
                super::shared::default_protocols(v, &format!("/spec/{dir}/{i}/ports"));
            }
        }
        let egress = v
            .at("/spec/egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
            if spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                let types = if egress {
                    json!(["Ingress", "Egress"])
                } else {
                    json!(["Ingress"])
                };
                spec.insert("policyTypes".into(), types);
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        check_rules(v, "ingress", "from", c);
        check_rules(v, "egress", "to", c);
        let types = v
            .at("/spec/policyTypes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if types.len() > 2 {
            c.push(Cause::invalid(
                "spec.policyTypes",
                format!("{types:?}"),
                "may not specify more than two policyTypes",
            ));
            return;
        }
        for (i, t) in types.iter().enumerate() {
            let t = t.as_str().unwrap_or("");
            if !["Ingress", "Egress"].contains(&t) {
                c.push(Cause::not_supported(
                    &format!("spec.policyTypes[{i}]"),
                    t,
                    &["Ingress", "Egress"],
                ));
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Pod-Selector", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(super::shared::selector_cell(v.at("/spec/podSelector"))),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
