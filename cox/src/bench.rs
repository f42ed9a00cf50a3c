//! `cox bench`: scenarios against a real cluster (started here, or `--server`), printing a
//! table and writing JSON.
//!
//! - `startup`: a Deployment of P pods on N simulated nodes; time until all are Running,
//!   pods/s, and pod start-up latency (creationTimestamp -> Running seen on a watch).
//! - `api`: C concurrent clients doing create/get/update/list/delete of Leases; throughput
//!   and p50/p99 latency per verb.
//! - `watch`: W watchers on one collection while one writer updates at R writes/s; delivery
//!   latency p50/p99 and whether every watcher saw every event, in order.
//! - `pace`: bare pods created at a steady rate; start-up latency p50/p90/p99 (the pod
//!   start-up SLO).
//! - `storage`: the same write loop against a sled API server and an etcd API server
//!   (its own etcd), side by side: writes/s, p50/p99, and the ratio.
//!
//! - `daemonset`: a DaemonSet on every one of N nodes: time until a pod runs on each
//!   (the roll-out), then a new template rolled with `maxUnavailable: 10%` until every node
//!   runs the new pod.
//!
//! - `soak` (only when named): a long update loop over 200 objects on sled and on etcd,
//!   sampling the API server's RSS and the data dir's size, to show both level off.
//!
//! Each reports the API server's peak RSS and CPU time when this process started it.

use anyhow::{bail, Context};
use coxswain_client::Client;
use coxswain_launch::{Output, Proc};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency percentiles in milliseconds.
pub fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.9), p(0.99))
}

/// Peak RSS (MiB) and CPU seconds of a process, from /proc.
pub fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((hwm_kb / 1024.0, ticks / 100.0))
}

/// The API server's request counters (`/metrics`), keyed `VERB resource[/subresource]`.
async fn request_counts(client: &Client) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(text) = client
        .request_bytes(reqwest::Method::GET, "/metrics", &[], None, None)
        .await
    else {
        return out;
    };
    for line in String::from_utf8_lossy(&text).lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, n)) = rest.split_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let (verb, res, sub) = (label("verb"), label("resource"), label("subresource"));
        if verb == "WATCH" {
            continue;
        }
        let key = if sub.is_empty() {
            format!("{verb} {res}")
        } else {
            format!("{verb} {res}/{sub}")
        };
        *out.entry(key).or_insert(0.0) += n.parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// Requests made between two [`request_counts`], per pod, largest first.
fn requests_per_pod(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    pods: usize,
) -> Value {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut m = serde_json::Map::new();
    for (k, n) in v {
        m.insert(k, json!((n / pods.max(1) as f64 * 100.0).round() / 100.0));
    }
    Value::Object(m)
}

/// Components write Events in the background, behind the pods' own requests: seconds from
/// `t0` until the API server has seen no new Event for a second.
async fn events_drained(client: &Client, t0: Instant, deadline: tokio::time::Instant) -> f64 {
    let events = |c: &HashMap<String, f64>| {
        c.get("POST events").copied().unwrap_or(0.0) + c.get("PATCH events").copied().unwrap_or(0.0)
    };
    let mut last = events(&request_counts(client).await);
    let mut last_change = t0.elapsed();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = events(&request_counts(client).await);
        if now != last {
            last = now;
            last_change = t0.elapsed();
        } else if t0.elapsed() - last_change >= Duration::from_secs(1) {
            break;
        }
    }
    last_change.as_secs_f64()
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The few fields of a pod the scenarios read. The bench watches every pod while it
/// measures, on the cluster's cores: decoding only these keeps its own share small.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PodBrief {
    metadata: BriefMeta,
    status: BriefStatus,
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct BriefMeta {
    name: String,
    creation_timestamp: String,
    labels: HashMap<String, String>,
    deletion_timestamp: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct BriefStatus {
    phase: String,
}

/// One watch event line, with the pod's few fields (an `ERROR` event's `Status` decodes to
/// empty fields; its type says what it is).
#[derive(serde::Deserialize)]
struct BriefEvent {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    object: PodBrief,
}

/// Create namespace `ns` if needed and watch its pods from now on; returns the pods path.
async fn watch_pods(
    client: &Client,
    ns: &str,
) -> anyhow::Result<(
    String,
    std::pin::Pin<Box<impl futures::Stream<Item = anyhow::Result<PodBrief>>>>,
)> {
    ensure_namespace(client, ns).await?;
    let path = format!("/api/v1/namespaces/{ns}/pods");
    let list = client
        .request(reqwest::Method::GET, &path, &[], None, None)
        .await?;
    let rv = s(&list, "/metadata/resourceVersion").to_string();
    let watch = client
        .watch_lines(&path, vec![("resourceVersion", rv)])
        .await?
        .map(|line| {
            let ev: BriefEvent = serde_json::from_slice(&line?)?;
            if ev.type_ == "ERROR" {
                bail!("the pods watch failed");
            }
            Ok(ev.object)
        });
    Ok((path, Box::pin(watch)))
}

/// A scenario's figures with the processes' CPU (when this process started them).
fn with_cpu(mut out: Value, cpu: Value, pids: &[(&str, u32)]) -> Value {
    if let (Some(o), Value::Object(c)) = (out.as_object_mut(), cpu) {
        if !pids.is_empty() {
            o.extend(c);
        }
    }
    out
}

/// CPU seconds of each named process now.
fn cpu_now(pids: &[(&str, u32)]) -> Vec<(String, f64)> {
    pids.iter()
        .filter_map(|(n, pid)| Some((n.to_string(), proc_usage(*pid)?.1)))
        .collect()
}

/// What each process spent from `before` to now, and the share of the machine's cores they
/// kept busy over `wall` seconds: near 1 means the run was bound by CPU, not by waiting.
fn cpu_spent(before: &[(String, f64)], pids: &[(&str, u32)], wall: f64) -> Value {
    let after = cpu_now(pids);
    let mut per = serde_json::Map::new();
    let mut total = 0.0;
    for (n, t) in &after {
        let t0 = before
            .iter()
            .find(|(b, _)| b == n)
            .map(|(_, t)| *t)
            .unwrap_or(0.0);
        total += t - t0;
        per.insert(n.clone(), json!(((t - t0) * 100.0).round() / 100.0));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    json!({"cpu_s_until_running": per, "cpu_s_until_running_total": (total * 100.0).round() / 100.0,
        "cores_busy_share": ((total / (cores * wall.max(1e-9))) * 100.0).round() / 100.0})
}

/// Follow the pods watch until `pods` pods run; each pod's start-up latency in ms (from its
/// creation, never earlier than `wall0`, the create call).
async fn until_running(
    watch: &mut (impl futures::Stream<Item = anyhow::Result<PodBrief>> + Unpin),
    pods: usize,
    deadline: tokio::time::Instant,
    timeout: Duration,
    wall0: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<HashMap<String, f64>> {
    let mut running: HashMap<String, f64> = HashMap::new();
    while running.len() < pods {
        let ev = match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("watch ended"),
            Err(_) => bail!(
                "only {} of {pods} pods Running after {timeout:?}",
                running.len()
            ),
        };
        if ev.status.phase == "Running" {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(ev.metadata.name)
            {
                let created = chrono::DateTime::parse_from_rfc3339(&ev.metadata.creation_timestamp)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(wall0);
                // creationTimestamp has second resolution: never earlier than the create call.
                let created = created.max(wall0);
                let lat = (chrono::Utc::now() - created)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0;
                slot.insert(lat);
            }
        }
    }
    Ok(running)
}

/// The `startup` scenario. `pids` name the processes whose CPU time up to all-Running is
/// reported (none when targeting a running cluster).
pub async fn startup(
    client: &Client,
    pods: usize,
    timeout: Duration,
    pids: &[(&str, u32)],
) -> anyhow::Result<Value> {
    let ns = "bench-startup";
    let (_, mut watch) = watch_pods(client, ns).await?;
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}});
    let counts0 = request_counts(client).await;
    let cpu0 = cpu_now(pids);
    let t0 = Instant::now();
    let wall0 = chrono::Utc::now();
    client
        .request(
            reqwest::Method::POST,
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            &[],
            Some(&d),
            None,
        )
        .await
        .context("creating the bench deployment")?;
    let deadline = tokio::time::Instant::now() + timeout;
    let running = until_running(&mut watch, pods, deadline, timeout, wall0).await?;
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_spent(&cpu0, pids, total);
    let (p50, p90, p99) = percentiles(running.values().copied().collect());
    let events_s = events_drained(client, t0, deadline).await;
    // Counted once the background Event writes are done too.
    let per_pod = requests_per_pod(&counts0, &request_counts(client).await, pods);
    // Clean up (not timed).
    delete_namespace(client, ns).await;
    let out = json!({"scenario": "startup", "pods": pods, "all_running_s": total,
        "pods_per_s": pods as f64 / total, "startup_p50_ms": p50, "startup_p90_ms": p90, "startup_p99_ms": p99,
        "events_written_s": events_s, "requests_per_pod": per_pod});
    Ok(with_cpu(out, cpu, pids))
}

/// The `volumes` scenario: a StatefulSet (Parallel) of `pods` replicas, each with a claim of
/// the default class (WaitForFirstConsumer, the simulated local-path provisioner): the time
/// until every pod runs, its volume provisioned on its node and its claim Bound first.
pub async fn volumes(
    client: &Client,
    pods: usize,
    timeout: Duration,
    pids: &[(&str, u32)],
) -> anyhow::Result<Value> {
    let ns = "bench-volumes";
    let (_, mut watch) = watch_pods(client, ns).await?;
    let set = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "data"},
        "spec": {"replicas": pods, "podManagementPolicy": "Parallel", "serviceName": "data",
            "selector": {"matchLabels": {"app": "data"}},
            "template": {"metadata": {"labels": {"app": "data"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "volumeMounts": [{"name": "www", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    let cpu0 = cpu_now(pids);
    let t0 = Instant::now();
    let wall0 = chrono::Utc::now();
    client
        .request(
            reqwest::Method::POST,
            &format!("/apis/apps/v1/namespaces/{ns}/statefulsets"),
            &[],
            Some(&set),
            None,
        )
        .await
        .context("creating the bench statefulset")?;
    let deadline = tokio::time::Instant::now() + timeout;
    until_running(&mut watch, pods, deadline, timeout, wall0).await?;
    let total = t0.elapsed().as_secs_f64();
    let cpu = cpu_spent(&cpu0, pids, total);
    // A pod runs only once its claims are bound: check that they all are.
    let claims = client
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims"),
            &[],
            None,
            None,
        )
        .await?;
    let items = claims["items"].as_array().cloned().unwrap_or_default();
    let bound = items
        .iter()
        .filter(|c| s(c, "/status/phase") == "Bound")
        .count();
    if bound < pods {
        bail!("{bound} of {pods} claims Bound with every pod Running");
    }
    delete_namespace(client, ns).await;
    let out = json!({"scenario": "volumes", "pods": pods, "all_running_s": total,
        "pods_per_s": pods as f64 / total, "claims_bound": bound});
    Ok(with_cpu(out, cpu, pids))
}

/// Follow the pods watch until `nodes` pods of template `rev` run (`running`: pod -> rev).
async fn wait_daemons(
    watch: &mut (impl futures::Stream<Item = anyhow::Result<PodBrief>> + Unpin),
    running: &mut HashMap<String, String>,
    rev: &str,
    nodes: usize,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    let count = |r: &HashMap<String, String>| r.values().filter(|x| *x == rev).count();
    while count(running) < nodes {
        let ev = match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("watch ended"),
            Err(_) => bail!(
                "only {} of {nodes} daemon pods of rev {rev} Running",
                count(running)
            ),
        };
        let r = ev.metadata.labels.get("rev").cloned().unwrap_or_default();
        if ev.status.phase == "Running" && ev.metadata.deletion_timestamp.is_none() {
            running.insert(ev.metadata.name, r);
        } else {
            running.remove(&ev.metadata.name);
        }
    }
    Ok(())
}

/// The `daemonset` scenario: roll-out on `nodes` nodes, then a rolling update.
pub async fn daemonset(
    client: &Client,
    nodes: usize,
    timeout: Duration,
    pids: &[(&str, u32)],
) -> anyhow::Result<Value> {
    let ns = "bench-daemonset";
    let (_, mut watch) = watch_pods(client, ns).await?;
    let ds = |rev: &str| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "bench"},
            "spec": {"selector": {"matchLabels": {"app": "bench"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                "template": {"metadata": {"labels": {"app": "bench", "rev": rev}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}})
    };
    let path = format!("/apis/apps/v1/namespaces/{ns}/daemonsets");
    let cpu0 = cpu_now(pids);
    let t0 = Instant::now();
    client
        .request(reqwest::Method::POST, &path, &[], Some(&ds("1")), None)
        .await
        .context("creating the bench daemonset")?;
    let deadline = tokio::time::Instant::now() + timeout;
    // Pods running each template (by name), until every node runs one of `rev`.
    let mut running: HashMap<String, String> = HashMap::new();
    wait_daemons(&mut watch, &mut running, "1", nodes, deadline).await?;
    let rollout = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    client
        .request(
            reqwest::Method::PUT,
            &format!("{path}/bench"),
            &[],
            Some(&ds("2")),
            None,
        )
        .await
        .context("updating the bench daemonset")?;
    wait_daemons(&mut watch, &mut running, "2", nodes, deadline).await?;
    let update = t1.elapsed().as_secs_f64();
    let cpu = cpu_spent(&cpu0, pids, t0.elapsed().as_secs_f64());
    delete_namespace(client, ns).await;
    let out = json!({"scenario": "daemonset", "nodes": nodes, "rollout_s": rollout,
        "pods_per_s": nodes as f64 / rollout, "rolling_update_10pct_s": update});
    Ok(with_cpu(out, cpu, pids))
}

/// Delete a scenario's namespace (clean-up, not timed; a failure leaves it for the next run).
async fn delete_namespace(client: &Client, ns: &str) {
    let path = format!("/api/v1/namespaces/{ns}");
    let _ = client
        .request(reqwest::Method::DELETE, &path, &[], None, None)
        .await;
}

async fn ensure_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    // A namespace left over from an earlier run is still terminating: wait for it to go.
    for _ in 0..600 {
        match client
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/namespaces/{ns}"),
                &[],
                None,
                None,
            )
            .await
        {
            Err(e) if e.is_not_found() => break,
            Ok(v) if v.pointer("/metadata/deletionTimestamp").is_none() => return Ok(()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    match client
        .request(
            reqwest::Method::POST,
            "/api/v1/namespaces",
            &[],
            Some(&body),
            None,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn lease(name: &str, holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
        "spec": {"holderIdentity": holder}})
}

/// The `api` scenario: `clients` concurrent clients, each doing `ops` rounds of
/// create, get, update, list (own label) and delete.
pub async fn api(client: &Client, clients: usize, ops: usize) -> anyhow::Result<Value> {
    let ns = "bench-api";
    ensure_namespace(client, ns).await?;
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat: HashMap<&'static str, Vec<f64>> = HashMap::new();
            for i in 0..ops {
                let name = format!("c{c}-{i}");
                let mut rec = |verb: &'static str, t: Instant| {
                    lat.entry(verb)
                        .or_default()
                        .push(t.elapsed().as_secs_f64() * 1000.0)
                };
                let t = Instant::now();
                let mut body = lease(&name, "bench");
                body["metadata"]["labels"] = json!({"client": c.to_string()});
                let created = client
                    .request(reqwest::Method::POST, &path, &[], Some(&body), None)
                    .await?;
                rec("create", t);
                let t = Instant::now();
                client
                    .request(
                        reqwest::Method::GET,
                        &format!("{path}/{name}"),
                        &[],
                        None,
                        None,
                    )
                    .await?;
                rec("get", t);
                let t = Instant::now();
                let mut upd = created.clone();
                upd["spec"]["holderIdentity"] = json!("bench-2");
                client
                    .request(
                        reqwest::Method::PUT,
                        &format!("{path}/{name}"),
                        &[],
                        Some(&upd),
                        None,
                    )
                    .await?;
                rec("update", t);
                let t = Instant::now();
                client
                    .request(
                        reqwest::Method::GET,
                        &path,
                        &[("labelSelector", format!("client={c}"))],
                        None,
                        None,
                    )
                    .await?;
                rec("list", t);
                let t = Instant::now();
                client
                    .request(
                        reqwest::Method::DELETE,
                        &format!("{path}/{name}"),
                        &[],
                        None,
                        None,
                    )
                    .await?;
                rec("delete", t);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all: HashMap<&'static str, Vec<f64>> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await?? {
            all.entry(k).or_default().extend(v);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let total_ops: usize = all.values().map(Vec::len).sum();
    let mut verbs = serde_json::Map::new();
    for (k, v) in all {
        let (p50, _, p99) = percentiles(v);
        verbs.insert(k.to_string(), json!({"p50_ms": p50, "p99_ms": p99}));
    }
    Ok(
        json!({"scenario": "api", "clients": clients, "ops": total_ops, "ops_per_s": total_ops as f64 / secs, "verbs": verbs}),
    )
}

/// The `watch` scenario.
pub async fn watch(
    client: &Client,
    watchers: usize,
    rate: u64,
    writes: usize,
) -> anyhow::Result<Value> {
    let ns = "bench-watch";
    ensure_namespace(client, ns).await?;
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
    let _ = client
        .request(
            reqwest::Method::POST,
            &path,
            &[],
            Some(&lease("w", "0")),
            None,
        )
        .await;
    let list = client
        .request(reqwest::Method::GET, &path, &[], None, None)
        .await?;
    let rv = s(&list, "/metadata/resourceVersion").to_string();
    let t0 = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(watchers * writes)));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut w = Box::pin(
            client
                .watch_values(&path, vec![("resourceVersion", rv.clone())])
                .await?,
        );
        let lat = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0usize;
            let mut last_rv = 0u64;
            let mut in_order = true;
            while seen < writes {
                let Ok(Some(Ok(ev))) =
                    tokio::time::timeout(Duration::from_secs(30), w.next()).await
                else {
                    break;
                };
                let o = &ev.object;
                let Ok(sent) = s(o, "/spec/holderIdentity").parse::<u128>() else {
                    continue;
                };
                let now = t0.elapsed().as_micros();
                let r: u64 = s(o, "/metadata/resourceVersion").parse().unwrap_or(0);
                in_order &= r > last_rv;
                last_rv = r;
                if let Ok(mut l) = lat.lock() {
                    l.push(now.saturating_sub(sent) as f64 / 1000.0);
                }
                seen += 1;
            }
            (seen, in_order)
        }));
    }
    let gap = Duration::from_micros(1_000_000 / rate.max(1));
    let mut next = tokio::time::Instant::now();
    let body_path = format!("{path}/w");
    for _ in 0..writes {
        tokio::time::sleep_until(next).await;
        next += gap;
        let sent = t0.elapsed().as_micros().to_string();
        client
            .request(
                reqwest::Method::PATCH,
                &body_path,
                &[],
                Some(&json!({"spec": {"holderIdentity": sent}})),
                Some("application/merge-patch+json"),
            )
            .await?;
    }
    let mut complete = true;
    for t in tasks {
        let (seen, in_order) = t.await?;
        complete &= seen == writes && in_order;
    }
    let l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    let (p50, _, p99) = percentiles(l);
    Ok(
        json!({"scenario": "watch", "watchers": watchers, "writes_per_s": rate, "writes": writes,
        "delivery_p50_ms": p50, "delivery_p99_ms": p99, "every_watcher_got_every_event_in_order": complete}),
    )
}

/// Start etcd in `dir` on free ports; returns it (killed on drop) and its client URL, once
/// it answers, or `None` when etcd is not installed.
async fn start_etcd(dir: &std::path::Path) -> anyhow::Result<Option<(Proc, String)>> {
    if !coxswain_launch::etcd_installed() {
        return Ok(None);
    }
    let dir = dir.join("etcd");
    std::fs::create_dir_all(&dir)?;
    let etcd = tokio::task::spawn_blocking(move || coxswain_launch::start_etcd(&dir)).await??;
    Ok(Some((etcd.proc, etcd.url)))
}

/// Start an API server with `args` on a free port; returns it and its URL once ready.
async fn start_apiserver(
    bins: &std::path::Path,
    args: &[String],
    log: &std::path::Path,
) -> anyhow::Result<(Proc, String)> {
    let port = coxswain_launch::free_port()?;
    let mut all = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
    all.extend(args.iter().cloned());
    let mut api = Proc::spawn(
        "apiserver",
        &bins.join("cox-apiserver"),
        &all,
        Output::File(log.to_path_buf()),
        &[],
    )?;
    let server = format!("http://127.0.0.1:{port}");
    let url = format!("{server}/readyz");
    let api = tokio::task::spawn_blocking(move || {
        coxswain_launch::wait_healthy(&url, Duration::from_secs(30), Some(&mut api)).map(|()| api)
    })
    .await??;
    Ok((api, server))
}

/// The same write loop against one API server: `clients` concurrent clients creating
/// ConfigMaps (1 KiB of data each) until `writes` are done.
async fn write_loop(
    server: &str,
    clients: usize,
    writes: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let client = Client::new(server)?;
    let api: coxswain_client::Api<k8s_openapi::api::core::v1::ConfigMap> =
        coxswain_client::Api::namespaced(&client, "default");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (api, next) = (api.clone(), next.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= writes {
                        return anyhow::Ok(lat);
                    }
                    let cm: k8s_openapi::api::core::v1::ConfigMap =
                        serde_json::from_value(json!({
                        "metadata": {"name": format!("w-{i}")},
                        "data": {"payload": "x".repeat(1024)}}))?;
                    let t = Instant::now();
                    api.create(&cm).await?;
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((writes as f64 / start.elapsed().as_secs_f64(), all))
}

/// The `storage` scenario: the same write loop on a sled API server and on an etcd API server
/// (a real etcd started here; skipped with a note when `etcd` is not installed), side by side.
pub async fn storage(
    bins: &std::path::Path,
    clients: usize,
    writes: usize,
) -> anyhow::Result<Value> {
    let tmp = tempfile::Builder::new()
        .prefix("cox-bench-storage-")
        .tempdir()?;
    let mut out = json!({"scenario": "storage", "clients": clients, "writes": writes});
    let sled_args = [
        "--data-dir".to_string(),
        tmp.path().join("sled").display().to_string(),
    ];
    let (api, server) = start_apiserver(bins, &sled_args, &tmp.path().join("sled.log")).await?;
    let (sled_wps, lat) = write_loop(&server, clients, writes).await?;
    let (p50, _, p99) = percentiles(lat);
    let usage = proc_usage(api.pid());
    drop(api);
    out["sled_writes_per_s"] = json!(sled_wps);
    out["sled_p50_ms"] = json!(p50);
    out["sled_p99_ms"] = json!(p99);
    out["sled_apiserver_rss_mib"] = json!(usage.map(|u| u.0));
    let Some((_etcd, curl)) = start_etcd(tmp.path()).await? else {
        out["etcd"] = json!("not installed (apt-get install etcd-server)");
        return Ok(out);
    };
    let etcd_args = ["--storage", "etcd", "--etcd-servers", &curl].map(String::from);
    let (api, server) =
        start_apiserver(bins, &etcd_args, &tmp.path().join("etcd-apiserver.log")).await?;
    let (etcd_wps, lat) = write_loop(&server, clients, writes).await?;
    let (p50, _, p99) = percentiles(lat);
    let usage = proc_usage(api.pid());
    out["etcd_writes_per_s"] = json!(etcd_wps);
    out["etcd_p50_ms"] = json!(p50);
    out["etcd_p99_ms"] = json!(p99);
    out["etcd_apiserver_rss_mib"] = json!(usage.map(|u| u.0));
    out["sled_over_etcd"] = json!(sled_wps / etcd_wps.max(f64::MIN_POSITIVE));
    Ok(out)
}

/// The `pace` scenario: bare pods created at `rate` per second for `secs` seconds (each
/// create sent on schedule, not after the previous one returned); start-up latency from the
/// create call to Running seen on a watch, p50/p90/p99, as Kubernetes' pod start-up SLO.
pub async fn pace(client: &Client, rate: u64, secs: u64) -> anyhow::Result<Value> {
    let ns = "bench-pace";
    let (path, mut watch) = watch_pods(client, ns).await?;
    let total = (rate * secs) as usize;
    let sent: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let counts0 = request_counts(client).await;
    let t0 = Instant::now();
    let creator = {
        let (client, sent) = (client.clone(), sent.clone());
        let path = path.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = Vec::with_capacity(total);
            for i in 0..total {
                tick.tick().await;
                let name = format!("pace-{i:06}");
                let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
                if let Ok(mut m) = sent.lock() {
                    m.insert(name, Instant::now());
                }
                let (client, path) = (client.clone(), path.clone());
                inflight.push(tokio::spawn(async move {
                    client
                        .request(reqwest::Method::POST, &path, &[], Some(&pod), None)
                        .await
                }));
            }
            for f in inflight {
                f.await??;
            }
            anyhow::Ok(t0.elapsed().as_secs_f64())
        })
    };
    let mut lat: HashMap<String, f64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs * 4 + 120);
    while lat.len() < total {
        let ev = match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("watch ended"),
            Err(_) => bail!("only {} of {total} pods Running in time", lat.len()),
        };
        if ev.status.phase == "Running" {
            let name = ev.metadata.name;
            let start = sent.lock().ok().and_then(|m| m.get(&name).copied());
            if let (Some(start), false) = (start, lat.contains_key(&name)) {
                lat.insert(name, start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    let create_s = creator.await??;
    let (p50, p90, p99) = percentiles(lat.values().copied().collect());
    let per_pod = requests_per_pod(&counts0, &request_counts(client).await, total);
    delete_namespace(client, ns).await;
    Ok(
        json!({"scenario": "pace", "pods": total, "target_pods_per_s": rate,
        "achieved_create_per_s": total as f64 / create_s,
        "startup_p50_ms": p50, "startup_p90_ms": p90, "startup_p99_ms": p99,
        "requests_per_pod": per_pod}),
    )
}

/// Current RSS of a process in MiB.
fn rss_now(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Bytes under a directory.
fn du(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Update the same `objects` ConfigMaps round-robin with `clients` clients until `writes`
/// are done, sampling the server's RSS and the data dir's size `samples` times.
async fn soak_loop(
    server: &str,
    pid: u32,
    data: &std::path::Path,
    clients: usize,
    writes: usize,
    samples: usize,
) -> anyhow::Result<Vec<Value>> {
    let client = Client::new(server)?;
    let api: coxswain_client::Api<k8s_openapi::api::core::v1::ConfigMap> =
        coxswain_client::Api::namespaced(&client, "default");
    let objects = 200;
    for i in 0..objects {
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("soak-{i}")}, "data": {"v": "0"}}))?;
        api.create(&cm).await?;
    }
    let mut out = Vec::new();
    let per = writes / samples.max(1);
    for round in 0..samples {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (api, next) = (api.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= per {
                            return anyhow::Ok(());
                        }
                        let patch = json!({"data": {"v": format!("{round}-{i}"), "payload": "x".repeat(1024)}});
                        api.patch(&format!("soak-{}", i % objects), &patch).await?;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await??;
        }
        out.push(json!({"writes": (round + 1) * per, "rss_mib": rss_now(pid), "disk_mib": du(data) as f64 / 1048576.0}));
    }
    Ok(out)
}

/// The `soak` scenario: a long update loop over a fixed set of objects on sled and on etcd
/// (compacted every 5 s); memory and disk are sampled as it goes, to show they level off.
pub async fn soak(bins: &std::path::Path, clients: usize, writes: usize) -> anyhow::Result<Value> {
    let tmp = tempfile::Builder::new()
        .prefix("cox-bench-soak-")
        .tempdir()?;
    let mut out = json!({"scenario": "soak", "writes": writes, "objects": 200});
    let data = tmp.path().join("sled");
    let sled_args = [
        "--data-dir".to_string(),
        data.display().to_string(),
        "--watch-cache-size".into(),
        "10000".into(),
    ];
    let (api, server) = start_apiserver(bins, &sled_args, &tmp.path().join("sled.log")).await?;
    out["sled"] = json!(soak_loop(&server, api.pid(), &data, clients, writes, 5).await?);
    drop(api);
    let Some((_etcd, curl)) = start_etcd(tmp.path()).await? else {
        out["etcd"] = json!("not installed");
        return Ok(out);
    };
    let etcd_args = [
        "--storage",
        "etcd",
        "--etcd-servers",
        &curl,
        "--etcd-compaction-interval-seconds",
        "5",
        "--watch-cache-size",
        "10000",
    ]
    .map(String::from);
    let (api, server) =
        start_apiserver(bins, &etcd_args, &tmp.path().join("etcd-apiserver.log")).await?;
    let edata = tmp.path().join("etcd").join("data");
    out["etcd"] = json!(soak_loop(&server, api.pid(), &edata, clients, writes, 5).await?);
    Ok(out)
}
