//! `coxctl create -f FILE...`: POST every document of the manifests.

use crate::context::{server_error, Ctx};
use crate::{manifest, printer};
use reqwest::Method;
use serde_json::{json, Value};

/// Create objects from files (`-f -` reads stdin).
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Files or directories.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// Create each object; false if any failed.
pub async fn run(ctx: &Ctx, a: &CreateArgs) -> anyhow::Result<bool> {
    let files = &a.files;
    let mut ok = true;
    for d in manifest::read(files)? {
        let (r, ns, _) = ctx.doc_target(&d.object)?;
        let mut obj = d.object.clone();
        if let Some(ns) = &ns {
            obj["metadata"]["namespace"] = json!(ns);
        }
        match ctx
            .client
            .request(
                Method::POST,
                &r.collection_path(ns.as_deref()),
                &[],
                Some(&obj),
                None,
            )
            .await
        {
            Ok(created) => {
                let name = created
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                println!("{} created", printer::name_of(r.kind, r.group, name));
            }
            Err(e) => {
                eprintln!("{}", server_error(&e, "creating", Some(&d.source)));
                ok = false;
            }
        }
    }
    Ok(ok)
}
