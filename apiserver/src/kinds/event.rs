//! v1 Event, also served as events.k8s.io/v1 Event (the same objects, as in Kubernetes:
//! `regarding`/`note`/`reportingController`/`deprecated*` there are `involvedObject`/
//! `message`/`reportingComponent`/... here): defaults (`type: Normal`, `count: 1` for an
//! old-style event), validation (`involvedObject`; a new-style event, with `eventTime`,
//! needs its reporter, action and reason; events.k8s.io's own rules), any non-empty name,
//! kubectl's columns, the field selectors `kubectl get events` and `describe` use, and expiry
//! after `--event-ttl-seconds` (Kubernetes' `--event-ttl`).

use super::shared::default;
use super::{field, Kind, NameRule, SelectableField};
use crate::table::{age, col, n, s, Column};
use crate::AppState;
use coxswain_api::resources::{ResourceInfo, EVENTS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};
use std::sync::Arc;

/// The Event kind.
pub struct Event;

impl Kind for Event {
    fn info(&self) -> &'static ResourceInfo {
        &EVENTS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Event>(v)
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Any
    }

    fn defaults(&self, v: &mut Value) {
        let new_style = has(v, "eventTime");
        if let Some(m) = v.as_object_mut() {
            default(m, "type", json!("Normal"));
            if !new_style {
                default(m, "count", json!(1));
            }
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        if v.get("involvedObject").is_none_or(Value::is_null) {
            causes.push(Cause::required("involvedObject"));
        }
        if !has(v, "eventTime") {
            return;
        }
        // A new-style event names who reported what (Kubernetes' legacyValidateEvent).
        for (field, limit) in [
            ("reportingComponent", 0),
            ("reportingInstance", 128),
            ("action", 128),
            ("reason", 128),
        ] {
            let text = s(v, &format!("/{field}"));
            if text.is_empty() {
                causes.push(Cause::required(field));
            } else if limit > 0 && text.chars().count() > limit {
                causes.push(Cause::invalid(
                    field,
                    "\"\"",
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if s(v, "/message").chars().count() > 1024 {
            causes.push(Cause::invalid(
                "message",
                "\"\"",
                "can have at most 1024 characters",
            ));
        }
    }

    fn convert(&self, v: &mut Value, to: &str) {
        let Some(m) = v.as_object_mut() else {
            return;
        };
        let (from, into): (&[&str], &[&str]) = if to == EVENTS_V1 {
            (&CORE_FIELDS, &EVENTS_FIELDS)
        } else {
            (&EVENTS_FIELDS, &CORE_FIELDS)
        };
        for (a, b) in from.iter().zip(into.iter()) {
            if let Some(x) = m.remove(*a) {
                m.insert(b.to_string(), x);
            }
        }
        if to == EVENTS_V1 {
            m.entry("eventTime").or_insert(Value::Null);
            for k in ["reportingController", "reportingInstance", "action"] {
                if m.get(k).is_some_and(|x| x == "") {
                    m.remove(k);
                }
            }
        } else {
            for k in ["reportingComponent", "reportingInstance"] {
                m.entry(k).or_insert(json!(""));
            }
        }
    }

    fn check_version(&self, v: &Value, api_version: &str, causes: &mut Vec<Cause>) {
        if api_version != EVENTS_V1 {
            return;
        }
        // events.k8s.io/v1's own rules (reported with the core field names, as Kubernetes does).
        if !has(v, "eventTime") {
            causes.push(Cause::required("eventTime"));
        }
        let t = s(v, "/type");
        if t != "Normal" && t != "Warning" {
            causes.push(Cause::invalid(
                "type",
                "\"\"",
                &format!("has invalid value: {t}"),
            ));
        }
        for (sent, core) in [
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
        ] {
            if has(v, sent) && v[sent] != json!(0) {
                causes.push(Cause::invalid(core, "\"\"", "needs to be unset"));
            }
        }
        let src = &v["deprecatedSource"];
        if [&src["component"], &src["host"]]
            .iter()
            .any(|x| x.as_str().is_some_and(|x| !x.is_empty()))
        {
            causes.push(Cause::invalid("source", "\"\"", "needs to be unset"));
        }
        if let Some(series) = v.get("series").filter(|x| !x.is_null()) {
            if series["count"].as_i64().unwrap_or(0) < 2 {
                causes.push(Cause::invalid(
                    "series.count",
                    "\"\"",
                    "should be at least 2",
                ));
            }
            if series.get("lastObservedTime").is_none_or(Value::is_null) {
                causes.push(Cause::required("series.lastObservedTime"));
            }
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Subobject", "string", 1),
            col("Source", "string", 1),
            col("Message", "string", 0),
            col("First Seen", "string", 1),
            col("Count", "string", 1),
            col("Name", "string", 1),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let kind = s(v, "/involvedObject/kind").to_ascii_lowercase();
        let name = s(v, "/involvedObject/name");
        let object = if name.is_empty() {
            kind
        } else {
            format!("{kind}/{name}")
        };
        let first = first_non_empty(v, &["/firstTimestamp", "/eventTime"]);
        let series = v.get("series").filter(|x| !x.is_null());
        let (last, count) = match series {
            Some(sr) => (s(sr, "/lastObservedTime"), n(sr, "/count")),
            None => (
                last_seen(v).unwrap_or_default(),
                Some(n(v, "/count")).filter(|c| *c > 0).unwrap_or(1),
            ),
        };
        let component = first_non_empty(v, &["/source/component", "/reportingComponent"]);
        let instance = first_non_empty(v, &["/source/host", "/reportingInstance"]);
        let source = if instance.is_empty() {
            component
        } else {
            format!("{component}, {instance}")
        };
        vec![
            json!(age(&json!(last))),
            json!(s(v, "/type")),
            json!(s(v, "/reason")),
            json!(object),
            json!(s(v, "/involvedObject/fieldPath")),
            json!(source),
            json!(s(v, "/message").trim()),
            json!(age(&json!(first))),
            json!(count.to_string()),
            json!(s(v, "/metadata/name")),
        ]
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] = &[
            field("involvedObject.kind", "/involvedObject/kind"),
            field("involvedObject.namespace", "/involvedObject/namespace"),
            field("involvedObject.name", "/involvedObject/name"),
            field("involvedObject.uid", "/involvedObject/uid"),
            field("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            field(
                "involvedObject.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            field("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            // events.k8s.io/v1's names for the same fields.
            field("regarding.kind", "/involvedObject/kind"),
            field("regarding.namespace", "/involvedObject/namespace"),
            field("regarding.name", "/involvedObject/name"),
            field("regarding.uid", "/involvedObject/uid"),
            field("regarding.apiVersion", "/involvedObject/apiVersion"),
            field(
                "regarding.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            field("regarding.fieldPath", "/involvedObject/fieldPath"),
            field("reportingController", "/reportingComponent"),
            field("reason", "/reason"),
            field("reportingComponent", "/reportingComponent"),
            field("source", "/source/component"),
            field("type", "/type"),
        ];
        FIELDS
    }
}

/// The events.k8s.io version the same objects are served at.
const EVENTS_V1: &str = "events.k8s.io/v1";
/// Fields core/v1 and events.k8s.io/v1 name differently, pairwise.
const CORE_FIELDS: [&str; 7] = [
    "involvedObject",
    "message",
    "source",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "reportingComponent",
];
const EVENTS_FIELDS: [&str; 7] = [
    "regarding",
    "note",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
    "reportingController",
];

/// Whether a field is present and not null.
fn has(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

fn first_non_empty(v: &Value, pointers: &[&str]) -> String {
    pointers
        .iter()
        .map(|p| s(v, p))
        .find(|x| !x.is_empty())
        .unwrap_or_default()
}

/// When an Event was last seen: `lastTimestamp`, else `eventTime`, else its creation.
fn last_seen(v: &Value) -> Option<String> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .map(|p| s(v, p))
    .find(|x| !x.is_empty())
}

/// Delete Events older than `ttl`, checking every `ttl / 10` (at most every minute).
pub async fn expire(st: Arc<AppState>, ttl: std::time::Duration) {
    let period = (ttl / 10).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::time::sleep(period).await;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(ttl).unwrap_or_default();
        let (events, _) = st.cache.list(&EVENTS, &crate::cache::Filter::default());
        for e in events {
            let v: Value = serde_json::from_slice(&e.bytes).unwrap_or_default();
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .filter_map(|p| v.at(p).and_then(Value::as_str))
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .max();
            if last.is_some_and(|t| t < cutoff) {
                if let Err(err) = st.remove(&EVENTS, &e.namespace, &e.name, e.rev, v).await {
                    tracing::debug!(error = %err, "expiring event");
                }
            }
        }
    }
}
