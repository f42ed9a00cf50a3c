//! Values an object holds exclusively across the cluster: Service cluster IPs (from
//! `--service-cluster-ip-range`) and node ports (`--service-node-port-range`). A kind says
//! what its objects hold and ask for ([`Holding`], `Kind::holdings`); the write path takes
//! them before the object is stored and gives back what it no longer holds once it is.
//!
//! Each value taken is a storage key `alloc/<pool>/<value>` created only if absent, holding
//! its owner's uid, so two API servers on etcd never hand out the same value and a restart
//! forgets nothing (Kubernetes 1.33's IPAddress objects work the same way). A value left
//! unset is chosen by a random probe of the range above an offset kept for values users ask
//! for by number (Kubernetes' allocators: 10.96.1.x and up, node ports 30086 and up).

use crate::state::AppState;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::{ApiError, Cause};
use coxswain_store::{Expect, Op, StoreError};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// The storage key prefix of allocations.
const PREFIX: &str = "alloc/";

/// Whether a storage key is an allocation's (not an object's).
pub fn owns_key(key: &[u8]) -> bool {
    key.starts_with(PREFIX.as_bytes())
}

/// Which range a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Service cluster IPs.
    ServiceIp,
    /// Service node ports.
    NodePort,
}

/// One value an object holds or asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    /// Its range.
    pub pool: Pool,
    /// The value named, or `None` for one to be chosen.
    pub value: Option<String>,
    /// Where a chosen value is written (JSON pointers; a port is written as a number).
    pub pointers: Vec<String>,
    /// The field named in errors (`spec.clusterIPs`, `spec.ports[0].nodePort`).
    pub field: String,
}

/// The ranges values come from.
#[derive(Debug, Clone, Copy)]
pub struct Ranges {
    /// The service network (`10.96.0.0/12`).
    pub service_net: (Ipv4Addr, u8),
    /// The node port range, inclusive (`30000-32767`).
    pub node_ports: (u16, u16),
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            service_net: (Ipv4Addr::new(10, 96, 0, 0), 12),
            node_ports: (30000, 32767),
        }
    }
}

/// Parse `10.96.0.0/12`.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, bits) = s
        .split_once('/')
        .ok_or("expected an IPv4 CIDR like 10.96.0.0/12")?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let bits: u8 = bits.parse().map_err(|e| format!("{bits}: {e}"))?;
    if !(1..=29).contains(&bits) {
        return Err("the service cluster IP range must be at least 8 IP addresses".into());
    }
    let mask = u32::MAX << (32 - bits);
    Ok((Ipv4Addr::from(u32::from(ip) & mask), bits))
}

/// Parse `30000-32767`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected a port range like 30000-32767")?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|e| format!("{a}: {e}"))?,
        b.trim().parse().map_err(|e| format!("{b}: {e}"))?,
    );
    if a == 0 || b < a {
        return Err(format!("{s}: not a port range"));
    }
    Ok((a, b))
}

impl Ranges {
    /// The service network as text.
    pub fn service_cidr(&self) -> String {
        format!("{}/{}", self.service_net.0, self.service_net.1)
    }

    /// The n-th host address of the service network (1: the `kubernetes` Service's).
    pub fn service_ip(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_net.0) + n)
    }

    /// The values a pool hands out: (first, count), and the offset below which values are
    /// chosen only when the rest are taken.
    fn span(&self, pool: Pool) -> (u64, u64, u64) {
        match pool {
            Pool::ServiceIp => {
                let size = 1u64 << (32 - self.service_net.1);
                let count = size - 2; // no network or broadcast address
                let offset = if size <= 16 {
                    0
                } else {
                    (size / 16).clamp(16, 256)
                };
                (u64::from(u32::from(self.service_net.0)) + 1, count, offset)
            }
            Pool::NodePort => {
                let count = u64::from(self.node_ports.1 - self.node_ports.0) + 1;
                let offset = if count <= 16 {
                    0
                } else {
                    (count / 32).clamp(16, 128)
                };
                (u64::from(self.node_ports.0), count, offset)
            }
        }
    }

    fn render(pool: Pool, n: u64) -> String {
        match pool {
            Pool::ServiceIp => Ipv4Addr::from(n as u32).to_string(),
            Pool::NodePort => n.to_string(),
        }
    }

    /// The position of a value in its pool, if it is in range.
    fn position(&self, pool: Pool, value: &str) -> Option<u64> {
        let (first, count, _) = self.span(pool);
        let n = match pool {
            Pool::ServiceIp => u64::from(u32::from(value.parse::<Ipv4Addr>().ok()?)),
            Pool::NodePort => value.parse::<u64>().ok()?,
        };
        (n >= first && n < first + count).then(|| n - first)
    }
}

fn key(pool: Pool, value: &str) -> Vec<u8> {
    let p = match pool {
        Pool::ServiceIp => "serviceips",
        Pool::NodePort => "nodeports",
    };
    format!("{PREFIX}{p}/{value}").into_bytes()
}

/// The 422 for a value that cannot be taken, as Kubernetes words it.
fn refused(
    ranges: &Ranges,
    r: &ResourceInfo,
    name: &str,
    h: &Holding,
    value: &str,
    taken: bool,
) -> ApiError {
    let (shown, detail) = match h.pool {
        Pool::ServiceIp => (
            format!("[]string{{\"{value}\"}}"),
            if taken {
                format!("failed to allocate IP {value}: provided IP is already allocated")
            } else {
                format!(
                    "failed to allocate IP {value}: the provided IP ({value}) is not in the valid range. The range of valid IPs is {}",
                    ranges.service_cidr()
                )
            },
        ),
        Pool::NodePort => (
            value.to_string(),
            if taken {
                "provided port is already allocated".to_string()
            } else {
                format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    ranges.node_ports.0, ranges.node_ports.1
                )
            },
        ),
    };
    ApiError::invalid(r, name, vec![Cause::invalid(&h.field, shown, &detail)])
}

impl AppState {
    /// Take `value` for `owner`; `Ok(false)` when another owner holds it.
    async fn take(&self, pool: Pool, value: &str, owner: &str) -> Result<bool, ApiError> {
        let k = key(pool, value);
        let body = serde_json::to_vec(&json!({ "owner": owner })).unwrap_or_default();
        match self
            .store
            .commit(&k, Expect::Absent, move |_| Op::Put(body))
            .await
        {
            Ok((rev, _)) => {
                self.cache.wait_for(rev).await;
                Ok(true)
            }
            Err(StoreError::AlreadyExists(_)) => Ok(self.holder(pool, value).await? == owner),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// Who holds a value (`""`: nobody).
    async fn holder(&self, pool: Pool, value: &str) -> Result<String, ApiError> {
        let got = self
            .store
            .get(&key(pool, value))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(got
            .and_then(|(_, b)| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["owner"].as_str().map(str::to_string))
            .unwrap_or_default())
    }

    /// Give values back.
    pub async fn release(&self, held: &[(Pool, String)]) {
        for (pool, value) in held {
            let res = self
                .store
                .commit(&key(*pool, value), Expect::Present, |_| {
                    Op::Delete(Vec::new())
                })
                .await;
            match res {
                Ok((rev, _)) => self.cache.wait_for(rev).await,
                Err(StoreError::NotFound) => {}
                Err(e) => tracing::warn!(error = %e, value, "releasing an allocation failed"),
            }
        }
    }

    /// A free value of a pool for `owner` (taken, unless `dry_run`).
    async fn take_any(&self, pool: Pool, owner: &str, dry_run: bool) -> Result<String, ApiError> {
        let (first, count, offset) = self.ranges.span(pool);
        let start = offset + rand::random::<u64>() % (count - offset).max(1);
        // The upper band from a random start, wrapping, then the band below the offset.
        let order = (start..count).chain(offset..start).chain(0..offset);
        for (tries, i) in order.enumerate() {
            let value = Ranges::render(pool, first + i);
            let free = if dry_run {
                self.holder(pool, &value).await?.is_empty()
            } else {
                self.take(pool, &value, owner).await?
            };
            if free {
                return Ok(value);
            }
            if tries > 4096 {
                break;
            }
        }
        let what = match pool {
            Pool::ServiceIp => "a serviceIP",
            Pool::NodePort => "a nodePort",
        };
        Err(ApiError::internal(format!(
            "failed to allocate {what}: range is full"
        )))
    }

    /// Take what `new` asks for that `old` (its previous version) did not hold: named values
    /// must be free and in range (422 otherwise), unset ones are chosen and written in.
    /// Returns what was newly taken, to give back if the write fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve(
        &self,
        r: &ResourceInfo,
        name: &str,
        held_before: &[Holding],
        wants: Vec<Holding>,
        new: &mut Value,
        owner: &str,
        dry_run: bool,
    ) -> Result<Vec<(Pool, String)>, ApiError> {
        let mut taken = Vec::new();
        let result = async {
            for h in wants {
                let value = match &h.value {
                    Some(v) => {
                        if held_before
                            .iter()
                            .any(|o| o.pool == h.pool && o.value.as_ref() == Some(v))
                        {
                            continue;
                        }
                        if self.ranges.position(h.pool, v).is_none() {
                            return Err(refused(&self.ranges, r, name, &h, v, false));
                        }
                        let ok = if dry_run {
                            let holder = self.holder(h.pool, v).await?;
                            holder.is_empty() || holder == owner
                        } else {
                            self.take(h.pool, v, owner).await?
                        };
                        if !ok {
                            return Err(refused(&self.ranges, r, name, &h, v, true));
                        }
                        v.clone()
                    }
                    None => {
                        let v = self.take_any(h.pool, owner, dry_run).await?;
                        for p in &h.pointers {
                            let written = match h.pool {
                                Pool::ServiceIp => json!(v),
                                Pool::NodePort => json!(v.parse::<u64>().unwrap_or(0)),
                            };
                            if let Some(slot) = new.pointer_mut(p) {
                                *slot = written;
                            } else {
                                set(new, p, written);
                            }
                        }
                        v
                    }
                };
                if !dry_run {
                    taken.push((h.pool, value));
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                self.release(&taken).await;
                Err(e)
            }
        }
    }
}

/// Set a value at a pointer whose parent exists (an array index appends).
fn set(v: &mut Value, pointer: &str, value: Value) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last.to_string(), value);
        }
        Some(Value::Array(a)) => a.push(value),
        _ => {}
    }
}

/// What `held` has that `now` does not: to give back once the change is stored.
pub fn given_up(held: &[Holding], now: &[Holding]) -> Vec<(Pool, String)> {
    held.iter()
        .filter_map(|h| Some((h.pool, h.value.clone()?)))
        .filter(|(p, v)| {
            !now.iter()
                .any(|n| n.pool == *p && n.value.as_ref() == Some(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_positions() {
        let r = Ranges::default();
        assert_eq!(r.service_ip(1).to_string(), "10.96.0.1");
        assert_eq!(
            r.span(Pool::ServiceIp),
            (
                u64::from(u32::from(Ipv4Addr::new(10, 96, 0, 1))),
                (1 << 20) - 2,
                256
            )
        );
        assert_eq!(r.span(Pool::NodePort), (30000, 2768, 86));
        assert!(
            r.position(Pool::ServiceIp, "10.96.0.0").is_none(),
            "network address"
        );
        assert!(
            r.position(Pool::ServiceIp, "10.111.255.255").is_none(),
            "broadcast"
        );
        assert_eq!(r.position(Pool::ServiceIp, "10.96.0.10"), Some(9));
        assert!(r.position(Pool::ServiceIp, "1.1.1.1").is_none());
        assert_eq!(r.position(Pool::NodePort, "30080"), Some(80));
        assert!(r.position(Pool::NodePort, "80").is_none());
        assert_eq!(
            parse_cidr("10.96.5.0/12").unwrap(),
            (Ipv4Addr::new(10, 96, 0, 0), 12)
        );
        assert!(parse_cidr("10.0.0.0/30").is_err());
        assert_eq!(parse_port_range("30000-32767").unwrap(), (30000, 32767));
    }
}
