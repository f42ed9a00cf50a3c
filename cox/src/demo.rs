//! `cox demo`: create the example Deployment and narrate the ten steps as they happen, read
//! from watch streams on the API server (deployments, replicasets, pods, events), with the
//! elapsed milliseconds since the create was sent.

use anyhow::Context;
use coxswain_client::Client;
use futures::StreamExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// The example manifest, compiled in so the demo runs from anywhere.
pub const EXAMPLE: &str = include_str!("../../examples/deployment.yaml");

struct Narrator {
    t0: Instant,
}

impl Narrator {
    fn say(&self, step: &str, who: &str, what: String) {
        println!(
            "[{:>6} ms] {step:<5} {who:<22} {what}",
            self.t0.elapsed().as_millis()
        );
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Create the example and narrate until the Deployment is available (or `timeout`).
pub async fn run(server: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let ns = "default";
    let mut streams = Vec::new();
    for (tag, path) in [
        (
            "deploy",
            format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        ),
        ("rs", format!("/apis/apps/v1/namespaces/{ns}/replicasets")),
        ("pod", format!("/api/v1/namespaces/{ns}/pods")),
        ("event", format!("/api/v1/namespaces/{ns}/events")),
    ] {
        let list = client
            .request(reqwest::Method::GET, &path, &[], None, None)
            .await?;
        let rv = s(&list, "/metadata/resourceVersion").to_string();
        let w = client
            .watch_values(&path, vec![("resourceVersion", rv)])
            .await?;
        streams.push(w.map(move |e| (tag, e)).boxed());
    }
    let mut events = futures::stream::select_all(streams);

    let manifest: Value = serde_yaml::from_str(EXAMPLE).context("parsing the example")?;
    let name = s(&manifest, "/metadata/name").to_string();
    let want = manifest
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let n = Narrator { t0: Instant::now() };
    println!("Creating examples/deployment.yaml (Deployment {ns}/{name}, {want} replicas) and following the watches:\n");
    let created = client
        .request(
            reqwest::Method::POST,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            &[],
            Some(&manifest),
            None,
        )
        .await
        .context("creating the example deployment")?;
    n.say(
        "1",
        "coxctl -> apiserver",
        format!(
            "POST Deployment {name}: stored in sled at resourceVersion {}",
            s(&created, "/metadata/resourceVersion")
        ),
    );

    let mut seen: HashSet<String> = HashSet::new();
    let mut phase: HashMap<String, String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some((tag, ev))) = next else {
            anyhow::bail!(
                "the deployment did not become available in {} s",
                timeout.as_secs()
            );
        };
        let ev = ev?;
        let o = &ev.object;
        let oname = s(o, "/metadata/name").to_string();
        let first = |k: String, seen: &mut HashSet<String>| seen.insert(k);
        match tag {
            "deploy" if oname == name => {
                if first("watch-deploy".into(), &mut seen) {
                    n.say(
                        "2",
                        "apiserver -> watchers",
                        format!("{} Deployment {name} sent on the watch streams", ev.type_),
                    );
                }
                let avail = o
                    .pointer("/status/availableReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if avail >= want
                    && o.pointer("/status/updatedReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        >= want
                {
                    n.say(
                        "done",
                        "deployment-controller",
                        format!("Deployment {name} is Available: {avail}/{want} replicas ready"),
                    );
                    break;
                }
            }
            "rs" if ev.type_ == "ADDED" => {
                n.say(
                    "3",
                    "deployment-controller",
                    format!(
                        "created ReplicaSet {oname} (pod-template-hash {}, {} replicas)",
                        s(o, "/metadata/labels/pod-template-hash"),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    ),
                );
            }
            "pod" => {
                let owner = s(o, "/metadata/ownerReferences/0/name");
                if ev.type_ == "ADDED" && first(format!("add/{oname}"), &mut seen) {
                    n.say(
                        "4-5",
                        "replicaset-controller",
                        format!("created Pod {oname} (owner ReplicaSet {owner})"),
                    );
                }
                let node = s(o, "/spec/nodeName");
                if !node.is_empty() && first(format!("bound/{oname}"), &mut seen) {
                    n.say("6-7", "scheduler", format!("bound Pod {oname} to {node}"));
                }
                let p = s(o, "/status/phase").to_string();
                if !node.is_empty() && phase.get(&oname) != Some(&p) {
                    phase.insert(oname.clone(), p.clone());
                    if p == "Running" {
                        n.say(
                            "10",
                            &format!("kubelet {node}"),
                            format!(
                                "reports Pod {oname} Running, IP {}, container ready",
                                s(o, "/status/podIP")
                            ),
                        );
                    }
                }
            }
            "event" => {
                let reason = s(o, "/reason");
                let about = s(o, "/involvedObject/name");
                let host = s(o, "/source/host");
                match reason {
                    "Pulling" | "Pulled" => n.say(
                        "8",
                        &format!("kubelet {host}"),
                        format!("{about}: {}", s(o, "/message")),
                    ),
                    "Started" => n.say(
                        "9",
                        &format!("kubelet {host}"),
                        format!("{about}: {}", s(o, "/message")),
                    ),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    println!("\nPods (as `kubectl get pods -o wide` shows them):\n");
    let t = client
        .get_accept(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &[],
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        )
        .await?;
    let cols: Vec<String> = t["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .take(7)
        .map(|c| c["name"].as_str().unwrap_or("").to_uppercase())
        .collect();
    let mut rows = vec![cols];
    for r in t["rows"].as_array().into_iter().flatten() {
        rows.push(
            r["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .take(7)
                .map(|c| {
                    c.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| c.to_string())
                })
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}
