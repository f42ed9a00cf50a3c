//! `coxctl delete KIND NAME... | -f FILE`: DELETE each object with a propagation policy.

use crate::context::{resource, server_error, Ctx};
use crate::manifest;
use anyhow::bail;
use coxswain_api::resources::ResourceInfo;
use reqwest::Method;
use serde_json::json;

/// Delete objects by name or from files.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Resource type.
    pub resource: Option<String>,
    /// Object names.
    pub names: Vec<String>,
    /// Files.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Propagation: background, foreground, orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
}

/// Delete each object; false if any failed.
pub async fn run(ctx: &Ctx, a: &DeleteArgs) -> anyhow::Result<bool> {
    let (res, names, files, cascade) = (a.resource.as_deref(), &a.names, &a.files, &a.cascade);
    let policy = match cascade.as_str() {
        "background" | "true" => "Background",
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        other => bail!("invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""),
    };
    let body = json!({"propagationPolicy": policy});
    let mut targets: Vec<(
        &'static ResourceInfo,
        Option<String>,
        String,
        Option<String>,
    )> = Vec::new();
    for d in manifest::read(files)? {
        let (r, ns, name) = ctx.doc_target(&d.object)?;
        targets.push((r, ns, name, Some(d.source)));
    }
    if let Some(res) = res {
        let (res, names): (String, Vec<String>) = match res.split_once('/') {
            Some((t, n)) => (t.to_string(), vec![n.to_string()]),
            None => (res.to_string(), names.to_vec()),
        };
        let r = resource(&res)?;
        for n in names {
            targets.push((r, ctx.ns_for(r, None), n, None));
        }
    }
    if targets.is_empty() {
        bail!("resource(s) were provided, but no name was specified");
    }
    let mut ok = true;
    for (r, ns, name, source) in targets {
        match ctx
            .client
            .request(
                Method::DELETE,
                &r.object_path(ns.as_deref(), &name),
                &[],
                Some(&body),
                None,
            )
            .await
        {
            Ok(_) => println!("{} \"{name}\" deleted", r.qualified_plural()),
            Err(e) => {
                eprintln!("{}", server_error(&e, "deleting", source.as_deref()));
                ok = false;
            }
        }
    }
    Ok(ok)
}
