//! scheduling.k8s.io/v1 PriorityClass: `preemptionPolicy` defaulted, values above
//! 1,000,000,000 and `system-` names reserved (the two system classes are created at start
//! and may not be deleted), value and policy immutable, one global default; and what the
//! Priority admission plugin does to a new pod ([`admit_pod`]): its class's value and
//! policy (the global default's, or 0), 403 for a class that does not exist or a priority
//! that disagrees. kubectl's columns.

use super::Kind;
use crate::state::AppState;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, PRIORITYCLASSES};
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use k8s_openapi::api::scheduling::v1 as scheduling;
use serde_json::{json, Value};

/// The PriorityClass kind.
pub struct PriorityClass;

/// The highest value a user's class may have.
const HIGHEST_USER: i64 = 1_000_000_000;

/// The system classes: name, value, description.
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
];

fn classes(st: &AppState) -> Vec<Value> {
    let (all, _) = st
        .cache
        .list(&PRIORITYCLASSES, &crate::cache::Filter::default());
    all.iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect()
}

/// The global default class (the lowest value if several).
fn global_default(st: &AppState) -> Option<Value> {
    classes(st)
        .into_iter()
        .filter(|c| c["globalDefault"] == json!(true))
        .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
}

/// Create the system classes that are missing.
pub async fn create_system_classes(st: &AppState) {
    for (name, value, description) in SYSTEM_CLASSES {
        if st.cache.get(&PRIORITYCLASSES, "", name).is_some() {
            continue;
        }
        let body = json!({"metadata": {"name": name}, "value": value, "description": description});
        if let Err(e) = crate::verbs::create::create_object(st, &PRIORITYCLASSES, None, body).await
        {
            if e.reason != "AlreadyExists" {
                tracing::warn!(error = %e, class = name, "creating a system priority class failed");
            }
        }
    }
}

/// The Priority admission plugin on a new pod.
pub fn admit_pod(st: &AppState, pod: &mut Value) -> Result<(), ApiError> {
    let name = s(pod, "/metadata/name");
    let forbidden =
        |msg: String| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {msg}"));
    let class_name = s(pod, "/spec/priorityClassName");
    let class = if class_name.is_empty() {
        global_default(st)
    } else {
        let c = st
            .cache
            .get(&PRIORITYCLASSES, "", &class_name)
            .and_then(|o| serde_json::from_slice::<Value>(&o.bytes).ok());
        Some(c.ok_or_else(|| {
            forbidden(format!("no PriorityClass with name {class_name} was found"))
        })?)
    };
    let value = class
        .as_ref()
        .and_then(|c| c["value"].as_i64())
        .unwrap_or(0);
    let policy = class
        .as_ref()
        .and_then(|c| c["preemptionPolicy"].as_str().map(str::to_string))
        .unwrap_or_else(|| "PreemptLowerPriority".into());
    if let Some(given) = pod
        .at("/spec/priority")
        .and_then(Value::as_i64)
        .filter(|g| *g != value)
    {
        return Err(forbidden(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name")));
    }
    if let Some(given) = pod
        .at("/spec/preemptionPolicy")
        .and_then(Value::as_str)
        .filter(|g| *g != policy)
    {
        return Err(forbidden(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name")));
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(c) = &class {
            spec.insert("priorityClassName".into(), c["metadata"]["name"].clone());
        }
        spec.insert("priority".into(), json!(value));
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

impl Kind for PriorityClass {
    fn info(&self) -> &'static ResourceInfo {
        &PRIORITYCLASSES
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::PRIORITY_CLASS_SCHEMA)
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<scheduling::PriorityClass>(v)
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            if m.get("preemptionPolicy").is_none_or(Value::is_null) {
                m.insert("preemptionPolicy".into(), json!("PreemptLowerPriority"));
            }
        }
    }

    fn admit_create(&self, st: &AppState, v: &mut Value) -> Result<(), ApiError> {
        if v["globalDefault"] == json!(true) {
            if let Some(d) = global_default(st) {
                let name = s(v, "/metadata/name");
                return Err(ApiError::forbidden(format!(
                    "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {} is already marked as default. Only one default can exist",
                    s(&d, "/metadata/name")
                )));
            }
        }
        Ok(())
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let name = s(v, "/metadata/name");
        let value = v["value"].as_i64().unwrap_or(0);
        if let Some(rest) = name.strip_prefix("system-") {
            let known = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
            let err = match known {
                None => Some(format!(
                    "system-{rest} is not a known system priority class"
                )),
                Some((_, want, _)) if *want != value => {
                    Some(format!("value of {name} PriorityClass must be {want}"))
                }
                Some(_) if v["globalDefault"] == json!(true) => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(e) = err {
                c.push(Cause::forbidden("metadata.name", &format!("priority class names with 'system-' prefix are reserved for system use only. error: {e}")));
            }
        } else if value > HIGHEST_USER {
            c.push(Cause::forbidden(
                "value",
                &format!("maximum allowed value of a user defined priority is {HIGHEST_USER}"),
            ));
        }
        match v["preemptionPolicy"].as_str() {
            None | Some("PreemptLowerPriority" | "Never") => {}
            Some("") => c.push(Cause::required("preemptionPolicy")),
            Some(x) => c.push(Cause::not_supported(
                "preemptionPolicy",
                x,
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        if old["value"] != new["value"] {
            c.push(Cause::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old["preemptionPolicy"] != new["preemptionPolicy"] {
            c.push(Cause::invalid(
                "preemptionPolicy",
                &new["preemptionPolicy"],
                "field is immutable",
            ));
        }
    }

    fn check_delete(&self, cur: &Value) -> Result<(), ApiError> {
        let name = s(cur, "/metadata/name");
        if SYSTEM_CLASSES.iter().any(|(n, _, _)| *n == name) {
            return Err(ApiError::forbidden(format!(
                "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: this is a system priority class and cannot be deleted"
            )));
        }
        Ok(())
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Value", "integer", 0),
            col("Global-Default", "boolean", 0),
            col("Age", "string", 0),
            col("PreemptionPolicy", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(v["value"].as_i64().unwrap_or(0)),
            json!(v["globalDefault"].as_bool().unwrap_or(false)),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(s(v, "/preemptionPolicy")),
        ]
    }
}
