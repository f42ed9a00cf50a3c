//! The API client flags every component takes (logging and the shutdown signal are in
//! `coxswain-daemon`).

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
    pub fn client(
        &self,
        server: &str,
        agent: &str,
    ) -> Result<coxswain_client::Client, coxswain_client::Error> {
        coxswain_client::Client::with_agent(
            server,
            coxswain_client::Limits {
                qps: self.kube_api_qps,
                burst: self.kube_api_burst,
                max_in_flight: self.kube_api_max_in_flight,
            },
            agent,
        )
    }
}
