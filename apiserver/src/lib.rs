//! The Coxswain API server: the Kubernetes REST API over HTTP, backed by sled (default) or
//! etcd.
//!
//! Layout:
//! - [`routes`]: path -> (resource, namespace, name, subresource).
//! - [`fields`]: unknown-field validation (Strict/Warn/Ignore) against the exact schemas.
//! - [`handlers`]: the verbs; every write is one compare-and-swap loop ([`AppState::write`]).
//! - [`strategy`]: per-resource defaulting, validation and update rules.
//! - [`cache`]: the watch cache all reads and watches are served from.
//! - [`watch`]: watch streams.
//! - [`ownership`]: managedFields and server-side apply.
//! - [`table`]: server-side Tables for kubectl.
//! - [`discovery`]: `/version`, `/api`, `/apis`, OpenAPI.
//! - [`logs`]: `pods/log`, proxied to the pod's kubelet.
//! - [`metrics`]: `/metrics` request counters.
//!
//! The binary is thin: `main` parses flags and calls [`run`].

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cache;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod handlers;
pub mod logs;
pub mod metrics;
pub mod ownership;
pub mod routes;
pub mod strategy;
pub mod table;
pub mod watch;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use cache::{Cache, Obj};
use coxswain_api::resources::by_plural;
use coxswain_api::status::ApiError;
use coxswain_api::At;
use coxswain_store::{Committed, Feed, Store};
use error::{error_response, json_response};
use handlers::Query;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::Instrument;

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Embedded sled in this directory.
    Sled(std::path::PathBuf),
    /// etcd v3.
    Etcd {
        /// Client URLs.
        endpoints: Vec<String>,
        /// Key prefix (`/registry/`).
        prefix: String,
        /// How often history is compacted (to the revision seen one interval before).
        compaction_interval: std::time::Duration,
    },
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Storage backend.
    pub storage: Storage,
    /// How many recent events the watch cache keeps (default 100,000). Watchers further
    /// behind get 410 Expired and relist.
    pub watch_cache_size: usize,
    /// Events older than this are deleted (Kubernetes' `--event-ttl`, default 1 h).
    pub event_ttl: std::time::Duration,
}

/// Shared state of all handlers.
pub struct AppState {
    /// Durable storage (writes and compare-and-swap reads; other reads come from the cache).
    pub store: Arc<Store>,
    /// In-memory objects and recent events.
    pub cache: Arc<Cache>,
    /// Client for proxying to kubelets.
    pub http: reqwest::Client,
    /// Request counters for `/metrics`.
    pub metrics: metrics::Metrics,
}

/// Namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Write `rev` into an object's `metadata.resourceVersion` (the etcd backend's reads).
fn stamp(bytes: &[u8], rev: u64) -> Vec<u8> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) if v.get("metadata").is_some() => {
            v["metadata"]["resourceVersion"] = json!(rev.to_string());
            serde_json::to_vec(&v).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    }
}

/// Open storage, fill the cache, create the system namespaces, and start feeding the cache.
pub async fn open(config: &Config) -> anyhow::Result<Arc<AppState>> {
    use anyhow::Context;
    let store = match &config.storage {
        Storage::Sled(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data dir {}", dir.display()))?;
            Store::open_sled(dir)
                .with_context(|| format!("opening sled store in {}", dir.display()))?
        }
        Storage::Etcd {
            endpoints,
            prefix,
            compaction_interval,
        } => {
            let store = Store::open_etcd(coxswain_store::etcd::EtcdConfig {
                endpoints: endpoints.clone(),
                prefix: prefix.clone(),
                stamp: Arc::new(stamp),
            })
            .await
            .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))?;
            tokio::spawn(compact_periodically(store.clone(), *compaction_interval));
            store
        }
    };
    let (records, rev, mut feed) = store.list_and_watch().await.context("listing storage")?;
    let cache = Arc::new(Cache::new(rev, config.watch_cache_size));
    load_records(&cache, records);
    let feed_cache = cache.clone();
    tokio::spawn(async move {
        while let Some(msg) = feed.recv().await {
            match msg {
                Feed::Commits(batch) => {
                    for c in batch {
                        apply_committed(&feed_cache, c);
                    }
                }
                Feed::Resync { records, rev } => {
                    feed_cache.reset(rev);
                    load_records(&feed_cache, records);
                }
            }
        }
    });
    let st = Arc::new(AppState {
        store,
        cache,
        http: reqwest::Client::new(),
        metrics: metrics::Metrics::default(),
    });
    let nsr = by_plural("", "v1", "namespaces").context("namespaces resource")?;
    for ns in SYSTEM_NAMESPACES {
        if st.cache.get(nsr, "", ns).is_none() {
            let t = routes::Target {
                resource: nsr,
                namespace: None,
                name: None,
                sub: None,
            };
            let body = serde_json::to_vec(&json!({"metadata": {"name": ns}}))?;
            let res = handlers::create(&st, &t, &Query::default(), &HeaderMap::new(), &body).await;
            if let Err(e) = res {
                if e.reason != "AlreadyExists" {
                    anyhow::bail!("creating namespace {ns}: {e}");
                }
            }
        }
    }
    Ok(st)
}

/// Delete Events older than `ttl`, checking every `ttl / 10` (at most every minute).
async fn expire_events(st: Arc<AppState>, ttl: std::time::Duration) {
    let Some(r) = by_plural("", "v1", "events") else {
        return;
    };
    let period = (ttl / 10).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::time::sleep(period).await;
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(ttl).unwrap_or_default();
        let (events, _) = st.cache.list(r, &cache::Filter::default());
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
                if let Err(err) = st.remove(r, &e.namespace, &e.name, e.rev, v).await {
                    tracing::debug!(error = %err, "expiring event");
                }
            }
        }
    }
}

fn load_records(cache: &Cache, records: Vec<coxswain_store::Record>) {
    for (key, rev, bytes) in records {
        let Some(r) = handlers::resource_of_key(&key) else {
            continue;
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => cache.load(r, Obj::new(r, rev, &v, bytes.into())),
            Err(e) => {
                tracing::error!(error = %e, key = %String::from_utf8_lossy(&key), "stored object is not JSON")
            }
        }
    }
}

/// Compact etcd every `interval` to the revision seen one interval earlier, like the
/// Kubernetes API server (several servers doing it is harmless).
async fn compact_periodically(store: Arc<Store>, interval: std::time::Duration) {
    let mut previous: Option<u64> = None;
    loop {
        tokio::time::sleep(interval).await;
        if let Some(rev) = previous {
            match store.compact(rev).await {
                Ok(()) => tracing::debug!(rev, "etcd compacted"),
                Err(e) => tracing::warn!(error = %e, rev, "etcd compaction failed"),
            }
        }
        previous = store.current_rev().await.ok();
    }
}

fn apply_committed(cache: &Cache, c: Committed) {
    let Some(r) = handlers::resource_of_key(&c.key) else {
        tracing::error!(key = %String::from_utf8_lossy(&c.key), "committed key of no resource");
        return;
    };
    let parsed = || match serde_json::from_slice(&c.value) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "committed value is not JSON");
            Value::Null
        }
    };
    let v: Value = cache.take_built(c.rev).unwrap_or_else(parsed);
    cache.apply(
        r,
        Obj::new(r, c.rev, &v, Bytes::copy_from_slice(&c.value)),
        c.deleted,
    );
}

/// The router: every path goes through [`dispatch`].
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(3 * 1024 * 1024))
        .with_state(st)
}

/// Serve until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let st = open(&config).await?;
    tokio::spawn(expire_events(st.clone(), config.event_ttl));
    axum::serve(listener, router(st))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn dispatch(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let span = tracing::info_span!("request", verb = %method, path = %path);
    let started = std::time::Instant::now();
    let resp = async {
        match route(&st, &method, &uri, &headers, &body).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }
    .instrument(span.clone())
    .await;
    let code = resp.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(
            status = code,
            micros = started.elapsed().as_micros() as u64,
            "done"
        )
    });
    if let Ok(t) = routes::parse(&path) {
        let query = uri.query().unwrap_or("");
        let watch = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let apply = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/apply-patch"));
        let verb = metrics::verb(method.as_str(), t.name.is_some(), watch, apply);
        st.metrics.count(
            verb,
            t.resource.plural,
            t.sub.as_deref().unwrap_or(""),
            code,
        );
    }
    resp
}

async fn route(
    st: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let path = uri.path().trim_end_matches('/');
    match path {
        "/version" => return Ok(discovery::version()),
        "/healthz" | "/readyz" | "/livez" => {
            let mut r = json_response(200, "ok");
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(r);
        }
        "/metrics" => {
            let mut r = Response::new(axum::body::Body::from(st.metrics.render()));
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return Ok(r);
        }
        "/api" => return Ok(discovery::api(h)),
        "/apis" => return Ok(discovery::apis(h)),
        "/openapi/v3" => return Ok(discovery::openapi_root()),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        return discovery::openapi_group(&format!("/openapi/v3/{rest}"))
            .ok_or_else(ApiError::no_route);
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", v] => return discovery::resource_list("", v).ok_or_else(ApiError::no_route),
        ["apis", g, v] => return discovery::resource_list(g, v).ok_or_else(ApiError::no_route),
        _ => {}
    }
    let t = routes::parse(path).map_err(|_| ApiError::no_route())?;
    let mut q = Query::parse(uri.query())?;
    // Writes without a fieldManager are attributed to the client's User-Agent prefix
    // (`kubectl/v1.32.4 ...` -> `kubectl`), as Kubernetes does.
    if !q.0.contains_key("fieldManager") {
        if let Some(ua) = h
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            let prefix: String = ua
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .take(128)
                .collect();
            if !prefix.is_empty() {
                q.0.insert("fieldManager".into(), prefix);
            }
        }
    }
    let r = t.resource;
    let name = t.name.clone();
    match (method.as_str(), name.as_deref(), t.sub.as_deref()) {
        ("GET", None, None) if q.flag("watch")? => watch::watch(st, &t, &q, h),
        ("GET", None, None) => handlers::list(st, &t, &q, h).await,
        ("POST", None, None) => handlers::create(st, &t, &q, h, body).await,
        ("GET", Some(n), None) if q.flag("watch")? => {
            let mut t2 = t.clone();
            t2.name = Some(n.to_string());
            watch::watch(st, &t2, &q, h)
        }
        ("GET", Some(n), None | Some("status")) => handlers::get(st, &t, n, &q, h).await,
        ("PUT", Some(n), None | Some("status")) => handlers::update(st, &t, n, &q, h, body).await,
        ("PUT", Some(n), Some("finalize")) if r.plural == "namespaces" => {
            handlers::update(st, &t, n, &q, h, body).await
        }
        ("PATCH", Some(n), None | Some("status")) => handlers::patch(st, &t, n, &q, h, body).await,
        ("DELETE", Some(n), None) => handlers::delete(st, &t, n, &q, h, body).await,
        ("GET" | "PUT" | "PATCH", Some(n), Some("scale")) if r.has_scale => {
            handlers::scale(st, &t, n, method, &q, h, body).await
        }
        ("POST", Some(n), Some("binding")) if r.plural == "pods" => {
            handlers::bind(st, &t, n, h, body).await
        }
        ("GET", Some(n), Some("log")) if r.plural == "pods" => logs::logs(st, &t, n, &q).await,
        ("POST", Some(n), Some("eviction")) if r.plural == "pods" => {
            handlers::evict(st, &t, n, &q, h, body).await
        }
        (_, _, Some(_)) => Err(ApiError::no_route()),
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}
