//! coordination.k8s.io/v1 Lease: stored as sent (node heartbeats, leader election); kubectl's
//! HOLDER column.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::resources::{ResourceInfo, LEASES};
use k8s_openapi::api::coordination::v1 as coord;
use serde_json::{json, Value};

/// The Lease kind.
pub struct Lease;

impl Kind for Lease {
    fn info(&self) -> &'static ResourceInfo {
        &LEASES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<coord::Lease>(v)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Holder", "string", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/spec/holderIdentity")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
