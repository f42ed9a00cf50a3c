//! `cox-kubelet`: registers its Node(s), keeps their Leases fresh, and runs the pods bound to
//! them on the simulated container runtime, reporting their status. With `--nodes N` one
//! process simulates N nodes (like KWOK), sharing one pod watch and one node watch.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod behaviour;
mod lifecycle;
mod logserver;
mod node;
mod pods;
mod refs;
mod runtime;
mod stats;
mod status;

use anyhow::Context;
use clap::Parser;
use coxswain_client::{Api, ListParams};
use coxswain_runtime::events::Recorder;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{Change, Informer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Secret};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The Coxswain kubelet (simulated container runtime).
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Config {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[command(flatten)]
    pub api_client: coxswain_runtime::daemon::ApiClientArgs,
    /// This node's name; with `--nodes N` > 1, the prefix of `NAME-1` ... `NAME-N`.
    #[arg(long, default_value = "node-1")]
    pub node_name: String,
    /// Number of nodes this process simulates.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// CPU capacity.
    #[arg(long, default_value = "4")]
    pub cpu: String,
    /// Memory capacity.
    #[arg(long, default_value = "8Gi")]
    pub memory: String,
    /// Pod capacity.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Address for the log endpoint (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Simulated image pull time in milliseconds (first pull of an image on a node).
    #[arg(long, default_value_t = 400)]
    pub pull_ms: u64,
    /// Simulated container start time in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub start_ms: u64,
    /// Lease renewal interval in seconds.
    #[arg(long, default_value_t = 10)]
    pub lease_renew_seconds: u64,
    /// Extra node labels, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    pub node_labels: String,
    /// What simulated containers do, per image (YAML; see docs/behaviour.md).
    #[arg(long)]
    pub runtime_config: Option<std::path::PathBuf>,
    /// First back-off before restarting a crashed container or re-pulling a failed image
    /// (Kubernetes: 10 s), doubling each time.
    #[arg(long, default_value_t = 10_000)]
    pub backoff_initial_ms: u64,
    /// Back-off cap (Kubernetes: 300 s).
    #[arg(long, default_value_t = 300_000)]
    pub backoff_max_ms: u64,
}

fn read_runtime_config(path: &std::path::Path) -> anyhow::Result<behaviour::RuntimeConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    behaviour::RuntimeConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
}

/// Read the runtime config again whenever its file changes (checked every second): new
/// containers behave, and running ones use, as the new file says. A file that does not
/// parse is reported and the config in force stays.
async fn reload_runtime_config(path: std::path::PathBuf, config: behaviour::SharedConfig) {
    let stamp = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(&path);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match read_runtime_config(&path) {
            Ok(c) => {
                *config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(c);
                tracing::info!(path = %path.display(), "runtime config reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "runtime config not reloaded"),
        }
    }
}

/// Run until `shutdown` resolves.
pub async fn run(
    args: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = args
        .api_client
        .client(&args.server, "kubelet")
        .context("building the API client")?;
    // Node heartbeats (Lease renewals, node status) go through their own client, as the
    // kubelet's heartbeat client does, so a burst of pod work never delays them into NotReady.
    let heartbeat_client = args
        .api_client
        .client(&args.server, "kubelet")
        .context("building the heartbeat client")?;
    let config: behaviour::SharedConfig = Arc::new(std::sync::RwLock::new(Arc::new(
        match &args.runtime_config {
            Some(path) => read_runtime_config(path)?,
            None => behaviour::RuntimeConfig::default(),
        },
    )));
    if let Some(path) = args.runtime_config.clone() {
        tokio::spawn(reload_runtime_config(path, config.clone()));
    }
    let timing = pods::Timing {
        pull_ms: args.pull_ms,
        start_ms: args.start_ms,
        backoff_initial_ms: args.backoff_initial_ms,
        backoff_max_ms: args.backoff_max_ms.max(args.backoff_initial_ms),
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let labels: std::collections::BTreeMap<String, String> = args
        .node_labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let names: Vec<String> = if args.nodes <= 1 {
        vec![args.node_name.clone()]
    } else {
        (1..=args.nodes)
            .map(|i| format!("{}-{i}", args.node_name))
            .collect()
    };
    let configs: Vec<node::NodeConfig> = names
        .iter()
        .map(|name| node::NodeConfig {
            name: name.clone(),
            cpu: args.cpu.clone(),
            memory: args.memory.clone(),
            max_pods: args.max_pods,
            ip: addr.ip().to_string(),
            port: addr.port(),
            labels: labels.clone(),
        })
        .collect();
    futures::stream::iter(configs.iter())
        .for_each_concurrent(32, |cfg| {
            let client = client.clone();
            async move {
                let mut delay = Duration::from_millis(100);
                while let Err(e) = node::register(&client, cfg).await {
                    tracing::warn!(node = %cfg.name, error = %e, "registering node failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        })
        .await;
    tracing::info!(nodes = names.len(), logs = %addr, "nodes registered");

    // One pod watch for all our nodes: bound pods only (one node's own, with a single node).
    let selector = if names.len() == 1 {
        format!("spec.nodeName={}", names[0])
    } else {
        "spec.nodeName!=".to_string()
    };
    let mut pods = Informer::new(
        Api::<Pod>::all(&client),
        ListParams::default().fields(&selector),
    );
    let node_informer = Informer::new(Api::<Node>::all(&client), ListParams::default());
    let node_cache = node_informer.store();
    node_informer.spawn();
    // What pods refer to: their environment's ConfigMaps and Secrets, their volumes' claims.
    let cms = Informer::new(Api::<ConfigMap>::all(&client), ListParams::default());
    let secrets = Informer::new(Api::<Secret>::all(&client), ListParams::default());
    let claims = Informer::new(
        Api::<PersistentVolumeClaim>::all(&client),
        ListParams::default(),
    );
    let lookup = refs::Lookup {
        configmaps: cms.store(),
        secrets: secrets.store(),
        claims: claims.store(),
    };
    cms.spawn();
    secrets.spawn();
    claims.spawn();
    let mut managers: HashMap<String, Arc<pods::PodManager>> = HashMap::new();
    // One event writer for all simulated nodes, as one process has one connection pool.
    let recorder = Recorder::new(&client, "kubelet", None);
    for cfg in &configs {
        let pm = Arc::new(pods::PodManager::new(
            client.clone(),
            &cfg.name,
            &cfg.ip,
            std::sync::Arc::new(runtime::SimRuntime::new(&cfg.name)),
            recorder.on_host(&cfg.name),
            pods::Shared {
                config: config.clone(),
                lookup: lookup.clone(),
                timing,
            },
        ));
        managers.insert(cfg.name.clone(), pm);
        tokio::spawn(node::heartbeat(
            heartbeat_client.clone(),
            cfg.clone(),
            Duration::from_secs(args.lease_renew_seconds.max(1)),
            node_cache.clone(),
        ));
    }
    let nodes: logserver::Nodes = Arc::new(managers);
    {
        // Each pod change goes to that pod's worker on its node.
        let nodes = nodes.clone();
        pods.on_change(move |c| {
            let (p, latest) = match c {
                Change::Applied { new, .. } => (new, Some(new.clone())),
                Change::Deleted(old) => (old, None),
            };
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .unwrap_or("");
            if let Some(pm) = nodes.get(node) {
                let key = key_of(
                    p.metadata.namespace.as_deref(),
                    p.metadata.name.as_deref().unwrap_or(""),
                );
                pm.dispatch(key, latest);
            }
        });
    }
    // No pod starts before what it may refer to is known.
    lookup.configmaps.wait_ready().await;
    lookup.secrets.wait_ready().await;
    lookup.claims.wait_ready().await;
    let store = pods.store();
    pods.spawn();
    store.wait_ready().await;
    let router = logserver::router(nodes.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "log server failed");
        }
    });
    shutdown.await;
    tracing::info!("shutting down");
    Ok(())
}
