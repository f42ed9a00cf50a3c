//! Plumbing shared by the daemons: logging set-up, the shutdown signal and the API client
//! flags.

/// Log to stderr; `RUST_LOG` overrides the default `info`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The client flags every component takes (kube-scheduler's and the kubelet's names).
#[derive(clap::Args, Debug, Clone)]
pub struct ApiClientArgs {
    /// Requests per second to the API server, sustained (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub kube_api_qps: f64,
    /// Requests allowed in a burst above `--kube-api-qps`.
    #[arg(long, default_value_t = 100)]
    pub kube_api_burst: u32,
    /// Requests in flight at once (pooled connections are reused up to this many).
    #[arg(long, default_value_t = 64)]
    pub kube_api_max_in_flight: usize,
}

impl ApiClientArgs {
    /// A client for `server` with these limits.
    pub fn client(&self, server: &str) -> Result<coxswain_client::Client, coxswain_client::Error> {
        coxswain_client::Client::with_limits(
            server,
            coxswain_client::Limits {
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
                max_in_flight: self.kube_api_max_in_flight,
            },
        )
    }
}
