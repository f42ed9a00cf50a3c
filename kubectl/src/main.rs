//! `coxctl`: a small kubectl for Coxswain. Arguments are parsed into a command, the command
//! resolves resources through the registry in `coxswain-api`, calls the API server with
//! `coxswain-client`, and prints with [`printer`] (tables are computed by the server, so they
//! match kubectl's).

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod commands;
mod context;
mod manifest;
mod printer;

use clap::{Parser, Subcommand};
use commands::*;
use context::Ctx;
use coxswain_client::Client;

/// A small kubectl for Coxswain.
#[derive(Parser, Debug)]
#[command(name = "coxctl", version, about)]
struct Cli {
    /// API server URL.
    #[arg(
        long,
        short = 's',
        env = "COX_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Namespace.
    #[arg(long, short = 'n', global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create objects from files (`-f -` reads stdin).
    Create(create::CreateArgs),
    /// Create or update objects from files.
    Apply(apply::ApplyArgs),
    /// List or get objects.
    Get(get::GetArgs),
    /// Delete objects by name or from files.
    Delete(delete::DeleteArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(scale::ScaleArgs),
    /// Print a pod's container log.
    Logs(logs::LogsArgs),
    /// Show an object in detail, with its events.
    Describe(describe::DescribeArgs),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            let msg = format!("{e:#}");
            if msg.starts_with("Error from server") || msg.starts_with("error:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let ctx = Ctx {
        client: Client::new(&cli.server)?,
        namespace: cli.namespace.clone().unwrap_or_else(|| "default".into()),
        explicit_ns: cli.namespace.is_some(),
    };
    match &cli.cmd {
        Cmd::Create(a) => create::run(&ctx, a).await,
        Cmd::Apply(a) => apply::run(&ctx, a).await,
        Cmd::Get(a) => get::run(&ctx, a).await,
        Cmd::Delete(a) => delete::run(&ctx, a).await,
        Cmd::Scale(a) => scale::run(&ctx, a).await,
        Cmd::Logs(a) => logs::run(&ctx, a).await,
        Cmd::Describe(a) => describe::run(&ctx, a).await,
    }
}
