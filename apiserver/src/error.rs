//! Turning results into HTTP responses: [`ApiError`] becomes a `Status` body with its code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coxswain_api::status::ApiError;

/// A response body that is already-encoded JSON.
pub fn json_response(code: u16, body: impl Into<Bytes>) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        body.into(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `serde_json::Value` as a response.
pub fn value_response(code: u16, v: &serde_json::Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// The `Status` response for an error (429 says when to try again, as kube-apiserver's
/// `Retry-After: 1`).
pub fn error_response(e: &ApiError) -> Response {
    let mut r = value_response(e.code, &e.to_status());
    if e.code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}
