//! Patches on `serde_json::Value`: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! Kubernetes strategic merge patch (lists merged by their merge key, `$patch` directives).

use serde_json::{Map, Value};

/// A patch that cannot be applied; the message says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge key of a list field in strategic merge patch, by field name.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "ownerReferences"
        | "hostAliases"
        | "readinessGates" => match field {
            "ownerReferences" => "uid",
            "hostAliases" => "ip",
            "readinessGates" => "conditionType",
            _ => "name",
        },
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "taints" => "key",
        "tolerations" => "key",
        "addresses" => "type",
        _ => return None,
    })
}

/// Lists of scalars merged as sets rather than replaced.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch as kubectl sends it for apply, edit, set image, cordon, scale.
///
/// Supported: recursive object merge, `null` deletes, lists with a known merge key merged by
/// key (`$patch: delete` in an element removes it, `$patch: replace` replaces the list),
/// `$setElementOrder/<field>` reorders, `$deleteFromPrimitiveList/<field>`, `$retainKeys`.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    check_directive(p)?;
    if p.get("$patch").and_then(Value::as_str) == Some("delete") {
        *target = Value::Null;
        return Ok(());
    }
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()) || p.contains_key(k));
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((field.to_string(), order.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (t.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (v, merge_key(k)) {
            (Value::Array(items), Some(key)) if items.iter().all(Value::is_object) => {
                let replace = items
                    .iter()
                    .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
                let existing = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if replace || !existing.is_array() {
                    *existing = Value::Array(
                        items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect(),
                    );
                    continue;
                }
                if let Value::Array(list) = existing {
                    merge_keyed_list(list, items, key)?;
                }
            }
            (Value::Array(items), None) if is_set_list(k) => {
                let existing = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if let Value::Array(list) = existing {
                    for i in items {
                        if !list.contains(i) {
                            list.push(i.clone());
                        }
                    }
                } else {
                    *existing = Value::Array(items.clone());
                }
            }
            (Value::Object(pm), _) => {
                check_directive(pm)?;
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    t.remove(k);
                    continue;
                }
                strategic_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v)?;
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    for (field, order) in orders {
        if let (Some(Value::Array(list)), Some(key)) = (t.get_mut(&field), merge_key(&field)) {
            let pos = |e: &Value| {
                order
                    .iter()
                    .position(|o| o.get(key) == e.get(key))
                    .unwrap_or(usize::MAX)
            };
            list.sort_by_key(pos);
        }
    }
    Ok(())
}

fn merge_keyed_list(list: &mut Vec<Value>, items: &[Value], key: &str) -> Result<(), PatchError> {
    for item in items {
        if let Value::Object(m) = item {
            check_directive(m)?;
        }
        let Some(k) = item.get(key).cloned() else {
            return Err(PatchError(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let pos = list.iter().position(|e| e.get(key) == Some(&k));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                list.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => strategic_merge_patch(&mut list[i], item)?,
            None => {
                let mut fresh = Value::Null;
                strategic_merge_patch(&mut fresh, item)?;
                list.push(fresh);
            }
        }
    }
    Ok(())
}

/// The JSON size of `v`, counted up to a little past `limit` (so a huge value costs no more
/// than the limit to measure).
fn json_size(v: &Value, limit: usize) -> usize {
    let mut n = 0usize;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        if n > limit {
            break;
        }
        n += match v {
            Value::Null => 4,
            Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(a) => {
                stack.extend(a.iter());
                2 + a.len()
            }
            Value::Object(m) => {
                for (k, x) in m {
                    n += k.len() + 3;
                    stack.push(x);
                }
                2 + m.len()
            }
        };
    }
    n
}

/// The strategic merge patch directives a `$patch` key may hold.
const DIRECTIVES: &[&str] = &["replace", "merge", "delete"];

fn check_directive(p: &serde_json::Map<String, Value>) -> Result<(), PatchError> {
    match p.get("$patch") {
        None => Ok(()),
        Some(Value::String(d)) if DIRECTIVES.contains(&d.as_str()) => Ok(()),
        Some(other) => Err(PatchError(format!(
            "invalid patch type {other}: $patch must be one of \"replace\", \"merge\", \"delete\""
        ))),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parent<'a>(
    doc: &'a mut Value,
    path: &str,
) -> Result<(&'a mut Value, String), PatchError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError(format!("invalid JSON pointer {path:?}")));
    };
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop().unwrap_or_default();
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m
                .get_mut(&t)
                .ok_or_else(|| PatchError(format!("path {path:?} does not exist")))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| PatchError(format!("invalid index in {path:?}")))?;
                a.get_mut(i)
                    .ok_or_else(|| PatchError(format!("index out of range in {path:?}")))?
            }
            _ => return Err(PatchError(format!("path {path:?} does not exist"))),
        };
    }
    Ok((cur, last))
}

fn json_add(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = pointer_parent(doc, path)?;
    match parent {
        Value::Object(m) => {
            if replace && !m.contains_key(&last) {
                return Err(PatchError(format!("path {path:?} does not exist")));
            }
            m.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| PatchError(format!("invalid index in {path:?}")))?;
                if replace {
                    *a.get_mut(i)
                        .ok_or_else(|| PatchError(format!("index out of range in {path:?}")))? =
                        value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(PatchError(format!("index out of range in {path:?}")));
                }
            }
        }
        _ => return Err(PatchError(format!("path {path:?} does not exist"))),
    }
    Ok(())
}

fn json_remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = pointer_parent(doc, path)?;
    let missing = || PatchError(format!("path {path:?} does not exist"));
    match parent {
        Value::Object(m) => m.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), PatchError> {
    json_patch_limited(doc, ops, usize::MAX)
}

/// [`json_patch`], copying at most `max_copy_bytes` (their JSON size) over all its `copy`
/// operations, as Kubernetes' `AccumulatedCopySizeLimit` (each copy may double the
/// document: 23 copies of a one-element array are 8 million elements).
pub fn json_patch_limited(
    doc: &mut Value,
    ops: &Value,
    max_copy_bytes: usize,
) -> Result<(), PatchError> {
    let mut copied = 0usize;
    let Value::Array(ops) = ops else {
        return Err(PatchError(
            "a JSON patch must be an array of operations".into(),
        ));
    };
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError(format!("operation {kind:?} needs a value")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError(format!("operation {kind:?} needs from")))
        };
        match kind {
            "add" => json_add(doc, path, value()?, false)?,
            "replace" => json_add(doc, path, value()?, true)?,
            "remove" => {
                json_remove(doc, path)?;
            }
            "move" => {
                let v = json_remove(doc, from()?)?;
                json_add(doc, path, v, false)?;
            }
            "copy" => {
                let source = doc
                    .pointer(from()?)
                    .ok_or_else(|| PatchError("copy: from does not exist".into()))?;
                copied = copied.saturating_add(json_size(
                    source,
                    max_copy_bytes - copied.min(max_copy_bytes),
                ));
                if copied > max_copy_bytes {
                    return Err(PatchError(format!(
                        "unable to copy: the copies of this patch exceed {max_copy_bytes} bytes"
                    )));
                }
                let v = source.clone();
                json_add(doc, path, v, false)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError(format!("test failed at {path:?}")));
                }
            }
            other => {
                return Err(PatchError(format!(
                    "unknown JSON patch operation {other:?}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }

    #[test]
    fn strategic_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        let p = json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x:2"}]}});
        strategic_merge_patch(&mut t, &p).unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "b", "image": "y:1"}, {"name": "a", "image": "x:2"}]}})
        );
        let del = json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}});
        strategic_merge_patch(&mut t, &del).unwrap();
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "a", "image": "x:2"}]}})
        );
    }

    #[test]
    fn strategic_null_and_scalars() {
        let mut t = json!({"spec": {"unschedulable": true, "replicas": 1}});
        strategic_merge_patch(
            &mut t,
            &json!({"spec": {"unschedulable": null, "replicas": 3}}),
        )
        .unwrap();
        assert_eq!(t, json!({"spec": {"replicas": 3}}));
    }

    #[test]
    fn json_patch_ops() {
        let mut t =
            json!({"spec": {"template": {"x": 1}}, "metadata": {"annotations": {"a": "b"}}});
        json_patch(
            &mut t,
            &json!([
                {"op": "replace", "path": "/spec/template", "value": {"y": 2}},
                {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
                {"op": "remove", "path": "/metadata/annotations/a"},
                {"op": "test", "path": "/spec/template/y", "value": 2}
            ]),
        )
        .unwrap();
        assert_eq!(
            t,
            json!({"spec": {"template": {"y": 2}}, "metadata": {"annotations": {}, "labels": {"k": "v"}}})
        );
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
