//! networking.k8s.io/v1 IngressClass: a controller name (a domain-prefixed path, immutable),
//! optional parameters (`scope` defaulted to Cluster; a namespace exactly when Namespace);
//! the default class annotation read by Ingress admission; kubectl's columns.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, INGRESSCLASSES};
use coxswain_api::status::Cause;
use coxswain_api::validation::is_dns1123_subdomain;
use coxswain_api::At;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

/// The IngressClass kind.
pub struct IngressClass;

impl Kind for IngressClass {
    fn info(&self) -> &'static ResourceInfo {
        &INGRESSCLASSES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<networking::IngressClass>(v)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(p) = v
            .pointer_mut("/spec/parameters")
            .and_then(Value::as_object_mut)
        {
            if p.get("scope").is_none_or(Value::is_null) {
                p.insert("scope".into(), json!("Cluster"));
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let ctl = v
            .at("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or("");
        if ctl.is_empty() {
            c.push(Cause::required("spec.controller"));
        } else if ctl.len() > 250 {
            c.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: may not be more than 250 bytes".into(),
                field: "spec.controller".into(),
            });
        } else {
            match ctl.split_once('/') {
                Some((host, path)) if !host.is_empty() && !path.is_empty() => {
                    if !is_dns1123_subdomain(host) {
                        c.push(Cause::invalid(
                            "spec.controller",
                            format!("\"{host}\""),
                            coxswain_api::validation::DNS1123_SUBDOMAIN_MSG,
                        ));
                    }
                }
                _ => c.push(Cause::invalid(
                    "spec.controller",
                    format!("\"{ctl}\""),
                    "must be a domain-prefixed path (such as \"acme.io/foo\")",
                )),
            }
        }
        if let Some(p) = v.at("/spec/parameters").filter(|p| !p.is_null()) {
            for k in ["kind", "name"] {
                if p[k].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&format!("spec.parameters.{k}")));
                }
            }
            let ns = p["namespace"].as_str().filter(|n| !n.is_empty());
            match p["scope"].as_str() {
                Some("Namespace") if ns.is_none() => c.push(Cause::required_because(
                    "spec.parameters.namespace",
                    "`parameters.scope` is set to 'Namespace'",
                )),
                Some("Cluster") if ns.is_some() => c.push(Cause::forbidden(
                    "spec.parameters.namespace",
                    "`parameters.scope` is set to 'Cluster'",
                )),
                Some("Namespace" | "Cluster") => {}
                other => c.push(Cause::not_supported(
                    "spec.parameters.scope",
                    other.unwrap_or(""),
                    &["Cluster", "Namespace"],
                )),
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        if old.at("/spec/controller") != new.at("/spec/controller") {
            c.push(Cause::invalid(
                "spec.controller",
                new.at("/spec/controller").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Controller", "string", 0),
            col("Parameters", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let params = match v.at("/spec/parameters").filter(|p| !p.is_null()) {
            None => "<none>".to_string(),
            Some(p) => {
                let group = p["apiGroup"]
                    .as_str()
                    .map(|g| format!(".{g}"))
                    .unwrap_or_default();
                format!(
                    "{}{group}/{}",
                    p["kind"].as_str().unwrap_or(""),
                    p["name"].as_str().unwrap_or("")
                )
            }
        };
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/spec/controller")),
            json!(params),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
