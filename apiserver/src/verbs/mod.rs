//! The REST verbs, one module each: create; get and list (with paging); update; patch and
//! apply; delete, eviction and deletecollection; the `scale` and `binding` subresources. Each
//! reads its request (`crate::request`), changes objects only through the write path in
//! `crate::state`, and answers in the representation the client accepts.

pub mod bind;
pub mod create;
pub mod delete;
pub mod patch;
pub mod read;
pub mod scale;
pub mod update;

use crate::error::{json_response, value_response};
use crate::request::{accept, Accept};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

/// The `PartialObjectMetadata` of an object.
pub fn partial_metadata(v: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": v.get("metadata").cloned().unwrap_or(json!({}))})
}

/// The `PartialObjectMetadata` of encoded object bytes.
pub fn partial_metadata_bytes(bytes: &[u8]) -> Bytes {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        metadata: Value,
    }
    let meta = serde_json::from_slice::<Meta>(bytes)
        .map(|m| m.metadata)
        .unwrap_or(json!({}));
    let v =
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta});
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// An object answered as the client asked: whole, or its metadata only.
pub fn object_response(h: &HeaderMap, code: u16, bytes: Bytes) -> Response {
    match accept(h) {
        Accept::Metadata => json_response(code, partial_metadata_bytes(&bytes)),
        Accept::Object | Accept::Table => json_response(code, bytes),
    }
}

/// A parsed object answered as the client asked.
pub fn value_object_response(h: &HeaderMap, code: u16, v: &Value) -> Response {
    match accept(h) {
        Accept::Metadata => value_response(code, &partial_metadata(v)),
        Accept::Object | Accept::Table => value_response(code, v),
    }
}

/// A `Status` of success.
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}
