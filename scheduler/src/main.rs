//! `cox-scheduler`: watches pods without a node, filters and scores the nodes, and binds each
//! pod through the `pods/binding` subresource.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod plugins;

use anyhow::Context;
use cache::{PodInfo, SchedCache};
use clap::Parser;
use coxswain_client::{Api, Client, ListParams};
use coxswain_runtime::events::{object_ref, Recorder};
use coxswain_runtime::store::{key_of, split_key};
use coxswain_runtime::{controller, Action, Change, Informer, Queue, Store};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// The Coxswain scheduler.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// API server URL.
    #[arg(long, env = "COX_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Concurrent scheduling workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Scheduler name this scheduler serves (`spec.schedulerName`).
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
}

struct Sched {
    client: Client,
    pods: Store<Pod>,
    cache: SchedCache,
    filters: plugins::Filters,
    scores: plugins::Scores,
    recorder: Recorder,
    /// Pods that fit nowhere; retried when nodes or pods change.
    unschedulable: Mutex<HashSet<String>>,
    name: String,
    /// Serialises the choose-then-assume step so two workers never book the same room.
    choose: tokio::sync::Mutex<()>,
}

fn pod_key(p: &Pod) -> String {
    key_of(
        p.metadata.namespace.as_deref(),
        p.metadata.name.as_deref().unwrap_or(""),
    )
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.`
fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if total == 0 {
        return "0/0 nodes are available: no nodes available to schedule pods.".into();
    }
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

impl Sched {
    async fn schedule(self: Arc<Self>, key: String) -> anyhow::Result<Action> {
        let Some(pod) = self.pods.get(&key) else {
            self.lock_unsched().remove(&key);
            return Ok(Action::AwaitChange);
        };
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.node_name.is_some()
            || pod.metadata.deletion_timestamp.is_some()
            || spec
                .scheduler_name
                .as_deref()
                .unwrap_or("default-scheduler")
                != self.name
            || self.cache.is_placed(&key)
        {
            self.lock_unsched().remove(&key);
            return Ok(Action::AwaitChange);
        }
        let info = PodInfo::from_pod(&pod);
        let (ns, name) = split_key(&key);
        let ns = ns.unwrap_or("default").to_string();
        let guard = self.choose.lock().await;
        let (choice, total, reasons) = self.cache.with_nodes(|nodes, total| {
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            let mut best: Option<(i64, String)> = None;
            for n in nodes {
                if let Some((plugin, reason)) = self
                    .filters
                    .iter()
                    .find_map(|f| f.filter(&info, n).err().map(|r| (f.name(), r)))
                {
                    tracing::trace!(pod = %key, node = %n.name, plugin, reason = %reason, "filtered out");
                    *reasons.entry(reason).or_default() += 1;
                    continue;
                }
                let score: i64 = self
                    .scores
                    .iter()
                    .map(|(s, w)| {
                        let x = s.score(&info, n);
                        tracing::trace!(pod = %key, node = %n.name, plugin = s.name(), score = x);
                        w * x
                    })
                    .sum();
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, n.name.clone()));
                }
            }
            (best.map(|(_, n)| n), total, reasons)
        });
        let Some(node) = choice else {
            drop(guard);
            let msg = unschedulable_message(total, &reasons);
            self.lock_unsched().insert(key.clone());
            self.mark_unschedulable(&pod, &ns, name, &msg).await?;
            return Ok(Action::AwaitChange);
        };
        self.cache.place(&key, &node, info);
        drop(guard);
        let api: Api<Pod> = Api::namespaced(&self.client, &ns);
        match api.bind(name, &node).await {
            Ok(()) => {
                self.lock_unsched().remove(&key);
                self.recorder.record(
                    object_ref(&*pod),
                    "Normal",
                    "Scheduled",
                    format!("Successfully assigned {ns}/{name} to {node}"),
                );
                tracing::info!(pod = %key, node = %node, "bound");
                Ok(Action::AwaitChange)
            }
            Err(e) if e.is_conflict() || e.is_not_found() => {
                // Bound by someone else meanwhile, or gone: the informer will tell us.
                self.cache.unplace(&key);
                Ok(Action::AwaitChange)
            }
            Err(e) => {
                self.cache.unplace(&key);
                Err(e.into())
            }
        }
    }

    fn lock_unsched(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unschedulable.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn mark_unschedulable(
        &self,
        pod: &Pod,
        ns: &str,
        name: &str,
        msg: &str,
    ) -> anyhow::Result<()> {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
            .and_then(|c| c.message.clone());
        if current.as_deref() == Some(msg) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(&self.client, ns);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        api.patch_status(
            name,
            &json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": msg, "lastProbeTime": null,
                "lastTransitionTime": now}]}}),
        )
        .await?;
        self.recorder.record(
            object_ref(pod),
            "Warning",
            "FailedScheduling",
            msg.to_string(),
        );
        tracing::info!(pod = %key_of(Some(ns), name), reason = %msg, "unschedulable");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    coxswain_runtime::daemon::init_tracing();
    let args = Args::parse();
    let client = Client::new(&args.server).context("building the API client")?;
    let (filters, scores) = plugins::defaults();
    let mut pods = Informer::new(Api::<Pod>::all(&client), ListParams::default());
    let mut nodes = Informer::new(Api::<Node>::all(&client), ListParams::default());
    let sched = Arc::new(Sched {
        client: client.clone(),
        pods: pods.store(),
        cache: SchedCache::default(),
        filters,
        scores,
        recorder: Recorder::new(&client, "default-scheduler", None),
        unschedulable: Mutex::new(HashSet::new()),
        name: args.scheduler_name.clone(),
        choose: tokio::sync::Mutex::new(()),
    });
    let queue = Queue::new();
    let retry_unschedulable = {
        let s = sched.clone();
        let q = queue.clone();
        move || {
            for k in s.lock_unsched().iter() {
                q.add(k.clone());
            }
        }
    };
    {
        let s = sched.clone();
        let q = queue.clone();
        let retry = retry_unschedulable.clone();
        pods.on_change(move |c| match c {
            Change::Applied { new, .. } => {
                let key = pod_key(new);
                let node = new.spec.as_ref().and_then(|s| s.node_name.clone());
                match node {
                    Some(n) if !finished(new) => s.cache.place(&key, &n, PodInfo::from_pod(new)),
                    Some(_) => {
                        s.cache.unplace(&key);
                        retry();
                    }
                    None => q.add(key),
                }
            }
            Change::Deleted(old) => {
                s.cache.unplace(&pod_key(old));
                retry();
            }
        });
    }
    {
        let s = sched.clone();
        let retry = retry_unschedulable.clone();
        nodes.on_change(move |c| {
            match c {
                Change::Applied { new, .. } => s.cache.set_node(new),
                Change::Deleted(old) => s
                    .cache
                    .remove_node(old.metadata.name.as_deref().unwrap_or("")),
            }
            retry();
        });
    }
    let node_store = nodes.store();
    let pod_store = pods.store();
    nodes.spawn();
    node_store.wait_ready().await;
    pods.spawn();
    pod_store.wait_ready().await;
    tracing::info!(server = %args.server, "caches synced; scheduling");
    let s = sched.clone();
    tokio::spawn(controller::run(
        "scheduler",
        queue,
        args.workers,
        move |k| s.clone().schedule(k),
    ));
    coxswain_runtime::daemon::shutdown_signal().await;
    Ok(())
}
