//! v1 Pod: defaults (the pod spec's, admission's priority and tolerations, requests from
//! limits), validation, the update rule (only images, activeDeadlineSeconds and tolerations
//! change), the QoS class, graceful deletion, the `binding`, `eviction` and `log`
//! subresources, kubectl's columns (STATUS and RESTARTS as `printPod` computes them), and the
//! `spec.nodeName` index.

use super::shared::{default, obj};
use super::{field, Kind, SelectableField, Sub};
use crate::table::{age, col, n, or_none, s, Column};
use coxswain_api::protobuf::{Schema, POD_SCHEMA};
use coxswain_api::resources::{ResourceInfo, PODS};
use coxswain_api::status::Cause;
use coxswain_api::validation::{is_dns1123_label, DNS1123_LABEL_MSG};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Map, Value};

/// The Pod kind.
pub struct Pod;

impl Kind for Pod {
    fn info(&self) -> &'static ResourceInfo {
        &PODS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Pod>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(POD_SCHEMA)
    }

    fn extra_subresources(&self) -> &'static [Sub] {
        &[Sub::Binding, Sub::Log, Sub::Eviction]
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(spec) = v.get_mut("spec") {
            requests_from_limits(spec);
            default_service_account(spec);
        }
        let qos = qos_class(v.get("spec"));
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = v.get_mut("spec") {
            default_pod_spec(spec);
            default_admission(spec);
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        validate_pod_spec(v.get("spec"), "spec", causes);
    }

    fn admit_create(
        &self,
        st: &crate::state::AppState,
        v: &mut Value,
    ) -> Result<(), coxswain_api::status::ApiError> {
        super::limitrange::admit_pod(st, v)?;
        super::priorityclass::admit_pod(st, v)
    }

    fn quota_usage(&self, v: &Value) -> Vec<(String, i128)> {
        let terminal = matches!(
            v.at("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if terminal {
            return Vec::new();
        }
        let mut out = vec![("pods".to_string(), 1000)];
        for (set, prefix) in [("requests", "requests."), ("limits", "limits.")] {
            for r in ["cpu", "memory"] {
                let total: i128 = v
                    .at("/spec/containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.at(&format!("/resources/{set}/{r}")))
                    .filter_map(|q| super::limitrange::milli(r, q))
                    .sum();
                out.push((format!("{prefix}{r}"), total));
                if set == "requests" {
                    out.push((r.to_string(), total));
                }
            }
        }
        out
    }

    fn in_quota_scope(&self, v: &Value, scope: &str, op: &str, values: &[String]) -> bool {
        let qos = v.at("/status/qosClass").and_then(Value::as_str);
        let deadline = v
            .at("/spec/activeDeadlineSeconds")
            .is_some_and(|x| !x.is_null());
        match scope {
            "Terminating" => deadline,
            "NotTerminating" => !deadline,
            "BestEffort" => qos == Some("BestEffort"),
            "NotBestEffort" => qos != Some("BestEffort"),
            "PriorityClass" => {
                let pc = v
                    .at("/spec/priorityClassName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match op {
                    "In" => values.iter().any(|x| x == pc),
                    "NotIn" => !values.iter().any(|x| x == pc),
                    "Exists" => !pc.is_empty(),
                    "DoesNotExist" => pc.is_empty(),
                    _ => false,
                }
            }
            "CrossNamespacePodAffinity" => ["podAffinity", "podAntiAffinity"].iter().any(|a| {
                let terms = |kind: &str| -> Vec<Value> {
                    let t = v.at(&format!("/spec/affinity/{a}/{kind}"));
                    t.and_then(Value::as_array).cloned().unwrap_or_default()
                };
                let mut all = terms("requiredDuringSchedulingIgnoredDuringExecution");
                all.extend(
                    terms("preferredDuringSchedulingIgnoredDuringExecution")
                        .into_iter()
                        .map(|w| w["podAffinityTerm"].clone()),
                );
                all.iter().any(|t| {
                    t["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                        || !t["namespaceSelector"].is_null()
                })
            }),
            _ => false,
        }
    }

    fn quota_keys(&self) -> &'static [&'static str] {
        &[
            "pods",
            "cpu",
            "memory",
            "requests.cpu",
            "requests.memory",
            "limits.cpu",
            "limits.memory",
        ]
    }

    fn quota_missing(&self, v: &Value, tracked: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut keys: Vec<&str> = tracked
            .iter()
            .copied()
            .filter(|k| {
                [
                    "cpu",
                    "memory",
                    "requests.cpu",
                    "requests.memory",
                    "limits.cpu",
                    "limits.memory",
                ]
                .contains(k)
            })
            .collect();
        keys.sort();
        for k in keys {
            let (set, r) = match k.split_once('.') {
                Some(("limits", r)) => ("limits", r),
                Some((_, r)) => ("requests", r),
                None => ("requests", k),
            };
            let mut names: Vec<String> = ["containers", "initContainers"]
                .iter()
                .flat_map(|l| {
                    v.at(&format!("/spec/{l}"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|c| c.at(&format!("/resources/{set}/{r}")).is_none())
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect();
            names.sort();
            if !names.is_empty() {
                out.push(format!("{k} for: {}", names.join(",")));
            }
        }
        out
    }

    fn keep_on_update(&self, cur: &Value, new: &mut Value) {
        // Set at creation (by admission): an update that leaves them out keeps them.
        for k in [
            "serviceAccountName",
            "serviceAccount",
            "priority",
            "preemptionPolicy",
            "priorityClassName",
        ] {
            let missing = new
                .at(&format!("/spec/{k}"))
                .is_none_or(|x| x.is_null() || x == "");
            if let (true, Some(x), Some(spec)) = (
                missing,
                cur.at(&format!("/spec/{k}")).cloned(),
                new.get_mut("spec").and_then(Value::as_object_mut),
            ) {
                spec.insert(k.into(), x);
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        let strip = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(Value::Array(cs)) = s.get_mut("containers") {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
            if let Some(m) = s.as_object_mut() {
                m.remove("activeDeadlineSeconds");
                m.remove("tolerations");
            }
            s
        };
        if strip(old) != strip(new) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)".into(),
                field: "spec".into(),
            });
        }
    }

    fn grace_period(&self, cur: &Value, requested: Option<i64>) -> i64 {
        if !is_bound_and_running(cur) {
            return 0;
        }
        requested.unwrap_or_else(|| {
            cur.at("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        })
    }

    fn removal_waits(&self, v: &Value) -> bool {
        is_bound_and_running(v)
            && v["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0)
                > 0
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let total = v
            .at("/spec/containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let ready = v
            .at("/status/containerStatuses")
            .and_then(Value::as_array)
            .map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
        let (status, restarts) = pod_status_and_restarts(v);
        vec![
            json!(s(v, "/metadata/name")),
            json!(format!("{ready}/{total}")),
            json!(status),
            json!(restarts),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(or_none(s(v, "/status/podIP"))),
            json!(or_none(s(v, "/spec/nodeName"))),
            json!(or_none(s(v, "/status/nominatedNodeName"))),
            json!("<none>"),
        ]
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[
            field("spec.nodeName", "/spec/nodeName"),
            field("spec.schedulerName", "/spec/schedulerName"),
            field("spec.restartPolicy", "/spec/restartPolicy"),
            field("status.phase", "/status/phase"),
            field("status.podIP", "/status/podIP"),
            field("status.nominatedNodeName", "/status/nominatedNodeName"),
        ];
        FIELDS
    }

    fn indexed_field(&self) -> Option<&'static str> {
        Some("spec.nodeName")
    }
}

/// Bound to a node and not finished: its kubelet must stop the containers before it goes.
fn is_bound_and_running(pod: &Value) -> bool {
    !s(pod, "/spec/nodeName").is_empty()
        && !matches!(s(pod, "/status/phase").as_str(), "Succeeded" | "Failed")
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
        for pm in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(pm, "protocol", json!("TCP"));
        }
    }
}

/// The defaults of a pod spec, in a pod or a pod template.
pub fn default_pod_spec(spec: &mut Value) {
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
fn default_admission(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    default(
        m,
        "tolerations",
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]),
    );
}

/// The ServiceAccount admission plugin's default: a pod runs as `default` unless it names
/// another (the deprecated `serviceAccount` field says the same).
fn default_service_account(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    let name = m
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            m.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    m.insert("serviceAccountName".into(), json!(name));
    m.insert("serviceAccount".into(), json!(name));
}

/// A pod's container that sets a limit and no request for a resource requests the limit
/// (Kubernetes' `SetDefaults_Pod`; pods only, not templates).
fn requests_from_limits(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(cs)) = spec.get_mut(list) else {
            continue;
        };
        for c in cs {
            let Some(limits) = c
                .at("/resources/limits")
                .and_then(Value::as_object)
                .cloned()
            else {
                continue;
            };
            let Some(res) = obj(c, "resources") else {
                continue;
            };
            if !res.get("requests").is_some_and(Value::is_object) {
                res.insert("requests".into(), json!({}));
            }
            if let Some(req) = res.get_mut("requests").and_then(Value::as_object_mut) {
                for (k, v) in limits {
                    req.entry(k).or_insert(v);
                }
            }
        }
    }
}

/// The pod's QoS class by Kubernetes' rule (`GetPodQOS`), over containers and init
/// containers, cpu and memory only, quantities compared by value (`1` = `1000m`), zero
/// quantities ignored: BestEffort when no container requests or limits anything,
/// Guaranteed when every container limits both cpu and memory and the summed requests
/// equal the summed limits (a request left out is the limit), Burstable otherwise.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .into_iter()
        .flat_map(|s| ["containers", "initContainers"].map(|k| s.get(k)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    let amount = |res: &str, v: &Value| -> Option<i64> {
        let q = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        match res {
            "cpu" => coxswain_api::quantity::cpu_millis(&q),
            _ => coxswain_api::quantity::bytes(&q),
        }
    };
    let positive = |res: &str, m: Option<&Map<String, Value>>| -> Option<i64> {
        amount(res, m?.get(res)?).filter(|a| *a > 0)
    };
    let mut requests: [Option<i64>; 2] = [None, None];
    let mut limits: [Option<i64>; 2] = [None, None];
    let mut guaranteed = true;
    let add = |sum: &mut Option<i64>, x: i64| *sum = Some(sum.unwrap_or(0).saturating_add(x));
    for c in containers {
        let req = c.at("/resources/requests").and_then(Value::as_object);
        let lim = c.at("/resources/limits").and_then(Value::as_object);
        for (i, res) in ["cpu", "memory"].into_iter().enumerate() {
            let l = positive(res, lim);
            // A request left out is the limit (defaulting); one set to zero is no request.
            let r = match req.and_then(|m| m.get(res)) {
                Some(_) => positive(res, req),
                None => l,
            };
            if let Some(r) = r {
                add(&mut requests[i], r);
            }
            match l {
                Some(l) => add(&mut limits[i], l),
                None => guaranteed = false,
            }
        }
    }
    if requests.iter().chain(&limits).all(Option::is_none) {
        return "BestEffort";
    }
    if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Validate a pod spec at `path` (`spec`, `spec.template.spec`).
pub fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(path));
        return;
    };
    match spec.get("containers").and_then(Value::as_array) {
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

/// What `kubectl get pods` shows as STATUS and RESTARTS (kubectl's `printPod` rules:
/// `Init:N/M` or `Init:<reason>` while initializing, the last container's waiting or
/// terminated reason, `Running`/`NotReady` when a container still runs, `Terminating`).
pub fn pod_status_and_restarts(v: &Value) -> (String, String) {
    let mut reason = s(v, "/status/phase");
    let r = s(v, "/status/reason");
    if !r.is_empty() {
        reason = r;
    }
    let list = |p: &str| {
        v.at(p)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    fn note_restart(c: &Value, restarts: &mut i64, last: &mut Option<String>) {
        *restarts += n(c, "/restartCount");
        if let Some(t) = c
            .at("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
        {
            if last.as_deref().is_none_or(|cur| t > cur) {
                *last = Some(t.to_string());
            }
        }
    }
    let init = list("/status/initContainerStatuses");
    let init_total = v
        .at("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut initializing = false;
    for (i, c) in init.iter().enumerate() {
        note_restart(c, &mut restarts, &mut last_restart);
        let code = c.at("/state/terminated/exitCode").and_then(Value::as_i64);
        let t = s(c, "/state/terminated/reason");
        let w = s(c, "/state/waiting/reason");
        match code {
            Some(0) => continue,
            Some(code) => {
                reason = if t.is_empty() {
                    format!("Init:ExitCode:{code}")
                } else {
                    format!("Init:{t}")
                };
            }
            None if !w.is_empty() && w != "PodInitializing" => reason = format!("Init:{w}"),
            None => reason = format!("Init:{i}/{init_total}"),
        }
        initializing = true;
        break;
    }
    let initialized = v
        .at("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    if !initializing || initialized {
        restarts = 0;
        last_restart = None;
        let mut running = false;
        for c in list("/status/containerStatuses").iter().rev() {
            note_restart(c, &mut restarts, &mut last_restart);
            let w = s(c, "/state/waiting/reason");
            let t = s(c, "/state/terminated/reason");
            if !w.is_empty() {
                reason = w;
            } else if !t.is_empty() {
                reason = t;
            } else if let Some(code) = c.at("/state/terminated/exitCode") {
                reason = format!("ExitCode:{code}");
            } else if c.at("/state/running").is_some() && c["ready"].as_bool() == Some(true) {
                running = true;
            }
        }
        if reason == "Completed" && running {
            let ready = v
                .at("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if ready { "Running" } else { "NotReady" }.into();
        }
    }
    let phase = s(v, "/status/phase");
    if v.at("/metadata/deletionTimestamp").is_some() {
        if s(v, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match last_restart {
        Some(t) => format!("{restarts} ({} ago)", age(&Value::String(t))),
        None => restarts.to_string(),
    };
    (reason, restarts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(containers: Value) -> Value {
        json!({"containers": containers})
    }

    #[test]
    fn qos_compares_quantities_by_value() {
        // cpu "1" and "1000m" are the same amount: Guaranteed, as in Kubernetes.
        let s = spec(json!([{"name": "a", "image": "x", "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1000m", "memory": "1024Mi"}}}]));
        assert_eq!(qos_class(Some(&s)), "Guaranteed");
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(Some(&spec(json!([{"name": "a"}])))), "BestEffort");
        assert_eq!(qos_class(None), "BestEffort");
        // Limits only: requests default to them.
        let s = spec(
            json!([{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]),
        );
        assert_eq!(qos_class(Some(&s)), "Guaranteed");
        // Requests only.
        let s = spec(json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]));
        assert_eq!(qos_class(Some(&s)), "Burstable");
        // A resource qos does not count (ephemeral storage) and zero quantities.
        let s = spec(
            json!([{"name": "a", "resources": {"requests": {"ephemeral-storage": "1Gi", "cpu": "0"}}}]),
        );
        assert_eq!(qos_class(Some(&s)), "BestEffort");
        // An init container without limits makes a Guaranteed app container Burstable.
        let s = json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(qos_class(Some(&s)), "Burstable");
        // An explicit zero request is not the limit.
        let s = spec(
            json!([{"name": "a", "resources": {"requests": {"cpu": "0", "memory": "0"},
            "limits": {"cpu": "1", "memory": "1Gi"}}}]),
        );
        assert_eq!(qos_class(Some(&s)), "Burstable");
        // Limits on cpu only.
        let s = spec(json!([{"name": "a", "resources": {"limits": {"cpu": "1"}}}]));
        assert_eq!(qos_class(Some(&s)), "Burstable");
    }

    #[test]
    fn requests_default_to_limits() {
        let mut s = spec(
            json!([{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}}}]),
        );
        requests_from_limits(&mut s);
        assert_eq!(
            s["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Mi"})
        );
    }
}
