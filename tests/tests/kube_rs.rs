//! A kube-rs program (Rust's standard Kubernetes client) against a real cluster: list, watch
//! with its `watcher`, and server-side apply of a Deployment.

use coxswain_testkit::TestCluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use std::time::Duration;

fn deployment() -> serde_json::Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "rs-app", "labels": {"app": "rs-app"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs-app"}},
            "template": {"metadata": {"labels": {"app": "rs-app"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
}

#[test]
fn kube_rs_lists_watches_and_applies() {
    let c = TestCluster::start(2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = kube::Config::new(c.server.parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

        // Server-side apply creates, then a second apply updates.
        let pp = PatchParams::apply("kube-rs-test");
        let d = deploys
            .patch("rs-app", &pp, &Patch::Apply(deployment()))
            .await
            .unwrap();
        assert_eq!(d.spec.unwrap().replicas, Some(2));
        let mut changed = deployment();
        changed["spec"]["replicas"] = 3.into();
        let d = deploys
            .patch("rs-app", &pp, &Patch::Apply(changed))
            .await
            .unwrap();
        assert_eq!(d.spec.unwrap().replicas, Some(3));
        let mf = d.metadata.managed_fields.unwrap();
        assert!(mf
            .iter()
            .any(|m| m.manager.as_deref() == Some("kube-rs-test")
                && m.operation.as_deref() == Some("Apply")));

        // watcher: the pods come up Running.
        let lp = watcher::Config::default().labels("app=rs-app");
        let mut stream = watcher(pods.clone(), lp).boxed();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut running = std::collections::HashSet::new();
        while running.len() < 3 {
            let ev = tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("3 pods Running within 30 s")
                .expect("watch stream open")
                .expect("watch event");
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = ev {
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
                    running.insert(p.metadata.name.clone().unwrap());
                }
            }
        }

        // list with a label selector.
        let list = pods
            .list(&ListParams::default().labels("app=rs-app"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 3);
        let all = deploys.list(&ListParams::default()).await.unwrap();
        assert_eq!(all.items.len(), 1);
    });
}
