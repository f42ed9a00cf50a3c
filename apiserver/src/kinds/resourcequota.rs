//! v1 ResourceQuota: hard limits per namespace on object counts (`pods`, `services`,
//! `count/deployments.apps`, ...) and compute (`requests.cpu`, `limits.memory`, ...). Its
//! validation, kubectl's columns (`pods: 1/10` under REQUEST, `limits.*` under LIMIT), the
//! ResourceQuota admission of every create ([`admit`]: what the object would use, from its
//! kind's `quota_usage`; 403 `exceeded quota` or `must specify` as Kubernetes words them;
//! `status.used` raised before the object is stored), and the usage recount
//! ([`keep_usage`], the quota controller's work, done here from the cache every 5 s, which
//! also brings usage down when objects go).

use super::Kind;
use crate::state::AppState;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, RESOURCEQUOTAS, RESOURCES};
use coxswain_api::status::{ApiError, Cause};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A usage over a quota: (key, requested, used, limit), milli-units.
type Over = (String, i128, i128, i128);

/// The ResourceQuota kind.
pub struct ResourceQuota;

/// The names a quota may set without a `/`.
const STANDARD: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// The scopes a quota may name.
const SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
];

/// A quota's scopes as (scope, operator, values): `spec.scopes` (each `Exists`) and
/// `spec.scopeSelector.matchExpressions`.
fn scopes_of(q: &Value) -> Vec<(String, String, Vec<String>)> {
    let named = q
        .at("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()));
    let selected = q
        .at("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let values = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (s(e, "/scopeName"), s(e, "/operator"), values)
        });
    named.chain(selected).collect()
}

/// Whether a quota with these scopes counts the object (every scope must hold).
fn in_scope(r: &ResourceInfo, v: &Value, scopes: &[(String, String, Vec<String>)]) -> bool {
    scopes
        .iter()
        .all(|(scope, op, values)| super::of(r).in_quota_scope(v, scope, op, values))
}

/// The usage keys every object of a resource counts for (`count/<plural>[.<group>]`, and the
/// legacy names of the core kinds that have one).
pub fn count_keys(r: &ResourceInfo) -> Vec<String> {
    let mut out = vec![if r.group.is_empty() {
        format!("count/{}", r.plural)
    } else {
        format!("count/{}.{}", r.plural, r.group)
    }];
    // The legacy count names, unless the kind counts that name itself (pods: running ones).
    if r.group.is_empty()
        && STANDARD.contains(&r.plural)
        && !super::of(r).quota_keys().contains(&r.plural)
    {
        out.push(r.plural.to_string());
    }
    out
}

/// A usage amount as a quantity: millicores for `cpu` keys, bytes for memory and storage,
/// a plain count for the rest.
fn render(key: &str, milli: i128) -> String {
    if key.ends_with("cpu") {
        if milli % 1000 == 0 {
            (milli / 1000).to_string()
        } else {
            format!("{milli}m")
        }
    } else if !(key.contains("memory") || key.contains("storage")) {
        (milli / 1000).to_string()
    } else {
        let b = milli / 1000;
        match b {
            b if b != 0 && b % (1 << 30) == 0 => format!("{}Gi", b >> 30),
            b if b != 0 && b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
            b if b != 0 && b % 1024 == 0 => format!("{}Ki", b >> 10),
            b => b.to_string(),
        }
    }
}

/// A quantity of a usage key in milli-units.
fn amount(key: &str, q: &Value) -> i128 {
    super::limitrange::milli(if key.ends_with("cpu") { "cpu" } else { key }, q).unwrap_or(0)
}

fn quotas(st: &AppState, ns: &str) -> Vec<Value> {
    let f = crate::cache::Filter {
        namespace: Some(ns.to_string()),
        ..Default::default()
    };
    let (all, _) = st.cache.list(&RESOURCEQUOTAS, &f);
    all.iter()
        .filter_map(|o| serde_json::from_slice(&o.bytes).ok())
        .collect()
}

/// What an object uses: its kind's compute usage and its counts.
fn usage(r: &ResourceInfo, v: &Value) -> BTreeMap<String, i128> {
    let kind = super::of(r);
    let mut out: BTreeMap<String, i128> = count_keys(r).into_iter().map(|k| (k, 1000)).collect();
    for (k, m) in kind.quota_usage(v) {
        *out.entry(k).or_default() += m;
    }
    out
}

/// The ResourceQuota admission plugin on a create in `ns`.
pub async fn admit(
    st: &AppState,
    r: &'static ResourceInfo,
    ns: &str,
    v: &Value,
) -> Result<(), ApiError> {
    if !r.namespaced || ns.is_empty() {
        return Ok(());
    }
    let qs = quotas(st, ns);
    if qs.is_empty() {
        return Ok(());
    }
    let name = s(v, "/metadata/name");
    let who = format!("{} \"{name}\"", r.qualified_plural());
    let wanted = usage(r, v);
    for q in qs {
        let hard = q
            .at("/status/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let used = q
            .at("/status/used")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let tracked: Vec<&String> = hard
            .keys()
            .filter(|k| wanted.contains_key(*k) || super::of(r).quota_keys().contains(&k.as_str()))
            .collect();
        if tracked.is_empty() || !in_scope(r, v, &scopes_of(&q)) {
            continue;
        }
        let qname = s(&q, "/metadata/name");
        // Compute quotas need every container to say what it uses.
        let missing =
            super::of(r).quota_missing(v, &tracked.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        if !missing.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{who} is forbidden: failed quota: {qname}: must specify {}",
                missing.join("; ")
            )));
        }
        let unknown: Vec<&str> = tracked
            .iter()
            .filter(|k| !used.contains_key(**k))
            .map(|k| k.as_str())
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{who} is forbidden: status unknown for quota: {qname}, resources: {}",
                unknown.join(",")
            )));
        }
        let mut over = Vec::new();
        let mut new_used = used.clone();
        for k in &tracked {
            let Some(add) = wanted.get(*k).filter(|a| **a > 0) else {
                continue;
            };
            let now = used.get(*k).map_or(0, |u| amount(k, u));
            let limit = amount(k, &hard[*k]);
            if now + add > limit {
                over.push((k.to_string(), *add, now, limit));
            }
            new_used.insert(k.to_string(), json!(render(k, now + add)));
        }
        if !over.is_empty() {
            let part = |f: &dyn Fn(&Over) -> i128| {
                over.iter()
                    .map(|o| format!("{}={}", o.0, render(&o.0, f(o))))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(ApiError::forbidden(format!(
                "{who} is forbidden: exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                part(&|o| o.1),
                part(&|o| o.2),
                part(&|o| o.3)
            )));
        }
        // Raise usage at once; the recount keeps it true.
        let body = json!({"status": {"used": new_used}});
        let _ = st
            .write(
                &RESOURCEQUOTAS,
                ns,
                &qname,
                crate::state::WriteOptions {
                    internal: true,
                    ..Default::default()
                },
                &|cur: &Value| {
                    let mut n = cur.clone();
                    n["status"]["used"] = body["status"]["used"].clone();
                    Ok(n)
                },
            )
            .await;
    }
    Ok(())
}

/// A quota's status from the cache: its hard limits and what the namespace uses of them.
fn status_of(st: &AppState, q: &Value, hard: &serde_json::Map<String, Value>) -> Value {
    let ns = s(q, "/metadata/namespace");
    let scopes = scopes_of(q);
    let mut used: BTreeMap<String, i128> = hard.keys().map(|k| (k.clone(), 0)).collect();
    let f = crate::cache::Filter {
        namespace: Some(ns.clone()),
        ..Default::default()
    };
    for r in RESOURCES.iter().filter(|r| r.namespaced) {
        let keys = count_keys(r);
        let kind = super::of(r);
        if !hard
            .keys()
            .any(|k| keys.contains(k) || kind.quota_keys().contains(&k.as_str()))
        {
            continue;
        }
        for obj in st.cache.list(r, &f).0 {
            let Ok(v) = serde_json::from_slice::<Value>(&obj.bytes) else {
                continue;
            };
            if !in_scope(r, &v, &scopes) {
                continue;
            }
            for (k, m) in usage(r, &v) {
                if let Some(u) = used.get_mut(&k) {
                    *u += m;
                }
            }
        }
    }
    let used: serde_json::Map<String, Value> = used
        .iter()
        .map(|(k, m)| (k.clone(), json!(render(k, *m))))
        .collect();
    json!({"hard": hard, "used": used})
}

/// Recount every quota's usage from the cache every `period`.
pub async fn keep_usage(st: std::sync::Arc<AppState>, period: std::time::Duration) {
    loop {
        tokio::time::sleep(period).await;
        let (all, _) = st
            .cache
            .list(&RESOURCEQUOTAS, &crate::cache::Filter::default());
        for o in all {
            let Ok(q) = serde_json::from_slice::<Value>(&o.bytes) else {
                continue;
            };
            let ns = s(&q, "/metadata/namespace");
            let hard = q
                .at("/spec/hard")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let status = status_of(&st, &q, &hard);
            if q.get("status") == Some(&status) {
                continue;
            }
            let name = s(&q, "/metadata/name");
            let opts = crate::state::WriteOptions {
                internal: true,
                ..Default::default()
            };
            let change = |cur: &Value| {
                let mut n = cur.clone();
                n["status"] = status.clone();
                Ok(n)
            };
            let res = st.write(&RESOURCEQUOTAS, &ns, &name, opts, &change).await;
            if let Err(e) = res {
                tracing::debug!(error = %e, quota = name, "quota usage not written");
            }
        }
    }
}

impl Kind for ResourceQuota {
    fn info(&self) -> &'static ResourceInfo {
        &RESOURCEQUOTAS
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::RESOURCE_QUOTA_SCHEMA)
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::ResourceQuota>(v)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
    }

    fn admit_create(&self, st: &AppState, v: &mut Value) -> Result<(), ApiError> {
        // Counted at once, so a new quota holds from its first moment.
        let hard = v
            .at("/spec/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        v["status"] = status_of(st, v, &hard);
        Ok(())
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        for (i, scope) in v
            .at("/spec/scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = scope.as_str().unwrap_or("");
            if !SCOPES.contains(&name) {
                c.push(Cause::not_supported(
                    &format!("spec.scopes[{i}]"),
                    name,
                    SCOPES,
                ));
            }
        }
        let exprs = v
            .at("/spec/scopeSelector/matchExpressions")
            .and_then(Value::as_array);
        for (i, e) in exprs.into_iter().flatten().enumerate() {
            let f = format!("spec.scopeSelector.matchExpressions[{i}]");
            let name = s(e, "/scopeName");
            if !SCOPES.contains(&name.as_str()) {
                c.push(Cause::not_supported(
                    &format!("{f}.scopeName"),
                    &name,
                    SCOPES,
                ));
            }
            let op = s(e, "/operator");
            let has_values = e["values"].as_array().is_some_and(|x| !x.is_empty());
            match op.as_str() {
                "In" | "NotIn" if !has_values => c.push(Cause::required_because(
                    &format!("{f}.values"),
                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                )),
                "Exists" | "DoesNotExist" if has_values => c.push(Cause::invalid(
                    &format!("{f}.values"),
                    format!("{:?}", e["values"]),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => c.push(Cause::not_supported(
                    &format!("{f}.operator"),
                    other,
                    &["DoesNotExist", "Exists", "In", "NotIn"],
                )),
            }
        }
        for (k, q) in v
            .at("/spec/hard")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let f = format!("spec.hard[{k}]");
            if !k.contains('/') && !STANDARD.contains(&k.as_str()) {
                c.push(Cause::invalid(
                    &f,
                    format!("\"{k}\""),
                    "must be a standard resource for quota",
                ));
            }
            let text = q
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| q.to_string());
            if text.starts_with('-') {
                c.push(Cause::invalid(
                    &f,
                    format!("\"{text}\""),
                    "must be greater than or equal to 0",
                ));
            } else if super::limitrange::milli(k, q).is_none() {
                c.push(Cause::invalid(&f, format!("\"{text}\""), "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"));
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Age", "string", 0),
            col("Request", "string", 0),
            col("Limit", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let hard = v
            .at("/status/hard")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let used = v
            .at("/status/used")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let (mut req, mut lim) = (Vec::new(), Vec::new());
        let show = |q: &Value| {
            q.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| q.to_string())
        };
        for (k, h) in &hard {
            let u = used.get(k).map_or("0".to_string(), show);
            let entry = format!("{k}: {u}/{}", show(h));
            if k.split('.').next() == Some("limits") {
                lim.push(entry);
            } else {
                req.push(entry);
            }
        }
        vec![
            json!(s(v, "/metadata/name")),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(req.join(", ")),
            json!(lim.join(", ")),
        ]
    }
}
