//! v1 ServiceAccount: stored and validated (its name); kubectl's columns (SECRETS). The
//! serviceaccounts controller creates `default` in every namespace, and pods name it by
//! default (`kinds::pod`). Tokens are not issued yet.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::protobuf::{Schema, SERVICE_ACCOUNT_SCHEMA};
use coxswain_api::resources::{ResourceInfo, SERVICEACCOUNTS};
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The ServiceAccount kind.
pub struct ServiceAccount;

impl Kind for ServiceAccount {
    fn info(&self) -> &'static ResourceInfo {
        &SERVICEACCOUNTS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::ServiceAccount>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(SERVICE_ACCOUNT_SCHEMA)
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Secrets", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(v
                .at("/secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
