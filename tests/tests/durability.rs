//! Durability: four clients write in a loop while the API server is killed with SIGKILL;
//! after a restart every acknowledged write is there with the revision it was acknowledged
//! with, and the next write gets a higher resourceVersion (revisions never go back). On
//! sled (the acknowledgement waits for the flush) and on etcd.

use coxswain_testkit::{eventually, Etcd, Options, TestCluster};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn kill_during_writes(c: &mut TestCluster) {
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop, server) = (acked.clone(), stop.clone(), c.server.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let name = format!("w{w}-{i:06}");
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name}, "data": {"i": i.to_string()}});
                    let Ok(resp) = http.post(format!("{server}{CMS}")).json(&body).send() else {
                        return; // the server is gone: unacknowledged
                    };
                    if resp.status().as_u16() != 201 {
                        return;
                    }
                    let Ok(v) = resp.json::<Value>() else { return };
                    let rv = v["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    acked.lock().unwrap().insert(name, rv);
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), "300 acknowledged writes", || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });
    c.kill("apiserver"); // SIGKILL while the writers are mid-request
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    c.start_apiserver();
    let stored: BTreeMap<String, u64> = c
        .items(CMS)
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    let lost: Vec<&String> = acked.keys().filter(|k| !stored.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    for (k, rv) in &acked {
        assert_eq!(
            stored[k], *rv,
            "{k} kept the revision it was acknowledged with"
        );
    }
    let max = acked.values().max().copied().unwrap_or(0);
    let (code, after) = c.post(
        CMS,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}}),
    );
    assert_eq!(code, 201, "{after}");
    let rv: u64 = after["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv > max, "resourceVersion went back: {rv} <= {max}");
    eprintln!(
        "{} acknowledged writes survived SIGKILL; next revision {rv} > {max}",
        acked.len()
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_on_sled() {
    let mut c = TestCluster::apiserver_only(&[]);
    kill_during_writes(&mut c);
}

#[test]
fn acknowledged_writes_survive_an_api_server_sigkill_on_etcd() {
    let etcd = Etcd::start();
    let mut c = TestCluster::with(Options {
        nodes: 0,
        controllers: false,
        scheduler: false,
        apiserver_args: etcd.apiserver_args("/durable/"),
        ..Default::default()
    });
    kill_during_writes(&mut c);
}

/// Damage the sled files of a stopped API server (`how` changes the largest file) and start
/// it again: it must refuse to start naming the problem, or serve every object intact -
/// never part of them.
fn damaged_start(how: &str) {
    let mut c = TestCluster::apiserver_only(&[]);
    for i in 0..30 {
        let (code, _) = c.post(
            CMS,
            &json!({"metadata": {"name": format!("cm-{i:02}")}, "data": {"v": "x".repeat(2000)}}),
        );
        assert_eq!(code, 201);
    }
    c.kill("apiserver");
    let dir = c.data_dir();
    let biggest = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("sled files")
        .path();
    let mut bytes = std::fs::read(&biggest).unwrap();
    match how {
        "truncate" => bytes.truncate(bytes.len() / 2),
        _ => {
            let (a, b) = (bytes.len() / 3, bytes.len() / 2);
            for x in &mut bytes[a..b] {
                *x ^= 0x5a;
            }
        }
    }
    std::fs::write(&biggest, bytes).unwrap();
    let port = coxswain_testkit::free_port();
    let log = dir.with_extension("restart.log");
    let mut p = coxswain_launch::Proc::spawn(
        "apiserver",
        &coxswain_testkit::bin_dir().join("cox-apiserver"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.display().to_string(),
        ],
        coxswain_launch::Output::File(log.clone()),
        &[],
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let started = coxswain_launch::wait_healthy(
        &format!("{url}/readyz"),
        Duration::from_secs(20),
        Some(&mut p),
    );
    match started {
        Err(coxswain_launch::LaunchError::Exited { status, .. }) => {
            assert!(!status.success());
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                text.contains("damaged") || text.contains("corrupt") || text.contains("sled"),
                "the refusal names the problem: {text}"
            );
            eprintln!(
                "{how}: refused: {}",
                text.lines().take(8).collect::<Vec<_>>().join(" / ")
            );
        }
        Ok(()) => {
            let v: Value = reqwest::blocking::get(format!("{url}{CMS}"))
                .unwrap()
                .json()
                .unwrap();
            let items = v["items"].as_array().cloned().unwrap_or_default();
            assert_eq!(
                items.len(),
                30,
                "all or nothing ({how}): {} served",
                items.len()
            );
            for i in items {
                assert_eq!(i["data"]["v"].as_str().map(str::len), Some(2000));
            }
            eprintln!("{how}: the damage hit nothing in use; all 30 served");
        }
        Err(e) => panic!("neither refused nor served ({how}): {e}"),
    }
}

#[test]
fn a_truncated_sled_directory_is_refused_not_served_in_part() {
    damaged_start("truncate");
}

#[test]
fn flipped_bytes_in_sled_files_are_refused_not_served_in_part() {
    damaged_start("flip");
}
