//! `coxctl`: a small kubectl for Coxswain. Arguments are parsed into a command, the command
//! resolves resources through the registry in `coxswain-api`, calls the API server with
//! `coxswain-client`, and prints with [`printer`] (tables are computed by the server, so they
//! match kubectl's).

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod manifest;
mod printer;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use coxswain_api::resources::{by_kind, by_user_name, ResourceInfo};
use coxswain_client::{Client, Error as ClientError};
use futures::StreamExt;
use printer::Output;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A small kubectl for Coxswain.
#[derive(Parser, Debug)]
#[command(name = "coxctl", version, about)]
struct Cli {
    /// API server URL.
    #[arg(
        long,
        short = 's',
        env = "COX_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Namespace.
    #[arg(long, short = 'n', global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create objects from files (`-f -` reads stdin).
    Create {
        /// Files or directories.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Create or update objects from files.
    Apply {
        /// Files or directories.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// List or get objects.
    Get {
        /// Resource type (`pods`, `deploy`, ...), optionally with names.
        resource: String,
        /// Object names.
        names: Vec<String>,
        /// Output format: yaml, json, wide, name.
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// Watch for changes after listing.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Field selector.
        #[arg(long)]
        field_selector: Option<String>,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Delete objects by name or from files.
    Delete {
        /// Resource type.
        resource: Option<String>,
        /// Object names.
        names: Vec<String>,
        /// Files.
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// Propagation: background, foreground, orphan.
        #[arg(long, default_value = "background")]
        cascade: String,
    },
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale {
        /// `deployment/web` or `deployment web`.
        target: String,
        /// Name, when the target is a type.
        name: Option<String>,
        /// New replica count.
        #[arg(long)]
        replicas: i64,
    },
    /// Print a pod's container log.
    Logs {
        /// Pod name (or `pod/name`).
        pod: String,
        /// Container.
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Follow.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Last N lines.
        #[arg(long)]
        tail: Option<i64>,
        /// Prefix timestamps.
        #[arg(long)]
        timestamps: bool,
    },
    /// Show an object in detail, with its events.
    Describe {
        /// Resource type.
        resource: String,
        /// Name.
        name: String,
    },
}

struct Ctx {
    client: Client,
    namespace: String,
    explicit_ns: bool,
}

fn resource(name: &str) -> anyhow::Result<&'static ResourceInfo> {
    by_user_name(name)
        .with_context(|| format!("the server doesn't have a resource type \"{name}\""))
}

/// The message kubectl prints for a server error.
fn server_error(e: &ClientError, verb: &str, source: Option<&str>) -> String {
    match e {
        ClientError::Api(a) if a.reason == "Invalid" && a.kind().is_some() => {
            let causes: Vec<String> = a
                .causes()
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            let list = if causes.len() == 1 {
                causes[0].clone()
            } else {
                format!("[{}]", causes.join(", "))
            };
            format!(
                "The {} \"{}\" is invalid: {list}",
                a.kind().unwrap_or(""),
                a.name().unwrap_or("")
            )
        }
        ClientError::Api(a) => match source {
            Some(s) => format!(
                "Error from server ({}): error when {verb} \"{s}\": {}",
                a.reason, a.message
            ),
            None => format!("Error from server ({}): {}", a.reason, a.message),
        },
        other => format!("error: {other}"),
    }
}

impl Ctx {
    fn ns_for(&self, r: &ResourceInfo, obj: Option<&Value>) -> Option<String> {
        if !r.namespaced {
            return None;
        }
        let from_obj = obj
            .and_then(|o| o.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        Some(match (from_obj, self.explicit_ns) {
            (Some(o), false) => o.to_string(),
            _ => self.namespace.clone(),
        })
    }

    fn doc_target(
        &self,
        obj: &Value,
    ) -> anyhow::Result<(&'static ResourceInfo, Option<String>, String)> {
        let av = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let r = by_kind(av, kind).with_context(|| {
            format!("resource mapping not found for kind \"{kind}\" in version \"{av}\"")
        })?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Ok((r, self.ns_for(r, Some(obj)), name))
    }

    async fn create(&self, files: &[String]) -> anyhow::Result<bool> {
        let mut ok = true;
        for d in manifest::read(files)? {
            let (r, ns, _) = self.doc_target(&d.object)?;
            let mut obj = d.object.clone();
            if let Some(ns) = &ns {
                obj["metadata"]["namespace"] = json!(ns);
            }
            match self
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

    async fn apply(&self, files: &[String]) -> anyhow::Result<bool> {
        let mut ok = true;
        for d in manifest::read(files)? {
            let (r, ns, name) = self.doc_target(&d.object)?;
            let mut obj = d.object.clone();
            if let Some(ns) = &ns {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let path = r.object_path(ns.as_deref(), &name);
            let what = printer::name_of(r.kind, r.group, &name);
            let res = match self
                .client
                .request(Method::GET, &path, &[], None, None)
                .await
            {
                Err(e) if e.is_not_found() => self
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
                Ok(live) => self
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
                        if same("/spec")
                            && same("/metadata/labels")
                            && same("/metadata/annotations")
                        {
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

    #[allow(clippy::too_many_arguments)]
    async fn get(
        &self,
        res: &str,
        names: &[String],
        output: Output,
        watch: bool,
        selector: Option<&str>,
        fields: Option<&str>,
        all: bool,
    ) -> anyhow::Result<bool> {
        let (res, names): (String, Vec<String>) = match res.split_once('/') {
            Some((t, n)) => (t.to_string(), vec![n.to_string()]),
            None => (res.to_string(), names.to_vec()),
        };
        let r = resource(&res)?;
        let ns = if all { None } else { self.ns_for(r, None) };
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(s) = selector {
            q.push(("labelSelector", s.to_string()));
        }
        if let Some(f) = fields {
            q.push(("fieldSelector", f.to_string()));
        }
        let tabular = matches!(output, Output::Table | Output::Wide);
        let ns_col = all && r.namespaced;
        if !names.is_empty() {
            let mut ok = true;
            let mut objs = Vec::new();
            let mut tables = Vec::new();
            for n in &names {
                let path = r.object_path(ns.as_deref().or(Some(&self.namespace)), n);
                let res = if tabular {
                    self.client.get_accept(&path, &[], TABLE_ACCEPT).await
                } else {
                    self.client
                        .request(Method::GET, &path, &[], None, None)
                        .await
                };
                match res {
                    Ok(v) if tabular => tables.push(v),
                    Ok(v) => objs.push(v),
                    Err(e) => {
                        eprintln!("{}", server_error(&e, "getting", None));
                        ok = false;
                    }
                }
            }
            if tabular {
                let mut lines = Vec::new();
                for (i, t) in tables.iter().enumerate() {
                    lines.extend(printer::table_lines(
                        t,
                        output == Output::Wide,
                        false,
                        i == 0,
                    ));
                }
                if !lines.is_empty() {
                    print!("{}", printer::align(&lines));
                }
            } else if output == Output::Name {
                for o in &objs {
                    println!(
                        "{}",
                        printer::name_of(
                            r.kind,
                            r.group,
                            o["metadata"]["name"].as_str().unwrap_or("")
                        )
                    );
                }
            } else if !objs.is_empty() {
                print!("{}", printer::print_objects(&objs, output, objs.len() > 1)?);
            }
            return Ok(ok);
        }
        let path = r.collection_path(ns.as_deref());
        let rv;
        if tabular {
            let t = self
                .client
                .get_accept(&path, &q, TABLE_ACCEPT)
                .await
                .map_err(|e| anyhow::anyhow!(server_error(&e, "listing", None)))?;
            rv = t
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let lines = printer::table_lines(&t, output == Output::Wide, ns_col, true);
            if lines.len() <= 1 {
                match &ns {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
            } else {
                print!("{}", printer::align(&lines));
            }
        } else {
            let list = self
                .client
                .request(Method::GET, &path, &q, None, None)
                .await
                .map_err(|e| anyhow::anyhow!(server_error(&e, "listing", None)))?;
            rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
            for i in &mut items {
                i["apiVersion"] = json!(r.api_version());
                i["kind"] = json!(r.kind);
            }
            if output == Output::Name {
                for o in &items {
                    println!(
                        "{}",
                        printer::name_of(
                            r.kind,
                            r.group,
                            o["metadata"]["name"].as_str().unwrap_or("")
                        )
                    );
                }
            } else {
                print!("{}", printer::print_objects(&items, output, true)?);
            }
        }
        std::io::stdout().flush()?;
        if watch {
            q.push(("resourceVersion", rv));
            q.push(("watch", "true".into()));
            let accept = if tabular {
                TABLE_ACCEPT
            } else {
                "application/json"
            };
            let stream = self.client.stream(&path, &q, accept).await?;
            let mut lines = Box::pin(coxswain_client::lines(stream));
            while let Some(line) = lines.next().await {
                let ev: Value = serde_json::from_slice(&line?)?;
                if ev["type"] == "ERROR" {
                    bail!("watch error: {}", ev["object"]["message"]);
                }
                if tabular {
                    let rows =
                        printer::table_lines(&ev["object"], output == Output::Wide, ns_col, false);
                    print!("{}", printer::align(&rows));
                } else if output == Output::Name {
                    println!(
                        "{}",
                        printer::name_of(
                            r.kind,
                            r.group,
                            ev["object"]["metadata"]["name"].as_str().unwrap_or("")
                        )
                    );
                } else {
                    print!(
                        "{}",
                        printer::print_objects(&[ev["object"].clone()], output, false)?
                    );
                }
                std::io::stdout().flush()?;
            }
        }
        Ok(true)
    }

    async fn delete(
        &self,
        res: Option<&str>,
        names: &[String],
        files: &[String],
        cascade: &str,
    ) -> anyhow::Result<bool> {
        let policy = match cascade {
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
            let (r, ns, name) = self.doc_target(&d.object)?;
            targets.push((r, ns, name, Some(d.source)));
        }
        if let Some(res) = res {
            let (res, names): (String, Vec<String>) = match res.split_once('/') {
                Some((t, n)) => (t.to_string(), vec![n.to_string()]),
                None => (res.to_string(), names.to_vec()),
            };
            let r = resource(&res)?;
            for n in names {
                targets.push((r, self.ns_for(r, None), n, None));
            }
        }
        if targets.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        let mut ok = true;
        for (r, ns, name, source) in targets {
            match self
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

    async fn scale(&self, target: &str, name: Option<&str>, replicas: i64) -> anyhow::Result<bool> {
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
            r.object_path(self.ns_for(r, None).as_deref(), &n)
        );
        match self
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

    async fn logs(
        &self,
        pod: &str,
        container: Option<&str>,
        follow: bool,
        tail: Option<i64>,
        timestamps: bool,
    ) -> anyhow::Result<bool> {
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
        let path = format!("/api/v1/namespaces/{}/pods/{name}/log", self.namespace);
        let mut stream = Box::pin(
            self.client
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

    async fn describe(&self, res: &str, name: &str) -> anyhow::Result<bool> {
        let r = resource(res)?;
        let ns = self.ns_for(r, None);
        let obj = match self
            .client
            .request(
                Method::GET,
                &r.object_path(ns.as_deref(), name),
                &[],
                None,
                None,
            )
            .await
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{}", server_error(&e, "describing", None));
                return Ok(false);
            }
        };
        let s = |p: &str| {
            obj.pointer(p)
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "<none>".into())
        };
        let kv = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join("\n              ")
                })
                .unwrap_or_else(|| "<none>".into())
        };
        println!("Name:         {name}");
        if r.namespaced {
            println!("Namespace:    {}", s("/metadata/namespace"));
        }
        println!("Labels:       {}", kv("/metadata/labels"));
        println!("Annotations:  {}", kv("/metadata/annotations"));
        println!("CreationTimestamp:  {}", s("/metadata/creationTimestamp"));
        match r.plural {
            "pods" => {
                println!("Node:         {}", s("/spec/nodeName"));
                println!("Status:       {}", s("/status/phase"));
                println!("IP:           {}", s("/status/podIP"));
                if let Some(owner) = obj.pointer("/metadata/ownerReferences/0") {
                    println!(
                        "Controlled By:  {}/{}",
                        owner["kind"].as_str().unwrap_or(""),
                        owner["name"].as_str().unwrap_or("")
                    );
                }
                println!("Containers:");
                for c in obj
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let cname = c["name"].as_str().unwrap_or("");
                    let st = obj
                        .pointer("/status/containerStatuses")
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find(|x| x["name"] == cname))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let state = st["state"]
                        .as_object()
                        .and_then(|m| m.keys().next().cloned())
                        .unwrap_or_else(|| "Waiting".into());
                    println!("  {cname}:");
                    println!(
                        "    Container ID:   {}",
                        st["containerID"].as_str().unwrap_or("")
                    );
                    println!("    Image:          {}", c["image"].as_str().unwrap_or(""));
                    println!(
                        "    Image ID:       {}",
                        st["imageID"].as_str().unwrap_or("")
                    );
                    println!(
                        "    State:          {}{}",
                        state[..1].to_uppercase(),
                        &state[1..]
                    );
                    println!(
                        "    Ready:          {}",
                        st["ready"]
                            .as_bool()
                            .map_or("False", |b| if b { "True" } else { "False" })
                    );
                    println!(
                        "    Restart Count:  {}",
                        st["restartCount"].as_i64().unwrap_or(0)
                    );
                }
                println!("Conditions:\n  Type              Status");
                for c in obj
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  {:<17} {}",
                        c["type"].as_str().unwrap_or(""),
                        c["status"].as_str().unwrap_or("")
                    );
                }
            }
            "deployments" | "replicasets" => {
                println!("Selector:     {}", kv("/spec/selector/matchLabels"));
                println!(
                    "Replicas:     {} desired | {} updated | {} total | {} available",
                    s("/spec/replicas"),
                    obj.pointer("/status/updatedReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    obj.pointer("/status/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                    obj.pointer("/status/availableReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                );
                for c in obj
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  Container {}: image {}",
                        c["name"].as_str().unwrap_or(""),
                        c["image"].as_str().unwrap_or("")
                    );
                }
            }
            "nodes" => {
                println!(
                    "Unschedulable:  {}",
                    obj.pointer("/spec/unschedulable")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                );
                for c in obj
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    println!(
                        "  {:<17} {:<6} {}",
                        c["type"].as_str().unwrap_or(""),
                        c["status"].as_str().unwrap_or(""),
                        c["reason"].as_str().unwrap_or("")
                    );
                }
                println!(
                    "Capacity:     {}",
                    obj.pointer("/status/capacity")
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                );
            }
            _ => print!(
                "{}",
                serde_yaml::to_string(obj.get("spec").unwrap_or(&Value::Null))?
            ),
        }
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let ev_ns = ns.clone().unwrap_or_else(|| "default".into());
        let evs = self
            .client
            .request(
                Method::GET,
                &format!("/api/v1/namespaces/{ev_ns}/events"),
                &[("fieldSelector", format!("involvedObject.uid={uid}"))],
                None,
                None,
            )
            .await?;
        let mut rows = vec![vec![
            "  Type".to_string(),
            "Reason".into(),
            "From".into(),
            "Message".into(),
        ]];
        for e in evs["items"].as_array().into_iter().flatten() {
            rows.push(vec![
                format!("  {}", e["type"].as_str().unwrap_or("")),
                e["reason"].as_str().unwrap_or("").to_string(),
                e.pointer("/source/component")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            ]);
        }
        if rows.len() == 1 {
            println!("Events:       <none>");
        } else {
            println!("Events:");
            print!("{}", printer::align(&rows));
        }
        Ok(true)
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            let msg = format!("{e:#}");
            if msg.starts_with("Error from server") || msg.starts_with("error:") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let ctx = Ctx {
        client: Client::new(&cli.server)?,
        namespace: cli.namespace.clone().unwrap_or_else(|| "default".into()),
        explicit_ns: cli.namespace.is_some(),
    };
    match &cli.cmd {
        Cmd::Create { files } => ctx.create(files).await,
        Cmd::Apply { files } => ctx.apply(files).await,
        Cmd::Get {
            resource,
            names,
            output,
            watch,
            selector,
            field_selector,
            all_namespaces,
        } => {
            let out = Output::parse(output.as_deref())?;
            ctx.get(
                resource,
                names,
                out,
                *watch,
                selector.as_deref(),
                field_selector.as_deref(),
                *all_namespaces,
            )
            .await
        }
        Cmd::Delete {
            resource,
            names,
            files,
            cascade,
        } => ctx.delete(resource.as_deref(), names, files, cascade).await,
        Cmd::Scale {
            target,
            name,
            replicas,
        } => ctx.scale(target, name.as_deref(), *replicas).await,
        Cmd::Logs {
            pod,
            container,
            follow,
            tail,
            timestamps,
        } => {
            ctx.logs(pod, container.as_deref(), *follow, *tail, *timestamps)
                .await
        }
        Cmd::Describe { resource, name } => ctx.describe(resource, name).await,
    }
}
