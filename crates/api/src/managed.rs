//! Field ownership for server-side apply: the set of fields an object's content sets, in
//! Kubernetes' `FieldsV1` form (`f:` object keys, `k:` list items by merge key), and the
//! operations on it (diff, lookup, removal) that apply and update use.
//!
//! Lists with a merge key (containers by `name`, ports by `containerPort`, ...) are owned per
//! item; other lists are atomic and owned whole.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One path element: `f:name` or `k:{"name":"nginx"}`.
pub type PathElem = String;
/// A path from the object root to an owned field.
pub type FieldPath = Vec<PathElem>;
/// The fields a manager owns.
pub type FieldSet = BTreeSet<FieldPath>;

/// Merge keys of keyed lists, by field name.
fn list_key(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => &["name"],
        "ports" => &["containerPort", "protocol"],
        "volumeMounts" => &["mountPath"],
        "conditions" | "addresses" => &["type"],
        "ownerReferences" => &["uid"],
        "tolerations" | "taints" => &["key", "effect"],
        _ => return None,
    })
}

/// Top-level and metadata fields the server owns; never part of a field set.
fn ignored(path: &[PathElem]) -> bool {
    match path {
        [a] => ["f:apiVersion", "f:kind", "f:status"].contains(&a.as_str()),
        [m, x] if m == "f:metadata" => [
            "f:name",
            "f:namespace",
            "f:uid",
            "f:resourceVersion",
            "f:generation",
            "f:creationTimestamp",
            "f:managedFields",
            "f:deletionTimestamp",
            "f:deletionGracePeriodSeconds",
            "f:selfLink",
        ]
        .contains(&x.as_str()),
        _ => false,
    }
}

fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) => {
                m.insert(k.to_string(), v.clone());
            }
            None if *k == "protocol" => {
                m.insert("protocol".into(), Value::String("TCP".into()));
            }
            None => return None,
        }
    }
    Some(format!("k:{}", Value::Object(m)))
}

/// The fields `v` sets (leaves, plus a marker for each keyed list item).
pub fn fields_of(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(format!("f:{k}"));
                if !ignored(path) {
                    match (child, list_key(k)) {
                        (Value::Array(items), Some(keys)) if items.iter().all(Value::is_object) => {
                            for item in items {
                                if let Some(ik) = item_key(item, keys) {
                                    path.push(ik);
                                    let mut marker = path.clone();
                                    marker.push(".".into());
                                    out.insert(marker);
                                    walk(item, path, out);
                                    path.pop();
                                }
                            }
                        }
                        _ => walk(child, path, out),
                    }
                }
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

/// The value at a path, if present.
pub fn value_at<'a>(v: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    let mut cur = v;
    for e in path {
        if e == "." {
            return Some(cur);
        }
        cur = step(cur, e)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, e: &str) -> Option<&'a Value> {
    if let Some(k) = e.strip_prefix("f:") {
        return cur.get(k);
    }
    let want: Value = serde_json::from_str(e.strip_prefix("k:")?).ok()?;
    cur.as_array()?.iter().find(|item| {
        want.as_object().is_some_and(|w| {
            w.iter().all(|(k, v)| {
                item.get(k) == Some(v) || (k == "protocol" && item.get(k).is_none() && v == "TCP")
            })
        })
    })
}

/// Remove the field at a path (and a keyed list item, for an item marker).
pub fn remove_at(v: &mut Value, path: &[PathElem]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    if last == "." {
        if let Some((item, list_path)) = parent_path.split_last() {
            if let Some(list) = value_at_mut(v, list_path).and_then(Value::as_array_mut) {
                let target = step(&Value::Array(list.clone()), item).cloned();
                list.retain(|x| Some(x) != target.as_ref());
            }
        }
        return;
    }
    if let (Some(k), Some(parent)) = (last.strip_prefix("f:"), value_at_mut(v, parent_path)) {
        if let Some(m) = parent.as_object_mut() {
            m.remove(k);
        }
    }
}

fn value_at_mut<'a>(v: &'a mut Value, path: &[PathElem]) -> Option<&'a mut Value> {
    let mut cur = v;
    for e in path {
        if let Some(k) = e.strip_prefix("f:") {
            cur = cur.get_mut(k)?;
        } else {
            let want: Value = serde_json::from_str(e.strip_prefix("k:")?).ok()?;
            let arr = cur.as_array_mut()?;
            let idx = arr.iter().position(|item| {
                want.as_object().is_some_and(|w| {
                    w.iter().all(|(k, v)| {
                        item.get(k) == Some(v)
                            || (k == "protocol" && item.get(k).is_none() && v == "TCP")
                    })
                })
            })?;
            cur = &mut arr[idx];
        }
    }
    Some(cur)
}

/// Leaf fields of `new` whose value differs from `old` (what an update changed).
pub fn changed(old: &Value, new: &Value) -> FieldSet {
    fields_of(new)
        .into_iter()
        .filter(|p| {
            value_at(old, p) != value_at(new, p)
                || p.last().is_some_and(|l| l == ".") && value_at(old, p).is_none()
        })
        .collect()
}

/// `FieldsV1` JSON of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for e in path {
            let entry = cur
                .entry(e.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(m) => cur = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// A field set from `FieldsV1` JSON.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn go(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    go(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    go(v, &mut Vec::new(), &mut out);
    out
}

/// `.spec.template.spec.containers[name="nginx"].image`, as Kubernetes prints a field path.
pub fn display(path: &[PathElem]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(k) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(k);
        } else if let Some(k) = e.strip_prefix("k:") {
            let v: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let inner = v
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_round_trip_and_lookup() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.27", "args": ["a", "b"]}]}}}});
        let f = fields_of(&d);
        let shown: Vec<String> = f.iter().map(|p| display(p)).collect();
        assert!(shown.contains(&".spec.replicas".to_string()));
        assert!(shown.contains(&".metadata.labels.app".to_string()));
        assert!(shown.contains(&".spec.template.spec.containers[name=\"nginx\"].image".to_string()));
        assert!(shown.contains(&".spec.template.spec.containers[name=\"nginx\"].args".to_string()));
        assert!(!shown.iter().any(|s| s == ".metadata.name" || s == ".kind"));
        assert_eq!(from_fields_v1(&to_fields_v1(&f)), f);
        let img: FieldPath = vec![
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"nginx\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(value_at(&d, &img), Some(&json!("nginx:1.27")));
        let mut d2 = d.clone();
        d2["spec"]["replicas"] = json!(5);
        let ch: Vec<String> = changed(&d, &d2).iter().map(|p| display(p)).collect();
        assert_eq!(ch, vec![".spec.replicas"]);
        remove_at(&mut d2, &img);
        assert!(value_at(&d2, &img).is_none());
    }
}
