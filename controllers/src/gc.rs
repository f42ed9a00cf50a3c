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
    /// The collector key of the object with this UID.
    fn key_of_uid(&self, uid: &str) -> Option<String>;
    /// The collector keys of the objects `owner_uid` owns.
    fn dependent_keys(&self, owner_uid: &str) -> Vec<String>;
    fn has_dependents(&self, owner_uid: &str) -> bool;
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
    fn key_of_uid(&self, uid: &str) -> Option<String> {
        self.store
            .by_index("uid", uid)
            .first()
            .map(|o| gc_key(K::KIND, o.metadata()))
    }
    fn dependent_keys(&self, owner_uid: &str) -> Vec<String> {
        self.store
            .by_index("owner", owner_uid)
            .iter()
            .map(|o| gc_key(K::KIND, o.metadata()))
            .collect()
    }
    fn has_dependents(&self, owner_uid: &str) -> bool {
        self.store.count_index("owner", owner_uid) > 0
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
                if let Some(k) = g.kinds().iter().find_map(|t| t.key_of_uid(&uid)) {
                    q.add(k);
                }
            }
            if m.deletion_timestamp.is_some() || matches!(c, Change::Deleted(_)) {
                for k in g.dependent_keys(m.uid.as_deref().unwrap_or("")) {
                    q.add(k);
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

    fn dependent_keys(&self, uid: &str) -> Vec<String> {
        self.kinds()
            .iter()
            .flat_map(|t| t.dependent_keys(uid))
            .collect()
    }

    fn has_dependents(&self, uid: &str) -> bool {
        self.kinds().iter().any(|t| t.has_dependents(uid))
    }

    /// The owner a reference points at (checked live when the cache does not have it);
    /// errors reading it are returned, so the dependent is looked at again.
    async fn owner(&self, ns: &str, r: &OwnerReference) -> anyhow::Result<Owner> {
        let Some(t) = self.of(&r.kind) else {
            return Ok(Owner::Untracked);
        };
        if let Some(m) = t.by_uid(&r.uid) {
            return Ok(Owner::Present(Box::new(m)));
        }
        let live = t.get_live(ns, &r.name).await?;
        Ok(
            match live.filter(|m| m.uid.as_deref() == Some(r.uid.as_str())) {
                Some(m) => Owner::Present(Box::new(m)),
                None => Owner::Gone,
            },
        )
    }
}

/// What an owner reference points at.
enum Owner {
    Present(Box<ObjectMeta>),
    Gone,
    /// A kind the collector does not track: left alone.
    Untracked,
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
        match g.owner(&ns, r).await? {
            Owner::Untracked => {}
            Owner::Gone => gone += 1,
            Owner::Present(om) if om.deletion_timestamp.is_some() => {
                if has_finalizer(&om, FOREGROUND) {
                    foreground = true;
                } else if has_finalizer(&om, ORPHAN) {
                    orphan_uids.push(r.uid.clone());
                }
            }
            Owner::Present(_) => {}
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
    let remaining = g.has_dependents(m.uid.as_deref().unwrap_or(""));
    let mut finalizers: Vec<String> = m.finalizers.clone().unwrap_or_default();
    let before = finalizers.len();
    if !remaining {
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
