//! Chaos (issue 13): while Deployments are created, scaled, rolled and deleted, a random
//! component is SIGKILLed every couple of seconds - the API server, the controllers, the
//! scheduler, a kubelet, or a member of a 3-member etcd cluster - and started again. Then the
//! cluster must converge: every acknowledged write holds (a write that got no answer may or
//! may not have happened), every Deployment has exactly its replicas Running with its current
//! image, and no pod is left over.
//!
//! `COX_CHAOS_SECONDS` sets how long the chaos lasts (CI: the default, 20 s).

use coxswain_launch::{plan_etcd_cluster, start_etcd_member, Proc};
use coxswain_testkit::{eventually, Options, TestCluster};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

/// A small deterministic random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// What a Deployment may be, given the answers so far: an acknowledged write narrows a
/// field to one value; a write without an answer adds its value to the possibilities.
#[derive(Debug, Clone, Default)]
struct Possible {
    exists: BTreeSet<bool>,
    replicas: BTreeSet<i64>,
    images: BTreeSet<String>,
}

/// How a write changes what a Deployment may be (`true`: it was acknowledged).
type Change = Box<dyn Fn(&mut Possible, bool)>;

/// The outcome of one write: acknowledged (2xx), refused (4xx: not applied), or unknown.
#[derive(Debug, PartialEq)]
enum Outcome {
    Acked,
    Refused,
    Unknown,
}

fn send(
    http: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    ct: &str,
    body: &Value,
) -> Outcome {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    match http
        .request(m, url)
        .header("Content-Type", ct)
        .body(body.to_string())
        .send()
    {
        Ok(r) if r.status().is_success() => Outcome::Acked,
        Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => Outcome::Refused,
        _ => Outcome::Unknown,
    }
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": image}]}}}})
}

#[test]
fn the_cluster_converges_through_random_kills() {
    let seconds = std::env::var("COX_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20u64);
    let etcd_dir = tempfile::Builder::new()
        .prefix("cox-chaos-etcd-")
        .tempdir()
        .expect("temp dir");
    let members = plan_etcd_cluster(etcd_dir.path(), 3).expect("etcd ports");
    let mut etcd: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(start_etcd_member(&members, i).expect("etcd member")))
        .collect();
    let endpoints: Vec<String> = members.iter().map(|m| m.client_url.clone()).collect();
    eventually(Duration::from_secs(30), "etcd cluster healthy", || {
        endpoints
            .iter()
            .all(|e| coxswain_launch::http_ok(&format!("{e}/health")))
            .then_some(())
    });
    let mut c = TestCluster::with(Options {
        nodes: 2,
        apiserver_args: vec![
            "--storage".into(),
            "etcd".into(),
            "--etcd-servers".into(),
            endpoints.join(","),
            "--etcd-prefix".into(),
            "/chaos/".into(),
        ],
        ..Default::default()
    });
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let names: Vec<String> = (0..4).map(|i| format!("d{i}")).collect();
    let mut model: Vec<Possible> = names
        .iter()
        .map(|_| Possible {
            exists: [false].into(),
            ..Default::default()
        })
        .collect();
    let mut rng = Rng(0xc4a0_5eed);
    let components = [
        "apiserver",
        "controllers",
        "scheduler",
        "node-1",
        "node-2",
        "etcd",
    ];
    let mut down: Option<(String, Instant)> = None;
    let mut kills = 0;
    let mut writes = (0, 0, 0);
    let started = Instant::now();
    let mut next_kill = Instant::now() + Duration::from_secs(2);
    while started.elapsed() < Duration::from_secs(seconds) {
        // Chaos: one component down at a time, for about a second.
        if let Some((name, since)) = &down {
            if since.elapsed() > Duration::from_millis(800) {
                match name.as_str() {
                    "apiserver" => c.start_apiserver(),
                    n if n.starts_with("etcd-") => {
                        let i: usize = n[5..].parse().unwrap_or(0);
                        etcd[i] = Some(start_etcd_member(&members, i).expect("etcd restart"));
                    }
                    n => c.start_component(n),
                }
                down = None;
            }
        } else if Instant::now() >= next_kill {
            let victim = components[rng.below(components.len())];
            let name = if victim == "etcd" {
                let i = rng.below(3);
                if let Some(mut p) = etcd[i].take() {
                    p.kill();
                }
                format!("etcd-{i}")
            } else {
                c.kill(victim);
                victim.to_string()
            };
            kills += 1;
            down = Some((name, Instant::now()));
            next_kill = Instant::now() + Duration::from_millis(1500 + rng.below(1500) as u64);
        }
        // Load: one write to a random Deployment.
        let i = rng.below(names.len());
        let name = &names[i];
        let url = format!("{}{DEPLOYS}/{name}", c.server);
        let (outcome, change): (Outcome, Change) = match rng.below(5) {
            0 => {
                let (r, img) = (rng.below(4) as i64, format!("nginx:1.{}", rng.below(3)));
                let o = send(
                    &http,
                    "POST",
                    &format!("{}{DEPLOYS}", c.server),
                    "application/json",
                    &deployment(name, r, &img),
                );
                let f = move |p: &mut Possible, sure: bool| {
                    if sure {
                        *p = Possible {
                            exists: [true].into(),
                            replicas: [r].into(),
                            images: [img.clone()].into(),
                        };
                    } else {
                        p.exists.insert(true);
                        p.replicas.insert(r);
                        p.images.insert(img.clone());
                    }
                };
                (o, Box::new(f))
            }
            1 | 2 => {
                let r = rng.below(4) as i64;
                let o = send(
                    &http,
                    "PATCH",
                    &url,
                    "application/merge-patch+json",
                    &json!({"spec": {"replicas": r}}),
                );
                let f = move |p: &mut Possible, sure: bool| {
                    if sure {
                        p.exists = [true].into();
                        p.replicas = [r].into();
                    } else {
                        p.replicas.insert(r);
                    }
                };
                (o, Box::new(f))
            }
            3 => {
                let img = format!("nginx:1.{}", rng.below(3));
                let o = send(
                    &http,
                    "PATCH",
                    &url,
                    "application/strategic-merge-patch+json",
                    &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": img}]}}}}),
                );
                let f = move |p: &mut Possible, sure: bool| {
                    if sure {
                        p.exists = [true].into();
                        p.images = [img.clone()].into();
                    } else {
                        p.images.insert(img.clone());
                    }
                };
                (o, Box::new(f))
            }
            _ => {
                let o = send(&http, "DELETE", &url, "application/json", &json!({}));
                let f = |p: &mut Possible, sure: bool| {
                    if sure {
                        *p = Possible {
                            exists: [false].into(),
                            ..Default::default()
                        };
                    } else {
                        p.exists.insert(false);
                    }
                };
                (o, Box::new(f))
            }
        };
        match outcome {
            Outcome::Acked => {
                writes.0 += 1;
                change(&mut model[i], true);
            }
            Outcome::Refused => writes.1 += 1,
            Outcome::Unknown => {
                writes.2 += 1;
                change(&mut model[i], false);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Everything back up.
    if let Some((name, _)) = down.take() {
        match name.as_str() {
            "apiserver" => c.start_apiserver(),
            n if n.starts_with("etcd-") => {
                let i: usize = n[5..].parse().unwrap_or(0);
                etcd[i] = Some(start_etcd_member(&members, i).expect("etcd restart"));
            }
            n => c.start_component(n),
        }
    }
    eprintln!(
        "chaos: {kills} kills in {seconds} s; writes acknowledged {}, refused {}, unanswered {}",
        writes.0, writes.1, writes.2
    );
    assert!(kills >= 3, "the chaos killed something ({kills})");
    // Convergence: each Deployment is one of its possible states, with exactly its replicas
    // Running at its image, and no other pod of it left.
    for (i, name) in names.iter().enumerate() {
        let p = &model[i];
        // What the cluster holds of a Deployment, for the message of a failed convergence.
        let state = || {
            let get = |path: &str| -> Value {
                http.get(format!("{}{path}", c.server))
                    .send()
                    .ok()
                    .and_then(|r| r.json().ok())
                    .unwrap_or(Value::Null)
            };
            let d = get(&format!("{DEPLOYS}/{name}"));
            let rs: Vec<String> = get("/apis/apps/v1/namespaces/default/replicasets")["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|r| {
                    r["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with(&format!("{name}-"))
                })
                .map(|r| {
                    format!(
                        "{} owner={} spec={} status={} deleting={}",
                        r["metadata"]["name"],
                        r["metadata"]["ownerReferences"][0]["uid"],
                        r["spec"]["replicas"],
                        r["status"],
                        r["metadata"]["deletionTimestamp"]
                    )
                })
                .collect();
            let pods: Vec<String> = get(&format!(
                "/api/v1/namespaces/default/pods?labelSelector=app%3D{name}"
            ))["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|x| {
                    format!(
                        "{} {} {} node={} owner={} deleting={}",
                        x["metadata"]["name"],
                        x["status"]["phase"],
                        x["spec"]["containers"][0]["image"],
                        x["spec"]["nodeName"],
                        x["metadata"]["ownerReferences"][0]["name"],
                        x["metadata"]["deletionTimestamp"]
                    )
                })
                .collect();
            format!("deployment uid={} spec.replicas={} image={} status={}\nreplicasets:\n  {}\npods:\n  {}",
                d["metadata"]["uid"], d["spec"]["replicas"], d["spec"]["template"]["spec"]["containers"][0]["image"], d["status"],
                rs.join("\n  "), pods.join("\n  "))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let converged = eventually(
            Duration::from_secs(95),
            &format!("{name} converged ({p:?})"),
            || {
                if std::time::Instant::now() > deadline {
                    return Some(false);
                }
                let r = http
                    .get(format!("{}{DEPLOYS}/{name}", c.server))
                    .send()
                    .ok()?;
                let code = r.status().as_u16();
                let d: Value = r.json().ok()?;
                let pods: Vec<Value> = http
                    .get(format!(
                        "{}/api/v1/namespaces/default/pods?labelSelector=app%3D{name}",
                        c.server
                    ))
                    .send()
                    .ok()?
                    .json::<Value>()
                    .ok()?["items"]
                    .as_array()?
                    .clone();
                if code == 404 {
                    return (p.exists.contains(&false) && pods.is_empty()).then_some(true);
                }
                let replicas = d["spec"]["replicas"].as_i64()?;
                let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()?
                    .to_string();
                assert!(
                    p.exists.contains(&true),
                    "{name} exists but was deleted: {p:?}"
                );
                assert!(
                    p.replicas.contains(&replicas),
                    "{name}: replicas {replicas} not among {:?}: an acknowledged write was lost",
                    p.replicas
                );
                assert!(
                    p.images.contains(&image),
                    "{name}: image {image} not among {:?}: an acknowledged write was lost",
                    p.images
                );
                let running = pods
                    .iter()
                    .filter(|x| {
                        x["status"]["phase"] == "Running"
                            && x["spec"]["containers"][0]["image"] == image.as_str()
                            && x["metadata"].get("deletionTimestamp").is_none()
                    })
                    .count();
                (running as i64 == replicas && pods.len() as i64 == replicas).then_some(true)
            },
        );
        assert!(
            converged,
            "{name} did not converge in 90 s ({p:?}):\n{}",
            state()
        );
    }
    drop(c);
    drop(etcd);
}
