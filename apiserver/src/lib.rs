//! The Coxswain API server: the Kubernetes REST API over HTTP, backed by sled (default) or
//! etcd.
//!
//! Layout:
//! - [`routes`]: path -> (resource, namespace, name, subresource).
//! - [`request`]: query parameters, bodies by content type, the representation accepted.
//! - [`verbs`]: one module per verb (create, get/list, update, patch/apply,
//!   delete/evict/deletecollection, scale, bind).
//! - [`state`]: [`AppState`] and the one write path every verb goes through.
//! - [`kinds`]: one module per kind: defaulting, validation, update rules, subresources,
//!   Table columns, field selectors.
//! - [`fields`]: unknown-field validation (Strict/Warn/Ignore) against the exact schemas.
//! - [`cache`]: the watch cache all reads and watches are served from.
//! - [`allocator`]: values held exclusively across the cluster (Service IPs, node ports).
//! - [`watch`]: watch streams.
//! - [`ownership`]: managedFields and server-side apply.
//! - [`table`]: server-side Tables for kubectl.
//! - [`discovery`]: `/version`, `/api`, `/apis`, OpenAPI.
//! - [`logs`]: `pods/log`, proxied to the pod's kubelet.
//! - [`metrics`]: `/metrics` request counters.
//! - [`resource_metrics`]: metrics.k8s.io (`kubectl top`, the HPA controller), from the
//!   kubelets' Summary API.
//! - [`serve`]: the HTTP server loop (header deadline, graceful stop).
//! - [`versions`]: a resource served at a version besides its stored one (conversion).
//!
//! The binary is thin: `main` parses flags and calls [`run`].

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod allocator;
pub mod cache;
pub mod componentstatus;
pub mod discovery;
pub mod error;
pub mod fields;
pub mod kinds;
pub mod logs;
pub mod metrics;
pub mod ownership;
pub mod request;
pub mod resource_metrics;
pub mod routes;
pub mod serve;
pub mod state;
pub mod table;
pub mod verbs;
pub mod versions;
pub mod watch;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use cache::{Cache, Obj};
use coxswain_api::status::ApiError;
use coxswain_store::{Committed, Feed, Store};
use error::{error_response, json_response};
use kinds::Sub;
use request::Query;
use serde_json::{json, Value};
pub use state::AppState;
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
    /// How long watches may go on after a shutdown signal before they are ended
    /// (Kubernetes' `--shutdown-watch-termination-grace-period`, default 0).
    pub watch_termination_grace: std::time::Duration,
    /// Reads in flight at once (`--max-requests-inflight`, 400); beyond it 429.
    pub max_requests_inflight: usize,
    /// Writes in flight at once (`--max-mutating-requests-inflight`, 200); beyond it 429.
    pub max_mutating_requests_inflight: usize,
    /// How long a request may take (`--request-timeout`, 60 s); beyond it 504.
    pub request_timeout: std::time::Duration,
    /// How long a client may take to send a request's headers (kube-apiserver: 32 s).
    pub read_header_timeout: std::time::Duration,
    /// How long a connection may sit idle before it is closed (kube-apiserver: 90 s).
    pub idle_timeout: std::time::Duration,
    /// The ranges Service IPs and node ports come from.
    pub ranges: allocator::Ranges,
    /// Clients (User-Agent up to the first `/`) whose writes naming no fieldManager are not
    /// recorded in managedFields (`--untracked-field-managers`).
    pub untracked_field_managers: Vec<String>,
}

pub use kinds::namespace::SYSTEM_NAMESPACES;

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
/// Watch streams end when `stopping` becomes `true`.
pub async fn open(
    config: &Config,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Arc<AppState>> {
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
        stopping,
        limits: state::Limits::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
            config.request_timeout,
        ),
        ranges: config.ranges,
        watchers: Default::default(),
        untracked_field_managers: config.untracked_field_managers.clone(),
    });
    kinds::namespace::create_system_namespaces(&st).await?;
    kinds::priorityclass::create_system_classes(&st).await;
    kinds::apiservice::register_local(&st).await;
    kinds::clusterrole::create_defaults(&st).await;
    kinds::storageclass::create_standard(&st).await;
    Ok(st)
}

fn load_records(cache: &Cache, records: Vec<coxswain_store::Record>) {
    for (key, rev, bytes) in records {
        let Some(r) = state::resource_of_key(&key) else {
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
    if allocator::owns_key(&c.key) {
        cache.advance(c.rev);
        return;
    }
    let Some(r) = state::resource_of_key(&c.key) else {
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

/// The largest request body (and stored object) the server takes.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The router: every path goes through [`dispatch`].
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::disable())
        .with_state(st)
}

/// Serve until `shutdown` resolves, then stop: no new connections, watch streams end after
/// `watch_termination_grace`, requests in flight finish (at most a minute more, Kubernetes'
/// shutdown timeout). Every write acknowledged before is durable: a write is acknowledged
/// only once storage has it.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let st = open(&config, stop_rx).await?;
    tokio::spawn(kinds::service::keep_kubernetes_service(
        st.clone(),
        listener.local_addr()?,
    ));
    tokio::spawn(kinds::event::expire(st.clone(), config.event_ttl));
    tokio::spawn(kinds::resourcequota::keep_usage(
        st.clone(),
        std::time::Duration::from_secs(5),
    ));
    tokio::spawn(kinds::namespace::keep_system_namespaces(
        st.clone(),
        std::time::Duration::from_secs(5),
    ));
    let (fired_tx, fired_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = config.watch_termination_grace;
    let signal = async move {
        shutdown.await;
        tracing::info!(?grace, "shutting down: no new connections; ending watches");
        let _ = fired_tx.send(());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            stop_tx.send_replace(true);
        });
    };
    let deadlines = serve::Deadlines {
        read_header: config.read_header_timeout,
        idle: config.idle_timeout,
    };
    let server = serve::serve(listener, router(st), deadlines, signal);
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => return Ok(()),
        Ok(()) = fired_rx => {}
    }
    let limit = grace + std::time::Duration::from_secs(60);
    match tokio::time::timeout(limit, server).await {
        Ok(()) => Ok(()),
        Err(_) => {
            tracing::warn!(
                ?limit,
                "requests still in flight after the shutdown timeout; exiting"
            );
            Ok(())
        }
    }
}

async fn dispatch(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().to_string();
    let span = tracing::info_span!("request", verb = %method, path = %path);
    let started = std::time::Instant::now();
    let resp = async {
        match limited(&st, &method, &uri, &headers, body).await {
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

/// The server's limits around [`route`]: the body's size (413), requests in flight (429 with
/// `Retry-After`) and the request timeout (504), the last two for all but long-running
/// requests (watches, followed logs), as kube-apiserver does.
async fn limited(
    st: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(format!("limit is {MAX_BODY_BYTES}")))?;
    let query = uri.query().unwrap_or("");
    let long_running = query.split('&').any(|kv| {
        matches!(
            kv,
            "watch=true" | "watch=1" | "watch=True" | "follow=true" | "follow=1"
        )
    });
    if long_running {
        return route(st, method, uri, h, &body).await;
    }
    let slots = match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => &st.limits.reads,
        _ => &st.limits.writes,
    };
    let Ok(_slot) = slots.clone().try_acquire_owned() else {
        return Err(ApiError::too_many_requests());
    };
    let timeout = st.limits.request_timeout;
    match tokio::time::timeout(timeout, route(st, method, uri, h, &body)).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::timeout(format!(
            "request did not complete within {}s",
            timeout.as_secs_f64()
        ))),
    }
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
    if componentstatus::owns(path) {
        let q = Query::parse(uri.query())?;
        return componentstatus::serve(st, method, path, &q, h).await;
    }
    if resource_metrics::owns(path) {
        let q = Query::parse(uri.query())?;
        return resource_metrics::serve(st, method, path, &q, h).await;
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
            if !prefix.is_empty() && !st.untracked_field_managers.contains(&prefix) {
                q.0.insert("fieldManager".into(), prefix);
            }
        }
    }
    if versions::converted(&t) {
        let watch = q.flag("watch")?;
        let (h, body) = versions::body_in(&t, method, h, body)?;
        let resp = verb(st, method, &t, &q, &h, &body).await?;
        return Ok(versions::answer_out(&t, watch, resp).await);
    }
    verb(st, method, &t, &q, h, body).await
}

/// The verb for a parsed request.
async fn verb(
    st: &Arc<AppState>,
    method: &Method,
    t: &routes::Target,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let kind = kinds::of(t.resource);
    let sub = match t.sub.as_deref() {
        None => None,
        Some(s) => Some(kinds::subresource(kind, s).ok_or_else(ApiError::no_route)?),
    };
    let name = t.name.clone();
    match (method.as_str(), name.as_deref(), sub) {
        ("GET", None, None) if q.flag("watch")? => watch::watch(st, t, q, h).await,
        ("GET", None, None) => verbs::read::list(st, t, q, h).await,
        ("POST", None, None) => verbs::create::create(st, t, q, h, body).await,
        // As in Kubernetes: only within a namespace for namespaced resources, and only for
        // kinds that have the verb.
        ("DELETE", None, None)
            if kind.verbs().contains(&"deletecollection")
                && (t.namespace.is_some() || !t.resource.namespaced) =>
        {
            verbs::delete::delete_collection(st, t, q, h, body).await
        }
        ("GET", Some(_), None) if q.flag("watch")? => watch::watch(st, t, q, h).await,
        ("GET", Some(n), None | Some(Sub::Status)) => verbs::read::get(st, t, n, q, h).await,
        ("PUT", Some(n), None | Some(Sub::Status | Sub::Finalize)) => {
            verbs::update::update(st, t, n, sub, q, h, body).await
        }
        ("PATCH", Some(n), None | Some(Sub::Status)) => {
            verbs::patch::patch(st, t, n, sub, q, h, body).await
        }
        ("DELETE", Some(n), None) => verbs::delete::delete(st, t, n, q, h, body).await,
        ("GET" | "PUT" | "PATCH", Some(n), Some(Sub::Scale)) => {
            verbs::scale::scale(st, t, n, method, q, h, body).await
        }
        ("POST", Some(n), Some(Sub::Binding)) => verbs::bind::bind(st, t, n, q, h, body).await,
        ("GET", Some(n), Some(Sub::Log)) => logs::logs(st, t, n, q).await,
        ("POST", Some(n), Some(Sub::Eviction)) => verbs::delete::evict(st, t, n, q, h, body).await,
        (_, _, Some(_)) => Err(ApiError::no_route()),
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}
