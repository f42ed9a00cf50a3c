//! v1 Event: defaults (`type: Normal`, `count: 1`), `involvedObject` required, any non-empty
//! name, kubectl's columns, the field selectors `kubectl get events` and `describe` use, and
//! expiry after `--event-ttl-seconds` (Kubernetes' `--event-ttl`).

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
        if let Some(m) = v.as_object_mut() {
            default(m, "type", json!("Normal"));
            default(m, "count", json!(1));
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        if v.get("involvedObject").is_none_or(Value::is_null) {
            causes.push(Cause::required("involvedObject"));
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
        vec![
            json!(age(&json!(last_seen(v).unwrap_or_default()))),
            json!(s(v, "/type")),
            json!(s(v, "/reason")),
            json!(format!("{kind}/{}", s(v, "/involvedObject/name"))),
            json!(s(v, "/involvedObject/fieldPath")),
            json!(s(v, "/source/component")),
            json!(s(v, "/message")),
            json!(age(&v["firstTimestamp"])),
            json!(n(v, "/count").to_string()),
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
            field("reason", "/reason"),
            field("reportingComponent", "/reportingComponent"),
            field("source", "/source/component"),
            field("type", "/type"),
        ];
        FIELDS
    }
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
