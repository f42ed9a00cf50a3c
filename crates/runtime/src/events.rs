//! [`Recorder`]: writes core/v1 Events about objects (Scheduled, Pulling, SuccessfulCreate...),
//! fire-and-forget, so `kubectl get events` tells what each component did.

use coxswain_client::{Api, Client, Object};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// Records events for one component.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
}

/// A reference to the object an event is about.
pub fn object_ref<K: Object>(k: &K) -> ObjectReference {
    let m = k.metadata();
    ObjectReference {
        api_version: Some(K::API_VERSION.to_string()),
        kind: Some(K::KIND.to_string()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    /// A recorder for `component` (e.g. `deployment-controller`), optionally on a host.
    pub fn new(client: &Client, component: &str, host: Option<&str>) -> Recorder {
        Recorder {
            client: client.clone(),
            component: component.to_string(),
            host: host.map(str::to_string),
        }
    }

    /// Record an event (`type_` is `Normal` or `Warning`); does not wait for the write.
    pub fn record(&self, about: ObjectReference, type_: &str, reason: &str, message: String) {
        let ns = about
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let now = chrono::Utc::now();
        let name = format!(
            "{}.{:x}",
            about.name.as_deref().unwrap_or("object"),
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: about,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: self.host.clone().or_else(|| Some(self.component.clone())),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(&self.client, &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&ev).await {
                tracing::debug!(error = %e, "recording event failed");
            }
        });
    }
}
