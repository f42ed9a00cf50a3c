//! autoscaling/v2 HorizontalPodAutoscaler, also served as autoscaling/v1: defaults
//! (`minReplicas` 1, CPU at 80 % when no metric is given, a given `behavior` completed with
//! Kubernetes' scale-up and scale-down rules), validation, the `status` subresource, kubectl's
//! columns (`cpu: 20%/50%`), and the v1 <-> v2 conversion (`targetCPUUtilizationPercentage`
//! is the CPU utilization metric; what v1 cannot say travels in the
//! `autoscaling.alpha.kubernetes.io/*` annotations, as in Kubernetes).

use super::Kind;
use crate::table::{age, col, Column};
use coxswain_api::protobuf::{Schema, HPA_V1_SCHEMA};
use coxswain_api::resources::{ResourceInfo, HORIZONTALPODAUTOSCALERS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::autoscaling::v2 as autoscaling;
use serde_json::{json, Map, Value};

/// The HorizontalPodAutoscaler kind.
pub struct HorizontalPodAutoscaler;

/// The utilization a CPU metric targets when none is given.
const DEFAULT_CPU_UTILIZATION: i64 = 80;
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn cpu_utilization_metric(target: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": target}}})
}

/// A scaling rule with Kubernetes' defaults for what it leaves out.
fn rule_defaults(rule: Option<&Value>, up: bool) -> Value {
    let mut r = rule.cloned().unwrap_or_else(|| json!({}));
    if !r.is_object() {
        return r;
    }
    // Scale-down's window is left unset: the controller's flag (300 s) fills it.
    if up
        && r.get("stabilizationWindowSeconds")
            .is_none_or(Value::is_null)
    {
        r["stabilizationWindowSeconds"] = json!(0);
    }
    if r.get("selectPolicy").is_none_or(Value::is_null) {
        r["selectPolicy"] = json!("Max");
    }
    if r.get("policies").is_none_or(Value::is_null) {
        r["policies"] = if up {
            json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}])
        } else {
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
        };
    }
    r
}

fn check_rule(v: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(rule) = v.filter(|r| !r.is_null()) else {
        return;
    };
    if let Some(w) = rule
        .get("stabilizationWindowSeconds")
        .and_then(Value::as_i64)
    {
        if w < 0 {
            causes.push(Cause::invalid(
                &format!("{field}.stabilizationWindowSeconds"),
                w,
                "must be greater than or equal to zero",
            ));
        } else if w > 3600 {
            causes.push(Cause::invalid(
                &format!("{field}.stabilizationWindowSeconds"),
                w,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(p) = rule.get("selectPolicy").and_then(Value::as_str) {
        if !["Max", "Min", "Disabled"].contains(&p) {
            causes.push(Cause::not_supported(
                &format!("{field}.selectPolicy"),
                p,
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    let policies = rule
        .get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if policies.is_empty() {
        causes.push(Cause::required_because(
            &format!("{field}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let f = format!("{field}.policies[{i}]");
        match p["type"].as_str() {
            Some("Pods" | "Percent") => {}
            other => causes.push(Cause::not_supported(
                &format!("{f}.type"),
                other.unwrap_or(""),
                &["Percent", "Pods"],
            )),
        }
        let value = p["value"].as_i64().unwrap_or(0);
        if value <= 0 {
            causes.push(Cause::invalid(
                &format!("{f}.value"),
                value,
                "must be greater than zero",
            ));
        }
        let period = p["periodSeconds"].as_i64().unwrap_or(0);
        if period <= 0 {
            causes.push(Cause::invalid(
                &format!("{f}.periodSeconds"),
                period,
                "must be greater than zero",
            ));
        } else if period > 1800 {
            causes.push(Cause::invalid(
                &format!("{f}.periodSeconds"),
                period,
                "must be less than or equal to 1800",
            ));
        }
    }
}

/// The source object of each metric type.
const SOURCES: &[(&str, &str)] = &[
    ("Object", "object"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("ContainerResource", "containerResource"),
    ("External", "external"),
];

fn check_target(t: Option<&Value>, field: &str, key: &str, causes: &mut Vec<Cause>) {
    let f = format!("{field}.target");
    let t = t
        .filter(|t| t.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let set = |k: &str| t.get(k).is_some_and(|x| !x.is_null());
    match t["type"].as_str() {
        None | Some("") => causes.push(Cause::required_because(
            &format!("{f}.type"),
            "must specify a metric target type",
        )),
        Some("Utilization" | "Value" | "AverageValue") => {}
        Some(other) => causes.push(Cause::invalid(
            &format!("{f}.type"),
            format!("\"{other}\""),
            "must be either Utilization, Value, or AverageValue",
        )),
    }
    match key {
        "resource" | "containerResource" => {
            if !set("averageUtilization") && !set("averageValue") {
                causes.push(Cause::required_because(
                    &format!("{f}.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ));
            } else if set("averageUtilization") && set("averageValue") {
                causes.push(Cause::forbidden(
                    &format!("{f}.averageValue"),
                    "may not set both a target raw value and a target utilization",
                ));
            }
        }
        "pods" if !set("averageValue") => causes.push(Cause::required_because(
            &format!("{f}.averageValue"),
            "must specify a positive target averageValue",
        )),
        "object" | "external" if !set("value") && !set("averageValue") => {
            causes.push(Cause::required_because(
                &format!("{f}.averageValue"),
                "must set either a target value or averageValue",
            ))
        }
        _ => {}
    }
    if let Some(u) = t.get("averageUtilization").and_then(Value::as_i64) {
        if u < 1 {
            causes.push(Cause::invalid(
                &format!("{f}.averageUtilization"),
                u,
                "must be greater than 0",
            ));
        }
    }
}

fn check_metric(m: &Value, field: &str, causes: &mut Vec<Cause>) {
    let ty = m["type"].as_str().unwrap_or("");
    if ty.is_empty() {
        causes.push(Cause::required_because(
            &format!("{field}.type"),
            "must specify a metric source type",
        ));
        return;
    }
    let Some((_, key)) = SOURCES.iter().find(|(t, _)| *t == ty) else {
        let supported: Vec<&str> = SOURCES.iter().map(|(t, _)| *t).collect();
        causes.push(Cause::not_supported(
            &format!("{field}.type"),
            ty,
            &supported,
        ));
        return;
    };
    for (_, other) in SOURCES.iter().filter(|(_, k)| k != key) {
        if m.get(*other).is_some_and(|x| !x.is_null()) {
            causes.push(Cause::forbidden(
                &format!("{field}.{other}"),
                "must populate the given metric source only",
            ));
        }
    }
    let Some(src) = m.get(*key).filter(|s| s.is_object()) else {
        causes.push(Cause::required_because(
            &format!("{field}.{key}"),
            "must populate information for the given metric source",
        ));
        return;
    };
    let f = format!("{field}.{key}");
    if matches!(*key, "resource" | "containerResource") {
        if src["name"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required_because(
                &format!("{f}.name"),
                "must specify a resource name",
            ));
        }
        if *key == "containerResource" && src["container"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required_because(
                &format!("{f}.container"),
                "must specify a container",
            ));
        }
    } else if src["metric"]["name"].as_str().is_none_or(str::is_empty) {
        causes.push(Cause::required_because(
            &format!("{f}.metric.name"),
            "must specify a metric name",
        ));
    }
    check_target(src.get("target"), &f, key, causes);
}

/// A v2 object as autoscaling/v1 shows it.
fn to_v1(v: &mut Value) {
    let metrics = v
        .at("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_cpu_util = |m: &Value| {
        m["type"] == "Resource"
            && m["resource"]["name"] == "cpu"
            && m["resource"]["target"]["type"] == "Utilization"
    };
    let cpu = metrics.iter().find(|m| is_cpu_util(m)).cloned();
    let others: Vec<Value> = metrics.into_iter().filter(|m| !is_cpu_util(m)).collect();
    let mut annotations: Vec<(&str, String)> = Vec::new();
    if !others.is_empty() {
        annotations.push((METRICS_ANNOTATION, Value::from(others).to_string()));
    }
    if let Some(b) = v.at("/spec/behavior").filter(|b| !b.is_null()) {
        annotations.push((BEHAVIOR_ANNOTATION, b.to_string()));
    }
    let current = v
        .at("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cur_cpu = current
        .iter()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
        .and_then(|m| m["resource"]["current"]["averageUtilization"].as_i64());
    // Every current metric (CPU's too, for its raw value), as Kubernetes keeps them.
    if !current.is_empty() {
        annotations.push((CURRENT_METRICS_ANNOTATION, Value::from(current).to_string()));
    }
    if let Some(c) = v
        .at("/status/conditions")
        .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    {
        annotations.push((CONDITIONS_ANNOTATION, c.to_string()));
    }
    let spec = v["spec"].take();
    let mut s1 = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(x) = spec.get(k) {
            s1.insert(k.into(), x.clone());
        }
    }
    if let Some(t) = cpu
        .as_ref()
        .and_then(|m| m["resource"]["target"].get("averageUtilization"))
    {
        s1.insert("targetCPUUtilizationPercentage".into(), t.clone());
    }
    v["spec"] = Value::Object(s1);
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(c) = cur_cpu {
            status.insert("currentCPUUtilizationPercentage".into(), json!(c));
        }
    }
    if !annotations.is_empty() {
        let meta = &mut v["metadata"];
        if !meta["annotations"].is_object() {
            meta["annotations"] = json!({});
        }
        for (k, val) in annotations {
            meta["annotations"][k] = json!(val);
        }
    }
}

/// A v1 object as autoscaling/v2 stores it.
fn to_v2(v: &mut Value) {
    let mut taken: Map<String, Value> = Map::new();
    if let Some(a) = v
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for k in [
            METRICS_ANNOTATION,
            CURRENT_METRICS_ANNOTATION,
            CONDITIONS_ANNOTATION,
            BEHAVIOR_ANNOTATION,
        ] {
            if let Some(Value::String(text)) = a.remove(k) {
                if let Ok(x) = serde_json::from_str::<Value>(&text) {
                    taken.insert(k.into(), x);
                }
            }
        }
        if a.is_empty() {
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("annotations");
            }
        }
    }
    let spec = v["spec"].take();
    let mut s2 = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(x) = spec.get(k) {
            s2.insert(k.into(), x.clone());
        }
    }
    // The annotation's metrics, then CPU's, as Kubernetes orders them.
    let mut metrics: Vec<Value> = match taken.remove(METRICS_ANNOTATION) {
        Some(Value::Array(others)) => others,
        _ => Vec::new(),
    };
    if let Some(t) = spec
        .get("targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    {
        metrics.push(cpu_utilization_metric(t));
    }
    if !metrics.is_empty() {
        s2.insert("metrics".into(), Value::from(metrics));
    }
    if let Some(b) = taken.remove(BEHAVIOR_ANNOTATION) {
        s2.insert("behavior".into(), b);
    }
    v["spec"] = Value::Object(s2);
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        let mut current: Vec<Value> = Vec::new();
        if let Some(c) = status
            .remove("currentCPUUtilizationPercentage")
            .and_then(|c| c.as_i64())
        {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": c}}}));
        }
        if let Some(Value::Array(all)) = taken.remove(CURRENT_METRICS_ANNOTATION) {
            current = all;
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::from(current));
        }
        if let Some(c) = taken.remove(CONDITIONS_ANNOTATION) {
            status.insert("conditions".into(), c);
        }
    }
}

/// kubectl's TARGETS cell: `cpu: 20%/50%` per metric (`<unknown>` before a measurement),
/// at most two, then `+ N more...`.
fn targets(v: &Value) -> String {
    let specs = v
        .at("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let current = v
        .at("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for (i, m) in specs.iter().enumerate() {
        let ty = m["type"].as_str().unwrap_or("");
        let key = SOURCES
            .iter()
            .find(|(t, _)| *t == ty)
            .map_or("", |(_, k)| *k);
        let src = &m[key];
        let cur = current.get(i).map(|c| &c[key]["current"]);
        let target = &src["target"];
        let name = if matches!(key, "resource" | "containerResource") {
            src["name"].as_str().unwrap_or("").to_string()
        } else {
            src["metric"]["name"].as_str().unwrap_or("").to_string()
        };
        let unknown = || "<unknown>".to_string();
        let (c, t) = match target["type"].as_str() {
            Some("Utilization") => (
                cur.and_then(|c| c["averageUtilization"].as_i64())
                    .map_or_else(unknown, |x| format!("{x}%")),
                format!("{}%", target["averageUtilization"].as_i64().unwrap_or(0)),
            ),
            Some("AverageValue") => (
                cur.and_then(|c| c["averageValue"].as_str())
                    .map_or_else(unknown, str::to_string),
                target["averageValue"].as_str().unwrap_or("").to_string(),
            ),
            _ => (
                cur.and_then(|c| c["value"].as_str())
                    .map_or_else(unknown, str::to_string),
                target["value"].as_str().unwrap_or("").to_string(),
            ),
        };
        let prefix = if key == "containerResource" {
            format!(
                "{name} of container \"{}\"",
                src["container"].as_str().unwrap_or("")
            )
        } else {
            name
        };
        out.push(format!("{prefix}: {c}/{t}"));
    }
    if out.len() > 2 {
        let more = out.len() - 2;
        out.truncate(2);
        return format!("{} + {more} more...", out.join(", "));
    }
    out.join(", ")
}

impl Kind for HorizontalPodAutoscaler {
    fn info(&self) -> &'static ResourceInfo {
        &HORIZONTALPODAUTOSCALERS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<autoscaling::HorizontalPodAutoscaler>(v)
    }

    fn protobuf_at(&self, version: &str) -> Option<Schema> {
        (version == "v1").then_some(HPA_V1_SCHEMA)
    }

    fn convert(&self, v: &mut Value, to: &str) {
        match to {
            "autoscaling/v1" => to_v1(v),
            _ => to_v2(v),
        }
    }

    fn prepare_create(&self, v: &mut Value) {
        // A new HPA's status: no replicas yet (autoscaling/v1 requires both numbers).
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "status".into(),
                json!({"currentReplicas": 0, "desiredReplicas": 0}),
            );
        }
    }

    fn defaults(&self, v: &mut Value) {
        let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        if spec.get("minReplicas").is_none_or(Value::is_null) {
            spec.insert("minReplicas".into(), json!(1));
        }
        if spec
            .get("metrics")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            spec.insert(
                "metrics".into(),
                json!([cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]),
            );
        }
        if let Some(b) = spec.get_mut("behavior").and_then(Value::as_object_mut) {
            let up = rule_defaults(b.get("scaleUp"), true);
            let down = rule_defaults(b.get("scaleDown"), false);
            b.insert("scaleUp".into(), up);
            b.insert("scaleDown".into(), down);
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        let r = &v["spec"]["scaleTargetRef"];
        if r["kind"].as_str().is_none_or(str::is_empty) {
            causes.push(Cause::required("spec.scaleTargetRef.kind"));
        }
        match r["name"].as_str() {
            None | Some("") => causes.push(Cause::required("spec.scaleTargetRef.name")),
            Some(n) if n.contains('/') || n.contains('%') || n == "." || n == ".." => {
                causes.push(Cause::invalid(
                    "spec.scaleTargetRef.name",
                    format!("\"{n}\""),
                    "may not contain '/' or '%' and may not be '.' or '..'",
                ))
            }
            Some(_) => {}
        }
        let min = v
            .at("/spec/minReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let max = v
            .at("/spec/maxReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if min < 1 {
            causes.push(Cause::invalid(
                "spec.minReplicas",
                min,
                "must be greater than or equal to 1",
            ));
        }
        if max < 1 {
            causes.push(Cause::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than 0",
            ));
        } else if max < min {
            causes.push(Cause::invalid(
                "spec.maxReplicas",
                max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        if let Some(ms) = v.at("/spec/metrics").and_then(Value::as_array) {
            for (i, m) in ms.iter().enumerate() {
                check_metric(m, &format!("spec.metrics[{i}]"), causes);
            }
        }
        check_rule(
            v.at("/spec/behavior/scaleUp"),
            "spec.behavior.scaleUp",
            causes,
        );
        check_rule(
            v.at("/spec/behavior/scaleDown"),
            "spec.behavior.scaleDown",
            causes,
        );
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Reference", "string", 0),
            col("Targets", "string", 0),
            col("MinPods", "string", 0),
            col("MaxPods", "string", 0),
            col("Replicas", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let r = &v["spec"]["scaleTargetRef"];
        let min = v
            .at("/spec/minReplicas")
            .and_then(Value::as_i64)
            .map_or("<unset>".to_string(), |m| m.to_string());
        vec![
            json!(v.at("/metadata/name").and_then(Value::as_str).unwrap_or("")),
            json!(format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )),
            json!(targets(v)),
            json!(min),
            json!(v
                .at("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)),
            json!(v
                .at("/status/currentReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trips_through_v2() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 20}});
        let mut v = v1.clone();
        to_v2(&mut v);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(
            v["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"],
            20
        );
        assert!(v["metadata"].get("annotations").is_none());
        // A v2-only metric and behavior survive a trip through v1.
        v["spec"]["metrics"].as_array_mut().unwrap().push(
            json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}),
        );
        v["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 5}});
        let v2 = v.clone();
        to_v1(&mut v);
        assert_eq!(v["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(v["metadata"]["annotations"][METRICS_ANNOTATION].is_string());
        to_v2(&mut v);
        // As in Kubernetes, CPU's metric comes back last.
        let m = v["spec"]["metrics"].as_array().unwrap();
        assert_eq!(
            (m[0]["type"].as_str(), m[1]["type"].as_str()),
            (Some("Pods"), Some("Resource"))
        );
        assert_eq!(v["spec"]["behavior"], v2["spec"]["behavior"]);
    }

    #[test]
    fn targets_cell() {
        let v = json!({"spec": {"metrics": [cpu_utilization_metric(50)]}});
        assert_eq!(targets(&v), "cpu: <unknown>/50%");
        let v = json!({"spec": {"metrics": [cpu_utilization_metric(50)]},
            "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20, "averageValue": "20m"}}}]}});
        assert_eq!(targets(&v), "cpu: 20%/50%");
    }
}
