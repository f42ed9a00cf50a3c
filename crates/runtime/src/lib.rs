//! The controller kit every Coxswain client component is built from.
//!
//! The pipeline, as in client-go and kube-runtime: an [`informer::Informer`] lists then
//! watches one kind into a [`store::Store`] (an indexed cache of immutable `Arc<K>`), and
//! calls handlers that turn changes into keys; a [`queue::Queue`] dedups keys and never hands
//! one key to two workers; [`controller::run`] pops keys and calls `reconcile(key)`, which
//! reads the latest state from the stores and closes the gap (level-triggered).
//!
//! - [`daemon`]: tracing set-up and shutdown signals shared by the binaries.
//! - [`events`]: a recorder for core/v1 Events.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod controller;
pub mod daemon;
pub mod events;
pub mod informer;
pub mod leader;
pub mod queue;
pub mod store;

pub use controller::Action;
pub use informer::{Change, Informer};
pub use queue::Queue;
pub use store::Store;
