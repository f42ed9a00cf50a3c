//! `cox-kubelet`: flags, logging, then [`cox_kubelet::run`] until Ctrl-C or SIGTERM.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coxswain_daemon::init_tracing();
    let config = cox_kubelet::Config::parse();
    cox_kubelet::run(config, coxswain_daemon::shutdown_signal()).await
}
