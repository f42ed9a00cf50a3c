//! The API vocabulary every Coxswain component shares, with no IO and no async.
//!
//! Layout:
//! - [`resources`]: the registry of served resources (group, version, kind, plural, scope,
//!   short names, subresources) and URL-path building.
//! - [`selector`]: label and field selectors, parsed once and matched many times.
//! - [`status`]: [`status::ApiError`], the one error type that becomes a Kubernetes `Status`.
//! - [`managed`]: field ownership (managedFields) for server-side apply.
//! - [`protobuf`]: protobuf request bodies (kubectl generators) decoded to JSON.
//! - [`patch`]: JSON merge patch, JSON patch and strategic merge patch on `serde_json::Value`.
//! - [`quantity`]: resource quantities (`500m`, `128Mi`) as integers.
//! - [`validation`]: name rules (DNS-1123) shared by server and clients.
//! - [`watch`]: the watch event envelope.
//!
//! Exact Kubernetes object types come from `k8s-openapi` (re-exported as [`k8s`]); the API
//! server itself works on `serde_json::Value` so it can store and echo any field it is sent.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub use k8s_openapi as k8s;

pub mod cron;
pub mod managed;
pub mod patch;
pub mod placement;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod status;
pub mod storage;
pub mod validation;
pub mod watch;

/// JSON pointer lookups without the allocation `serde_json::Value::pointer` makes per
/// token (it unescapes `~1`/`~0` with `str::replace` even when there is nothing to unescape;
/// that was 4 % of the API server's CPU in `cox bench`).
pub trait At {
    /// The value at RFC 6901 pointer `p` (`""` is the whole value).
    fn at(&self, p: &str) -> Option<&serde_json::Value>;
}

impl At for serde_json::Value {
    fn at(&self, p: &str) -> Option<&serde_json::Value> {
        if p.contains('~') {
            return self.pointer(p);
        }
        if p.is_empty() {
            return Some(self);
        }
        let rest = p.strip_prefix('/')?;
        rest.split('/').try_fold(self, |v, token| match v {
            serde_json::Value::Object(m) => m.get(token),
            serde_json::Value::Array(a) => {
                // RFC 6901 indexes: no sign, no leading zeros.
                if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
                    return None;
                }
                token.parse::<usize>().ok().and_then(|i| a.get(i))
            }
            _ => None,
        })
    }
}

/// The Kubernetes version Coxswain serves (`/version`); kubectl's dispatcher picks its client
/// by the minor number.
pub const KUBE_MAJOR: &str = "1";
/// See [`KUBE_MAJOR`].
pub const KUBE_MINOR: &str = "32";
/// `gitVersion` reported by `/version` and by kubelets as their node version.
pub const GIT_VERSION: &str = "v1.32.0+coxswain-0.1.0";

#[cfg(test)]
mod tests {
    use super::At;
    use serde_json::json;

    #[test]
    fn at_agrees_with_serde_json_pointer() {
        let v = json!({"metadata": {"name": "a", "labels": {"app": "web"},
            "annotations": {"a/b": 1, "c~d": 2}},
            "spec": {"containers": [{"name": "c0"}, {"name": "c1"}]}, "": {"x": 3}});
        for p in [
            "",
            "/metadata/name",
            "/metadata/labels/app",
            "/metadata/missing",
            "/metadata/annotations/a~1b",
            "/metadata/annotations/c~0d",
            "/spec/containers/1/name",
            "/spec/containers/01/name",
            "/spec/containers/2",
            "/spec/containers/-1",
            "/spec/containers/+1",
            "/spec/containers/x",
            "/metadata/name/deeper",
            "//x",
            "/",
            "no-slash",
        ] {
            assert_eq!(v.at(p), v.pointer(p), "{p}");
        }
    }
}
