//! apiregistration.k8s.io/v1 APIService: validation (the name is `version.group`, priorities
//! in range, a service or none), and the local APIService of every group version this server
//! serves, created at start (`v1.apps`, ...: no service, Available `Local`), as
//! kube-apiserver's autoregistration does. The aggregation layer itself (proxying a group to
//! a registered service) is not built: an APIService naming a service is stored, shown
//! `False`, and nothing is proxied.

use super::Kind;
use crate::state::AppState;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{group_versions, ResourceInfo, APISERVICES};
use coxswain_api::status::Cause;
use coxswain_api::At;
use serde_json::{json, Value};

/// The APIService kind.
pub struct APIService;

/// kube-aggregator's priorities: (group, version) -> (groupPriorityMinimum, versionPriority).
fn priority(group: &str, version: &str) -> (i64, i64) {
    let g = match group {
        "" => 18000,
        "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "admissionregistration.k8s.io" | "apiextensions.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        _ => 1000,
    };
    let v = match (group, version) {
        ("", "v1") => 1,
        ("autoscaling", "v2") => 30,
        _ => 15,
    };
    (g, v)
}

/// Create the local APIService of every served group version that has none.
pub async fn register_local(st: &AppState) {
    for (group, version) in group_versions() {
        if group == APISERVICES.group {
            continue; // none for the aggregator's own group
        }
        let name = format!("{version}.{group}");
        if st.cache.get(&APISERVICES, "", &name).is_some() {
            continue;
        }
        let (gp, vp) = priority(group, version);
        let body = json!({"metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": gp, "versionPriority": vp}});
        if let Err(e) = crate::verbs::create::create_object(st, &APISERVICES, None, body).await {
            if e.reason != "AlreadyExists" {
                tracing::warn!(error = %e, apiservice = name, "registering a local APIService failed");
            }
        }
    }
}

impl Kind for APIService {
    fn info(&self) -> &'static ResourceInfo {
        &APISERVICES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<
            k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
        >(v)
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::Any // a path segment: the core group's is `v1.`
    }

    fn prepare_create(&self, v: &mut Value) {
        let local = v.at("/spec/service").is_none_or(Value::is_null);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cond = if local {
            json!({"type": "Available", "status": "True", "lastTransitionTime": now, "reason": "Local", "message": "Local APIServices are always available"})
        } else {
            json!({"type": "Available", "status": "False", "lastTransitionTime": now, "reason": "ServiceNotFound",
                "message": "the aggregation layer is not served by Coxswain; nothing is proxied to this service"})
        };
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({"conditions": [cond]}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(svc) = v
            .pointer_mut("/spec/service")
            .and_then(Value::as_object_mut)
        {
            if svc.get("port").is_none_or(Value::is_null) {
                svc.insert("port".into(), json!(443));
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let (group, version) = (s(v, "/spec/group"), s(v, "/spec/version"));
        let name = s(v, "/metadata/name");
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            c.push(Cause::invalid(
                "metadata.name",
                format!("\"{name}\""),
                "may not be '.' or '..' and may not contain '/' or '%'",
            ));
        } else if name != format!("{version}.{group}") {
            c.push(Cause::invalid(
                "metadata.name",
                format!("\"{name}\""),
                &format!("must be `spec.version+\".\"+spec.group`: \"{version}.{group}\""),
            ));
        }
        if group.is_empty() && version != "v1" {
            c.push(Cause::required_because(
                "spec.group",
                "only v1 may have an empty group and it better be legacy kube",
            ));
        }
        if !coxswain_api::validation::is_dns1035_label(&version) {
            c.push(Cause::invalid(
                "spec.version",
                format!("\"{version}\""),
                coxswain_api::validation::DNS1035_LABEL_MSG,
            ));
        }
        let gp = v
            .at("/spec/groupPriorityMinimum")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !(1..=20000).contains(&gp) {
            c.push(Cause::invalid(
                "spec.groupPriorityMinimum",
                gp,
                "must be positive and less than 20000",
            ));
        }
        let vp = v
            .at("/spec/versionPriority")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !(1..=1000).contains(&vp) {
            c.push(Cause::invalid(
                "spec.versionPriority",
                vp,
                "must be positive and less than 1000",
            ));
        }
        if let Some(svc) = v.at("/spec/service").filter(|x| !x.is_null()) {
            for k in ["namespace", "name"] {
                if svc[k].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&format!("spec.service.{k}")));
                }
            }
        } else if v.at("/spec/insecureSkipTLSVerify") == Some(&json!(true)) {
            c.push(Cause::invalid(
                "spec.insecureSkipTLSVerify",
                true,
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Service", "string", 0),
            col("Available", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let service = match v.at("/spec/service").filter(|x| !x.is_null()) {
            None => "Local".to_string(),
            Some(svc) => format!(
                "{}/{}",
                svc["namespace"].as_str().unwrap_or(""),
                svc["name"].as_str().unwrap_or("")
            ),
        };
        let available = v
            .at("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"))
            .map(|c| {
                let st = c["status"].as_str().unwrap_or("Unknown");
                match c["reason"].as_str() {
                    Some(r) if st != "True" => format!("{st} ({r})"),
                    _ => st.to_string(),
                }
            })
            .unwrap_or_else(|| "Unknown".into());
        vec![
            json!(s(v, "/metadata/name")),
            json!(service),
            json!(available),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
