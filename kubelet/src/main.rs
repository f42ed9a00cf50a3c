//! `cox-kubelet`: registers a Node, keeps its Lease fresh, and runs the pods bound to it on
//! the simulated container runtime, reporting their status.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod logserver;
mod node;
mod pods;
mod runtime;

use anyhow::Context;
use clap::Parser;
use coxswain_client::{Api, Client, ListParams};
use coxswain_runtime::events::Recorder;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{controller, Change, Informer, Queue};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;
use std::time::Duration;

/// The Coxswain kubelet (simulated container runtime).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// This node's name.
    #[arg(long, default_value = "node-1")]
    node_name: String,
    /// CPU capacity.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory capacity.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Pod capacity.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Address for the log endpoint (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Simulated image pull time in milliseconds (first pull of an image on this node).
    #[arg(long, default_value_t = 400)]
    pull_ms: u64,
    /// Simulated container start time in milliseconds.
    #[arg(long, default_value_t = 100)]
    start_ms: u64,
    /// Lease renewal interval in seconds.
    #[arg(long, default_value_t = 10)]
    lease_renew_seconds: u64,
    /// Extra node labels, `k=v,k2=v2`.
    #[arg(long, default_value = "")]
    node_labels: String,
    /// Concurrent pod reconciles.
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coxswain_runtime::daemon::init_tracing();
    let args = Args::parse();
    let client = Client::new(&args.server).context("building the API client")?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let labels = args
        .node_labels
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let cfg = node::NodeConfig {
        name: args.node_name.clone(),
        cpu: args.cpu.clone(),
        memory: args.memory.clone(),
        max_pods: args.max_pods,
        ip: addr.ip().to_string(),
        port: addr.port(),
        labels,
    };
    let mut delay = Duration::from_millis(100);
    while let Err(e) = node::register(&client, &cfg).await {
        tracing::warn!(error = %e, "registering node failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    tracing::info!(node = %cfg.name, logs = %addr, "node registered");
    tokio::spawn(node::heartbeat(
        client.clone(),
        cfg.clone(),
        Duration::from_secs(args.lease_renew_seconds.max(1)),
    ));

    let mut pods = Informer::new(
        Api::<Pod>::all(&client),
        ListParams::default().fields(&format!("spec.nodeName={}", args.node_name)),
    );
    let queue = Queue::new();
    let runtime = runtime::SimRuntime::new(
        &args.node_name,
        Duration::from_millis(args.pull_ms),
        Duration::from_millis(args.start_ms),
    );
    let pm = Arc::new(pods::PodManager::new(
        client.clone(),
        &args.node_name,
        &cfg.ip,
        runtime,
        pods.store(),
        Recorder::new(&client, "kubelet", Some(&args.node_name)),
        queue.clone(),
    ));
    {
        let q = queue.clone();
        pods.on_change(move |c| {
            let p = match c {
                Change::Applied { new, .. } => new,
                Change::Deleted(old) => old,
            };
            q.add(key_of(
                p.metadata.namespace.as_deref(),
                p.metadata.name.as_deref().unwrap_or(""),
            ));
        });
    }
    let store = pods.store();
    pods.spawn();
    store.wait_ready().await;
    let router = logserver::router(pm.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "log server failed");
        }
    });
    let p = pm.clone();
    tokio::spawn(controller::run("kubelet", queue, args.workers, move |k| {
        p.clone().reconcile(k)
    }));
    coxswain_runtime::daemon::shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}
