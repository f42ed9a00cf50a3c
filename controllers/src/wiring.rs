//! What the controllers share: one informer per kind ([`Informers`], with the indexes the
//! controllers look things up by), the one context type every reconcile gets ([`Ctx`]), and
//! the helpers the controllers' `watches` functions use to turn a change into the keys to
//! reconcile (each controller declares its own next to its reconcile).

use crate::{replicaset, util};
use coxswain_client::{Api, Client, ListParams};
use coxswain_runtime::events::Recorder;
use coxswain_runtime::store::key_of;
use coxswain_runtime::{Change, Informer, Queue, Store};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One informer per kind, shared by every controller.
pub struct Informers {
    /// Deployments (by `uid`, `namespace`).
    pub deployments: Informer<Deployment>,
    /// ReplicaSets (by `controller`, `owner`, `uid`, `namespace`, `orphan`).
    pub replicasets: Informer<ReplicaSet>,
    /// Pods (by `controller`, `owner`, `orphan`, `node`, `claim`: `namespace/claim` of each
    /// PersistentVolumeClaim volume).
    pub pods: Informer<Pod>,
    /// ReplicationControllers (by `uid`, `owner`, `namespace`).
    pub replicationcontrollers: Informer<ReplicationController>,
    /// Jobs (by `controller`, `owner`, `uid`).
    pub jobs: Informer<Job>,
    /// CronJobs (by `owner`, `uid`).
    pub cronjobs: Informer<CronJob>,
    /// PodDisruptionBudgets (by `namespace`).
    pub pdbs: Informer<PodDisruptionBudget>,
    /// HorizontalPodAutoscalers.
    pub hpas: Informer<HorizontalPodAutoscaler>,
    /// Services (by `namespace`, `uid`).
    pub services: Informer<Service>,
    /// Endpoints.
    pub endpoints: Informer<Endpoints>,
    /// EndpointSlices (by `service`: the `kubernetes.io/service-name` label as
    /// `namespace/name`; `owner`, `uid`).
    pub endpointslices: Informer<EndpointSlice>,
    /// ServiceAccounts.
    pub serviceaccounts: Informer<ServiceAccount>,
    /// ClusterRoles.
    pub clusterroles: Informer<ClusterRole>,
    /// StatefulSets (by `uid`, `owner`).
    pub statefulsets: Informer<StatefulSet>,
    /// DaemonSets (by `uid`, `owner`).
    pub daemonsets: Informer<DaemonSet>,
    /// ControllerRevisions (by `controller`, `owner`, `orphan`, `uid`).
    pub revisions: Informer<ControllerRevision>,
    /// PersistentVolumeClaims (by `owner`, `uid`, `unbound`: the class of claims not yet
    /// bound): the collector deletes claims their StatefulSet owns.
    pub claims: Informer<PersistentVolumeClaim>,
    /// PersistentVolumes (by `available`: the class of free Available ones; `claim`: the
    /// claim a claimRef names).
    pub volumes: Informer<PersistentVolume>,
    /// StorageClasses.
    pub storageclasses: Informer<StorageClass>,
    /// Nodes.
    pub nodes: Informer<Node>,
    /// Node Leases (`kube-node-lease`).
    pub leases: Informer<Lease>,
    /// Namespaces.
    pub namespaces: Informer<Namespace>,
}

impl Informers {
    /// The informers (not started yet).
    pub fn new(client: &Client) -> Informers {
        let deployments = Informer::new(Api::<Deployment>::all(client), ListParams::default())
            .index("uid", |d: &Deployment| uid_index(&d.metadata))
            .index("owner", |d: &Deployment| util::owner_uids(&d.metadata))
            .index("namespace", |d: &Deployment| namespace_index(&d.metadata));
        let replicasets = Informer::new(Api::<ReplicaSet>::all(client), ListParams::default())
            .index("controller", |rs: &ReplicaSet| {
                util::controller_uid(&rs.metadata).into_iter().collect()
            })
            .index("owner", |rs: &ReplicaSet| util::owner_uids(&rs.metadata))
            .index("uid", |rs: &ReplicaSet| uid_index(&rs.metadata))
            .index("namespace", |rs: &ReplicaSet| namespace_index(&rs.metadata))
            .index("orphan", |rs: &ReplicaSet| orphan_index(&rs.metadata));
        let pods = Informer::new(Api::<Pod>::all(client), ListParams::default())
            .index("controller", |p: &Pod| {
                util::controller_uid(&p.metadata).into_iter().collect()
            })
            .index("owner", |p: &Pod| util::owner_uids(&p.metadata))
            .index("orphan", |p: &Pod| orphan_index(&p.metadata))
            .index("namespace", |p: &Pod| namespace_index(&p.metadata))
            .index("node", |p: &Pod| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .into_iter()
                    .collect()
            })
            .index("claim", coxswain_api::storage::pod_claims);
        let jobs = Informer::new(Api::<Job>::all(client), ListParams::default())
            .index("controller", |j: &Job| {
                util::controller_uid(&j.metadata).into_iter().collect()
            })
            .index("owner", |j: &Job| util::owner_uids(&j.metadata))
            .index("uid", |j: &Job| uid_index(&j.metadata));
        let cronjobs = Informer::new(Api::<CronJob>::all(client), ListParams::default())
            .index("owner", |c: &CronJob| util::owner_uids(&c.metadata))
            .index("uid", |c: &CronJob| uid_index(&c.metadata));
        let replicationcontrollers = Informer::new(
            Api::<ReplicationController>::all(client),
            ListParams::default(),
        )
        .index("uid", |r: &ReplicationController| uid_index(&r.metadata))
        .index("owner", |r: &ReplicationController| {
            util::owner_uids(&r.metadata)
        })
        .index("namespace", |r: &ReplicationController| {
            namespace_index(&r.metadata)
        });
        Informers {
            deployments,
            replicasets,
            pods,
            replicationcontrollers,
            jobs,
            cronjobs,
            pdbs: Informer::new(
                Api::<PodDisruptionBudget>::all(client),
                ListParams::default(),
            )
            .index("namespace", |b: &PodDisruptionBudget| {
                namespace_index(&b.metadata)
            }),
            hpas: Informer::new(
                Api::<HorizontalPodAutoscaler>::all(client),
                ListParams::default(),
            ),
            services: Informer::new(Api::<Service>::all(client), ListParams::default())
                .index("namespace", |s: &Service| namespace_index(&s.metadata))
                .index("uid", |s: &Service| uid_index(&s.metadata)),
            endpoints: Informer::new(Api::<Endpoints>::all(client), ListParams::default()),
            endpointslices: Informer::new(Api::<EndpointSlice>::all(client), ListParams::default())
                .index("service", |e: &EndpointSlice| {
                    let name = e
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL));
                    name.map(|n| key_of(e.metadata.namespace.as_deref(), n))
                        .into_iter()
                        .collect()
                })
                .index("owner", |e: &EndpointSlice| util::owner_uids(&e.metadata))
                .index("uid", |e: &EndpointSlice| uid_index(&e.metadata)),
            serviceaccounts: Informer::new(
                Api::<ServiceAccount>::all(client),
                ListParams::default(),
            ),
            clusterroles: Informer::new(Api::<ClusterRole>::all(client), ListParams::default()),
            statefulsets: Informer::new(Api::<StatefulSet>::all(client), ListParams::default())
                .index("uid", |s: &StatefulSet| uid_index(&s.metadata))
                .index("owner", |s: &StatefulSet| util::owner_uids(&s.metadata)),
            daemonsets: Informer::new(Api::<DaemonSet>::all(client), ListParams::default())
                .index("uid", |d: &DaemonSet| uid_index(&d.metadata))
                .index("owner", |d: &DaemonSet| util::owner_uids(&d.metadata)),
            revisions: Informer::new(
                Api::<ControllerRevision>::all(client),
                ListParams::default(),
            )
            .index("controller", |r: &ControllerRevision| {
                util::controller_uid(&r.metadata).into_iter().collect()
            })
            .index("owner", |r: &ControllerRevision| {
                util::owner_uids(&r.metadata)
            })
            .index("orphan", |r: &ControllerRevision| orphan_index(&r.metadata))
            .index("uid", |r: &ControllerRevision| uid_index(&r.metadata)),
            claims: Informer::new(
                Api::<PersistentVolumeClaim>::all(client),
                ListParams::default(),
            )
            .index("owner", |c: &PersistentVolumeClaim| {
                util::owner_uids(&c.metadata)
            })
            .index("uid", |c: &PersistentVolumeClaim| uid_index(&c.metadata))
            .index("unbound", |c: &PersistentVolumeClaim| {
                let bound = c
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(coxswain_api::storage::BIND_COMPLETED));
                if bound {
                    Vec::new()
                } else {
                    vec![coxswain_api::storage::claim_class(c)]
                }
            }),
            volumes: Informer::new(Api::<PersistentVolume>::all(client), ListParams::default())
                .index("available", coxswain_api::storage::available_class)
                .index("claim", coxswain_api::storage::claimed_by),
            storageclasses: Informer::new(Api::<StorageClass>::all(client), ListParams::default()),
            nodes: Informer::new(Api::<Node>::all(client), ListParams::default()),
            leases: Informer::new(
                Api::<Lease>::namespaced(client, "kube-node-lease"),
                ListParams::default(),
            ),
            namespaces: Informer::new(Api::<Namespace>::all(client), ListParams::default()),
        }
    }

    /// Start every informer; resolves once every cache has synced.
    pub async fn start(self) {
        let (d, r, p) = (
            self.deployments.store(),
            self.replicasets.store(),
            self.pods.store(),
        );
        let (ns, n, l) = (
            self.namespaces.store(),
            self.nodes.store(),
            self.leases.store(),
        );
        let (j, cj) = (self.jobs.store(), self.cronjobs.store());
        let rc = self.replicationcontrollers.store();
        let pdbs = self.pdbs.store();
        let hpas = self.hpas.store();
        self.hpas.spawn();
        let (svcs, eps, slices, sas) = (
            self.services.store(),
            self.endpoints.store(),
            self.endpointslices.store(),
            self.serviceaccounts.store(),
        );
        self.services.spawn();
        self.endpoints.spawn();
        self.endpointslices.spawn();
        self.serviceaccounts.spawn();
        let crs = self.clusterroles.store();
        self.clusterroles.spawn();
        let (sts, revs, claims) = (
            self.statefulsets.store(),
            self.revisions.store(),
            self.claims.store(),
        );
        self.replicationcontrollers.spawn();
        self.pdbs.spawn();
        self.statefulsets.spawn();
        let ds = self.daemonsets.store();
        self.daemonsets.spawn();
        self.revisions.spawn();
        self.claims.spawn();
        let (pvs, classes) = (self.volumes.store(), self.storageclasses.store());
        self.volumes.spawn();
        self.storageclasses.spawn();
        self.deployments.spawn();
        self.replicasets.spawn();
        self.pods.spawn();
        self.jobs.spawn();
        self.cronjobs.spawn();
        self.namespaces.spawn();
        self.nodes.spawn();
        self.leases.spawn();
        d.wait_ready().await;
        r.wait_ready().await;
        p.wait_ready().await;
        ns.wait_ready().await;
        n.wait_ready().await;
        l.wait_ready().await;
        j.wait_ready().await;
        cj.wait_ready().await;
        rc.wait_ready().await;
        pdbs.wait_ready().await;
        hpas.wait_ready().await;
        svcs.wait_ready().await;
        eps.wait_ready().await;
        slices.wait_ready().await;
        sas.wait_ready().await;
        crs.wait_ready().await;
        sts.wait_ready().await;
        ds.wait_ready().await;
        revs.wait_ready().await;
        claims.wait_ready().await;
        pvs.wait_ready().await;
        classes.wait_ready().await;
    }
}

/// Everything a reconcile may read or use; one per controller (its own Event source).
pub struct Ctx {
    /// API client.
    pub client: Client,
    /// Deployments cache.
    pub deployments: Store<Deployment>,
    /// ReplicaSets cache (indexed by controller and owner UID).
    pub replicasets: Store<ReplicaSet>,
    /// Pods cache (indexed by controller and owner UID).
    pub pods: Store<Pod>,
    /// ReplicationControllers cache.
    pub replicationcontrollers: Store<ReplicationController>,
    /// Jobs cache.
    pub jobs: Store<Job>,
    /// CronJobs cache.
    pub cronjobs: Store<CronJob>,
    /// PodDisruptionBudgets cache.
    pub pdbs: Store<PodDisruptionBudget>,
    /// HorizontalPodAutoscalers cache.
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// Services cache.
    pub services: Store<Service>,
    /// Endpoints cache.
    pub endpoints: Store<Endpoints>,
    /// EndpointSlices cache (by service).
    pub endpointslices: Store<EndpointSlice>,
    /// ServiceAccounts cache.
    pub serviceaccounts: Store<ServiceAccount>,
    /// ClusterRoles cache.
    pub clusterroles: Store<ClusterRole>,
    /// StatefulSets cache.
    pub statefulsets: Store<StatefulSet>,
    /// DaemonSets cache.
    pub daemonsets: Store<DaemonSet>,
    /// ControllerRevisions cache (by controller UID).
    pub revisions: Store<ControllerRevision>,
    /// PersistentVolumeClaims cache.
    pub claims: Store<PersistentVolumeClaim>,
    /// PersistentVolumes cache (by `available` class and by `claim`).
    pub volumes: Store<PersistentVolume>,
    /// StorageClasses cache.
    pub storageclasses: Store<StorageClass>,
    /// Namespaces cache.
    pub namespaces: Store<Namespace>,
    /// Nodes cache.
    pub nodes: Store<Node>,
    /// Node leases cache (`kube-node-lease`).
    pub leases: Store<Lease>,
    /// Event recorder, as the controller (`deployment-controller`, ...).
    pub recorder: Recorder,
    /// Pod expectations (the ReplicaSet and Job controllers').
    pub expectations: replicaset::Expectations,
    /// What the Job controller remembers of its own writes.
    pub job_memory: crate::job::Memory,
}

impl Ctx {
    /// The context of the controller that records Events as `component` (through the
    /// process's one Event writer, `events`).
    pub fn new(client: &Client, inf: &Informers, events: &Recorder, component: &str) -> Ctx {
        Ctx {
            client: client.clone(),
            deployments: inf.deployments.store(),
            replicasets: inf.replicasets.store(),
            pods: inf.pods.store(),
            replicationcontrollers: inf.replicationcontrollers.store(),
            jobs: inf.jobs.store(),
            cronjobs: inf.cronjobs.store(),
            pdbs: inf.pdbs.store(),
            hpas: inf.hpas.store(),
            services: inf.services.store(),
            endpoints: inf.endpoints.store(),
            endpointslices: inf.endpointslices.store(),
            serviceaccounts: inf.serviceaccounts.store(),
            clusterroles: inf.clusterroles.store(),
            statefulsets: inf.statefulsets.store(),
            daemonsets: inf.daemonsets.store(),
            revisions: inf.revisions.store(),
            claims: inf.claims.store(),
            volumes: inf.volumes.store(),
            storageclasses: inf.storageclasses.store(),
            namespaces: inf.namespaces.store(),
            nodes: inf.nodes.store(),
            leases: inf.leases.store(),
            recorder: events.for_component(component),
            expectations: replicaset::Expectations::default(),
            job_memory: Default::default(),
        }
    }
}

/// Queue every changed claim (as `namespace/name`) and volume (as `name`): the keys of the
/// storage controllers, which tell the two apart by the `/`.
pub fn claim_and_volume_keys(inf: &mut Informers, q: &Queue) {
    let cq = q.clone();
    inf.claims
        .on_change(move |c| cq.add(meta_key(changed_meta(c))));
    let vq = q.clone();
    inf.volumes
        .on_change(move |c| vq.add(changed_meta(c).name.clone().unwrap_or_default()));
}

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub fn meta_key(m: &ObjectMeta) -> String {
    key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
}

fn uid_index(m: &ObjectMeta) -> Vec<String> {
    m.uid.clone().into_iter().collect()
}

fn namespace_index(m: &ObjectMeta) -> Vec<String> {
    vec![m.namespace.clone().unwrap_or_default()]
}

/// Objects without a controller, by namespace: the candidates for adoption.
fn orphan_index(m: &ObjectMeta) -> Vec<String> {
    if util::controller_uid(m).is_some() || m.deletion_timestamp.is_some() {
        return Vec::new();
    }
    namespace_index(m)
}

/// The keys of `owners` in the object's namespace whose selector matches its labels, when
/// it has no controller (it may be adopted).
pub fn adopters<O: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    m: &ObjectMeta,
    owners: &coxswain_runtime::Store<O>,
    selector: impl Fn(&O) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Vec<String> {
    if orphan_index(m).is_empty() {
        return Vec::new();
    }
    let labels = m.labels.clone().unwrap_or_default();
    owners
        .by_index("namespace", m.namespace.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|o| {
            selector(o)
                .and_then(|s| coxswain_api::selector::LabelSelector::from_k8s(&s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches(&labels))
        })
        .map(|o| meta_key(o.metadata()))
        .collect()
}

/// Owner UIDs of both the old and the new version (a dropped reference must still wake the
/// owner it pointed at, e.g. when orphaning).
pub fn owner_refs<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(c: &Change<K>) -> Vec<String> {
    let mut uids = util::owner_uids(changed_meta(c));
    if let Change::Applied { old: Some(o), .. } = c {
        uids.extend(util::owner_uids(o.metadata()));
    }
    uids.sort();
    uids.dedup();
    uids
}

/// Whether an update left everything but the status as it was: same generation (a spec
/// change bumps it), labels, annotations, owners, finalizers and deletion state.
pub fn status_only(old: &ObjectMeta, new: &ObjectMeta) -> bool {
    old.generation == new.generation
        && old.labels == new.labels
        && old.annotations == new.annotations
        && old.owner_references == new.owner_references
        && old.finalizers == new.finalizers
        && old.deletion_timestamp == new.deletion_timestamp
}

/// The status batch of a ReplicaSet, from the number of pods it controls.
pub fn status_batch_of(
    pods: &coxswain_runtime::Store<Pod>,
    rs: &ObjectMeta,
) -> std::time::Duration {
    replicaset::status_batch(pods.count_index("controller", rs.uid.as_deref().unwrap_or("")))
}

pub fn changed_meta<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(c: &Change<K>) -> &ObjectMeta {
    match c {
        Change::Applied { new, .. } => new.metadata(),
        Change::Deleted(o) => o.metadata(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_only_tells_a_status_write_from_a_change_of_intent() {
        let old = ObjectMeta {
            name: Some("web-1".into()),
            generation: Some(1),
            resource_version: Some("10".into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        };
        // A status write: only the resourceVersion moved.
        let status_write = ObjectMeta {
            resource_version: Some("11".into()),
            ..old.clone()
        };
        assert!(status_only(&old, &status_write));
        // A spec change bumps the generation; labels, finalizers and deletion are intent too.
        let scaled = ObjectMeta {
            generation: Some(2),
            ..old.clone()
        };
        let relabeled = ObjectMeta {
            labels: None,
            ..old.clone()
        };
        let finalized = ObjectMeta {
            finalizers: Some(vec!["example.com/hold".into()]),
            ..old.clone()
        };
        let deleting = ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                chrono::Utc::now(),
            )),
            ..old.clone()
        };
        for changed in [scaled, relabeled, finalized, deleting] {
            assert!(!status_only(&old, &changed), "{changed:?}");
        }
    }
}
