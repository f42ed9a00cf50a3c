//! `coxctl scale KIND/NAME --replicas N`: a merge patch of the `scale` subresource.

use crate::context::{resource, server_error, Ctx};
use crate::printer;
use anyhow::bail;
use reqwest::Method;
use serde_json::json;

/// Set the replicas of a Deployment or ReplicaSet.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// `deployment/web` or `deployment web`.
    pub target: String,
    /// Name, when the target is a type.
    pub name: Option<String>,
    /// New replica count.
    #[arg(long)]
    pub replicas: i64,
}

/// Scale; false if the server refused.
pub async fn run(ctx: &Ctx, a: &ScaleArgs) -> anyhow::Result<bool> {
    let (target, name, replicas) = (a.target.as_str(), a.name.as_deref(), a.replicas);
    let (t, n) = match (target.split_once('/'), name) {
        (Some((t, n)), _) => (t.to_string(), n.to_string()),
        (None, Some(n)) => (target.to_string(), n.to_string()),
        (None, None) => bail!("resource(s) were provided, but no name was specified"),
    };
    let r = resource(&t)?;
    if !r.has_scale {
        bail!("cannot scale {}", r.plural);
    }
    let path = format!(
        "{}/scale",
        r.object_path(ctx.ns_for(r, None).as_deref(), &n)
    );
    match ctx
        .client
        .request(
            Method::PATCH,
            &path,
            &[],
            Some(&json!({"spec": {"replicas": replicas}})),
            Some("application/merge-patch+json"),
        )
        .await
    {
        Ok(_) => {
            println!("{} scaled", printer::name_of(r.kind, r.group, &n));
            Ok(true)
        }
        Err(e) => {
            eprintln!("{}", server_error(&e, "scaling", None));
            Ok(false)
        }
    }
}
