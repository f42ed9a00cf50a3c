//! PUT of an object or of a subresource that is a write of the object (`status`,
//! `finalize`): the body replaces what that endpoint owns, through the write path (so a dry
//! run is merged, defaulted and validated against the stored object too).

use super::object_response;
use crate::fields;
use crate::kinds::{self, Sub};
use crate::request::{decode_body, Query};
use crate::routes::Target;
use crate::state::{check_type, merge_for_subresource, AppState, WriteOptions};
use axum::http::HeaderMap;
use axum::response::Response;
use coxswain_api::status::ApiError;
use coxswain_api::At;
use serde_json::Value;

/// PUT an object, or (with `sub`) its `status` or `finalize` subresource.
pub async fn update(
    st: &AppState,
    t: &Target,
    name: &str,
    sub: Option<Sub>,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = t.resource;
    let kind = kinds::of(r);
    let mut v = decode_body(h, body)?;
    check_type(r, &mut v)?;
    let ns = t.namespace.clone().unwrap_or_default();
    let body_ns = v
        .at("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if r.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let owns = sub.and_then(Sub::owns);
    let warnings = fields::check(r, &mut v, fields::Mode::parse(q.get("fieldValidation"))?)?;
    let change = move |cur: &Value| -> Result<Value, ApiError> {
        Ok(merge_for_subresource(kind, cur, v.clone(), owns))
    };
    let opts = WriteOptions {
        manager: q.get("fieldManager"),
        dry_run: q.dry_run(),
        ..Default::default()
    };
    let (bytes, _) = st.write(r, &ns, name, opts, &change).await?;
    let mut resp = object_response(h, 200, bytes);
    fields::add_warnings(&mut resp, &warnings);
    Ok(resp)
}
