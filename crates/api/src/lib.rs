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

pub mod managed;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod status;
pub mod validation;
pub mod watch;

/// The Kubernetes version Coxswain serves (`/version`); kubectl's dispatcher picks its client
/// by the minor number.
pub const KUBE_MAJOR: &str = "1";
/// See [`KUBE_MAJOR`].
pub const KUBE_MINOR: &str = "32";
/// `gitVersion` reported by `/version` and by kubelets as their node version.
pub const GIT_VERSION: &str = "v1.32.0+coxswain-0.1.0";
