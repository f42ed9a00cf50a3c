//! One storage test suite, run against both backends (sled, and a real etcd started for the
//! test): resourceVersions are storage revisions and only grow, compare-and-swap updates
//! (409 on a stale resourceVersion), watch from a revision, 410 Gone for a watch or continue
//! token older than the watch window, `limit`/`continue` pagination, and, on etcd, two API
//! servers sharing it (a write through one is read and watched through the other at once)
//! and compaction of etcd's history; alternating patches through the two keep every
//! acknowledged write.

use coxswain_testkit::{eventually, Etcd, TestCluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, v: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}})
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
}

/// The suite. `c` was started with `--watch-cache-size 64`. Returns the first revision.
fn suite(c: &TestCluster) -> u64 {
    // Create, read, compare-and-swap.
    let (code, a) = c.post(CMS, &cm("a", "1"));
    assert_eq!(code, 201, "{a}");
    let rv_a = rv(&a);
    let (_, got) = c.get(&format!("{CMS}/a"));
    assert_eq!(rv(&got), rv_a, "a read returns the stored revision");
    let mut upd = a.clone();
    upd["data"]["v"] = json!("2");
    let (code, a2) = c.put(&format!("{CMS}/a"), &upd);
    assert_eq!(code, 200, "{a2}");
    assert!(rv(&a2) > rv_a, "revisions grow");
    let (code, stale) = c.put(&format!("{CMS}/a"), &upd);
    assert_eq!(code, 409, "a stale resourceVersion conflicts: {stale}");
    assert_eq!(stale["reason"], "Conflict");
    let (code, _) = c.post(CMS, &cm("a", "again"));
    assert_eq!(code, 409, "create of an existing name");

    // Watch from a revision: exactly the later changes, in order.
    let (_, b) = c.post(CMS, &cm("b", "1"));
    let (code, _) = c.delete(&format!("{CMS}/b"));
    assert_eq!(code, 200);
    let lines = c.watch_lines(
        &format!("{CMS}?watch=true&resourceVersion={rv_a}"),
        T,
        |l| l.len() >= 3,
    );
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["type"].as_str().unwrap_or("").to_string(),
                l["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    let want = [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "b")];
    assert_eq!(
        got,
        want.map(|(t, n)| (t.to_string(), n.to_string())),
        "{lines:?}"
    );
    let revs: Vec<u64> = lines.iter().map(|l| rv(&l["object"])).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "in revision order: {revs:?}"
    );
    assert_eq!(revs[1], rv(&b));

    // Pagination: 25 objects in pages of 10, each exactly once, in key order.
    for i in 0..25 {
        let (code, body) = c.post(CMS, &cm(&format!("page-{i:02}"), "x"));
        assert_eq!(code, 201, "{body}");
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &token {
            Some(t) => format!("{CMS}?labelSelector=&limit=10&continue={t}"),
            None => format!("{CMS}?limit=10"),
        };
        let (code, page) = c.get(&q);
        assert_eq!(code, 200, "{page}");
        pages += 1;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        if pages == 1 {
            assert_eq!(
                page["metadata"]["remainingItemCount"], 16,
                "{}",
                page["metadata"]
            );
        }
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "once each, in key order");
    assert_eq!(names.len(), 26, "a + 25 pages");
    let first_token = {
        let (_, p) = c.get(&format!("{CMS}?limit=5"));
        p["metadata"]["continue"].as_str().unwrap().to_string()
    };

    // Push the window (64 events) past the old revision: watch and continue get 410.
    for i in 0..80 {
        let (code, _) = c.put(&format!("{CMS}/a"), &{
            let (_, cur) = c.get(&format!("{CMS}/a"));
            let mut v = cur;
            v["data"]["v"] = json!(i.to_string());
            v
        });
        assert_eq!(code, 200);
    }
    let lines = c.watch_lines(
        &format!("{CMS}?watch=true&resourceVersion={rv_a}"),
        T,
        |l| !l.is_empty(),
    );
    assert_eq!(lines[0]["type"], "ERROR", "{lines:?}");
    assert_eq!(lines[0]["object"]["code"], 410);
    assert_eq!(lines[0]["object"]["reason"], "Expired");
    let (code, body) = c.get(&format!("{CMS}?limit=5&continue={first_token}"));
    assert_eq!(code, 410, "{body}");
    assert_eq!(body["reason"], "Expired");

    // A fresh list gives a revision to watch from again.
    let (_, list) = c.get(CMS);
    let now = rv(&list);
    assert!(now > rv_a);
    let (code, _) = c.post(CMS, &cm("after", "1"));
    assert_eq!(code, 201);
    let lines = c.watch_lines(&format!("{CMS}?watch=true&resourceVersion={now}"), T, |l| {
        !l.is_empty()
    });
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "after");
    rv_a
}

#[test]
fn storage_suite_on_sled() {
    let c = TestCluster::apiserver_only(&["--watch-cache-size", "64"]);
    suite(&c);
}

#[test]
fn storage_suite_on_etcd_with_two_api_servers_and_compaction() {
    let etcd = Etcd::start();
    let mut args = etcd.apiserver_args("/coxswain/");
    args.extend(
        [
            "--watch-cache-size",
            "64",
            "--etcd-compaction-interval-seconds",
            "0.5",
        ]
        .map(String::from),
    );
    let mut c = TestCluster::with(coxswain_testkit::Options {
        nodes: 0,
        controllers: false,
        scheduler: false,
        apiserver_args: args,
        ..Default::default()
    });
    let first = suite(&c);

    // The objects are in etcd under the prefix, with their revision as resourceVersion.
    let key = base64_encode(b"/coxswain/core/configmaps/default/after");
    let (_, r) = etcd.call("/v3/kv/range", &json!({"key": key}));
    let kv = &r["kvs"][0];
    let (_, after) = c.get(&format!("{CMS}/after"));
    assert_eq!(
        kv["mod_revision"].as_str().unwrap(),
        after["metadata"]["resourceVersion"].as_str().unwrap()
    );

    // A second API server on the same etcd: reads and watches see writes made through the
    // first at once.
    let other = c.start_extra_apiserver("apiserver-2");
    let http = reqwest::blocking::Client::new();
    let watch_url = format!("{other}{CMS}?watch=true&resourceVersion={}", rv(&after));
    let watcher = std::thread::spawn(move || {
        use std::io::BufRead;
        let resp = reqwest::blocking::Client::builder()
            .timeout(T)
            .build()
            .unwrap()
            .get(watch_url)
            .send()
            .unwrap();
        let line = std::io::BufReader::new(resp)
            .lines()
            .next()
            .unwrap()
            .unwrap();
        (
            serde_json::from_str::<Value>(&line).unwrap(),
            Instant::now(),
        )
    });
    // The watch starts from a revision, so it gets the event however soon it connects.
    let t0 = Instant::now();
    let (code, x) = c.post(CMS, &cm("cross", "1"));
    assert_eq!(code, 201);
    let got: Value = http
        .get(format!("{other}{CMS}/cross"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        rv(&got),
        rv(&x),
        "a read through the other server is consistent"
    );
    let (ev, seen) = watcher.join().unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "cross");
    let latency = seen.saturating_duration_since(t0);
    eprintln!("cross-server watch latency: {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");

    // Alternating writes through the two servers: each acknowledged patch is the state the
    // next one starts from, even when the other server's cache has not caught up yet (a
    // patch that looks like no change against a trailing cache is checked against etcd).
    for i in 0..30 {
        let (a, b) = if i % 2 == 0 {
            (c.server.clone(), other.clone())
        } else {
            (other.clone(), c.server.clone())
        };
        let merge = |server: &str, v: &str| {
            let resp = http
                .patch(format!("{server}{CMS}/cross"))
                .header("Content-Type", "application/merge-patch+json")
                .body(json!({"data": {"v": v}}).to_string())
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
        };
        merge(&a, "0");
        merge(&b, "1");
        let now: Value = http
            .get(format!("{a}{CMS}/cross"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(now["data"]["v"], "1", "round {i}: the later patch was lost");
    }

    // Compaction: etcd's history before a recent revision is gone.
    let old = first;
    eventually(T, "etcd compacted past the first revisions", || {
        let (code, body) = etcd.call(
            "/v3/kv/range",
            &json!({"key": key, "revision": old.to_string()}),
        );
        (code != 200 && body.to_string().contains("compacted")).then_some(())
    });
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
