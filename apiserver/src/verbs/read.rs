//! GET of one object and of a collection, from the watch cache: lists page with `limit` and
//! `continue`, and every answer comes as the object(s), a Table, or metadata only.

use super::partial_metadata_bytes;
use crate::cache::Obj;
use crate::error::{json_response, value_response};
use crate::request::{accept, Accept, Query};
use crate::routes::Target;
use crate::state::AppState;
use crate::table;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::ApiError;
use serde_json::{json, Value};
use std::sync::Arc;

/// GET one object.
pub async fn get(
    st: &AppState,
    t: &Target,
    name: &str,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let ns = t.namespace.as_deref().unwrap_or("");
    if q.get("resourceVersion").is_none_or(str::is_empty) {
        st.consistent_read().await;
    }
    let o = st
        .cache
        .get(t.resource, ns, name)
        .ok_or_else(|| ApiError::not_found(t.resource, name))?;
    Ok(match accept(h) {
        Accept::Table => {
            let rev = o.rev;
            value_response(200, &table::table(t.resource, &[o], rev, q.full_objects()))
        }
        Accept::Metadata => json_response(200, partial_metadata_bytes(&o.bytes)),
        Accept::Object => json_response(200, o.bytes.clone()),
    })
}

/// A continue token: the snapshot's revision and the last key returned (Kubernetes encodes
/// the same two things, base64 JSON).
fn continue_token(rev: u64, last: &(String, String)) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": [last.0, last.1]});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn parse_continue(tok: &str) -> Result<(u64, (String, String)), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("continue key is not valid: {tok}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rev = v["rv"].as_u64().ok_or_else(bad)?;
    let ns = v["start"][0].as_str().ok_or_else(bad)?;
    let name = v["start"][1].as_str().ok_or_else(bad)?;
    Ok((rev, (ns.to_string(), name.to_string())))
}

/// Encode a list response by concatenating already-encoded items.
pub fn list_body(r: &ResourceInfo, items: &[Arc<Obj>], rev: u64) -> Bytes {
    list_body_page(r, items, rev, None, false)
}

/// A list page: items (or their metadata only), the list's revision, and (when more remain)
/// the continue token and remaining count.
pub fn list_body_page(
    r: &ResourceInfo,
    items: &[Arc<Obj>],
    rev: u64,
    more: Option<(&str, usize)>,
    metadata_only: bool,
) -> Bytes {
    encode_list(
        r,
        items.iter().map(|o| &o.bytes[..]),
        rev,
        more,
        metadata_only,
    )
}

/// A list of already-encoded objects (or their metadata only), by concatenation.
pub fn encode_list<'a>(
    r: &ResourceInfo,
    items: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    rev: u64,
    more: Option<(&str, usize)>,
    metadata_only: bool,
) -> Bytes {
    let mut out = Vec::with_capacity(items.clone().map(|o| o.len() + 1).sum::<usize>() + 256);
    let more = more
        .map(|(tok, n)| format!(",\"continue\":\"{tok}\",\"remainingItemCount\":{n}"))
        .unwrap_or_default();
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (r.list_kind(), r.api_version())
    };
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{{\"resourceVersion\":\"{rev}\"{more}}},\"items\":["
        )
        .as_bytes(),
    );
    for (i, o) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if metadata_only {
            out.extend_from_slice(&partial_metadata_bytes(o));
        } else {
            out.extend_from_slice(o);
        }
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// GET a collection, in pages with `limit` and `continue`: each page comes from the cache's
/// current state, continuing in key order after the previous page's last key; a token older
/// than the watch window gets 410 Expired, as a compacted one does in Kubernetes.
pub async fn list(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
) -> Result<Response, ApiError> {
    let f = q.filter(t.namespace.as_deref(), crate::kinds::of(t.resource))?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        None => 0,
    };
    let limit = if limit == 0 { usize::MAX } else { limit };
    let after = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(tok) => {
            let (rev, key) = parse_continue(tok)?;
            if rev < st.cache.floor() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ));
            }
            Some((rev, key))
        }
        None => {
            if q.get("resourceVersion").is_none_or(str::is_empty) {
                st.consistent_read().await;
            }
            None
        }
    };
    let (items, rev, rest) =
        st.cache
            .list_page(t.resource, &f, after.as_ref().map(|(_, k)| k), limit);
    let token = match items.last() {
        Some(last) if rest > 0 => {
            let snapshot = after.as_ref().map_or(rev, |(r, _)| *r);
            Some(continue_token(
                snapshot,
                &(last.namespace.clone(), last.name.clone()),
            ))
        }
        _ => None,
    };
    let more = token.as_deref().map(|t| (t, rest));
    Ok(match accept(h) {
        Accept::Table => {
            let mut table = table::table(t.resource, &items, rev, q.full_objects());
            if let Some(tok) = &token {
                table["metadata"]["continue"] = json!(tok);
                table["metadata"]["remainingItemCount"] = json!(rest);
            }
            value_response(200, &table)
        }
        Accept::Metadata => json_response(200, list_body_page(t.resource, &items, rev, more, true)),
        Accept::Object => json_response(200, list_body_page(t.resource, &items, rev, more, false)),
    })
}
