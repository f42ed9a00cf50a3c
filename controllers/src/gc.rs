//! The garbage collector: deletes objects whose owners are all gone (background propagation),
//! deletes the dependents of owners being deleted in the foreground and then releases them
//! (`foregroundDeletion` finalizer), and orphans dependents (`orphan` finalizer).
//!
//! It knows no kind by name: every kind whose informer is [`Graph::track`]ed is both a possible
//! owner and a possible dependent, found through the informers' `uid` and `owner` indexes.
//! Owner references are resolved by their `kind`; an owner missing from the cache is confirmed
//! with a live GET before anything is deleted, and an owner of a kind nobody tracks is left
//! alone.

use crate::wiring::{changed_meta, owner_refs};
use crate::Ctx;
use coxswain_client::{Api, DeleteParams, Object};
use coxswain_runtime::store::key_of;
use coxswain_runtime::{Action, Change, Informer, Queue, Store};
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// The queue key of an object for the collector: `Kind:ns/name`.
pub fn gc_key(kind: &str, m: &ObjectMeta) -> String {
    format!(
        "{kind}:{}",
        key_of(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
    )
}

fn has_finalizer(m: &ObjectMeta, f: &str) -> bool {
    m.finalizers.iter().flatten().any(|x| x == f)
}

/// One kind the collector tracks: its cache and its verbs, without its type.
trait Tracked: Send + Sync {
    fn kind(&self) -> &'static str;
    fn get(&self, key: &str) -> Option<ObjectMeta>;
    fn by_uid(&self, uid: &str) -> Option<ObjectMeta>;
    fn dependents(&self, owner_uid: &str) -> Vec<ObjectMeta>;
    fn get_live<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<ObjectMeta>>>;
    fn delete<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        p: DeleteParams,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

struct Tracker<K: Object> {
    store: Store<K>,
    client: coxswain_client::Client,
}

impl<K: Object> Tracker<K> {
    fn api(&self, ns: &str) -> Api<K> {
        if ns.is_empty() {
            Api::all(&self.client)
        } else {
            Api::namespaced(&self.client, ns)
        }
    }
}

impl<K: Object> Tracked for Tracker<K> {
    fn kind(&self) -> &'static str {
        K::KIND
    }
    fn get(&self, key: &str) -> Option<ObjectMeta> {
        self.store.get(key).map(|o| o.metadata().clone())
    }
    fn by_uid(&self, uid: &str) -> Option<ObjectMeta> {
        self.store
            .by_index("uid", uid)
            .first()
            .map(|o| o.metadata().clone())
    }
    fn dependents(&self, owner_uid: &str) -> Vec<ObjectMeta> {
        self.store
            .by_index("owner", owner_uid)
            .iter()
            .map(|o| o.metadata().clone())
            .collect()
    }
    fn get_live<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Option<ObjectMeta>>> {
        Box::pin(async move {
            Ok(self
                .api(ns)
                .get_opt(name)
                .await?
                .map(|o| o.metadata().clone()))
        })
    }
    fn delete<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        p: DeleteParams,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.api(ns).delete(name, &p).await?;
            Ok(())
        })
    }
    fn patch<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
        patch: Value,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.api(ns).patch(name, &patch).await?;
            Ok(())
        })
    }
}

/// The kinds the collector tracks (filled while the informers are wired, read by reconciles).
#[derive(Default)]
pub struct Graph {
    kinds: OnceLock<Vec<Arc<dyn Tracked>>>,
    pending: std::sync::Mutex<Vec<Arc<dyn Tracked>>>,
}

impl Graph {
    /// Track the kind of `inf` (which must have `uid` and `owner` indexes): its changes wake
    /// the collector for the object, its owners and, when it goes, its dependents.
    pub fn track<K: Object>(self: &Arc<Self>, inf: &mut Informer<K>, q: &Queue, ctx: &Ctx) {
        let t: Arc<dyn Tracked> = Arc::new(Tracker {
            store: inf.store(),
            client: ctx.client.clone(),
        });
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t);
        let (q, g) = (q.clone(), self.clone());
        inf.on_change(move |c: &Change<K>| {
            let m = changed_meta(c);
            q.add(gc_key(K::KIND, m));
            for uid in owner_refs(c) {
                if let Some((kind, om)) = g.by_uid(&uid) {
                    q.add(gc_key(kind, &om));
                }
            }
            if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
                for (kind, dm) in g.dependents(m.uid.as_deref().unwrap_or("")) {
                    q.add(gc_key(kind, &dm));
                }
            }
        });
    }

    fn kinds(&self) -> &[Arc<dyn Tracked>] {
        self.kinds.get_or_init(|| {
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
        })
    }

    fn of(&self, kind: &str) -> Option<&Arc<dyn Tracked>> {
        self.kinds().iter().find(|t| t.kind() == kind)
    }

    fn by_uid(&self, uid: &str) -> Option<(&'static str, ObjectMeta)> {
        self.kinds()
            .iter()
            .find_map(|t| t.by_uid(uid).map(|m| (t.kind(), m)))
    }

    fn dependents(&self, uid: &str) -> Vec<(&'static str, ObjectMeta)> {
        self.kinds()
            .iter()
            .flat_map(|t| t.dependents(uid).into_iter().map(|m| (t.kind(), m)))
            .collect()
    }

    /// The owner a reference points at: `Ok(None)` when it is gone (checked live when the
    /// cache does not have it), `Err` for a kind nobody tracks (left alone).
    async fn owner(&self, ns: &str, r: &OwnerReference) -> anyhow::Result<Option<ObjectMeta>> {
        let Some(t) = self.of(&r.kind) else {
            anyhow::bail!("owner kind {} is not tracked", r.kind);
        };
        if let Some(m) = t.by_uid(&r.uid) {
            return Ok(Some(m));
        }
        Ok(t.get_live(ns, &r.name)
            .await?
            .filter(|m| m.uid.as_deref() == Some(r.uid.as_str())))
    }
}

/// Decide for one dependent: delete it, drop an owner reference, or leave it.
async fn check_dependent(g: &Graph, t: &dyn Tracked, m: &ObjectMeta) -> anyhow::Result<()> {
    let ns = m.namespace.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let refs: Vec<OwnerReference> = m.owner_references.clone().unwrap_or_default();
    if refs.is_empty() || m.deletion_timestamp.is_some() {
        return Ok(());
    }
    let (mut gone, mut foreground, mut orphan_uids) = (0, false, Vec::new());
    for r in &refs {
        let Ok(owner) = g.owner(&ns, r).await else {
            continue;
        };
        match owner {
            None => gone += 1,
            Some(om) if om.deletion_timestamp.is_some() => {
                if has_finalizer(&om, FOREGROUND) {
                    foreground = true;
                } else if has_finalizer(&om, ORPHAN) {
                    orphan_uids.push(r.uid.clone());
                }
            }
            Some(_) => {}
        }
    }
    if gone == refs.len() || foreground {
        let policy = if foreground {
            "Foreground"
        } else {
            "Background"
        };
        tracing::info!(kind = t.kind(), name = %name, policy, "deleting dependent whose owner is gone");
        let p = DeleteParams {
            propagation_policy: Some(policy.into()),
            uid: m.uid.clone(),
            ..Default::default()
        };
        t.delete(&ns, &name, p).await?;
    } else if !orphan_uids.is_empty() {
        let keep: Vec<&OwnerReference> = refs
            .iter()
            .filter(|r| !orphan_uids.contains(&r.uid))
            .collect();
        t.patch(&ns, &name, json!({"metadata": {"ownerReferences": keep}}))
            .await?;
    }
    Ok(())
}

/// Release an owner being deleted once its dependents are gone (foreground) or orphaned.
async fn check_owner(g: &Graph, t: &dyn Tracked, m: &ObjectMeta) -> anyhow::Result<()> {
    if m.deletion_timestamp.is_none() {
        return Ok(());
    }
    let remaining = g.dependents(m.uid.as_deref().unwrap_or(""));
    let mut finalizers: Vec<String> = m.finalizers.clone().unwrap_or_default();
    let before = finalizers.len();
    if remaining.is_empty() {
        finalizers.retain(|f| f != FOREGROUND && f != ORPHAN);
    }
    if finalizers.len() != before {
        let patch = json!({"metadata": {"finalizers": finalizers,
            "resourceVersion": m.resource_version}});
        t.patch(
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or(""),
            patch,
        )
        .await?;
    }
    Ok(())
}

/// Reconcile one `Kind:ns/name` key: as a dependent, then as an owner.
pub async fn reconcile(g: Arc<Graph>, _ctx: Arc<Ctx>, key: String) -> anyhow::Result<Action> {
    let Some((kind, obj_key)) = key.split_once(':') else {
        return Ok(Action::AwaitChange);
    };
    let Some(t) = g.of(kind).cloned() else {
        return Ok(Action::AwaitChange);
    };
    if let Some(m) = t.get(obj_key) {
        check_dependent(&g, &*t, &m).await?;
        check_owner(&g, &*t, &m).await?;
    }
    Ok(Action::AwaitChange)
}
