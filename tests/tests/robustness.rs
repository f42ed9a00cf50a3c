//! No input, fault or client stops the cluster (issue 13), against the real binaries: objects
//! that would not decode as their kind's type are refused on every write path; components
//! skip objects they cannot decode that reach them anyway (written straight into etcd);
//! patch limits; the system namespaces; and the server's limits (body size, selectors, names,
//! ConfigMap size, watch revisions, requests in flight, request timeout), each a `Status`.

use coxswain_testkit::{eventually, stays, Etcd, Options, TestCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn deployment(name: &str, replicas: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

fn pod(name: &str, spec_extra: Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "nginx"}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

/// A 400 `Status` whose message names `field`.
fn refused(res: (u16, Value), field: &str) {
    let (code, s) = res;
    assert_eq!(code, 400, "{s}");
    assert_eq!(s["kind"], "Status", "{s}");
    let msg = s["message"].as_str().unwrap_or("");
    assert!(msg.contains(field), "the message names {field}: {msg}");
}

#[test]
fn ill_typed_objects_are_refused_on_every_write_path() {
    let c = TestCluster::apiserver_only(&[]);
    // create
    refused(
        c.post(DEPLOYS, &deployment("big", json!(2147483648u64))),
        "spec.replicas",
    );
    assert_eq!(c.get(&format!("{DEPLOYS}/big")).0, 404, "nothing stored");
    refused(
        c.post(
            PODS,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 2147483648u64}]}]}}),
        ),
        "spec.containers[0].ports[0].containerPort",
    );
    refused(
        c.post(PODS, &pod("p", json!({"nodeSelector": {"a": {"b": 1}}}))),
        "spec.nodeSelector",
    );
    refused(
        c.post(
            PODS,
            &pod("p", json!({"terminationGracePeriodSeconds": "x"})),
        ),
        "spec.terminationGracePeriodSeconds",
    );
    refused(
        c.post(PODS, &pod("p", json!({"priority": 2147483648u64}))),
        "spec.priority",
    );
    refused(
        c.post(
            "/api/v1/nodes",
            &json!({"metadata": {"name": "n"}, "status": {"capacity": {"pods": 5}}}),
        ),
        "status.capacity.pods",
    );
    // every other write path of a stored object
    assert_eq!(c.post(DEPLOYS, &deployment("web", json!(2))).0, 201);
    let web = format!("{DEPLOYS}/web");
    refused(
        c.patch(&web, &json!({"spec": {"replicas": 2147483648u64}})),
        "spec.replicas",
    );
    refused(
        c.send_body(
            "PATCH",
            &web,
            "application/strategic-merge-patch+json",
            r#"{"spec":{"minReadySeconds":"soon"}}"#,
        ),
        "spec.minReadySeconds",
    );
    refused(
        c.send_body(
            "PATCH",
            &web,
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":4294967296}]"#,
        ),
        "spec.replicas",
    );
    let (_, mut cur) = c.get(&web);
    cur["spec"]["replicas"] = json!(-2147483649i64);
    refused(c.put(&web, &cur), "spec.replicas");
    refused(
        c.send_body(
            "PATCH",
            &format!("{web}?fieldManager=me"),
            "application/apply-patch+yaml",
            &deployment("web", json!(1e20)).to_string(),
        ),
        "spec.replicas",
    );
    refused(
        c.patch(
            &format!("{web}/status"),
            &json!({"status": {"replicas": "many"}}),
        ),
        "status.replicas",
    );
    let (_, now) = c.get(&web);
    assert_eq!(now["spec"]["replicas"], 2, "the stored object is unchanged");
    assert_eq!(
        now["metadata"]["resourceVersion"],
        cur["metadata"]["resourceVersion"]
    );
    // strategic merge patch type confusion and unknown directives
    assert_eq!(
        c.post(
            CMS,
            &json!({"metadata": {"name": "cm"}, "data": {"k": "v"}})
        )
        .0,
        201
    );
    let smp = |body: &str| {
        c.send_body(
            "PATCH",
            &format!("{CMS}/cm"),
            "application/strategic-merge-patch+json",
            body,
        )
    };
    refused(smp(r#"{"data":"notamap"}"#), "data");
    let (code, s) = smp(r#"{"data":{"$patch":"bogus"}}"#);
    assert_eq!(code, 400, "{s}");
    assert!(s["message"].as_str().unwrap().contains("bogus"), "{s}");
    let (_, cm) = c.get(&format!("{CMS}/cm"));
    assert_eq!(cm["data"], json!({"k": "v"}), "data intact");
    // `$patch: delete` of a map is a real directive
    assert_eq!(smp(r#"{"data":{"$patch":"delete"}}"#).0, 200);
    let (_, cm) = c.get(&format!("{CMS}/cm"));
    assert!(cm.get("data").is_none(), "{cm}");
}

#[test]
fn json_patches_are_bounded_and_their_results_stay_readable() {
    let c = TestCluster::apiserver_only(&[]);
    assert_eq!(
        c.post(
            CMS,
            &json!({"metadata": {"name": "cm"}, "data": {"k": "v"}})
        )
        .0,
        201
    );
    let path = format!("{CMS}/cm");
    let json_patch = |ops: &Value| {
        c.send_body(
            "PATCH",
            &path,
            "application/json-patch+json",
            &ops.to_string(),
        )
    };
    // More operations than Kubernetes allows: 413.
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"op": "test", "path": "/data/k", "value": "v"}))
        .collect();
    let (code, s) = json_patch(&json!(many));
    assert_eq!(code, 413, "{s}");
    assert_eq!(s["reason"], "RequestEntityTooLarge");
    // Copies that double the document: refused long before they take gigabytes.
    let ops = json!([{"op": "add", "path": "/data/x", "value": "0123456789abcdef"},
        {"op": "copy", "from": "/data/x", "path": "/data/y"}]);
    let mut ops2 = vec![json!({"op": "add", "path": "/x", "value": [1]})];
    for _ in 0..40 {
        ops2.push(json!({"op": "copy", "from": "/x", "path": "/x/-"}));
    }
    ops2.push(json!({"op": "remove", "path": "/x"}));
    let started = Instant::now();
    let (code, s) = json_patch(&json!(ops2));
    assert_eq!(code, 422, "{s}");
    assert!(s["message"].as_str().unwrap().contains("copy"), "{s}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(json_patch(&ops).0, 200, "an ordinary copy still works");
    // Nesting added by a JSON patch outside the schema is dropped (with a warning), so the
    // object stays readable, writable and deletable.
    let mut nest = vec![json!({"op": "add", "path": "/x", "value": {}})];
    let mut p = String::from("/x");
    for _ in 0..300 {
        p.push_str("/y");
        nest.push(json!({"op": "add", "path": p, "value": {}}));
    }
    let (code, s) = json_patch(&json!(nest));
    assert_eq!(code, 200, "{s}");
    assert!(s.get("x").is_none(), "{s}");
    let (code, s) = c.send_body(
        "PATCH",
        &format!("{path}?fieldValidation=Strict"),
        "application/json-patch+json",
        &json!(nest).to_string(),
    );
    assert_eq!(code, 400, "{s}");
    assert_eq!(c.get(&path).0, 200);
    assert_eq!(c.patch(&path, &json!({"data": {"k": "w"}})).0, 200);
    assert_eq!(c.delete(&path).0, 200);
}

#[test]
fn system_namespaces_cannot_be_deleted_and_come_back() {
    let c = TestCluster::with(Options {
        nodes: 0,
        scheduler: false,
        ..Default::default()
    });
    for ns in ["default", "kube-system", "kube-public"] {
        let (code, s) = c.delete(&format!("/api/v1/namespaces/{ns}"));
        assert_eq!(code, 403, "{s}");
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(
            s["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
        let (_, n) = c.get(&format!("/api/v1/namespaces/{ns}"));
        assert!(n["metadata"].get("deletionTimestamp").is_none(), "{n}");
    }
    // kube-node-lease may be deleted; it is created again.
    let (_, before) = c.get("/api/v1/namespaces/kube-node-lease");
    assert_eq!(c.delete("/api/v1/namespaces/kube-node-lease").0, 200);
    eventually(T, "kube-node-lease created again", || {
        let (code, n) = c.get("/api/v1/namespaces/kube-node-lease");
        (code == 200
            && n["metadata"]["uid"] != before["metadata"]["uid"]
            && n["metadata"].get("deletionTimestamp").is_none())
        .then_some(())
    });
}

/// Put raw JSON into etcd under the API server's prefix (what a component that bypasses the
/// API server could leave there).
fn etcd_put(etcd: &Etcd, key: &str, value: &Value) {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let (code, r) = etcd.call(
        "/v3/kv/put",
        &json!({"key": b64(key.as_bytes()), "value": b64(value.to_string().as_bytes())}),
    );
    assert_eq!(code, 200, "{r}");
}

#[test]
fn components_skip_objects_they_cannot_decode() {
    let etcd = Etcd::start();
    let mut c = TestCluster::with(Options {
        nodes: 1,
        apiserver_args: etcd.apiserver_args("/robust/"),
        ..Default::default()
    });
    // Ill-typed objects of every kind the components watch, written around the API server.
    let mut bad = deployment("bad", json!(2147483648u64));
    bad["metadata"]["namespace"] = json!("default");
    bad["metadata"]["uid"] = json!("00000000-0000-0000-0000-00000000000a");
    etcd_put(&etcd, "/robust/apps/deployments/default/bad", &bad);
    let bad_pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "default", "uid": "00000000-0000-0000-0000-00000000000b"},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": "x",
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 2147483648u64}]}]}});
    etcd_put(&etcd, "/robust/core/pods/default/bad", &bad_pod);
    let mut unbound = bad_pod.clone();
    unbound["metadata"]["name"] = json!("bad-unbound");
    unbound["spec"]
        .as_object_mut()
        .map(|s| s.remove("nodeName"));
    etcd_put(&etcd, "/robust/core/pods/default/bad-unbound", &unbound);
    etcd_put(
        &etcd,
        "/robust/core/nodes/bad-node",
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bad-node"},
            "status": {"capacity": {"pods": 5}}}),
    );
    eventually(T, "the API server serves the bad deployment", || {
        (c.get(&format!("{DEPLOYS}/bad")).0 == 200).then_some(())
    });
    // The cluster goes on: a good Deployment gets Running pods.
    assert_eq!(c.post(DEPLOYS, &deployment("good", json!(2))).0, 201);
    eventually(T, "the good deployment's pods Running", || {
        let n = c
            .items(&format!(
                "{PODS}?labelSelector=app%3Dgood&fieldSelector=status.phase%3DRunning"
            ))
            .len();
        (n == 2).then_some(())
    });
    for name in ["controllers", "scheduler", "node-1"] {
        assert!(c.is_running(name), "{name} still runs");
    }
    // What is stored can still be deleted.
    assert_eq!(c.delete(&format!("{DEPLOYS}/bad")).0, 200);
}

#[test]
fn the_servers_limits_answer_with_a_status() {
    let c =
        TestCluster::apiserver_only(&["--max-requests-inflight", "1", "--request-timeout", "2s"]);
    // A body over 3 MiB.
    let big = json!({"metadata": {"name": "huge"}, "data": {"k": "x".repeat(3_200_000)}});
    let (code, s) = c.post(CMS, &big);
    assert_eq!(code, 413, "{s}");
    assert_eq!(s["kind"], "Status");
    assert_eq!(s["reason"], "RequestEntityTooLarge");
    // ConfigMaps hold at most 1 MiB of data.
    let (code, s) = c.post(
        CMS,
        &json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(1_100_000)}}),
    );
    assert_eq!(code, 422, "{s}");
    assert!(s["message"].as_str().unwrap().contains("data"), "{s}");
    // A 64-character name is a valid DNS subdomain.
    let long = "a".repeat(64);
    assert_eq!(c.post(CMS, &json!({"metadata": {"name": long}})).0, 201);
    // Selectors that do not parse, and fields that cannot be selected.
    for q in [
        "labelSelector=a%20in%20(b",
        "labelSelector=a%3D%3Db%20c",
        "fieldSelector=spec.foo%3Dbar",
    ] {
        let (code, s) = c.get(&format!("{PODS}?{q}"));
        assert_eq!(code, 400, "{q}: {s}");
        assert_eq!(s["kind"], "Status");
    }
    // A huge timeoutSeconds is a watch, not a crash.
    let lines = c.watch_lines(
        &format!("{CMS}?watch=true&timeoutSeconds=9223372036854775807"),
        Duration::from_secs(10),
        |l| !l.is_empty(),
    );
    assert_eq!(lines[0]["type"], "ADDED");
    // A watch from a revision the server has not reached: 504 Too large resource version.
    let (code, s) = c.get(&format!("{CMS}?watch=true&resourceVersion=999999999"));
    assert_eq!(code, 504, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version"),
        "{s}"
    );
    // A request that hangs (a log proxied to a kubelet that never answers) holds the one read
    // slot: another read gets 429 with Retry-After; the hung one ends with 504 at the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (accepted_tx, accepted) = std::sync::mpsc::channel();
    let held = std::thread::spawn(move || {
        let conn = silent.accept();
        let _ = accepted_tx.send(());
        std::thread::sleep(Duration::from_secs(6));
        drop(conn);
    });
    assert_eq!(
        c.post(
            "/api/v1/nodes",
            &json!({"metadata": {"name": "mute"}, "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}),
        )
        .0,
        201
    );
    let mut p = pod("hang", json!({"nodeName": "mute"}));
    p["metadata"]["namespace"] = json!("default");
    assert_eq!(c.post(PODS, &p).0, 201);
    let server = c.server.clone();
    let hung = std::thread::spawn(move || {
        let started = Instant::now();
        let r = reqwest::blocking::Client::new()
            .get(format!("{server}{PODS}/hang/log"))
            .send()
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    // Once the kubelet side has the connection, the log request holds the read slot.
    accepted
        .recv_timeout(T)
        .expect("the log request reached the silent kubelet");
    let r = reqwest::blocking::Client::new()
        .get(format!("{}{CMS}", c.server))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(
        r.headers().get("Retry-After").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let s: Value = r.json().unwrap();
    assert_eq!(s["reason"], "TooManyRequests", "{s}");
    let (code, took) = hung.join().unwrap();
    assert_eq!(code, 504);
    assert!(took < Duration::from_secs(6), "{took:?}");
    held.join().unwrap();
    assert_eq!(c.get(CMS).0, 200, "the slot is free again");
}

#[test]
fn clients_that_trickle_their_headers_are_cut_off() {
    use std::io::{Read, Write};
    let c = TestCluster::apiserver_only(&["--read-header-timeout", "1s"]);
    let addr = c.server.trim_start_matches("http://").to_string();
    // 100 connections that start a request and never finish its headers (slowloris).
    let mut slow: Vec<std::net::TcpStream> = (0..100)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // The server still answers others meanwhile.
    assert_eq!(c.get("/api/v1/namespaces").0, 200);
    // Each slow connection is closed once its headers are late.
    let started = Instant::now();
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        let closed = match s.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "a slow connection was cut off");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.get("/api/v1/namespaces").0, 200);
}

/// Read from `s` until the server closes it; the bytes read, or `None` if it stayed open
/// past `within`.
fn read_until_closed(s: &mut std::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn idle_connections_are_closed() {
    use std::io::Write;
    let c = TestCluster::apiserver_only(&["--read-header-timeout", "2s", "--idle-timeout", "2s"]);
    let addr = c.server.trim_start_matches("http://").to_string();

    // HTTP/2 (prior knowledge): the preface and empty SETTINGS, then nothing. The server
    // answers with its SETTINGS, then says GOAWAY (frame type 7) and closes.
    let mut h2 = std::net::TcpStream::connect(&addr).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let got = read_until_closed(&mut h2, Duration::from_secs(15))
        .expect("an idle HTTP/2 connection was closed");
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
        frames.push(got[at + 3]);
        at += 9 + len;
    }
    assert!(frames.contains(&7), "frame types {frames:?}");

    // HTTP/1.1 keep-alive: one request answered, then nothing; the connection is closed.
    let mut h1 = std::net::TcpStream::connect(&addr).unwrap();
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = read_until_closed(&mut h1, Duration::from_secs(15))
        .expect("an idle HTTP/1.1 connection was closed");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // A watch with no events is a request in flight, not an idle connection.
    let mut w = std::net::TcpStream::connect(&addr).unwrap();
    w.write_all(b"GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        read_until_closed(&mut w, Duration::from_secs(6)).is_none(),
        "a quiet watch stays open"
    );
    assert_eq!(c.get("/api/v1/namespaces").0, 200);
}

/// How many times the scheduler has tried each of the pods named `prefix-*` (the counts of
/// their FailedScheduling Events).
fn scheduling_attempts(c: &TestCluster, prefix: &str) -> i64 {
    c.items("/api/v1/namespaces/default/events")
        .iter()
        .filter(|e| e["reason"] == "FailedScheduling")
        .filter(|e| {
            e["involvedObject"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|e| e["count"].as_i64().unwrap_or(1))
        .sum()
}

#[test]
fn deleted_unschedulable_pods_are_forgotten_by_the_scheduler() {
    let c = TestCluster::with(Options {
        nodes: 1,
        controllers: false,
        scheduler_args: [
            "--pod-initial-backoff-seconds",
            "0.1",
            "--pod-max-backoff-seconds",
            "0.3",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let nowhere = json!({"nodeSelector": {"zone": "nowhere"}});
    let unschedulable = |prefix: &str| {
        c.items(PODS)
            .iter()
            .filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with(prefix))
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["reason"] == "Unschedulable"))
            })
            .count()
    };
    for i in 0..10 {
        assert_eq!(
            c.post(PODS, &pod(&format!("stay-{i}"), nowhere.clone())).0,
            201
        );
    }
    eventually(T, "10 pods unschedulable", || {
        (unschedulable("stay-") == 10 && scheduling_attempts(&c, "stay-") >= 10).then_some(())
    });
    for i in 0..150 {
        assert_eq!(
            c.post(PODS, &pod(&format!("gone-{i}"), nowhere.clone())).0,
            201
        );
    }
    eventually(T, "150 more pods unschedulable", || {
        (unschedulable("gone-") == 150).then_some(())
    });
    let before = scheduling_attempts(&c, "stay-");
    // Deleting pods that were never placed frees no room: nobody else is tried again, and the
    // deleted ones are never tried again (no 404s from writing their status).
    for i in 0..150 {
        assert_eq!(c.delete(&format!("{PODS}/gone-{i}")).0, 200);
    }
    eventually(T, "the deleted pods are gone", || {
        c.items(PODS).len().eq(&10).then_some(())
    });
    let not_found = || {
        let (_, m) = c.get("/metrics");
        m.as_str()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("resource=\"pods\"") && l.contains("code=\"404\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let missing = not_found();
    stays(Duration::from_secs(3), "nobody is tried again", || {
        scheduling_attempts(&c, "stay-") == before && not_found() == missing
    });
}
