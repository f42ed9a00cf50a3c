//! The node's own objects: registering the Node (capacity, addresses, kubelet endpoint,
//! conditions), renewing its Lease in `kube-node-lease`, and refreshing the Ready condition.

use coxswain_client::{Api, Client};
use coxswain_runtime::Store;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the node offers.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// CPU capacity (`4`).
    pub cpu: String,
    /// Memory capacity (`8Gi`).
    pub memory: String,
    /// Pod capacity.
    pub max_pods: u32,
    /// The IP it reports.
    pub ip: String,
    /// Port of its log endpoint.
    pub port: u16,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
}

fn conditions(ready: bool) -> Vec<NodeCondition> {
    let now = Time(chrono::Utc::now());
    let c = |t: &str, s: &str, reason: &str, msg: &str| NodeCondition {
        type_: t.into(),
        status: s.into(),
        reason: Some(reason.into()),
        message: Some(msg.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    vec![
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        if ready {
            c(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            c("Ready", "False", "KubeletNotReady", "kubelet is starting")
        },
    ]
}

fn status(cfg: &NodeConfig) -> NodeStatus {
    let mut cap = BTreeMap::new();
    cap.insert("cpu".to_string(), Quantity(cfg.cpu.clone()));
    cap.insert("memory".to_string(), Quantity(cfg.memory.clone()));
    cap.insert("pods".to_string(), Quantity(cfg.max_pods.to_string()));
    cap.insert("ephemeral-storage".to_string(), Quantity("100Gi".into()));
    NodeStatus {
        capacity: Some(cap.clone()),
        allocatable: Some(cap),
        conditions: Some(conditions(true)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: cfg.port as i32,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: format!("boot-{}", cfg.name),
            container_runtime_version: "cox-sim://0.1.0".into(),
            kernel_version: "6.1.0-coxswain".into(),
            kube_proxy_version: "".into(),
            kubelet_version: coxswain_api::GIT_VERSION.into(),
            machine_id: format!("machine-{}", cfg.name),
            operating_system: "linux".into(),
            os_image: "Coxswain simulated node".into(),
            system_uuid: format!("uuid-{}", cfg.name),
        }),
        ..Default::default()
    }
}

/// Create the Node, or refresh its status if it exists.
pub async fn register(client: &Client, cfg: &NodeConfig) -> Result<(), coxswain_client::Error> {
    let api: Api<Node> = Api::all(client);
    let mut labels = cfg.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), cfg.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: None,
        status: Some(status(cfg)),
    };
    match api.create(&node).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => {
            api.patch(&cfg.name, &json!({"metadata": {"labels": labels}}))
                .await?;
            api.patch_status(&cfg.name, &json!({"status": status(cfg)}))
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Renew the Lease every `every`; post the Ready heartbeat every sixth renewal, or at once
/// when the server shows the node not Ready (e.g. marked Unknown while we were away).
pub async fn heartbeat(client: Client, cfg: NodeConfig, every: Duration, node_cache: Store<Node>) {
    let leases: Api<Lease> = Api::namespaced(&client, "kube-node-lease");
    let nodes: Api<Node> = Api::all(&client);
    // Spread many nodes' renewals over the period instead of all at once.
    let offset = cfg
        .name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    tokio::time::sleep(Duration::from_millis(
        offset % (every.as_millis().max(1) as u64),
    ))
    .await;
    let mut n: u64 = 0;
    loop {
        let now = MicroTime(chrono::Utc::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some("kube-node-lease".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.name.clone()),
                lease_duration_seconds: Some(40),
                renew_time: Some(now.clone()),
                ..Default::default()
            }),
        };
        let res = match leases.patch(&cfg.name, &json!({"spec": {"holderIdentity": cfg.name, "leaseDurationSeconds": 40, "renewTime": now}})).await {
            Err(e) if e.is_not_found() => leases.create(&lease).await.map(|_| ()),
            other => other.map(|_| ()),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "renewing lease failed");
        }
        let not_ready = node_cache.get(&cfg.name).is_some_and(|node| {
            !node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if n % 6 == 5 || not_ready {
            if let Err(e) = nodes
                .patch_status(
                    &cfg.name,
                    &json!({"status": {"conditions": conditions(true)}}),
                )
                .await
            {
                tracing::warn!(error = %e, "posting node status failed");
                if e.is_not_found() {
                    let _ = register(&client, &cfg).await;
                }
            }
        }
        n += 1;
        tokio::time::sleep(every).await;
    }
}
