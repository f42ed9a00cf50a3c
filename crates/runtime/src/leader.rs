//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! does it: a candidate takes the Lease when it is absent or its holder has not renewed it
//! for `leaseDurationSeconds` (measured on the candidate's own clock from when it last saw
//! the Lease change, so clock skew does not matter); every write is a compare-and-swap on the
//! Lease's resourceVersion, so two candidates never both win. The leader renews every retry
//! period; if it cannot renew within the renew deadline it has lost and the process exits
//! (like kube-controller-manager), so a new leader never races an old one. On a clean
//! shutdown the leader releases the Lease so the next one takes over at once.

use coxswain_client::{Api, Client};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use std::time::{Duration, Instant};

/// `40s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration {s:?}: use ms, s or m")),
    }
}

/// The `--leader-elect*` flags (Kubernetes' names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderElection {
    /// Run only while holding the leader Lease (for running several replicas).
    #[arg(long)]
    pub leader_elect: bool,
    /// How long a Lease holds without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// This candidate's identity (default: hostname and a random suffix).
    #[arg(long)]
    pub leader_elect_identity: Option<String>,
}

fn now() -> MicroTime {
    MicroTime(chrono::Utc::now())
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    cfg: LeaderElection,
    /// The Lease as last seen, and when (on our clock) it last changed.
    observed: Option<(Lease, Instant)>,
}

impl Elector {
    /// A candidate for the Lease `name`.
    pub fn new(client: &Client, name: &str, cfg: &LeaderElection) -> Elector {
        let identity = cfg.leader_elect_identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
            format!("{host}_{}", uuid::Uuid::new_v4())
        });
        Elector {
            api: Api::namespaced(client, &cfg.leader_elect_resource_namespace),
            name: name.to_string(),
            identity,
            cfg: cfg.clone(),
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn record(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                self.cfg.leader_elect_lease_duration.as_secs().max(1) as i32
            ),
            acquire_time: acquired,
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One attempt to acquire or renew; true if we hold the Lease now.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        let current = match self.api.get(&self.name).await {
            Ok(l) => l,
            Err(e) if e.is_not_found() => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(self.record(0, Some(now()))),
                };
                return match self.api.create(&lease).await {
                    Ok(l) => {
                        self.observed = Some((l, Instant::now()));
                        true
                    }
                    Err(_) => false,
                };
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the leader lease failed");
                return false;
            }
        };
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(l, _)| l.metadata.resource_version != current.metadata.resource_version);
        if changed {
            self.observed = Some((current.clone(), Instant::now()));
        }
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.identity;
        let seen_at = self.observed.as_ref().map_or(Instant::now(), |(_, t)| *t);
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
        if !holder.is_empty() && !ours && seen_at.elapsed() < duration {
            return false; // someone else holds a live Lease
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let acquired = if ours {
            spec.acquire_time.clone()
        } else {
            Some(now())
        };
        let mut next = current.clone();
        next.spec = Some(self.record(transitions, acquired));
        match self.api.replace(&self.name, &next).await {
            Ok(l) => {
                if !ours {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                }
                self.observed = Some((l, Instant::now()));
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "updating the leader lease failed");
                false
            }
        }
    }

    /// Wait until we lead.
    pub async fn acquire(&mut self) {
        tracing::info!(lease = %self.name, identity = %self.identity, "waiting to become leader");
        while !self.try_acquire_or_renew().await {
            tokio::time::sleep(self.cfg.leader_elect_retry_period).await;
        }
    }

    /// Renew until renewal fails for the renew deadline; returns when leadership is lost.
    pub async fn hold(&mut self) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.leader_elect_retry_period).await;
            if self.try_acquire_or_renew().await {
                last_renew = Instant::now();
            } else if last_renew.elapsed() > self.cfg.leader_elect_renew_deadline {
                tracing::error!(lease = %self.name, "leader election lost");
                return;
            }
        }
    }

    /// Give the Lease up (clean shutdown), so another candidate takes over at once.
    pub async fn release(&mut self) {
        let Some((lease, _)) = self.observed.clone() else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !ours {
            return;
        }
        let mut next = lease;
        if let Some(spec) = next.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
        }
        if let Err(e) = self.api.replace(&self.name, &next).await {
            tracing::debug!(error = %e, "releasing the leader lease failed");
        }
    }
}

/// With `--leader-elect`: wait to lead the Lease `name`, then keep it in the background; the
/// process exits if leadership is lost. Returns a handle to release it at shutdown.
pub async fn lead(
    client: &Client,
    name: &str,
    cfg: &LeaderElection,
) -> Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>> {
    if !cfg.leader_elect {
        return None;
    }
    let mut e = Elector::new(client, name, cfg);
    e.acquire().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<tokio::sync::oneshot::Sender<()>>();
    tokio::spawn(async move {
        tokio::select! {
            _ = e.hold() => {
                // Another leader may act now: stop at once (kube-controller-manager does too).
                std::process::exit(1);
            }
            done = rx => {
                e.release().await;
                if let Ok(done) = done {
                    let _ = done.send(());
                }
            }
        }
    });
    Some(tx)
}

/// Release the Lease taken by [`lead`] (at shutdown).
pub async fn release(
    handle: Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>,
) {
    if let Some(h) = handle {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        if h.send(done_tx).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
        }
    }
}
