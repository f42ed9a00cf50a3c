//! `cox`: run a whole Coxswain cluster in one terminal (`cox up`) or watch the ten steps of a
//! Deployment happen (`cox demo`).

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod cluster;
mod demo;

use clap::{Parser, Subcommand};
use cluster::{Cluster, Logs, Options};
use std::time::Duration;

/// Coxswain: a small Kubernetes control plane.
#[derive(Parser, Debug)]
#[command(name = "cox", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
struct ClusterArgs {
    /// API server address (kubectl's default server is 127.0.0.1:8080).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Number of simulated nodes (kubelets).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Data directory (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the API server, controllers, scheduler and N kubelets; Ctrl-C stops them.
    Up(ClusterArgs),
    /// Start a cluster, create examples/deployment.yaml and narrate the ten steps.
    Demo {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Stop the cluster once the deployment is available instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Run benchmark scenarios (startup, daemonset, volumes, api, watch, pace, storage) and
    /// write JSON.
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct BenchArgs {
    /// Target a running cluster instead of starting one.
    #[arg(long)]
    server: Option<String>,
    /// `startup`, `daemonset`, `api`, `watch`, `pace`, `storage`, `all` (those six) or `soak`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// The full sizes (10,000 pods on 1,000 nodes; 16 clients; 100 watchers at 1,000 writes/s)
    /// instead of the smoke sizes.
    #[arg(long)]
    full: bool,
    /// Pods for `startup`.
    #[arg(long)]
    pods: Option<usize>,
    /// Simulated nodes for `startup` (when starting the cluster).
    #[arg(long)]
    nodes: Option<usize>,
    /// Concurrent clients for `api`.
    #[arg(long)]
    clients: Option<usize>,
    /// Watchers for `watch`.
    #[arg(long)]
    watchers: Option<usize>,
    /// Writes per second for `watch`.
    #[arg(long)]
    rate: Option<u64>,
    /// Writes for `soak` (each backend).
    #[arg(long)]
    soak_writes: Option<usize>,
    /// Pods per second for `pace`.
    #[arg(long)]
    pace_rate: Option<u64>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench.json")]
    json: std::path::PathBuf,
    /// API server address when starting a cluster.
    #[arg(long, default_value = "127.0.0.1:18181")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Bench(b) = &cli.cmd {
        return run_bench(b.clone()).await;
    }
    let (args, demo, exit) = match &cli.cmd {
        Cmd::Up(a) => (a.clone(), false, false),
        Cmd::Demo { cluster, exit } => (cluster.clone(), true, *exit),
        Cmd::Bench(_) => unreachable_bench()?,
    };
    let tmp = tempfile::Builder::new().prefix("coxswain-").tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("data"));
    let logs = if demo {
        Logs::Files(tmp.path().to_path_buf())
    } else {
        Logs::Prefixed
    };
    let cluster = Cluster::start(&Options {
        listen: args.listen.clone(),
        data_dir,
        nodes: args.nodes,
        logs,
        one_kubelet: false,
        kubelet_args: Vec::new(),
    })
    .await?;
    let ready = async {
        cluster
            .wait_nodes_ready(args.nodes, Duration::from_secs(30))
            .await?;
        println!(
            "cox: cluster ready in {} ms: apiserver {} , controllers, scheduler, {} node(s)",
            cluster.started.elapsed().as_millis(),
            cluster.server,
            args.nodes
        );
        if demo {
            println!("cox: component logs are in {}\n", tmp.path().display());
            demo::run(&cluster.server, Duration::from_secs(60)).await?;
            if !exit {
                println!("\nThe cluster keeps running: try `kubectl --server {} get pods`. Ctrl-C stops it.", cluster.server);
            }
        } else {
            println!(
                "cox: try `kubectl --server {} get nodes`. Ctrl-C stops the cluster.",
                cluster.server
            );
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = ready => r,
        _ = coxswain_daemon::shutdown_signal() => Ok(()),
    };
    if result.is_ok() && !exit {
        coxswain_daemon::shutdown_signal().await;
    }
    println!("\ncox: stopping the cluster");
    cluster.stop().await;
    result
}

fn unreachable_bench() -> anyhow::Result<(ClusterArgs, bool, bool)> {
    anyhow::bail!("bench is handled before the cluster commands")
}

async fn run_bench(b: BenchArgs) -> anyhow::Result<()> {
    let pods = b.pods.unwrap_or(if b.full { 10_000 } else { 100 });
    let nodes = b.nodes.unwrap_or(if b.full { 1_000 } else { 10 });
    let clients = b.clients.unwrap_or(if b.full { 16 } else { 4 });
    let ops = if b.full { 200 } else { 25 };
    let watchers = b.watchers.unwrap_or(if b.full { 100 } else { 10 });
    let rate = b.rate.unwrap_or(if b.full { 1_000 } else { 100 });
    let writes = if b.full { 5_000 } else { 200 };
    let tmp = tempfile::Builder::new().prefix("cox-bench-").tempdir()?;
    let needs_cluster = ["startup", "daemonset", "volumes", "api", "watch", "pace"]
        .iter()
        .any(|s| b.scenario == "all" || b.scenario == *s);
    let cluster = match &b.server {
        Some(_) => None,
        None if !needs_cluster => None,
        None => {
            let c = Cluster::start(&Options {
                listen: b.listen.clone(),
                data_dir: tmp.path().join("data"),
                nodes,
                logs: Logs::Files(tmp.path().to_path_buf()),
                one_kubelet: true,
                kubelet_args: vec![
                    "--pull-ms".into(),
                    "100".into(),
                    "--start-ms".into(),
                    "20".into(),
                ],
            })
            .await?;
            c.wait_nodes_ready(nodes, Duration::from_secs(300)).await?;
            Some(c)
        }
    };
    let server = b
        .server
        .clone()
        .or_else(|| cluster.as_ref().map(|c| c.server.clone()))
        .unwrap_or_default();
    let client = coxswain_client::Client::new(&server)?;
    let pids: Vec<(&str, Option<u32>)> = ["apiserver", "controllers", "scheduler", "kubelets"]
        .into_iter()
        .map(|n| (n, cluster.as_ref().and_then(|c| c.pid(n))))
        .collect();
    // The processes whose CPU the cluster scenarios report: the cluster's, and this one.
    let mut started: Vec<(&str, u32)> =
        pids.iter().filter_map(|(n, p)| Some((*n, (*p)?))).collect();
    if cluster.is_some() {
        started.push(("bench", std::process::id()));
    }
    let mut results = Vec::new();
    let want = |s: &str| b.scenario == "all" || b.scenario == s;
    let run = async {
        if want("startup") {
            results.push(bench::startup(&client, pods, Duration::from_secs(600), &started).await?);
        }
        if want("daemonset") {
            results
                .push(bench::daemonset(&client, nodes, Duration::from_secs(600), &started).await?);
        }
        if want("volumes") {
            let n = b.pods.unwrap_or(if b.full { 1_000 } else { 50 });
            results.push(bench::volumes(&client, n, Duration::from_secs(600), &started).await?);
        }
        if want("api") {
            results.push(bench::api(&client, clients, ops).await?);
        }
        if want("watch") {
            results.push(bench::watch(&client, watchers, rate, writes).await?);
        }
        if want("pace") {
            let (rate, secs) = if b.full { (100, 60) } else { (20, 5) };
            results.push(bench::pace(&client, b.pace_rate.unwrap_or(rate), secs).await?);
        }
        if b.scenario == "soak" {
            let bins = cluster::bin_dir()?;
            let soak_writes = b
                .soak_writes
                .unwrap_or(if b.full { 200_000 } else { 2_000 });
            results.push(bench::soak(&bins, clients, soak_writes).await?);
        }
        if want("storage") {
            let bins = cluster::bin_dir()?;
            let storage_writes = if b.full { 20_000 } else { 300 };
            results.push(bench::storage(&bins, clients, storage_writes).await?);
        }
        anyhow::Ok(())
    };
    let outcome = run.await;
    // CPU and peak RSS of each component this process started, and of the bench itself
    // (its load generators and watchers share the machine's cores).
    let mut usage: Vec<(&str, (f64, f64))> = pids
        .iter()
        .filter_map(|(n, pid)| Some((*n, bench::proc_usage((*pid)?)?)))
        .collect();
    if cluster.is_some() {
        usage.extend(bench::proc_usage(std::process::id()).map(|u| ("bench", u)));
    }
    if let Some(c) = cluster {
        c.stop().await;
    }
    outcome?;
    println!("{:<10} figures", "scenario");
    for r in &results {
        let mut line = Vec::new();
        if let Some(m) = r.as_object() {
            for (k, v) in m.iter().filter(|(k, _)| *k != "scenario") {
                let shown = match v.as_f64() {
                    Some(f) if v.is_f64() => format!("{f:.2}"),
                    _ => v.to_string(),
                };
                line.push(format!("{k}={shown}"));
            }
        }
        println!(
            "{:<10} {}",
            r["scenario"].as_str().unwrap_or(""),
            line.join(" ")
        );
    }
    let mut processes = serde_json::Map::new();
    for (name, (rss, cpu)) in &usage {
        println!("{name:<10} peak_rss_mib={rss:.1} cpu_s={cpu:.2}");
        processes.insert(
            name.to_string(),
            serde_json::json!({"peak_rss_mib": rss, "cpu_s": cpu}),
        );
    }
    let out = serde_json::json!({"results": results,
        "apiserver": processes.get("apiserver"), "processes": processes});
    std::fs::write(&b.json, serde_json::to_vec_pretty(&out)?)?;
    println!("results written to {}", b.json.display());
    Ok(())
}
