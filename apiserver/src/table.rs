//! Server-side Tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`) built from each
//! kind's columns and cells (`crate::kinds`), as a real API server does, and the formatting
//! helpers the kinds' cells share (kubectl's ages, `<none>`).

use crate::cache::Obj;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::At;
use serde_json::{json, Value};
use std::sync::Arc;

/// kubectl's human duration (`45s`, `3m12s`, `5h`, `2d3h`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    format!("{}y", h / (24 * 365))
}

/// kubectl's age of a timestamp.
pub fn age(ts: &Value) -> String {
    match ts
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => {
            human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        }
        None => "<unknown>".into(),
    }
}

/// A scalar at a pointer as text (`""` when absent).
pub fn s(v: &Value, p: &str) -> String {
    match v.at(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// An integer at a pointer (0 when absent).
pub fn n(v: &Value, p: &str) -> i64 {
    v.at(p).and_then(Value::as_i64).unwrap_or(0)
}

/// `<none>` for an empty cell.
pub fn or_none(x: String) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x
    }
}

/// A Table column definition.
pub type Column = Value;

/// A column: name, type, and priority (0: always shown; 1: with `-o wide`).
pub fn col(name: &str, ty: &str, priority: u8) -> Column {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" },
        "description": format!("{name} of the object."), "priority": priority})
}

/// A Table of parsed objects. Each row carries the object's metadata, or the whole object when
/// the client asked for `includeObject=Object` (kubectl does for `--sort-by`).
pub fn table_of_values(r: &ResourceInfo, objs: &[Value], rev: u64, full: bool) -> Value {
    let kind = crate::kinds::of(r);
    let rows: Vec<Value> = objs
        .iter()
        .map(|v| {
            let cells = kind.cells(v);
            let object = if full {
                v.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": v["metadata"]})
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let columns = kind.columns();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rev.to_string()},
        "columnDefinitions": columns, "rows": rows})
}

/// A Table of cached objects.
pub fn table(r: &ResourceInfo, objs: &[Arc<Obj>], rev: u64, full: bool) -> Value {
    let vals: Vec<Value> = objs
        .iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect();
    table_of_values(r, &vals, rev, full)
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(10 * 3600), "10h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }
}
