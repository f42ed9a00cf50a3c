//! `coxctl describe KIND NAME`: the object's fields a person reads first, per kind, then
//! its Events.

use crate::context::{resource, server_error, Ctx};
use crate::printer;
use reqwest::Method;
use serde_json::Value;

/// Show an object in detail, with its events.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// Resource type.
    pub resource: String,
    /// Name.
    pub name: String,
}

/// Describe; false if the object could not be read.
pub async fn run(ctx: &Ctx, a: &DescribeArgs) -> anyhow::Result<bool> {
    let (res, name) = (a.resource.as_str(), a.name.as_str());
    let r = resource(res)?;
    let ns = ctx.ns_for(r, None);
    let obj = match ctx
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
    let evs = ctx
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
