//! Watch streams: newline-delimited `WatchEvent`s over one long-lived chunked response, fed
//! from the watch cache's shared, pre-encoded event lines.
//!
//! A watcher is a task holding only its position (a revision) and its filter. It reads the
//! window of shared events after its position, sends the matching lines (no re-encoding unless
//! the client asked for Tables), and sleeps until the cache advances. A client that reads too
//! slowly falls behind the window and gets one `ERROR` 410 event, then the stream ends; it must
//! relist. Nothing is buffered per watcher beyond a small channel. Metadata-only watchers
//! share lines encoded once per event too. When the server shuts down every stream ends, so
//! the process can exit; clients resume from their last revision.

use crate::cache::{event_line, Event, EventType, Filter, WatchStart};
use crate::request::{accept, Accept, Query};
use crate::routes::Target;
use crate::{table, AppState};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::ApiError;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What one watcher selects and how it renders.
struct Watcher {
    resource: &'static ResourceInfo,
    filter: Filter,
    accept: Accept,
    full: bool,
}

impl Watcher {
    /// The line to send for a committed event, if this watcher sees it.
    fn render(&self, ev: &Event) -> Option<Bytes> {
        if ev.resource.group != self.resource.group || ev.resource.plural != self.resource.plural {
            return None;
        }
        let cur = self.filter.matches(&ev.obj);
        let prev = ev.prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let t = match (ev.type_, prev, cur) {
            (EventType::Deleted, _, true) => EventType::Deleted,
            (EventType::Deleted, _, false) => return None,
            (_, true, true) => EventType::Modified,
            (_, false, true) => EventType::Added,
            (_, true, false) => EventType::Deleted,
            (_, false, false) => return None,
        };
        Some(match self.accept {
            Accept::Table => self.table_line(t.as_str(), &ev.obj.bytes),
            Accept::Metadata => ev.metadata_line_as(t),
            Accept::Object => ev.line_as(t),
        })
    }

    /// The ADDED line of an object of the initial state.
    fn added_line(&self, bytes: &[u8]) -> Bytes {
        match self.accept {
            Accept::Table => self.table_line("ADDED", bytes),
            Accept::Metadata => event_line("ADDED", &crate::verbs::partial_metadata_bytes(bytes)),
            Accept::Object => event_line("ADDED", bytes),
        }
    }

    fn table_line(&self, t: &str, bytes: &[u8]) -> Bytes {
        let v: Value = serde_json::from_slice(bytes).unwrap_or_default();
        let tbl = table::table_of_values(self.resource, &[v], 0, self.full);
        event_line(t, &serde_json::to_vec(&tbl).unwrap_or_default())
    }
}

fn error_line(e: &ApiError) -> Bytes {
    event_line(
        "ERROR",
        &serde_json::to_vec(&e.to_status()).unwrap_or_default(),
    )
}

/// How long a watch from a revision the cache has not reached yet waits for it
/// (Kubernetes' watch cache waits 3 s, then answers 504 "Too large resource version").
const FRESH_WAIT: Duration = Duration::from_secs(3);

/// Start a watch; the response streams until the timeout, a client disconnect, or expiry.
pub async fn watch(
    st: &Arc<AppState>,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut filter = q.filter(t.namespace.as_deref(), crate::kinds::of(t.resource))?;
    if let Some(name) = &t.name {
        filter
            .fields
            .terms
            .push(("metadata.name".into(), name.clone(), true));
    }
    let w = Watcher {
        resource: t.resource,
        filter,
        accept: accept(h),
        full: q.full_objects(),
    };
    let rv = q.get("resourceVersion").unwrap_or("");
    // Capped so that adding it to the clock cannot overflow (a year is longer than any
    // client waits).
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map(|s| s.min(365 * 24 * 3600));
    let bookmarks = q.flag("allowWatchBookmarks")?;
    let (initial, start) = if rv.is_empty() || rv == "0" {
        let (objs, rev) = st.cache.snapshot(t.resource, &w.filter);
        let lines: Vec<Bytes> = objs.iter().map(|o| w.added_line(&o.bytes)).collect();
        (lines, rev)
    } else {
        let n: u64 = rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid resourceVersion {rv:?}: must be an integer"
            ))
        })?;
        if n > st.cache.rev()
            && tokio::time::timeout(FRESH_WAIT, st.cache.wait_for(n))
                .await
                .is_err()
        {
            return Err(ApiError::timeout(format!(
                "Too large resource version: {n}, current: {}",
                st.cache.rev()
            )));
        }
        (Vec::new(), n)
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    // Counted (by client) while the stream lasts.
    let open = st.watchers.enter(h);
    let cache = st.cache.clone();
    let mut stopping = st.stopping.clone();
    let (kind, api_version) = match w.accept {
        Accept::Metadata => ("PartialObjectMetadata", "meta.k8s.io/v1".to_string()),
        _ => (t.resource.kind, t.resource.api_version()),
    };
    tokio::spawn(async move {
        let _open = open;
        // Send a line, unless the client is gone or the server is stopping (a client that
        // does not read must not hold the server up).
        macro_rules! send {
            ($line:expr) => {
                match tx.try_send(Ok($line)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    Err(mpsc::error::TrySendError::Full(line)) => tokio::select! {
                        r = tx.send(line) => if r.is_err() { return },
                        _ = stopping.wait_for(|s| *s) => return,
                    },
                }
            };
        }
        let deadline = timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs(s as u64));
        let mut changes = cache.subscribe();
        for line in initial {
            send!(line);
        }
        let mut pos = start;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            changes.borrow_and_update();
            match cache.since(pos) {
                WatchStart::Expired { oldest } => {
                    let e = ApiError::expired(format!(
                        "too old resource version: {pos} ({})",
                        oldest.saturating_sub(1)
                    ));
                    send!(error_line(&e));
                    return;
                }
                WatchStart::Events(evs, upto) => {
                    for ev in &evs {
                        if let Some(line) = w.render(ev) {
                            send!(line);
                        }
                    }
                    pos = pos.max(upto);
                }
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            if *stopping.borrow() {
                return;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = sleep => return,
                _ = tx.closed() => return,
                _ = stopping.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    let obj = json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": pos.to_string()}});
                    let line = event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default());
                    send!(line);
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
