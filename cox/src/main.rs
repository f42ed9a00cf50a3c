//! `cox`: run a whole Coxswain cluster in one terminal (`cox up`) or watch the ten steps of a
//! Deployment happen (`cox demo`).

#![deny(clippy::unwrap_used, clippy::expect_used)]

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (args, demo, exit) = match &cli.cmd {
        Cmd::Up(a) => (a.clone(), false, false),
        Cmd::Demo { cluster, exit } => (cluster.clone(), true, *exit),
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
        _ = coxswain_runtime::daemon::shutdown_signal() => Ok(()),
    };
    if result.is_ok() && !exit {
        coxswain_runtime::daemon::shutdown_signal().await;
    }
    println!("\ncox: stopping the cluster");
    cluster.stop().await;
    result
}
