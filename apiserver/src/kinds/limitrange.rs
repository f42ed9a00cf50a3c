//! v1 LimitRange: per-namespace defaults and bounds for containers, pods and claims. Its
//! defaults (a Container item's `max` fills `default`, which with `min` fills
//! `defaultRequest`), validation (types; min <= default request <= default <= max; ratios),
//! and the LimitRanger admission of new pods ([`admit_pod`]): missing requests and limits
//! set from the defaults (noted in `kubernetes.io/limit-ranger`), then min, max and
//! limit/request ratio checked, 403 with Kubernetes' messages. kubectl's NAME, CREATED AT.

use super::Kind;
use crate::state::AppState;
use crate::table::{col, s, Column};
use coxswain_api::resources::{ResourceInfo, LIMITRANGES};
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Map, Value};

/// The LimitRange kind.
pub struct LimitRange;

/// A quantity of `resource` in milli-units (millicores, milli-bytes).
pub fn milli(resource: &str, q: &Value) -> Option<i128> {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if resource == "cpu" || resource.ends_with(".cpu") {
        coxswain_api::quantity::cpu_millis(&text).map(i128::from)
    } else {
        coxswain_api::quantity::bytes(&text).map(|b| i128::from(b) * 1000)
    }
}

fn map(item: &Value, k: &str) -> Map<String, Value> {
    item.get(k)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn show(q: &Value) -> String {
    q.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| q.to_string())
}

/// The items of the namespace's LimitRanges, in list order.
fn items(st: &AppState, ns: &str) -> Vec<Value> {
    let f = crate::cache::Filter {
        namespace: Some(ns.to_string()),
        ..Default::default()
    };
    let (all, _) = st.cache.list(&LIMITRANGES, &f);
    all.iter()
        .filter_map(|o| serde_json::from_slice::<Value>(&o.bytes).ok())
        .flat_map(|v| {
            v.at("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// One container's check against a Container item's bounds.
fn check(c: &Value, item: &Value, kind: &str, errs: &mut Vec<String>) {
    let req = c
        .at("/resources/requests")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let lim = c
        .at("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (r, min) in map(item, "min") {
        match req.get(&r) {
            None => errs.push(format!(
                "minimum {r} usage per {kind} is {}.  No request is specified",
                show(&min)
            )),
            Some(q) if milli(&r, q) < milli(&r, &min) => errs.push(format!(
                "minimum {r} usage per {kind} is {}, but request is {}",
                show(&min),
                show(q)
            )),
            _ => {}
        }
        if let Some(q) = lim.get(&r).filter(|q| milli(&r, q) < milli(&r, &min)) {
            errs.push(format!(
                "minimum {r} usage per {kind} is {}, but limit is {}",
                show(&min),
                show(q)
            ));
        }
    }
    for (r, max) in map(item, "max") {
        match lim.get(&r) {
            None => errs.push(format!(
                "maximum {r} usage per {kind} is {}.  No limit is specified",
                show(&max)
            )),
            Some(q) if milli(&r, q) > milli(&r, &max) => errs.push(format!(
                "maximum {r} usage per {kind} is {}, but limit is {}",
                show(&max),
                show(q)
            )),
            _ => {}
        }
        if let Some(q) = req.get(&r).filter(|q| milli(&r, q) > milli(&r, &max)) {
            errs.push(format!(
                "maximum {r} usage per {kind} is {}, but request is {}",
                show(&max),
                show(q)
            ));
        }
    }
    for (r, ratio) in map(item, "maxLimitRequestRatio") {
        let (rq, lq) = (
            req.get(&r).and_then(|q| milli(&r, q)).unwrap_or(0),
            lim.get(&r).and_then(|q| milli(&r, q)).unwrap_or(0),
        );
        let want = ratio
            .as_f64()
            .or_else(|| ratio.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(1.0);
        if rq == 0 {
            errs.push(format!("{r} max limit to request ratio per {kind} is {}, but no request is specified or request is 0", show(&ratio)));
        } else if lq == 0 {
            errs.push(format!("{r} max limit to request ratio per {kind} is {}, but no limit is specified or limit is 0", show(&ratio)));
        } else if lq as f64 / rq as f64 > want {
            errs.push(format!(
                "{r} max limit to request ratio per {kind} is {}, but provided ratio is {:.6}",
                show(&ratio),
                lq as f64 / rq as f64
            ));
        }
    }
}

/// The LimitRanger admission plugin on a new pod: defaults, then bounds.
pub fn admit_pod(st: &AppState, pod: &mut Value) -> Result<(), ApiError> {
    let ns = s(pod, "/metadata/namespace");
    let items: Vec<Value> = items(st, if ns.is_empty() { "default" } else { &ns })
        .into_iter()
        .filter(|i| i["type"] == "Container")
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let (mut requests, mut limits) = (Map::new(), Map::new());
    for i in &items {
        requests.extend(map(i, "defaultRequest"));
        limits.extend(map(i, "default"));
    }
    let mut notes = Vec::new();
    for (list, label) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        for c in pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let name = c["name"].as_str().unwrap_or("").to_string();
            let Some(cm) = c.as_object_mut() else {
                continue;
            };
            let res = cm.entry("resources").or_insert_with(|| json!({}));
            let Some(res) = res.as_object_mut() else {
                continue;
            };
            for (key, defaults, what) in [
                ("requests", &requests, "request"),
                ("limits", &limits, "limit"),
            ] {
                let set = res.entry(key).or_insert_with(|| json!({}));
                let Some(set) = set.as_object_mut() else {
                    continue;
                };
                let mut added: Vec<String> = Vec::new();
                for (r, q) in defaults {
                    if !set.contains_key(r) {
                        set.insert(r.clone(), q.clone());
                        added.push(r.clone());
                    }
                }
                if !added.is_empty() {
                    added.sort();
                    notes.push(format!("{} {what} for {label} {name}", added.join(", ")));
                }
            }
        }
    }
    if !notes.is_empty() {
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = json!({});
        }
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
    let containers: Vec<Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|l| {
            pod.at(&format!("/spec/{l}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for i in &items {
        let mut errs = Vec::new();
        for c in &containers {
            check(c, i, "Container", &mut errs);
        }
        if !errs.is_empty() {
            let name = s(pod, "/metadata/name");
            let msg = if errs.len() == 1 {
                errs.remove(0)
            } else {
                format!("[{}]", errs.join(", "))
            };
            return Err(ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: {msg}"
            )));
        }
    }
    Ok(())
}

impl Kind for LimitRange {
    fn info(&self) -> &'static ResourceInfo {
        &LIMITRANGES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::LimitRange>(v)
    }

    fn defaults(&self, v: &mut Value) {
        for item in v
            .pointer_mut("/spec/limits")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(m) = item.as_object_mut() else {
                continue;
            };
            if m.get("type").and_then(Value::as_str) != Some("Container") {
                continue;
            }
            let get = |m: &Map<String, Value>, k: &str| {
                m.get(k)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let (max, min) = (get(m, "max"), get(m, "min"));
            let mut default = get(m, "default");
            for (k, q) in max {
                default.entry(k).or_insert(q);
            }
            let mut request = get(m, "defaultRequest");
            for (k, q) in default.iter().chain(min.iter()) {
                request.entry(k.clone()).or_insert_with(|| q.clone());
            }
            m.insert("default".into(), Value::Object(default));
            m.insert("defaultRequest".into(), Value::Object(request));
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let mut seen = Vec::new();
        for (i, item) in v
            .at("/spec/limits")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = |k: &str| format!("spec.limits[{i}].{k}");
            let ty = item["type"].as_str().unwrap_or("");
            if !["Pod", "Container", "PersistentVolumeClaim"].contains(&ty) && !ty.contains('/') {
                c.push(Cause::invalid(
                    &f("type"),
                    format!("\"{ty}\""),
                    "must be a standard limit type or fully qualified",
                ));
            }
            if seen.contains(&ty) {
                c.push(Cause {
                    reason: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: \"{ty}\""),
                    field: f("type"),
                });
            }
            seen.push(ty);
            if ty == "Pod" {
                for k in ["default", "defaultRequest"] {
                    if item
                        .get(k)
                        .and_then(Value::as_object)
                        .is_some_and(|m| !m.is_empty())
                    {
                        c.push(Cause::forbidden(
                            &f(k),
                            "may not be specified when `type` is 'Pod'",
                        ));
                    }
                }
            }
            if ty == "PersistentVolumeClaim"
                && item.at("/min/storage").is_none()
                && item.at("/max/storage").is_none()
            {
                c.push(Cause::required_because(
                    &f("limits"),
                    "either minimum or maximum storage value is required, but neither was provided",
                ));
            }
            let (min, max, dflt, req) = (
                map(item, "min"),
                map(item, "max"),
                map(item, "default"),
                map(item, "defaultRequest"),
            );
            let cmp = |a: &Map<String, Value>, b: &Map<String, Value>, k: &str| -> Option<bool> {
                Some(milli(k, a.get(k)?)? > milli(k, b.get(k)?)?)
            };
            for k in min
                .keys()
                .chain(max.keys())
                .chain(dflt.keys())
                .chain(req.keys())
            {
                let mut bad = |field: String,
                               a: &Map<String, Value>,
                               b: &Map<String, Value>,
                               what: (&str, &str)| {
                    if cmp(a, b, k) == Some(true) {
                        let msg = format!(
                            "{} {} is greater than {} {}",
                            what.0,
                            show(&a[k]),
                            what.1,
                            show(&b[k])
                        );
                        c.push(Cause::invalid(&field, show(&a[k]), &msg));
                    }
                };
                bad(
                    f(&format!("min[{k}]")),
                    &min,
                    &max,
                    ("min value", "max value"),
                );
                bad(
                    f(&format!("defaultRequest[{k}]")),
                    &min,
                    &req,
                    ("min value", "default request value"),
                );
                bad(
                    f(&format!("defaultRequest[{k}]")),
                    &req,
                    &max,
                    ("default request value", "max value"),
                );
                bad(
                    f(&format!("defaultRequest[{k}]")),
                    &req,
                    &dflt,
                    ("default request value", "default limit value"),
                );
                bad(
                    f(&format!("default[{k}]")),
                    &min,
                    &dflt,
                    ("min value", "default value"),
                );
                bad(
                    f(&format!("default[{k}]")),
                    &dflt,
                    &max,
                    ("default value", "max value"),
                );
            }
        }
        // One cause per field and message.
        c.dedup();
    }

    fn columns(&self) -> Vec<Column> {
        vec![col("Name", "string", 0), col("Created At", "date", 0)]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/metadata/creationTimestamp")),
        ]
    }
}
