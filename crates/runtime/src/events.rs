//! [`Recorder`]: writes core/v1 Events about objects (Scheduled, Pulling, SuccessfulCreate...)
//! in the background, a few at a time, so `kubectl get events` tells what each component
//! did without its events crowding out its own requests. Like client-go's
//! event correlator, a repeat of the same event (same object, type, reason and message)
//! bumps `count` and `lastTimestamp` of the existing Event instead of creating another, and
//! like its spam filter, each source may write 25 events about one object at once and then
//! one every 5 minutes (a ReplicaSet of 100,000 pods gets 25 `SuccessfulCreate` Events, not
//! 100,000; each pod still gets its own few).

use coxswain_client::{Api, Client, Object};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many distinct recent events a recorder remembers for aggregation.
const REMEMBERED: usize = 4096;

/// Event writes in flight at once per recorder: like client-go's broadcaster, events are
/// written in the background by a few workers, so a burst of them never crowds out the
/// component's own requests (node heartbeats, status).
const WRITERS: usize = 4;

/// Events waiting to be written at most; more are dropped (client-go drops too, at 1,000 per
/// broadcaster; this writer serves every node of a simulated kubelet, so it keeps more).
const MAX_QUEUED: usize = 100_000;

/// Aggregation key -> (namespace, event name, count).
type Seen = Arc<Mutex<HashMap<String, (String, String, i32)>>>;

/// Events a source may write about one object at once (client-go's `defaultSpamBurst`).
const SPAM_BURST: f64 = 25.0;
/// Tokens regained per second after that (client-go's `defaultSpamQPS`: one per 5 minutes).
const SPAM_QPS: f64 = 1.0 / 300.0;

/// Source + object -> (tokens left, when last counted): client-go's
/// `EventSourceObjectSpamFilter`, a token bucket per key.
#[derive(Default)]
struct SpamFilter(HashMap<String, (f64, std::time::Instant)>);

impl SpamFilter {
    /// Whether one more event under `key` may be written now.
    fn allow(&mut self, key: &str, now: std::time::Instant) -> bool {
        if !self.0.contains_key(key) && self.0.len() >= REMEMBERED {
            self.0.clear();
        }
        let (tokens, last) = self.0.entry(key.to_string()).or_insert((SPAM_BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * SPAM_QPS).min(SPAM_BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One background write.
enum Write {
    Create(Api<Event>, Box<Event>),
    Count(Api<Event>, String, serde_json::Value),
}

impl Write {
    async fn run(self) {
        let res = match self {
            Write::Create(api, ev) => api.create(&ev).await.map(drop),
            Write::Count(api, name, patch) => api.patch(&name, &patch).await.map(drop),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "recording event failed");
        }
    }
}

/// Run queued writes, at most [`WRITERS`] at a time.
async fn write_events(mut rx: tokio::sync::mpsc::Receiver<Write>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(WRITERS));
    while let Some(w) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            w.run().await;
            drop(slot);
        });
    }
}

/// Records events for one component.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    /// (object uid/name, field path, type, reason, message) -> (namespace, event name, count).
    seen: Seen,
    /// Per-object rate limit of this source (component and host).
    spam: Arc<Mutex<SpamFilter>>,
    writes: tokio::sync::mpsc::Sender<Write>,
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
    /// Must be called inside a tokio runtime (it starts the background writer).
    pub fn new(client: &Client, component: &str, host: Option<&str>) -> Recorder {
        let (writes, rx) = tokio::sync::mpsc::channel(MAX_QUEUED);
        tokio::spawn(write_events(rx));
        Recorder {
            client: client.clone(),
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: Arc::default(),
            spam: Arc::default(),
            writes,
        }
    }

    fn enqueue(&self, w: Write) {
        if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = self.writes.try_send(w) {
            tracing::warn!("event queue full ({MAX_QUEUED}); dropping an event");
        }
    }

    /// A recorder for another component of the same process, sharing this one's writer (so a
    /// process writes at most [`WRITERS`] Events at a time, whatever its components).
    pub fn for_component(&self, component: &str) -> Recorder {
        Recorder {
            component: component.to_string(),
            seen: Arc::default(),
            spam: Arc::default(),
            ..self.clone()
        }
    }

    /// The same recorder (sharing its writer) for events from `host`.
    pub fn on_host(&self, host: &str) -> Recorder {
        Recorder {
            host: Some(host.to_string()),
            seen: Arc::default(),
            spam: Arc::default(),
            ..self.clone()
        }
    }

    /// Record an event (`type_` is `Normal` or `Warning`); does not wait for the write.
    pub fn record(&self, about: ObjectReference, type_: &str, reason: &str, message: String) {
        let ns = about
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let spam_key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            about.kind.as_deref().unwrap_or(""),
            ns,
            about.name.as_deref().unwrap_or(""),
            about.uid.as_deref().unwrap_or(""),
        );
        let allowed = self
            .spam
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allow(&spam_key, std::time::Instant::now());
        if !allowed {
            tracing::debug!(reason, object = ?about.name, "event dropped: too many about this object");
            return;
        }
        let now = chrono::Utc::now();
        let agg_key = format!(
            "{}/{}\u{0}{}\u{0}{type_}\u{0}{reason}\u{0}{message}",
            about.uid.as_deref().unwrap_or(""),
            about.name.as_deref().unwrap_or(""),
            about.field_path.as_deref().unwrap_or(""),
        );
        let repeat = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            match seen.get_mut(&agg_key) {
                Some((ns, name, count)) => {
                    *count += 1;
                    Some((ns.clone(), name.clone(), *count))
                }
                None => None,
            }
        };
        if let Some((ns, name, count)) = repeat {
            let api: Api<Event> = Api::namespaced(&self.client, &ns);
            let patch = json!({"count": count, "lastTimestamp": Time(now)});
            self.enqueue(Write::Count(api, name, patch));
            return;
        }
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
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
            let event_name = ev.metadata.name.clone().unwrap_or_default();
            seen.insert(agg_key, (ns.clone(), event_name, 1));
        }
        let api: Api<Event> = Api::namespaced(&self.client, &ns);
        self.enqueue(Write::Create(api, Box::new(ev)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn spam_filter_allows_a_burst_then_one_per_five_minutes() {
        let mut f = SpamFilter::default();
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| f.allow("rs-a", t0)).count();
        assert_eq!(allowed, 25, "the burst");
        assert!(f.allow("rs-b", t0), "another object has its own bucket");
        assert!(!f.allow("rs-a", t0 + Duration::from_secs(299)));
        assert!(
            f.allow("rs-a", t0 + Duration::from_secs(301)),
            "one token back after 300 s"
        );
        assert!(!f.allow("rs-a", t0 + Duration::from_secs(302)));
    }
}
