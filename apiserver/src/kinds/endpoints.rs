//! v1 Endpoints: the addresses behind a Service (kept by the endpoints controller, or by
//! hand for a Service without a selector): addresses valid IPs, ports 1-65535 with a
//! protocol, names required when a subset has several ports; kubectl's ENDPOINTS column
//! (`10.0.0.1:80,10.0.0.2:80 + 1 more...`, ready addresses only).

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, ENDPOINTS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The Endpoints kind.
pub struct Endpoints;

/// kubectl's list of endpoints: at most three `ip:port`, then `+ N more...`.
fn endpoints_cell(v: &Value) -> String {
    let subsets = v
        .at("/subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let (mut list, mut count) = (Vec::new(), 0usize);
    for ss in &subsets {
        let addrs: Vec<&str> = ss["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str())
            .collect();
        let ports: Vec<i64> = ss["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        if ports.is_empty() {
            count += addrs.len();
            list.extend(addrs.iter().map(|a| a.to_string()));
        } else {
            for p in &ports {
                count += addrs.len();
                list.extend(addrs.iter().map(|a| format!("{a}:{p}")));
            }
        }
    }
    let shown: Vec<String> = list.into_iter().take(3).collect();
    if count > 3 {
        format!("{} + {} more...", shown.join(","), count - 3)
    } else {
        shown.join(",")
    }
}

impl Kind for Endpoints {
    fn info(&self) -> &'static ResourceInfo {
        &ENDPOINTS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Endpoints>(v)
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        for (i, ss) in v
            .at("/subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for key in ["addresses", "notReadyAddresses"] {
                for (j, a) in ss[key].as_array().into_iter().flatten().enumerate() {
                    let ip = a["ip"].as_str().unwrap_or("");
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        c.push(Cause::invalid(
                            &format!("subsets[{i}].{key}[{j}].ip"),
                            format!("\"{ip}\""),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ));
                    }
                }
            }
            let ports = ss["ports"].as_array().cloned().unwrap_or_default();
            for (j, p) in ports.iter().enumerate() {
                let f = |k: &str| format!("subsets[{i}].ports[{j}].{k}");
                if ports.len() > 1 && p["name"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&f("name")));
                }
                let n = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    c.push(Cause::invalid(
                        &f("port"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                match p["protocol"].as_str() {
                    None | Some("TCP" | "UDP" | "SCTP") => {}
                    Some(x) => c.push(Cause::not_supported(
                        &f("protocol"),
                        x,
                        &["SCTP", "TCP", "UDP"],
                    )),
                }
            }
        }
    }

    fn defaults(&self, v: &mut Value) {
        let n = v["subsets"].as_array().map_or(0, Vec::len);
        for i in 0..n {
            super::shared::default_protocols(v, &format!("/subsets/{i}/ports"));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Endpoints", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(endpoints_cell(v)),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
