//! `cox-apiserver`: flags, logging, bind, then [`cox_apiserver::run`].

#![deny(clippy::unwrap_used, clippy::expect_used)]

use anyhow::Context;

use clap::Parser;

/// The Coxswain API server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (kubectl's no-kubeconfig default is 127.0.0.1:8080).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data directory for sled (default: the user's data dir, else the temp dir).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Storage backend: `sled` (embedded) or `etcd`.
    #[arg(long, default_value = "sled", value_parser = ["sled", "etcd"])]
    storage: String,
    /// etcd client URLs, comma-separated (with `--storage etcd`).
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Key prefix in etcd.
    #[arg(long, default_value = "/registry/")]
    etcd_prefix: String,
    /// How often etcd history is compacted, in seconds (Kubernetes: 300).
    #[arg(long, default_value_t = 300.0)]
    etcd_compaction_interval_seconds: f64,
    /// Events kept in the watch cache; watchers further behind must relist.
    #[arg(long, default_value_t = 100_000)]
    watch_cache_size: usize,
    /// How long Events are kept, in seconds (Kubernetes' default is one hour).
    #[arg(long, default_value_t = 3600)]
    event_ttl_seconds: u64,
    /// How long watches may go on after SIGTERM before they are ended, so the server can
    /// exit (Kubernetes' flag and default: `0s`). A duration: `0s`, `500ms`, `5s`, `1m`.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    shutdown_watch_termination_grace_period: std::time::Duration,
    /// Reads in flight at once; beyond it 429 with `Retry-After` (Kubernetes: 400).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Writes in flight at once; beyond it 429 with `Retry-After` (Kubernetes: 200).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// How long a request (not a watch) may take before it is answered 504 (Kubernetes: 1m).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    request_timeout: std::time::Duration,
    /// How long a client may take to send a request's headers before the connection is
    /// closed (kube-apiserver hard-codes 32 s).
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    read_header_timeout: std::time::Duration,
    /// How long a connection may sit with no request in flight before it is closed
    /// (kube-apiserver hard-codes 90 s; HTTP/1.1 connections waiting for their next request
    /// are already closed at the header deadline).
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    idle_timeout: std::time::Duration,
    /// The range Service cluster IPs come from (kubeadm's default; the `kubernetes` Service
    /// gets its first address).
    #[arg(long, default_value = "10.96.0.0/12", value_parser = cox_apiserver::allocator::parse_cidr)]
    service_cluster_ip_range: (std::net::Ipv4Addr, u8),
    /// The range of node ports for NodePort and LoadBalancer Services.
    #[arg(long, default_value = "30000-32767", value_parser = cox_apiserver::allocator::parse_port_range)]
    service_node_port_range: (u16, u16),
    /// Clients (by User-Agent) whose writes naming no fieldManager are not recorded in
    /// managedFields. Default: Coxswain's own components, whose tracking costs about a third
    /// of the startup benchmark's time (docs/benchmarks.md); set it empty
    /// (`--untracked-field-managers=`) to record them as Kubernetes does.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kube-controller-manager,kube-scheduler,kubelet"
    )]
    untracked_field_managers: Vec<String>,
}

/// A Go-style duration with one unit (`ms`, `s`, `m`, `h`).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 0s, 500ms, 5s, 1m");
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

fn default_data_dir() -> std::path::PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/share"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("coxswain")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coxswain_daemon::init_tracing();
    let args = Args::parse();
    let storage = if args.storage == "etcd" {
        cox_apiserver::Storage::Etcd {
            endpoints: args.etcd_servers.clone(),
            prefix: args.etcd_prefix.clone(),
            compaction_interval: std::time::Duration::from_secs_f64(
                args.etcd_compaction_interval_seconds.max(0.1),
            ),
        }
    } else {
        cox_apiserver::Storage::Sled(args.data_dir.clone().unwrap_or_else(default_data_dir))
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, storage = ?storage, "cox-apiserver serving");
    let config = cox_apiserver::Config {
        storage,
        watch_cache_size: args.watch_cache_size,
        event_ttl: std::time::Duration::from_secs(args.event_ttl_seconds.max(1)),
        watch_termination_grace: args.shutdown_watch_termination_grace_period,
        max_requests_inflight: args.max_requests_inflight,
        max_mutating_requests_inflight: args.max_mutating_requests_inflight,
        request_timeout: args.request_timeout,
        read_header_timeout: args.read_header_timeout,
        idle_timeout: args.idle_timeout,
        ranges: cox_apiserver::allocator::Ranges {
            service_net: args.service_cluster_ip_range,
            node_ports: args.service_node_port_range,
        },
        untracked_field_managers: args
            .untracked_field_managers
            .into_iter()
            .filter(|m| !m.is_empty())
            .collect(),
    };
    cox_apiserver::run(listener, config, coxswain_daemon::shutdown_signal()).await
}
