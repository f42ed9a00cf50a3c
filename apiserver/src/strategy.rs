//! Per-resource rules applied to every write: defaulting, validation (with field paths), what
//! the main resource and the `/status` subresource may change, and generation bumps.

use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::validation::{
    is_dns1123_label, is_dns1123_subdomain, is_label_value, DNS1123_LABEL_MSG,
    DNS1123_SUBDOMAIN_MSG,
};
use coxswain_api::At;
use serde_json::{json, Map, Value};

fn obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    if !v.get(key).is_some_and(Value::is_object) {
        v.as_object_mut()?.insert(key.to_string(), json!({}));
    }
    v.get_mut(key)?.as_object_mut()
}

fn default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), val);
    }
}

/// Fill the defaults Kubernetes fills, so clients with strict models see every field.
pub fn apply_defaults(r: &ResourceInfo, v: &mut Value) {
    match r.plural {
        "pods" => {
            if let Some(spec) = v.get_mut("spec") {
                default_pod_spec(spec);
                default_pod_admission(spec);
            }
        }
        "deployments" => {
            if let Some(spec) = obj(v, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                default(spec, "strategy", json!({}));
                if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                    default(st, "type", json!("RollingUpdate"));
                    if st.get("type") == Some(&json!("RollingUpdate")) {
                        default(st, "rollingUpdate", json!({}));
                        if let Some(ru) = st.get_mut("rollingUpdate").and_then(Value::as_object_mut)
                        {
                            default(ru, "maxUnavailable", json!("25%"));
                            default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            default_template(v);
        }
        "replicasets" => {
            if let Some(spec) = obj(v, "spec") {
                default(spec, "replicas", json!(1));
            }
            // `replicas` is the one required field of ReplicaSetStatus (strict clients need it).
            if let Some(st) = obj(v, "status") {
                default(st, "replicas", json!(0));
            }
            default_template(v);
        }
        "namespaces" => {
            if let Some(spec) = obj(v, "spec") {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(st) = obj(v, "status") {
                default(st, "phase", json!("Active"));
            }
        }
        "events" => {
            if let Some(m) = v.as_object_mut() {
                default(m, "type", json!("Normal"));
                default(m, "count", json!(1));
            }
        }
        _ => {}
    }
}

fn default_template(v: &mut Value) {
    if let Some(spec) = v.pointer_mut("/spec/template/spec") {
        default_pod_spec(spec);
    }
    if let Some(md) = v.pointer_mut("/spec/template/metadata") {
        if let Some(m) = md.as_object_mut() {
            m.remove("creationTimestamp");
        }
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let Some(m) = c.as_object_mut() else { return };
    let last = image.rsplit('/').next().unwrap_or_default();
    let latest = !last.contains(':') || last.ends_with(":latest");
    default(
        m,
        "imagePullPolicy",
        json!(if latest && !image.contains('@') {
            "Always"
        } else {
            "IfNotPresent"
        }),
    );
    default(m, "terminationMessagePath", json!("/dev/termination-log"));
    default(m, "terminationMessagePolicy", json!("File"));
    default(m, "resources", json!({}));
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for p in ports {
            if let Some(pm) = p.as_object_mut() {
                default(pm, "protocol", json!("TCP"));
            }
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            cs.iter_mut().for_each(default_container);
        }
    }
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(m, "restartPolicy", json!("Always"));
    default(m, "terminationGracePeriodSeconds", json!(30));
    default(m, "dnsPolicy", json!("ClusterFirst"));
    default(m, "schedulerName", json!("default-scheduler"));
    default(m, "securityContext", json!({}));
    default(m, "enableServiceLinks", json!(true));
}

/// What admission adds to pods (not templates): priority and the default
/// not-ready/unreachable tolerations.
fn default_pod_admission(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
    default(m, "priority", json!(0));
    default(
        m,
        "tolerations",
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]),
    );
}

/// Validate an object about to be stored; every problem is one cause naming its field.
pub fn validate(r: &ResourceInfo, v: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let name = v.at("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: name or generateName is required".into(),
            field: "metadata.name".into(),
        });
    } else if r.plural == "namespaces" {
        if !is_dns1123_label(name) {
            causes.push(Cause::invalid(
                "metadata.name",
                format!("\"{name}\""),
                DNS1123_LABEL_MSG,
            ));
        }
    } else if r.plural != "events" && !is_dns1123_subdomain(name) {
        causes.push(Cause::invalid(
            "metadata.name",
            format!("\"{name}\""),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if let Some(labels) = v.at("/metadata/labels").and_then(Value::as_object) {
        for (k, val) in labels {
            match val.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid(
                    &format!("metadata.labels.{k}"),
                    val,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                )),
            }
        }
    }
    match r.plural {
        "pods" => validate_pod_spec(v.get("spec"), "spec", &mut causes),
        "deployments" | "replicasets" => validate_workload(v, &mut causes),
        "events" if v.get("involvedObject").is_none_or(Value::is_null) => {
            causes.push(Cause::required("involvedObject"));
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(r, name, causes))
    }
}

fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(path));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(&format!("{path}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(&format!("{path}.containers"))),
        Some(cs) => {
            let mut seen = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let p = format!("{path}.containers[{i}]");
                match c.get("name").and_then(Value::as_str) {
                    None | Some("") => causes.push(Cause::required(&format!("{p}.name"))),
                    Some(n) if !is_dns1123_label(n) => causes.push(Cause::invalid(
                        &format!("{p}.name"),
                        format!("\"{n}\""),
                        DNS1123_LABEL_MSG,
                    )),
                    Some(n) if seen.contains(&n) => causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: \"{n}\""),
                        field: format!("{p}.name"),
                    }),
                    Some(n) => seen.push(n),
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::required(&format!("{p}.image")));
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&rp) {
            causes.push(Cause::not_supported(
                &format!("{path}.restartPolicy"),
                rp,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
}

fn validate_workload(v: &Value, causes: &mut Vec<Cause>) {
    match v.at("/spec/replicas") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|x| x >= 0) => {}
        Some(Value::Number(n)) => causes.push(Cause::invalid(
            "spec.replicas",
            n,
            "must be greater than or equal to 0",
        )),
        Some(other) => causes.push(Cause::invalid("spec.replicas", other, "must be an integer")),
        None => {}
    }
    let selector = v.at("/spec/selector");
    let match_labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let has_exprs = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if match_labels.is_none_or(|m| m.is_empty()) && !has_exprs {
        causes.push(Cause::required("spec.selector"));
    }
    let tmpl_labels = v
        .at("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(ml) = match_labels {
        let ok = ml
            .iter()
            .all(|(k, val)| tmpl_labels.and_then(|t| t.get(k)) == Some(val));
        if !ml.is_empty() && !ok {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                json!(tmpl_labels).to_string(),
                "`selector` does not match template `labels`",
            ));
        }
    }
    validate_pod_spec(v.at("/spec/template/spec"), "spec.template.spec", causes);
}

/// Whether spec-like content changed (the fields that bump `metadata.generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    old.get("spec") != new.get("spec")
}

/// What status an object gets on create (Kubernetes resets it for most resources).
pub fn status_on_create(r: &ResourceInfo, v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    match r.plural {
        "pods" => {
            let qos = qos_class(m.get("spec"));
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        "deployments" => {
            m.insert("status".into(), json!({}));
        }
        "replicasets" => {
            m.insert("status".into(), json!({"replicas": 0}));
        }
        "namespaces" => {
            m.insert("status".into(), json!({"phase": "Active"}));
        }
        _ => {}
    }
}

/// The pod's QoS class, Kubernetes' rule: Guaranteed when every container sets cpu and memory
/// limits equal to its requests, BestEffort when none sets any, Burstable otherwise.
fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .into_iter()
        .flat_map(|s| ["containers", "initContainers"].map(|k| s.get(k)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        let requests = c.at("/resources/requests").and_then(Value::as_object);
        let limits = c.at("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&Map<String, Value>>| m.is_some_and(|m| !m.is_empty());
        any |= has(requests) || has(limits);
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            // A request left out defaults to the limit.
            let request = requests.and_then(|r| r.get(res)).or(limit);
            let same = match (request, limit) {
                (Some(r), Some(l)) => {
                    let amount = |v: &Value| {
                        let q = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        if res == "cpu" {
                            coxswain_api::quantity::cpu_millis(&q)
                        } else {
                            coxswain_api::quantity::bytes(&q)
                        }
                    };
                    amount(r).is_some() && amount(r) == amount(l)
                }
                _ => false,
            };
            guaranteed &= same;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// Rules on what an update may change.
pub fn validate_update(r: &ResourceInfo, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new
        .at("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match r.plural {
        "pods" => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(Value::Array(cs)) = s.get_mut("containers") {
                    for c in cs {
                        if let Some(m) = c.as_object_mut() {
                            m.remove("image");
                        }
                    }
                }
                if let Some(m) = s.as_object_mut() {
                    m.remove("activeDeadlineSeconds");
                    m.remove("tolerations");
                }
                s
            };
            if strip(old) != strip(new) {
                return Err(ApiError::invalid(
                    r,
                    name,
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)".into(),
                        field: "spec".into(),
                    }],
                ));
            }
        }
        "deployments" | "replicasets" => {
            let (a, b) = (old.at("/spec/selector"), new.at("/spec/selector"));
            if a != b {
                return Err(ApiError::invalid(
                    r,
                    name,
                    vec![Cause::invalid(
                        "spec.selector",
                        json!(b).to_string(),
                        "field is immutable",
                    )],
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
