//! Field validation (`fieldValidation=Strict|Warn|Ignore`): fields the Kubernetes schema does
//! not have are found by decoding the body into the exact k8s-openapi type and listing what it
//! ignored. Strict answers 400 (`strict decoding error: unknown field "spec.replicax"`), Warn
//! (the default) answers with a `Warning` header per field, Ignore says nothing.
//!
//! Most bodies repeat a few shapes (every status patch of a kubelet, every pod a ReplicaSet
//! creates), so the shapes found clean are remembered: a body whose shape (its keys and the
//! kinds of its values, not the values) was clean before skips the typed decode.

use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::ApiError;
use serde_json::Value;

/// What decoding a value as its kind's exact type found.
#[derive(Debug, Default)]
pub struct Typed {
    /// Fields the type does not have.
    pub unknown: Vec<String>,
    /// Why it does not decode (`spec.replicas: invalid value: integer ..., expected i32`), if
    /// it does not.
    pub error: Option<String>,
}

/// Decode `v` as `T`: its unknown fields, and why it does not decode if it does not (a value
/// that did not may not have been walked to its end, so its shape is not remembered as
/// clean).
pub fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Typed {
    let mut unknown = Vec::new();
    let decoded =
        serde_ignored::deserialize::<_, _, T>(v, |path| unknown.push(render(&path.to_string())))
            .is_ok();
    let error = (!decoded).then(|| match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(_) => "does not decode".to_string(),
        Err(e) => {
            let path = render(&e.path().to_string());
            if path.is_empty() {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        }
    });
    Typed { unknown, error }
}

/// Shapes remembered as clean at most; the set starts over when full.
const CLEAN_SHAPES: usize = 4096;

/// Hashes of shapes (resource and body) that decoded with no unknown field. The hasher's keys
/// are random per process, so a body cannot be built to collide with a remembered shape.
struct Clean {
    hasher: std::collections::hash_map::RandomState,
    seen: std::sync::Mutex<std::collections::HashSet<u64>>,
}

/// The hash of `v`'s shape as a body for `r`.
fn shape_of(r: &ResourceInfo, v: &Value) -> u64 {
    shape_and_depth(r, v).0
}

/// The shape hash of `v` as a body for `r`, and how deep it nests (one walk for both).
fn shape_and_depth(r: &ResourceInfo, v: &Value) -> (u64, usize) {
    use std::hash::{BuildHasher, Hasher};
    let mut h = clean().hasher.build_hasher();
    h.write(r.plural.as_bytes());
    let depth = hash_shape(v, &mut h);
    (h.finish(), depth)
}

/// Whether a shape decoded clean before.
fn remembered(shape: u64) -> bool {
    clean()
        .seen
        .lock()
        .map(|s| s.contains(&shape))
        .unwrap_or(false)
}

fn clean() -> &'static Clean {
    static CLEAN: std::sync::OnceLock<Clean> = std::sync::OnceLock::new();
    CLEAN.get_or_init(|| Clean {
        hasher: std::collections::hash_map::RandomState::new(),
        seen: std::sync::Mutex::new(std::collections::HashSet::new()),
    })
}

/// Feed the shape of `v` to `h`: object keys in order, array elements' shapes, and a tag per
/// scalar class. Two bodies with one shape have the same unknown fields and decode alike.
/// Returns how deep `v` nests.
fn hash_shape(v: &Value, h: &mut impl std::hash::Hasher) -> usize {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(_) => h.write_u8(1),
        // Number and string classes: a value of another class may not decode where this one
        // did (an int32 field and 2^31, a timestamp field and "x").
        Value::Number(n) => h.write_u8(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if i32::try_from(i).is_ok() => 20,
            (Some(_), _) => 21,
            (None, Some(_)) => 22,
            (None, None) => 23,
        }),
        Value::String(s) => h.write_u8(30 + string_class(s)),
        Value::Array(a) => {
            h.write_u8(4);
            h.write_usize(a.len());
            return 1 + a.iter().map(|x| hash_shape(x, h)).max().unwrap_or(0);
        }
        Value::Object(m) => {
            h.write_u8(5);
            h.write_usize(m.len());
            let mut d = 0;
            for (k, x) in m {
                h.write(k.as_bytes());
                h.write_u8(0xff);
                d = d.max(hash_shape(x, h));
            }
            return 1 + d;
        }
    }
    0
}

/// Whether a string would decode as an RFC 3339 time, the one string format the exact types
/// check on their own (base64 bytes are checked by the kinds that have them, e.g. ConfigMap
/// `binaryData`, so pure alphanumeric names do not split shapes).
fn string_class(s: &str) -> u8 {
    let b = s.as_bytes();
    let time = b.len() >= 20
        && b.get(4) == Some(&b'-')
        && b.get(10).is_some_and(|c| *c == b'T' || *c == b't')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok();
    u8::from(time)
}

/// `spec.template.spec.containers.0.imagex` -> `spec.template.spec.containers[0].imagex`.
fn render(p: &str) -> String {
    let mut s = String::new();
    for part in p.split('.').filter(|x| !x.is_empty() && *x != "?") {
        if part.chars().all(|c| c.is_ascii_digit()) {
            s.push_str(&format!("[{part}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(part);
        }
    }
    s
}

/// Fields of `v` that the resource's schema does not know (strategic-merge directives such
/// as `$setElementOrder/containers` or `$patch` are not fields and are not reported).
pub fn unknown(r: &ResourceInfo, v: &Value) -> Vec<String> {
    let shape = shape_of(r, v);
    if remembered(shape) {
        return Vec::new();
    }
    let typed = crate::kinds::of(r).typed_check(v);
    let decoded = typed.error.is_none();
    let found: Vec<String> = typed
        .unknown
        .into_iter()
        .filter(|p| !p.split(['.', '[']).any(|seg| seg.starts_with('$')))
        .collect();
    if decoded && found.is_empty() {
        remember(shape);
    }
    found
}

fn remember(shape: u64) {
    if let Ok(mut s) = clean().seen.lock() {
        if s.len() >= CLEAN_SHAPES {
            s.clear();
        }
        s.insert(shape);
    }
}

/// An object about to be stored decodes as its kind's exact type, so every component can
/// read it (Kubernetes decodes every write into its Go type; an int32 field holds no 2^31),
/// and nests no deeper than [`MAX_DEPTH`]. Shapes found clean before skip the decode.
pub fn check_decodes(r: &ResourceInfo, v: &Value) -> Result<(), ApiError> {
    let (shape, depth) = shape_and_depth(r, v);
    if depth > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: the object nests {depth} levels deep; at most {MAX_DEPTH} are allowed",
            r.kind, r.version, r.kind
        )));
    }
    if remembered(shape) {
        return Ok(());
    }
    let typed = crate::kinds::of(r).typed_check(v);
    if let Some(e) = typed.error {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            r.kind, r.version, r.kind
        )));
    }
    if typed
        .unknown
        .iter()
        .all(|p| p.split(['.', '[']).any(|seg| seg.starts_with('$')))
    {
        remember(shape);
    }
    Ok(())
}

/// Objects may nest at most this deep (JSON parsing stops at 128: deeper could be stored but
/// never read back).
pub const MAX_DEPTH: usize = 100;

/// What to do about unknown fields, from `fieldValidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse the request.
    Strict,
    /// Accept, with a warning per field.
    Warn,
    /// Accept silently.
    Ignore,
}

impl Mode {
    /// Parse the query parameter (absent means Warn, as in Kubernetes).
    pub fn parse(p: Option<&str>) -> Result<Mode, ApiError> {
        match p {
            None | Some("") | Some("Warn") => Ok(Mode::Warn),
            Some("Strict") => Ok(Mode::Strict),
            Some("Ignore") => Ok(Mode::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

/// Remove the field at a rendered path (`spec.template.spec.containers[0].imagex`).
pub fn remove_path(v: &mut Value, path: &str) {
    let mut elems: Vec<String> = Vec::new();
    for part in path.split('.') {
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (k, Some(rest)),
            None => (part, None),
        };
        elems.push(key.to_string());
        if let Some(rest) = idx {
            for i in rest.split('[') {
                elems.push(format!("#{}", i.trim_end_matches(']')));
            }
        }
    }
    let Some((last, parents)) = elems.split_last() else {
        return;
    };
    let mut cur = v;
    for e in parents {
        let next = match e.strip_prefix('#') {
            Some(i) => i.parse::<usize>().ok().and_then(|i| cur.get_mut(i)),
            None => cur.get_mut(e.as_str()),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Check a request body: an error in Strict mode; otherwise unknown fields are dropped (as
/// Kubernetes never stores them) and their paths returned, to warn about (none in Ignore
/// mode).
pub fn check(r: &ResourceInfo, v: &mut Value, mode: Mode) -> Result<Vec<String>, ApiError> {
    let unknown = unknown(r, v);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    if mode == Mode::Strict {
        let list: Vec<String> = unknown.iter().map(|f| message(f)).collect();
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            r.kind,
            r.version,
            r.kind,
            list.join(", ")
        )));
    }
    for f in &unknown {
        remove_path(v, f);
    }
    Ok(if mode == Mode::Warn {
        unknown
    } else {
        Vec::new()
    })
}

fn message(path: &str) -> String {
    format!("unknown field \"{path}\"")
}

/// Add a `Warning: 299 - "unknown field \"...\""` header per unknown field.
pub fn add_warnings(resp: &mut axum::response::Response, unknown: &[String]) {
    for path in unknown {
        let text = format!("299 - \"{}\"", message(path).replace('"', "\\\""));
        if let Ok(h) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append("Warning", h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coxswain_api::resources::by_plural;
    use serde_json::json;

    #[test]
    fn a_remembered_shape_does_not_let_another_class_of_value_through() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        let obj = |replicas: Value, time: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
                "status": {"conditions": [{"type": "Available", "status": "True",
                    "lastTransitionTime": time}]}})
        };
        let t = "2026-01-01T00:00:00Z";
        check_decodes(d, &obj(json!(3), t)).unwrap();
        check_decodes(d, &obj(json!(4), t)).unwrap();
        let e = check_decodes(d, &obj(json!(2147483648u64), t)).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("spec.replicas"), "{}", e.message);
        let e = check_decodes(d, &obj(json!(3), "yesterday-ish")).unwrap_err();
        assert!(e.message.contains("lastTransitionTime"), "{}", e.message);
        let mut deep = json!(1);
        for _ in 0..150 {
            deep = json!({ "d": deep });
        }
        let mut o = obj(json!(3), t);
        o["metadata"]["x"] = deep;
        let e = check_decodes(d, &o).unwrap_err();
        assert!(e.message.contains("nests"), "{}", e.message);
    }

    #[test]
    fn finds_unknown_fields_with_their_paths() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        let v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicax": 3, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagex": "j"}]}}}});
        assert_eq!(
            unknown(d, &v),
            vec!["spec.replicax", "spec.template.spec.containers[0].imagex"]
        );
        assert!(check(d, &mut v.clone(), Mode::Strict).is_err());
        let mut w = v.clone();
        assert_eq!(check(d, &mut w, Mode::Warn).unwrap().len(), 2);
        assert!(unknown(d, &w).is_empty(), "dropped: {w}");
        assert_eq!(w["spec"]["template"]["spec"]["containers"][0]["image"], "i");
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}});
        assert!(unknown(d, &ok).is_empty());
    }

    #[test]
    fn a_remembered_clean_shape_still_finds_new_fields() {
        let p = by_plural("", "v1", "pods").unwrap();
        let pod = |extra: Option<(&str, Value)>| {
            let mut c = json!({"name": "c", "image": "nginx"});
            if let Some((k, v)) = extra {
                c[k] = v;
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                "spec": {"containers": [c]}})
        };
        // The same shape twice (the second from the remembered set), other values.
        assert!(unknown(p, &pod(None)).is_empty());
        let mut again = pod(None);
        again["spec"]["containers"][0]["image"] = json!("redis");
        assert!(unknown(p, &again).is_empty());
        // A key the schema lacks changes the shape: found every time.
        for _ in 0..2 {
            assert_eq!(
                unknown(p, &pod(Some(("imagex", json!("x"))))),
                vec!["spec.containers[0].imagex"]
            );
        }
        // A second container with an unknown field, after one-container pods were clean.
        let mut two = pod(None);
        two["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "d", "image": "i", "portz": 1}));
        assert_eq!(unknown(p, &two), vec!["spec.containers[1].portz"]);
        assert!(remembered(shape_of(p, &again)));
        assert!(!remembered(shape_of(p, &two)));
        // A body that does not decode (a string where a list belongs) may not have been walked
        // to its end: its shape is not remembered, so it is checked in full each time.
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": "x", "nodeNamex": "n"}});
        unknown(p, &bad);
        assert!(!remembered(shape_of(p, &bad)));
        // The same shape for another resource is another entry.
        let cm = by_plural("", "v1", "configmaps").unwrap();
        assert!(!remembered(shape_of(cm, &again)));
    }
}
