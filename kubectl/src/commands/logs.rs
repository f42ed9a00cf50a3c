//! `coxctl logs POD`: stream `pods/NAME/log` to stdout.

use crate::context::{server_error, Ctx};
use futures::StreamExt;
use std::io::Write;

/// Print a pod's container log.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Pod name (or `pod/name`).
    pub pod: String,
    /// Container.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Follow.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Last N lines.
    #[arg(long)]
    pub tail: Option<i64>,
    /// Prefix timestamps.
    #[arg(long)]
    pub timestamps: bool,
}

/// Print the log.
pub async fn run(ctx: &Ctx, a: &LogsArgs) -> anyhow::Result<bool> {
    let (pod, container, follow, tail, timestamps) = (
        a.pod.as_str(),
        a.container.as_deref(),
        a.follow,
        a.tail,
        a.timestamps,
    );
    let name = pod
        .strip_prefix("pod/")
        .or(pod.strip_prefix("pods/"))
        .unwrap_or(pod);
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(c) = container {
        q.push(("container", c.to_string()));
    }
    if follow {
        q.push(("follow", "true".into()));
    }
    if let Some(t) = tail {
        q.push(("tailLines", t.to_string()));
    }
    if timestamps {
        q.push(("timestamps", "true".into()));
    }
    let path = format!("/api/v1/namespaces/{}/pods/{name}/log", ctx.namespace);
    let mut stream = Box::pin(
        ctx.client
            .stream(&path, &q, "*/*")
            .await
            .map_err(|e| anyhow::anyhow!(server_error(&e, "getting logs", None)))?,
    );
    let mut out = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(true)
}
