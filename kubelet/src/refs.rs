//! What a pod needs from the API besides itself, and whether it is there: the ConfigMaps
//! and Secrets (and their keys) its containers' environment names (`env[].valueFrom`,
//! `envFrom`), and the ConfigMaps, Secrets and PersistentVolumeClaims its volumes mount.
//! A container whose environment cannot be made waits in `CreateContainerConfigError`; a
//! pod whose volumes cannot be mounted keeps every container `ContainerCreating` with
//! `FailedMount` events; both until what is missing appears, or unless it is `optional`.
//! Looked up in the kubelet's caches (one informer each for the whole process).

use coxswain_runtime::store::key_of;
use coxswain_runtime::Store;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Pod, Secret};

/// Which kind of object a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

/// One object (and key) a container's environment reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// ConfigMap or Secret.
    pub source: Source,
    /// Its name.
    pub name: String,
    /// The key read (`None`: all of them, `envFrom`).
    pub key: Option<String>,
    /// Missing is fine.
    pub optional: bool,
}

/// What a container's environment reads.
pub fn env_refs(c: &Container) -> Vec<Ref> {
    let mut out = Vec::new();
    for e in c.env_from.iter().flatten() {
        if let Some(r) = &e.config_map_ref {
            out.push(Ref {
                source: Source::ConfigMap,
                name: r.name.clone(),
                key: None,
                optional: r.optional.unwrap_or(false),
            });
        }
        if let Some(r) = &e.secret_ref {
            out.push(Ref {
                source: Source::Secret,
                name: r.name.clone(),
                key: None,
                optional: r.optional.unwrap_or(false),
            });
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            out.push(Ref {
                source: Source::ConfigMap,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                optional: r.optional.unwrap_or(false),
            });
        }
        if let Some(r) = &from.secret_key_ref {
            out.push(Ref {
                source: Source::Secret,
                name: r.name.clone(),
                key: Some(r.key.clone()),
                optional: r.optional.unwrap_or(false),
            });
        }
    }
    out
}

/// The kubelet's caches of what pods refer to.
#[derive(Clone)]
pub struct Lookup {
    /// ConfigMaps.
    pub configmaps: Store<ConfigMap>,
    /// Secrets.
    pub secrets: Store<Secret>,
    /// PersistentVolumeClaims.
    pub claims: Store<PersistentVolumeClaim>,
}

impl Lookup {
    /// The keys of a ConfigMap or Secret, or the kubelet's error when it is missing.
    fn keys(&self, ns: &str, source: Source, name: &str) -> Result<Vec<String>, String> {
        let k = key_of(Some(ns), name);
        match source {
            Source::ConfigMap => self
                .configmaps
                .get(&k)
                .map(|c| {
                    c.data
                        .iter()
                        .flat_map(|d| d.keys())
                        .chain(c.binary_data.iter().flat_map(|d| d.keys()))
                        .cloned()
                        .collect()
                })
                .ok_or_else(|| format!("configmap \"{name}\" not found")),
            Source::Secret => self
                .secrets
                .get(&k)
                .map(|s| s.data.iter().flat_map(|d| d.keys()).cloned().collect())
                .ok_or_else(|| format!("secret \"{name}\" not found")),
        }
    }

    /// Why a container's environment cannot be made, if it cannot.
    pub fn env_error(&self, ns: &str, refs: &[Ref]) -> Option<String> {
        for r in refs {
            match self.keys(ns, r.source, &r.name) {
                Err(_) if r.optional => {}
                Err(e) => return Some(e),
                Ok(keys) => {
                    if let Some(k) = r.key.as_ref().filter(|k| !keys.contains(k)) {
                        if !r.optional {
                            let kind = match r.source {
                                Source::ConfigMap => "ConfigMap",
                                Source::Secret => "Secret",
                            };
                            return Some(format!(
                                "couldn't find key {k} in {kind} {ns}/{}",
                                r.name
                            ));
                        }
                    }
                }
            }
        }
        None
    }

    /// Why a pod's volumes cannot be mounted, if they cannot: the `FailedMount` message.
    pub fn volume_error(&self, pod: &Pod) -> Option<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        for v in pod.spec.as_ref()?.volumes.iter().flatten() {
            let mut wanted: Vec<(Source, String, bool)> = Vec::new();
            if let Some(c) = &v.config_map {
                wanted.push((
                    Source::ConfigMap,
                    c.name.clone(),
                    c.optional.unwrap_or(false),
                ));
            }
            if let Some(s) = &v.secret {
                wanted.push((
                    Source::Secret,
                    s.secret_name.clone().unwrap_or_default(),
                    s.optional.unwrap_or(false),
                ));
            }
            for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(c) = &src.config_map {
                    wanted.push((
                        Source::ConfigMap,
                        c.name.clone(),
                        c.optional.unwrap_or(false),
                    ));
                }
                if let Some(s) = &src.secret {
                    wanted.push((Source::Secret, s.name.clone(), s.optional.unwrap_or(false)));
                }
            }
            for (source, name, optional) in wanted {
                if let Err(e) = self.keys(ns, source, &name) {
                    if !optional {
                        return Some(format!(
                            "MountVolume.SetUp failed for volume \"{}\" : {e}",
                            v.name
                        ));
                    }
                }
            }
            if let Some(c) = &v.persistent_volume_claim {
                if self.claims.get(&key_of(Some(ns), &c.claim_name)).is_none() {
                    return Some(format!(
                        "MountVolume.SetUp failed for volume \"{}\" : persistentvolumeclaim \"{}\" not found",
                        v.name, c.claim_name
                    ));
                }
            }
        }
        None
    }
}
