//! `coxctl get KIND [NAME...]`: the arguments are resolved into a [`GetRequest`] (resource,
//! namespace, names, query), which is fetched (named objects, or a list and then a watch) and
//! handed to the printer: server-side Tables for the default and `wide` output, objects for
//! `yaml`/`json`/`name`.

use crate::context::{resource, server_error, Ctx};
use crate::printer::{self, Output};
use anyhow::bail;
use coxswain_api::resources::ResourceInfo;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;

/// What kubectl sends to get Tables (with plain JSON as the fallback).
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// List or get objects.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Resource type (`pods`, `deploy`, ...), optionally with names.
    pub resource: String,
    /// Object names.
    pub names: Vec<String>,
    /// Output format: yaml, json, wide, name.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Watch for changes after listing.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// A `get` resolved against the registry and the context.
pub struct GetRequest {
    r: &'static ResourceInfo,
    /// `None`: all namespaces (or cluster-scoped).
    ns: Option<String>,
    names: Vec<String>,
    query: Vec<(&'static str, String)>,
    output: Output,
    watch: bool,
    /// Print a NAMESPACE column (`-A` on a namespaced resource).
    ns_col: bool,
}

impl GetRequest {
    /// Resolve `KIND/NAME` or `KIND NAME...`, the namespace and the selectors.
    pub fn resolve(ctx: &Ctx, a: &GetArgs) -> anyhow::Result<GetRequest> {
        let (res, names): (String, Vec<String>) = match a.resource.split_once('/') {
            Some((t, n)) => (t.to_string(), vec![n.to_string()]),
            None => (a.resource.clone(), a.names.clone()),
        };
        let r = resource(&res)?;
        let mut query = Vec::new();
        if let Some(s) = &a.selector {
            query.push(("labelSelector", s.clone()));
        }
        if let Some(f) = &a.field_selector {
            query.push(("fieldSelector", f.clone()));
        }
        let ns = if a.all_namespaces && names.is_empty() {
            None
        } else {
            ctx.ns_for(r, None)
        };
        Ok(GetRequest {
            r,
            ns,
            names,
            query,
            output: Output::parse(a.output.as_deref())?,
            watch: a.watch,
            ns_col: a.all_namespaces && r.namespaced,
        })
    }

    fn tabular(&self) -> bool {
        matches!(self.output, Output::Table | Output::Wide)
    }

    fn wide(&self) -> bool {
        self.output == Output::Wide
    }

    fn print_names(&self, objs: &[Value]) {
        for o in objs {
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            println!("{}", printer::name_of(self.r.kind, self.r.group, name));
        }
    }
}

/// Run `get`; false if a named object could not be read.
pub async fn run(ctx: &Ctx, a: &GetArgs) -> anyhow::Result<bool> {
    let req = GetRequest::resolve(ctx, a)?;
    if !req.names.is_empty() {
        return get_named(ctx, &req).await;
    }
    let rv = list(ctx, &req).await?;
    if req.watch {
        watch(ctx, &req, rv).await?;
    }
    Ok(true)
}

/// Named objects, one GET each.
async fn get_named(ctx: &Ctx, req: &GetRequest) -> anyhow::Result<bool> {
    let mut ok = true;
    let mut found = Vec::new();
    for n in &req.names {
        let path = req.r.object_path(req.ns.as_deref(), n);
        let res = if req.tabular() {
            ctx.client.get_accept(&path, &[], TABLE_ACCEPT).await
        } else {
            ctx.client
                .request(Method::GET, &path, &[], None, None)
                .await
        };
        match res {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{}", server_error(&e, "getting", None));
                ok = false;
            }
        }
    }
    if req.tabular() {
        let mut lines = Vec::new();
        for (i, t) in found.iter().enumerate() {
            lines.extend(printer::table_lines(t, req.wide(), false, i == 0));
        }
        if !lines.is_empty() {
            print!("{}", printer::align(&lines));
        }
    } else if req.output == Output::Name {
        req.print_names(&found);
    } else if !found.is_empty() {
        print!(
            "{}",
            printer::print_objects(&found, req.output, found.len() > 1)?
        );
    }
    Ok(ok)
}

/// The list, printed; returns its resourceVersion (where a watch continues).
async fn list(ctx: &Ctx, req: &GetRequest) -> anyhow::Result<String> {
    let path = req.r.collection_path(req.ns.as_deref());
    let rv_of = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let listing = |e| anyhow::anyhow!(server_error(&e, "listing", None));
    if req.tabular() {
        let t = ctx
            .client
            .get_accept(&path, &req.query, TABLE_ACCEPT)
            .await
            .map_err(listing)?;
        let lines = printer::table_lines(&t, req.wide(), req.ns_col, true);
        if lines.len() <= 1 {
            match &req.ns {
                Some(ns) => eprintln!("No resources found in {ns} namespace."),
                None => eprintln!("No resources found"),
            }
        } else {
            print!("{}", printer::align(&lines));
        }
        std::io::stdout().flush()?;
        return Ok(rv_of(&t));
    }
    let list = ctx
        .client
        .request(Method::GET, &path, &req.query, None, None)
        .await
        .map_err(listing)?;
    let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    for i in &mut items {
        i["apiVersion"] = json!(req.r.api_version());
        i["kind"] = json!(req.r.kind);
    }
    if req.output == Output::Name {
        req.print_names(&items);
    } else {
        print!("{}", printer::print_objects(&items, req.output, true)?);
    }
    std::io::stdout().flush()?;
    Ok(rv_of(&list))
}

/// Watch from `rv`, printing each change as it comes.
async fn watch(ctx: &Ctx, req: &GetRequest, rv: String) -> anyhow::Result<()> {
    let path = req.r.collection_path(req.ns.as_deref());
    let mut q = req.query.clone();
    q.push(("resourceVersion", rv));
    q.push(("watch", "true".into()));
    let accept = if req.tabular() {
        TABLE_ACCEPT
    } else {
        "application/json"
    };
    let stream = ctx.client.stream(&path, &q, accept).await?;
    let mut lines = Box::pin(coxswain_client::lines(stream));
    while let Some(line) = lines.next().await {
        let ev: Value = serde_json::from_slice(&line?)?;
        if ev["type"] == "ERROR" {
            bail!("watch error: {}", ev["object"]["message"]);
        }
        if req.tabular() {
            let rows = printer::table_lines(&ev["object"], req.wide(), req.ns_col, false);
            print!("{}", printer::align(&rows));
        } else if req.output == Output::Name {
            req.print_names(std::slice::from_ref(&ev["object"]));
        } else {
            print!(
                "{}",
                printer::print_objects(&[ev["object"].clone()], req.output, false)?
            );
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}
