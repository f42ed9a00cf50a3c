//! `coxctl apply -f FILE...`: create what is missing, merge-patch what exists, and say
//! `created`, `configured` or `unchanged` as kubectl does.

use crate::context::{server_error, Ctx};
use crate::{manifest, printer};
use reqwest::Method;
use serde_json::json;

/// Create or update objects from files.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files or directories.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// Apply each object; false if any failed.
pub async fn run(ctx: &Ctx, a: &ApplyArgs) -> anyhow::Result<bool> {
    let files = &a.files;
    let mut ok = true;
    for d in manifest::read(files)? {
        let (r, ns, name) = ctx.doc_target(&d.object)?;
        let mut obj = d.object.clone();
        if let Some(ns) = &ns {
            obj["metadata"]["namespace"] = json!(ns);
        }
        let path = r.object_path(ns.as_deref(), &name);
        let what = printer::name_of(r.kind, r.group, &name);
        let res = match ctx
            .client
            .request(Method::GET, &path, &[], None, None)
            .await
        {
            Err(e) if e.is_not_found() => ctx
                .client
                .request(
                    Method::POST,
                    &r.collection_path(ns.as_deref()),
                    &[],
                    Some(&obj),
                    None,
                )
                .await
                .map(|_| "created"),
            Err(e) => Err(e),
            Ok(live) => ctx
                .client
                .request(
                    Method::PATCH,
                    &path,
                    &[],
                    Some(&obj),
                    Some("application/merge-patch+json"),
                )
                .await
                .map(|after| {
                    let same = |k: &str| after.pointer(k) == live.pointer(k);
                    if same("/spec") && same("/metadata/labels") && same("/metadata/annotations") {
                        "unchanged"
                    } else {
                        "configured"
                    }
                }),
        };
        match res {
            Ok(verb) => println!("{what} {verb}"),
            Err(e) => {
                eprintln!("{}", server_error(&e, "applying", Some(&d.source)));
                ok = false;
            }
        }
    }
    Ok(ok)
}
