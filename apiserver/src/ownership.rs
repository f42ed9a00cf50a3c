//! `metadata.managedFields`: who owns which fields. Writes that name a `fieldManager` take
//! ownership of what they changed (operation `Update`); server-side apply (`Apply`) owns
//! exactly the fields of its configuration, conflicts with other owners holding different
//! values (409 unless `force=true`), and drops fields it stopped applying that nobody else owns.

use coxswain_api::managed::{self, FieldSet};
use coxswain_api::patch;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use serde_json::{json, Value};

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Entry {
    manager: String,
    operation: String,
    raw: Value,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.at("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_string(),
            operation: e["operation"].as_str().unwrap_or("").to_string(),
            fields: managed::from_fields_v1(&e["fieldsV1"]),
            raw: e.clone(),
        })
        .collect()
}

fn store(obj: &mut Value, list: Vec<Entry>, api_version: &str) {
    let out: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut raw = e.raw;
            if raw.get("fieldsV1").map(managed::from_fields_v1) != Some(e.fields.clone()) {
                raw = json!({"manager": e.manager, "operation": e.operation,
                    "apiVersion": api_version, "time": now(), "fieldsType": "FieldsV1",
                    "fieldsV1": managed::to_fields_v1(&e.fields)});
            }
            raw
        })
        .collect();
    if let Some(m) = obj["metadata"].as_object_mut() {
        if out.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(out));
        }
    }
}

/// Record that `manager` wrote `new` over `old` (`None` on create): it now owns what it
/// changed, and others stop owning those fields.
pub fn record_update(r: &ResourceInfo, old: Option<&Value>, new: &mut Value, manager: &str) {
    let changed = match old {
        Some(o) => managed::changed(o, new),
        None => managed::fields_of(new),
    };
    if changed.is_empty() {
        return;
    }
    let mut list = entries(new);
    for e in &mut list {
        if !(e.manager == manager && e.operation == "Update") {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(e) => e.fields.extend(changed),
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            raw: Value::Null,
            fields: changed,
        }),
    }
    store(new, list, &r.api_version());
}

/// Server-side apply of `config` by `manager` onto `live`.
pub fn apply(
    r: &ResourceInfo,
    name: &str,
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let applied = managed::fields_of(config);
    let mut list = entries(live);
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in list
        .iter_mut()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        let clash: Vec<Vec<String>> = e
            .fields
            .iter()
            .filter(|p| applied.contains(*p) && p.last().is_none_or(|l| l != "."))
            .filter(|p| managed::value_at(live, p) != managed::value_at(config, p))
            .cloned()
            .collect();
        for p in clash {
            if force {
                e.fields.remove(&p);
            } else {
                conflicts.push((e.manager.clone(), managed::display(&p)));
            }
        }
    }
    if !conflicts.is_empty() {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(m, f)| format!("conflict with \"{m}\" using {}: {f}", r.api_version()))
            .collect();
        let n = conflicts.len();
        let mut e = ApiError::conflict(r, name, "");
        e.message = format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            lines.join("\n")
        );
        if let Some(d) = e.details.as_mut() {
            d.causes = conflicts
                .iter()
                .map(|(m, f)| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{m}\" using {}", r.api_version()),
                    field: f.clone(),
                })
                .collect();
        }
        return Err(e);
    }
    let mut out = live.clone();
    let previously: FieldSet = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = list
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Deepest paths first, so a removed list item does not hide its own fields.
    let mut dropped: Vec<&Vec<String>> = previously
        .iter()
        .filter(|p| !applied.contains(*p) && !others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        managed::remove_at(&mut out, p);
    }
    patch::strategic_merge_patch(&mut out, config).map_err(|e| ApiError::bad_request(e.0))?;
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        raw: Value::Null,
        fields: applied,
    });
    store(&mut out, list, &r.api_version());
    Ok(out)
}

/// Managed fields of a new object created by `manager` (`Apply` or `Update`).
pub fn on_create(r: &ResourceInfo, obj: &mut Value, manager: &str, operation: &str) {
    let fields = managed::fields_of(obj);
    store(
        obj,
        vec![Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            raw: Value::Null,
            fields,
        }],
        &r.api_version(),
    );
}
