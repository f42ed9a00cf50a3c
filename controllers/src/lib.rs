//! `cox-controllers`: the Deployment, ReplicaSet, garbage-collector and namespace controllers
//! in one process, sharing one informer per kind.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod claim;
mod deployment;
mod gc;
mod namespace;
mod nodelifecycle;
mod replicaset;
mod rollout;
mod util;
mod wiring;

use anyhow::Context;
use clap::Parser;
use coxswain_runtime::{controller, Queue};
use std::sync::Arc;
pub use wiring::Ctx;
use wiring::Informers;

/// Coxswain's controller manager.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Config {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[command(flatten)]
    pub api_client: coxswain_runtime::daemon::ApiClientArgs,
    /// Concurrent reconciles per controller.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// How long a node's Lease may go unrenewed before the node is marked unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    #[command(flatten)]
    pub leader: coxswain_runtime::leader::LeaderElection,
}

use coxswain_runtime::leader::parse_duration;

/// Run until `shutdown` resolves.
pub async fn run(
    args: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let client = args
        .api_client
        .client(&args.server)
        .context("building the API client")?;
    let mut inf = Informers::new(&client);
    // Each controller: its context, its queue, and what wakes it (declared in its module).
    let events = coxswain_runtime::events::Recorder::new(&client, "cox-controllers", None);
    let ctx = |component: &str| Arc::new(Ctx::new(&client, &inf, &events, component));
    let (d_ctx, r_ctx, g_ctx) = (
        ctx("deployment-controller"),
        ctx("replicaset-controller"),
        ctx("garbage-collector-controller"),
    );
    let (n_ctx, l_ctx) = (ctx("namespace-controller"), ctx("node-controller"));
    let (dq, rq, gq, nq, lq) = (
        Queue::new(),
        Queue::new(),
        Queue::new(),
        Queue::new(),
        Queue::new(),
    );
    deployment::watches(&mut inf, &dq, &d_ctx);
    replicaset::watches(&mut inf, &rq, &r_ctx);
    gc::watches(&mut inf, &gq, &g_ctx);
    namespace::watches(&mut inf, &nq, &n_ctx);
    nodelifecycle::watches(&mut inf, &lq, &l_ctx);
    inf.start().await;
    let lease = coxswain_runtime::leader::lead(&client, "cox-controllers", &args.leader).await;
    tracing::info!(server = %args.server, "caches synced; controllers running");

    let w = args.workers;
    tokio::spawn(controller::run("deployment", dq, w, move |k| {
        deployment::reconcile(d_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("replicaset", rq, w, move |k| {
        replicaset::reconcile(r_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("garbage-collector", gq, w, move |k| {
        gc::reconcile(g_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("namespace", nq, 1, move |k| {
        namespace::reconcile(n_ctx.clone(), k)
    }));
    let grace = args.node_monitor_grace_period;
    tokio::spawn(controller::run("node-lifecycle", lq, 2, move |k| {
        nodelifecycle::reconcile(l_ctx.clone(), k, grace)
    }));

    shutdown.await;
    tracing::info!("shutting down");
    coxswain_runtime::leader::release(lease).await;
    Ok(())
}
