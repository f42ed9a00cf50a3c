//! What every Coxswain process shares before its own work starts: the allocator (a binary
//! that links this crate allocates with mimalloc), logging to stderr (`RUST_LOG`, default
//! `info`), and the shutdown signal (Ctrl-C or SIGTERM). Each daemon's `main` is its flags,
//! [`init_tracing`], and its library's `run(config, shutdown_signal())`.

/// mimalloc: the API server allocates and frees many small JSON values per request and the
/// informers decode and drop many small objects per event; glibc's malloc was ~20 % of their
/// CPU in `perf` during `cox bench` (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
