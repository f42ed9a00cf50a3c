//! [`ApiError`]: every failure the API server reports, carried as the fields of a Kubernetes
//! `Status` object (code, reason, message, details with field causes).

use crate::resources::ResourceInfo;
use serde_json::{json, Value};

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: String,
    /// Human message, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
    /// Field path, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    /// A `FieldValueInvalid` cause.
    pub fn invalid(field: &str, value: impl std::fmt::Display, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {value}: {detail}"),
            field: field.into(),
        }
    }

    /// A `FieldValueRequired` cause.
    pub fn required(field: &str) -> Self {
        Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        }
    }

    /// A `FieldValueRequired` cause saying why.
    pub fn required_because(field: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueRequired".into(),
            message: format!("Required value: {detail}"),
            field: field.into(),
        }
    }

    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {detail}"),
            field: field.into(),
        }
    }

    /// A `FieldValueNotSupported` cause.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: \"{value}\": supported values: {list}"),
            field: field.into(),
        }
    }
}

/// `Status.details`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// `details.name`.
    pub name: Option<String>,
    /// `details.group`.
    pub group: Option<String>,
    /// `details.kind` (the plural for NotFound/AlreadyExists, the Kind for Invalid).
    pub kind: Option<String>,
    /// `details.causes`.
    pub causes: Vec<Cause>,
}

/// A Kubernetes API error; [`ApiError::to_status`] renders the `Status` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, ...).
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Name, group, kind and field causes, when known (boxed: errors travel in `Result`s).
    pub details: Option<Box<Details>>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    fn details_mut(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Box::default)
    }

    fn with_details(mut self, r: &ResourceInfo, name: &str, kind: &str) -> Self {
        let d = self.details_mut();
        d.name = Some(name.to_string());
        d.group = Some(r.group.to_string());
        d.kind = Some(kind.to_string());
        self
    }

    /// `details.name`.
    pub fn name(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.name.as_deref())
    }

    /// `details.kind`.
    pub fn kind(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.kind.as_deref())
    }

    /// `details.causes`.
    pub fn causes(&self) -> &[Cause] {
        self.details
            .as_ref()
            .map(|d| d.causes.as_slice())
            .unwrap_or(&[])
    }

    /// 404 `deployments.apps "x" not found`.
    pub fn not_found(r: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", r.qualified_plural(), name),
        )
        .with_details(r, name, r.plural)
    }

    /// 404 for a namespace that does not exist.
    pub fn namespace_not_found(ns: &str) -> Self {
        let mut e = Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"));
        let d = e.details_mut();
        d.name = Some(ns.to_string());
        d.kind = Some("namespaces".into());
        e
    }

    /// 404 for a path that names no resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 `... already exists`.
    pub fn already_exists(r: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", r.qualified_plural(), name),
        )
        .with_details(r, name, r.plural)
    }

    /// 409 `Operation cannot be fulfilled ...`.
    pub fn conflict(r: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                r.qualified_plural(),
                name,
                why
            ),
        )
        .with_details(r, name, r.plural)
    }

    /// 409 for a stale `resourceVersion`.
    pub fn stale(r: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 `Deployment.apps "x" is invalid: spec.replicas: ...`.
    pub fn invalid(r: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        let kind = if r.group.is_empty() {
            r.kind.to_string()
        } else {
            format!("{}.{}", r.kind, r.group)
        };
        let list = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {joined}"),
        )
        .with_details(r, name, r.kind);
        e.details_mut().causes = causes;
        e
    }

    /// 422 for invalid request options (`PatchOptions.meta.k8s.io "" is invalid: ...`).
    pub fn invalid_options(what: &str, causes: Vec<Cause>) -> Self {
        let list = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = Self::new(422, "Invalid", format!("{what} \"\" is invalid: {list}"));
        let d = e.details_mut();
        d.group = Some("meta.k8s.io".into());
        d.kind = Some(what.split('.').next().unwrap_or(what).to_string());
        d.causes = causes;
        e
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: {}", message.into()),
        )
    }

    /// 429 TooManyRequests (the server's limit on requests in flight).
    pub fn too_many_requests() -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        )
    }

    /// 429 TooManyRequests with its own message and causes (an eviction a disruption budget
    /// refuses).
    pub fn too_many_requests_because(message: impl Into<String>, causes: Vec<Cause>) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.details_mut().causes = causes;
        e
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json (got {content_type:?})"),
        )
    }

    /// 415 UnsupportedMediaType for a body in a known type we could not read.
    pub fn unsupported_media_type_because(why: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", why.to_string())
    }

    /// 410 Expired (watch from a compacted resourceVersion).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// The `Status` object (`kind: Status`, `status: Failure`).
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(det) = &self.details {
            let mut d = serde_json::Map::new();
            if let Some(n) = &det.name {
                d.insert("name".into(), json!(n));
            }
            if let Some(g) = &det.group {
                if !g.is_empty() {
                    d.insert("group".into(), json!(g));
                }
            }
            if let Some(k) = &det.kind {
                d.insert("kind".into(), json!(k));
            }
            if !det.causes.is_empty() {
                d.insert(
                    "causes".into(),
                    Value::Array(
                        det.causes
                            .iter()
                            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                            .collect(),
                    ),
                );
            }
            s["details"] = Value::Object(d);
        }
        s
    }

    /// Parse a `Status` body back into an error (used by clients).
    pub fn from_status(code: u16, v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let d = v.get("details");
        let ds = |k: &str| {
            d.and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let causes = d
            .and_then(|d| d.get("causes"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| Cause {
                        reason: c["reason"].as_str().unwrap_or_default().to_string(),
                        message: c["message"].as_str().unwrap_or_default().to_string(),
                        field: c["field"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiError {
            code: v
                .get("code")
                .and_then(Value::as_u64)
                .map(|c| c as u16)
                .unwrap_or(code),
            reason: s("reason").unwrap_or_else(|| "Unknown".into()),
            message: s("message").unwrap_or_default(),
            details: d.is_some().then(|| {
                Box::new(Details {
                    name: ds("name"),
                    group: ds("group"),
                    kind: ds("kind"),
                    causes,
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn invalid_message_names_the_field() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        let e = ApiError::invalid(
            d,
            "bad",
            vec![Cause::invalid(
                "spec.replicas",
                -1,
                "must be greater than or equal to 0",
            )],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Deployment.apps \"bad\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let s = e.to_status();
        assert_eq!(s["details"]["kind"], "Deployment");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.replicas");
        assert_eq!(ApiError::from_status(0, &s), e);
    }

    #[test]
    fn not_found_message() {
        let d = by_plural("apps", "v1", "deployments").unwrap();
        let s = ApiError::not_found(d, "nope").to_status();
        assert_eq!(s["message"], "deployments.apps \"nope\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "deployments");
    }
}
