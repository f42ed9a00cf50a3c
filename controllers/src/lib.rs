//! `cox-controllers`: the Deployment, ReplicaSet, ReplicationController, StatefulSet,
//! DaemonSet, disruption, Job, CronJob, TTL-after-finished, garbage-collector, namespace,
//! node-lifecycle, Service, endpoint, autoscaling, RBAC-aggregation and storage (volume
//! binding, the simulated local-path provisioner, in-use protection) controllers in one process, sharing one
//! informer per kind.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod claim;
mod clusterroleaggregation;
mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
mod endpointslice;
mod gc;
mod history;
mod horizontal;
mod job;
mod loadbalancer;
mod localpath;
mod namespace;
mod nodelifecycle;
mod persistentvolume;
mod replicaset;
mod replicationcontroller;
mod rollout;
mod serviceaccount;
mod statefulset;
mod ttlafterfinished;
mod util;
mod volumeprotection;
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
    /// The first delay before a Job's failed pod is replaced, doubled per failure up to
    /// 10 minutes (Kubernetes hard-codes 10 s; tests shorten it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub job_pod_failure_backoff: std::time::Duration,
    /// Testing: read the CronJob controller's current time (RFC 3339) from this file, so a
    /// test can move time forward instead of waiting for the schedule.
    #[arg(long)]
    pub cronjob_clock_file: Option<std::path::PathBuf>,
    /// The addresses the simulated cloud gives LoadBalancer Services (first-last).
    #[arg(long, default_value = "172.18.255.200-172.18.255.250", value_parser = loadbalancer::parse_pool)]
    pub load_balancer_ip_range: loadbalancer::Pool,
    /// How often each HorizontalPodAutoscaler is looked at (Kubernetes: 15 s).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// How long an HPA without `behavior` keeps its highest recent recommendation before
    /// scaling down (Kubernetes: 5 min).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: std::time::Duration,
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
        .client(&args.server, "kube-controller-manager")
        .context("building the API client")?;
    let mut inf = Informers::new(&client);
    // Each controller: its context, its queue, and what wakes it (declared in its module).
    let events = coxswain_runtime::events::Recorder::new(&client, "cox-controllers", None);
    let ctx = |component: &str| Arc::new(Ctx::new(&client, &inf, &events, component));
    let d_ctx = ctx("deployment-controller");
    let r_ctx = ctx("replicaset-controller");
    let rc_ctx = ctx("replication-controller");
    let sts_ctx = ctx("statefulset-controller");
    let ds_ctx = ctx("daemonset-controller");
    let pdb_ctx = ctx("disruption-controller");
    let j_ctx = ctx("job-controller");
    let c_ctx = ctx("cronjob-controller");
    let t_ctx = ctx("ttl-after-finished-controller");
    let g_ctx = ctx("garbage-collector-controller");
    let n_ctx = ctx("namespace-controller");
    let l_ctx = ctx("node-controller");
    let h_ctx = ctx("horizontal-pod-autoscaler");
    let ep_ctx = ctx("endpoint-controller");
    let eps_ctx = ctx("endpointslice-controller");
    let sa_ctx = ctx("service-account-controller");
    let lb_ctx = ctx("service-controller");
    let cra_ctx = ctx("clusterrole-aggregation-controller");
    let q = Queue::new;
    let (dq, rq, rcq, stsq, dsq, pdbq) = (q(), q(), q(), q(), q(), q());
    let (jq, cq, tq, gq, nq, lq) = (q(), q(), q(), q(), q(), q());
    let (hq, epq, epsq, saq, lbq) = (q(), q(), q(), q(), q());
    let craq = q();
    let (pvq, lpq, vpq) = (q(), q(), q());
    let pv_ctx = ctx("persistentvolume-controller");
    let lp_ctx = ctx(localpath::NAME);
    let vp_ctx = ctx("volume-protection-controller");
    deployment::watches(&mut inf, &dq, &d_ctx);
    replicaset::watches(&mut inf, &rq, &r_ctx);
    replicationcontroller::watches(&mut inf, &rcq, &rc_ctx);
    statefulset::watches(&mut inf, &stsq, &sts_ctx);
    daemonset::watches(&mut inf, &dsq, &ds_ctx);
    disruption::watches(&mut inf, &pdbq, &pdb_ctx);
    job::watches(&mut inf, &jq, &j_ctx);
    cronjob::watches(&mut inf, &cq, &c_ctx);
    ttlafterfinished::watches(&mut inf, &tq, &t_ctx);
    namespace::watches(&mut inf, &nq, &n_ctx);
    nodelifecycle::watches(&mut inf, &lq, &l_ctx);
    horizontal::watches(&mut inf, &hq, &h_ctx);
    endpoints::watches(&mut inf, &epq, &ep_ctx);
    endpointslice::watches(&mut inf, &epsq, &eps_ctx);
    serviceaccount::watches(&mut inf, &saq, &sa_ctx);
    loadbalancer::watches(&mut inf, &lbq, &lb_ctx);
    clusterroleaggregation::watches(&mut inf, &craq, &cra_ctx);
    persistentvolume::watches(&mut inf, &pvq, &pv_ctx);
    localpath::watches(&mut inf, &lpq, &lp_ctx);
    volumeprotection::watches(&mut inf, &vpq, &vp_ctx);
    // The garbage collector tracks every kind that owns or is owned.
    let graph = Arc::new(gc::Graph::default());
    graph.track(&mut inf.deployments, &gq, &g_ctx);
    graph.track(&mut inf.replicasets, &gq, &g_ctx);
    graph.track(&mut inf.pods, &gq, &g_ctx);
    graph.track(&mut inf.replicationcontrollers, &gq, &g_ctx);
    graph.track(&mut inf.statefulsets, &gq, &g_ctx);
    graph.track(&mut inf.daemonsets, &gq, &g_ctx);
    graph.track(&mut inf.revisions, &gq, &g_ctx);
    graph.track(&mut inf.claims, &gq, &g_ctx);
    graph.track(&mut inf.jobs, &gq, &g_ctx);
    graph.track(&mut inf.cronjobs, &gq, &g_ctx);
    graph.track(&mut inf.services, &gq, &g_ctx);
    graph.track(&mut inf.endpointslices, &gq, &g_ctx);
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
        gc::reconcile(graph.clone(), g_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("replicationcontroller", rcq, w, move |k| {
        replicationcontroller::reconcile(rc_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("statefulset", stsq, w, move |k| {
        statefulset::reconcile(sts_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("daemonset", dsq, w, move |k| {
        daemonset::reconcile(ds_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("disruption", pdbq, w, move |k| {
        disruption::reconcile(pdb_ctx.clone(), k)
    }));
    let tuning = job::Tuning {
        backoff: args.job_pod_failure_backoff,
        max_backoff: std::time::Duration::from_secs(600),
    };
    tokio::spawn(controller::run("job", jq, w, move |k| {
        job::reconcile(j_ctx.clone(), k, tuning)
    }));
    let clock = cronjob::Clock {
        file: args.cronjob_clock_file.clone(),
    };
    tokio::spawn(controller::run("cronjob", cq, w, move |k| {
        cronjob::reconcile(c_ctx.clone(), k, clock.clone())
    }));
    tokio::spawn(controller::run("ttl-after-finished", tq, w, move |k| {
        ttlafterfinished::reconcile(t_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("namespace", nq, 1, move |k| {
        namespace::reconcile(n_ctx.clone(), k)
    }));
    let grace = args.node_monitor_grace_period;
    tokio::spawn(controller::run("node-lifecycle", lq, 2, move |k| {
        nodelifecycle::reconcile(l_ctx.clone(), k, grace)
    }));

    tokio::spawn(controller::run("endpoint", epq, w, move |k| {
        endpoints::reconcile(ep_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("endpointslice", epsq, w, move |k| {
        endpointslice::reconcile(eps_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("serviceaccount", saq, 1, move |k| {
        serviceaccount::reconcile(sa_ctx.clone(), k)
    }));
    tokio::spawn(controller::run(
        "clusterrole-aggregation",
        craq,
        1,
        move |k| clusterroleaggregation::reconcile(cra_ctx.clone(), k),
    ));
    tokio::spawn(controller::run("persistentvolume", pvq, w, move |k| {
        persistentvolume::reconcile(pv_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("local-path", lpq, w, move |k| {
        localpath::reconcile(lp_ctx.clone(), k)
    }));
    tokio::spawn(controller::run("volume-protection", vpq, w, move |k| {
        volumeprotection::reconcile(vp_ctx.clone(), k)
    }));
    let pool = args.load_balancer_ip_range;
    tokio::spawn(controller::run("service", lbq, 1, move |k| {
        loadbalancer::reconcile(lb_ctx.clone(), pool, k)
    }));
    let hpa = horizontal::Tuning::new(
        args.horizontal_pod_autoscaler_sync_period,
        args.horizontal_pod_autoscaler_downscale_stabilization,
    );
    let memory = Arc::new(horizontal::Memory::default());
    tokio::spawn(controller::run(
        "horizontal-pod-autoscaler",
        hq,
        w,
        move |k| horizontal::reconcile(h_ctx.clone(), memory.clone(), hpa, k),
    ));

    shutdown.await;
    tracing::info!("shutting down");
    coxswain_runtime::leader::release(lease).await;
    Ok(())
}
