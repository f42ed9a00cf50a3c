//! Helpers the kinds share: defaulting one key of an object, and the rules of the kinds that
//! own pods through a selector and a pod template (Deployment, ReplicaSet).

use crate::table::s;
use coxswain_api::status::Cause;
use coxswain_api::At;
use serde_json::{json, Map, Value};

/// The object at `v[key]`, made an empty object first if it is missing or not an object.
pub fn obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    if !v.get(key).is_some_and(Value::is_object) {
        v.as_object_mut()?.insert(key.to_string(), json!({}));
    }
    v.get_mut(key)?.as_object_mut()
}

/// Set `m[key]` to `val` when it is missing or null.
/// Add a finalizer unless present (Kubernetes' in-use protection admission).
pub fn add_finalizer(v: &mut Value, f: &str) {
    let Some(m) = obj(v, "metadata") else {
        return;
    };
    let list = m
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    if let Some(a) = list.as_array_mut() {
        if !a.iter().any(|x| x == f) {
            a.push(Value::String(f.into()));
        }
    }
}

pub fn default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), val);
    }
}

/// Defaults of a pod template (`spec.template`): its pod spec's, and no creation timestamp.
pub fn default_template(v: &mut Value) {
    if let Some(spec) = v.pointer_mut("/spec/template/spec") {
        super::pod::default_pod_spec(spec);
    }
    if let Some(m) = v
        .pointer_mut("/spec/template/metadata")
        .and_then(Value::as_object_mut)
    {
        m.remove("creationTimestamp");
    }
}

/// `spec.replicas`, `spec.selector` (required, matching the template's labels) and the pod
/// template of a workload.
pub fn validate_workload(v: &Value, causes: &mut Vec<Cause>) {
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
    super::pod::validate_pod_spec(v.at("/spec/template/spec"), "spec.template.spec", causes);
}

/// A workload's selector is immutable (apps/v1).
pub fn selector_immutable(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let (a, b) = (old.at("/spec/selector"), new.at("/spec/selector"));
    if a != b {
        causes.push(Cause::invalid(
            "spec.selector",
            json!(b).to_string(),
            "field is immutable",
        ));
    }
}

/// A workload's Table columns: Name, three of its own, Age, then Containers, Images and
/// Selector for `-o wide`.
pub fn workload_columns(own: [(&str, &str); 3]) -> Vec<crate::table::Column> {
    use crate::table::col;
    let mut c = vec![col("Name", "string", 0)];
    c.extend(own.iter().map(|(name, ty)| col(name, ty, 0)));
    c.push(col("Age", "string", 0));
    c.extend(["Containers", "Images", "Selector"].map(|n| col(n, "string", 1)));
    c
}

/// A workload's cells in the order of [`workload_columns`].
pub fn workload_cells(v: &Value, own: [Value; 3]) -> Vec<Value> {
    workload_cells_with(v, own, v.at("/spec/selector"))
}

/// [`workload_cells`] with the label selector given (a ReplicationController's map, as one).
pub fn workload_cells_with(v: &Value, own: [Value; 3], selector: Option<&Value>) -> Vec<Value> {
    let [c, i] = containers_images(v, "/spec/template/spec");
    let sel = selector_cell(selector);
    let mut cells = vec![json!(s(v, "/metadata/name"))];
    cells.extend(own);
    cells.push(json!(crate::table::age(
        &v["metadata"]["creationTimestamp"]
    )));
    cells.extend([json!(c), json!(i), json!(sel)]);
    cells
}

/// The Containers and Images cells of the pod spec at `spec` (`-o wide`).
pub fn containers_images(v: &Value, spec: &str) -> [String; 2] {
    let cs = v
        .at(&format!("{spec}/containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let join = |p: &str| cs.iter().map(|c| s(c, p)).collect::<Vec<_>>().join(",");
    [join("/name"), join("/image")]
}

/// A label selector as kubectl prints it (`app=web,tier in (a,b)`; `<none>` when empty).
pub fn selector_cell(sel: Option<&Value>) -> String {
    let mut parts: Vec<String> = sel
        .and_then(|x| x.get("matchLabels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .and_then(|x| x.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        parts.push(match s(e, "/operator").as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key,
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({values})"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// An `IntOrString` field: a non-negative integer or a percentage.
pub fn check_int_or_percent(v: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Number(x)) if x.as_i64().is_some_and(|x| x < 0) => causes.push(Cause::invalid(
            field,
            x,
            "must be greater than or equal to 0",
        )),
        Some(Value::Number(_)) => {}
        Some(Value::String(p)) => {
            let pct = p.strip_suffix('%').and_then(|d| d.parse::<i64>().ok());
            match pct {
                None => causes.push(Cause::invalid(
                    field,
                    format!("\"{p}\""),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
                Some(x) if x > 100 => causes.push(Cause::invalid(
                    field,
                    format!("\"{p}\""),
                    "must not be greater than 100%",
                )),
                Some(_) => {}
            }
        }
        Some(other) => causes.push(Cause::invalid(
            field,
            other,
            "must be an integer or percentage",
        )),
    }
}

/// Ports without a protocol are TCP (Service, Endpoints and NetworkPolicy ports alike);
/// `list` is a JSON pointer to an array of ports (entries that are not objects are left).
pub fn default_protocols(v: &mut Value, list: &str) {
    for p in v
        .pointer_mut(list)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(m) = p
            .as_object_mut()
            .filter(|m| m.get("protocol").is_none_or(Value::is_null))
        {
            m.insert("protocol".into(), json!("TCP"));
        }
    }
}

/// The addresses in `status.loadBalancer.ingress` (IP, else hostname), sorted, once each.
pub fn load_balancer_addresses(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .at("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or(i["hostname"].as_str())
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
