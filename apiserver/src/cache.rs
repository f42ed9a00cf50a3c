//! The watch cache: every object in memory (as its encoded JSON plus the fields selectors need)
//! and a bounded window of recent events, fed in revision order by the store's commit channel.
//!
//! # Invariants
//! - Reads (get, list) and watches are served from here, never from sled.
//! - Each committed write becomes one [`Event`] whose wire line is encoded once and shared by
//!   every watcher (`Bytes` clones, not copies).
//! - The window holds every event after `floor`, in revision order (revisions may have gaps
//!   on etcd). A watcher or continue token older than `floor` gets 410 Expired and relists.

use bytes::Bytes;
use coxswain_api::resources::{ResourceInfo, RESOURCES};
use coxswain_api::selector::{FieldSelector, LabelSelector};
use coxswain_api::At;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::watch;

/// One stored object as the cache holds it.
#[derive(Debug)]
pub struct Obj {
    /// Its resourceVersion.
    pub rev: u64,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The JSON object, resourceVersion included.
    pub bytes: Bytes,
    /// Labels, for label selectors.
    pub labels: BTreeMap<String, String>,
    /// Selectable fields (`spec.nodeName`, `status.phase`, ...), for field selectors.
    pub fields: Vec<(&'static str, String)>,
    /// The value of the kind's indexed field, when set (a pod's node).
    pub indexed: Option<String>,
}

impl Obj {
    /// Build from a parsed object (which must already carry its resourceVersion).
    pub fn new(r: &ResourceInfo, rev: u64, v: &Value, bytes: Bytes) -> Obj {
        let meta = &v["metadata"];
        let s = |p: &str| {
            v.at(p)
                .and_then(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let kind = crate::kinds::of(r);
        let fields = crate::kinds::field_values(kind, v);
        let indexed = kind.indexed_field().and_then(|f| {
            fields
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        });
        Obj {
            rev,
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            bytes,
            labels,
            fields,
            indexed,
        }
    }

    /// The value of a selectable field.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            _ => self
                .fields
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone()),
        }
    }
}

/// Watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted (the object is its final state).
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Encode `{"type":T,"object":<bytes>}\n` around already-encoded object bytes.
pub fn event_line(t: &str, obj: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(obj.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(t.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(obj);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    /// Its revision.
    pub rev: u64,
    /// The resource it belongs to.
    pub resource: &'static ResourceInfo,
    /// What happened.
    pub type_: EventType,
    /// The object after the change (final state for deletes).
    pub obj: Arc<Obj>,
    /// The object before the change, if any (to turn selector transitions into ADDED/DELETED).
    pub prev: Option<Arc<Obj>>,
    line: Bytes,
    as_added: OnceLock<Bytes>,
    as_deleted: OnceLock<Bytes>,
    /// The lines with the object's metadata only, by type (for metadata watchers).
    as_metadata: [OnceLock<Bytes>; 3],
}

impl Event {
    /// The wire line of this event as its own type (encoded once, at commit).
    pub fn line(&self) -> Bytes {
        self.line.clone()
    }

    /// The wire line as another type (encoded at most once per event and type).
    pub fn line_as(&self, t: EventType) -> Bytes {
        if t == self.type_ {
            return self.line.clone();
        }
        match t {
            EventType::Added => self
                .as_added
                .get_or_init(|| event_line("ADDED", &self.obj.bytes))
                .clone(),
            EventType::Deleted => self
                .as_deleted
                .get_or_init(|| event_line("DELETED", &self.obj.bytes))
                .clone(),
            EventType::Modified => self.line.clone(),
        }
    }

    /// The wire line of type `t` carrying only the object's `PartialObjectMetadata`
    /// (encoded at most once per event and type, shared by every metadata watcher).
    pub fn metadata_line_as(&self, t: EventType) -> Bytes {
        self.as_metadata[t as usize]
            .get_or_init(|| {
                event_line(
                    t.as_str(),
                    &crate::verbs::partial_metadata_bytes(&self.obj.bytes),
                )
            })
            .clone()
    }
}

/// What a list or watch selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Namespace, or all.
    pub namespace: Option<String>,
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether an object matches.
    pub fn matches(&self, o: &Obj) -> bool {
        self.namespace.as_ref().is_none_or(|ns| *ns == o.namespace)
            && self.labels.matches(&o.labels)
            && self.fields.matches(|f| o.field(f))
    }

    /// The value the field selector pins `field` to (`spec.nodeName=N`), to use an index.
    fn pinned(&self, field: &str) -> Option<&str> {
        self.fields
            .terms
            .iter()
            .find(|(k, _, eq)| k == field && *eq)
            .map(|(_, v, _)| v.as_str())
    }
}

type Key = (String, String);

#[derive(Default)]
struct Inner {
    rev: u64,
    /// Every event after this revision is in the window.
    floor: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Obj>>>,
    /// Keys by (resource, value of the kind's indexed field): pods by node.
    by_index: HashMap<(&'static str, String), BTreeSet<Key>>,
    window: VecDeque<Arc<Event>>,
}

/// The cache; share it behind an `Arc`.
pub struct Cache {
    inner: RwLock<Inner>,
    rev_tx: watch::Sender<u64>,
    capacity: usize,
    /// Objects this server wrote, by revision, until their commit reaches the cache, so
    /// they are not parsed again from their bytes.
    built: std::sync::Mutex<BTreeMap<u64, Value>>,
}

/// The result of starting a watch.
pub enum WatchStart {
    /// Events after the requested revision, and the revision they run up to.
    Events(Vec<Arc<Event>>, u64),
    /// The requested revision has left the window.
    Expired {
        /// The oldest revision still available.
        oldest: u64,
    },
}

fn res_id(r: &ResourceInfo) -> &'static str {
    RESOURCES
        .iter()
        .find(|x| x.group == r.group && x.plural == r.plural)
        .map(|x| x.plural)
        .unwrap_or("")
}

impl Inner {
    /// Move `key` in the index from `old` to `new` (values of the indexed field).
    fn reindex(&mut self, res: &'static str, key: &Key, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        if let Some(o) = old {
            let ik = (res, o.to_string());
            if let Some(set) = self.by_index.get_mut(&ik) {
                set.remove(key);
                if set.is_empty() {
                    self.by_index.remove(&ik);
                }
            }
        }
        if let Some(n) = new {
            self.by_index
                .entry((res, n.to_string()))
                .or_default()
                .insert(key.clone());
        }
    }
}

impl Cache {
    /// An empty cache at `rev` keeping `capacity` events.
    pub fn new(rev: u64, capacity: usize) -> Cache {
        let (rev_tx, _) = watch::channel(rev);
        Cache {
            inner: RwLock::new(Inner {
                rev,
                floor: rev,
                ..Default::default()
            }),
            rev_tx,
            capacity: capacity.max(16),
            built: Default::default(),
        }
    }

    /// Keep the object written at `rev` (0: not known yet, ignored) for [`Cache::take_built`].
    pub fn stash_built(&self, rev: u64, v: Value) {
        if rev > 0 {
            if let Ok(mut b) = self.built.lock() {
                b.insert(rev, v);
            }
        }
    }

    /// The object stashed for `rev`, dropping any older ones (writes that failed).
    pub fn take_built(&self, rev: u64) -> Option<Value> {
        let mut b = self.built.lock().ok()?;
        let newer = b.split_off(&(rev + 1));
        let mine = b.remove(&rev);
        *b = newer;
        mine
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Insert an object at start-up (no event).
    pub fn load(&self, r: &'static ResourceInfo, obj: Obj) {
        let mut g = self.write();
        let key = (obj.namespace.clone(), obj.name.clone());
        let res = res_id(r);
        g.reindex(res, &key, None, obj.indexed.as_deref());
        g.objects
            .entry(res_id(r))
            .or_default()
            .insert(key, Arc::new(obj));
    }

    /// Forget everything (storage lost the history we followed): objects are loaded again
    /// at `rev`, and watchers and continue tokens from before get 410.
    pub fn reset(&self, rev: u64) {
        let mut g = self.write();
        *g = Inner {
            rev,
            floor: rev,
            ..Default::default()
        };
        drop(g);
        self.rev_tx.send_replace(rev);
    }

    /// The oldest revision a watch or continue token may start from.
    pub fn floor(&self) -> u64 {
        self.read().floor
    }

    /// Apply one committed change (called in revision order; replays are ignored).
    pub fn apply(&self, r: &'static ResourceInfo, mut obj: Obj, deleted: bool) {
        let rev = obj.rev;
        let key = (obj.namespace.clone(), obj.name.clone());
        let mut g = self.write();
        if rev <= g.rev {
            return;
        }
        let res = res_id(r);
        let map = g.objects.entry(res).or_default();
        let type_ = if deleted {
            EventType::Deleted
        } else if map.contains_key(&key) {
            EventType::Modified
        } else {
            EventType::Added
        };
        // One allocation for both: the object's bytes are a slice of its event line, so the
        // window and the object map share the JSON instead of holding two copies.
        let line = event_line(type_.as_str(), &obj.bytes);
        let start = line.len() - obj.bytes.len() - 2;
        obj.bytes = line.slice(start..line.len() - 2);
        let obj = Arc::new(obj);
        let prev = if deleted {
            map.remove(&key)
        } else {
            map.insert(key.clone(), obj.clone())
        };
        let old = prev.as_ref().and_then(|p| p.indexed.clone());
        let new = (!deleted).then(|| obj.indexed.as_deref()).flatten();
        g.reindex(res, &key, old.as_deref(), new);
        let ev = Arc::new(Event {
            rev,
            resource: r,
            type_,
            line,
            obj,
            prev,
            as_added: OnceLock::new(),
            as_deleted: OnceLock::new(),
            as_metadata: Default::default(),
        });
        g.window.push_back(ev);
        while g.window.len() > self.capacity {
            if let Some(old) = g.window.pop_front() {
                g.floor = old.rev;
            }
        }
        g.rev = rev;
        drop(g);
        self.rev_tx.send_replace(rev);
    }

    /// Move past a committed revision that is no object's (an allocation's): no event, but
    /// the cache counts as having applied it, so consistent reads do not wait for it.
    pub fn advance(&self, rev: u64) {
        let mut g = self.write();
        if rev <= g.rev {
            return;
        }
        g.rev = rev;
        drop(g);
        self.rev_tx.send_replace(rev);
    }

    /// The revision the cache has applied up to.
    pub fn rev(&self) -> u64 {
        self.read().rev
    }

    /// Wait until the cache has applied `rev` (read-your-writes for the writer).
    pub async fn wait_for(&self, rev: u64) {
        let mut rx = self.rev_tx.subscribe();
        let _ = rx.wait_for(|r| *r >= rev).await;
    }

    /// A receiver that changes whenever the cache advances.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.rev_tx.subscribe()
    }

    /// One object.
    pub fn get(&self, r: &ResourceInfo, namespace: &str, name: &str) -> Option<Arc<Obj>> {
        self.read()
            .objects
            .get(res_id(r))?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Matching objects in key order, and the revision of this snapshot.
    pub fn list(&self, r: &ResourceInfo, f: &Filter) -> (Vec<Arc<Obj>>, u64) {
        let (items, rev, _) = self.list_page(r, f, None, usize::MAX);
        (items, rev)
    }

    /// Up to `limit` matching objects after the key `after` (namespace, name), in key order;
    /// the snapshot's revision; and how many more match (when there are more).
    pub fn list_page(
        &self,
        r: &ResourceInfo,
        f: &Filter,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> (Vec<Arc<Obj>>, u64, usize) {
        use std::ops::Bound;
        let g = self.read();
        let Some(map) = g.objects.get(res_id(r)) else {
            return (Vec::new(), g.rev, 0);
        };
        let lower = |k: Key| match after {
            Some(a) if *a >= k => Bound::Excluded(a.clone()),
            _ => Bound::Included(k),
        };
        let pinned = crate::kinds::of(r)
            .indexed_field()
            .and_then(|field| f.pinned(field))
            .filter(|v| !v.is_empty()); // unset values are not indexed
        let res = res_id(r);
        let mut it: Box<dyn Iterator<Item = &Arc<Obj>>> = if let Some(value) = pinned {
            let keys = g.by_index.get(&(res, value.to_string()));
            Box::new(
                keys.into_iter()
                    .flat_map(move |set| {
                        set.range((lower((String::new(), String::new())), Bound::Unbounded))
                    })
                    .filter_map(|k| map.get(k)),
            )
        } else if let Some(ns) = &f.namespace {
            Box::new(
                map.range((lower((ns.clone(), String::new())), Bound::Unbounded))
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, o)| o),
            )
        } else {
            Box::new(
                map.range((lower((String::new(), String::new())), Bound::Unbounded))
                    .map(|(_, o)| o),
            )
        };
        let items: Vec<Arc<Obj>> = it
            .by_ref()
            .filter(|o| f.matches(o))
            .take(limit)
            .cloned()
            .collect();
        let rest = if items.len() == limit {
            it.filter(|o| f.matches(o)).count()
        } else {
            0
        };
        (items, g.rev, rest)
    }

    /// Whether a namespace holds any object of any namespaced resource.
    pub fn namespace_is_empty(&self, ns: &str) -> bool {
        let g = self.read();
        g.objects.values().all(|m| {
            m.range((ns.to_string(), String::new())..)
                .next()
                .is_none_or(|((n, _), _)| n != ns)
        })
    }

    /// Events after `rev` (all of them up to now).
    pub fn since(&self, rev: u64) -> WatchStart {
        let g = self.read();
        if rev < g.floor {
            let oldest = g.window.front().map(|e| e.rev).unwrap_or(g.rev + 1);
            return WatchStart::Expired { oldest };
        }
        let start = g.window.partition_point(|e| e.rev <= rev);
        let evs = g.window.iter().skip(start).cloned().collect();
        WatchStart::Events(evs, g.rev)
    }

    /// A consistent snapshot for a watch without a revision: the current objects and the
    /// revision to continue from.
    pub fn snapshot(&self, r: &ResourceInfo, f: &Filter) -> (Vec<Arc<Obj>>, u64) {
        self.list(r, f)
    }
}
