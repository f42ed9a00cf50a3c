//! Reading a request: query parameters, the body (JSON, YAML, protobuf, patches) by its
//! content type, and what representation the client accepts (the object, a server-side Table,
//! or metadata only as `PartialObjectMetadata`).

use crate::cache::Filter;
use crate::kinds;
use axum::http::HeaderMap;
use coxswain_api::selector::{FieldSelector, LabelSelector};
use coxswain_api::status::ApiError;
use serde_json::Value;
use std::collections::HashMap;

/// Query parameters every verb may read.
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query(pairs.into_iter().collect()))
    }

    /// A string parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean parameter, parsed like Go's `strconv.ParseBool`.
    pub fn flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for query parameter {k:?}"
            ))),
        }
    }

    /// An integer parameter.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid value {s:?} for query parameter {k:?}"))
                })
            })
            .transpose()
    }

    /// The list/watch filter (namespace from the path, selectors from the query); a field
    /// selector on a field the kind does not support is a 400, as in Kubernetes.
    pub fn filter(&self, ns: Option<&str>, kind: &dyn kinds::Kind) -> Result<Filter, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        for (name, _, _) in &fields.terms {
            let known = matches!(name.as_str(), "metadata.name" | "metadata.namespace")
                || kind.selectable_fields().iter().any(|f| f.name == name);
            if !known {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {name}"
                )));
            }
        }
        Ok(Filter {
            namespace: ns.map(str::to_string),
            labels,
            fields,
        })
    }

    /// `includeObject=Object`: Table rows carry whole objects.
    pub fn full_objects(&self) -> bool {
        self.get("includeObject") == Some("Object")
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> bool {
        self.get("dryRun").is_some_and(|d| d == "All")
    }
}

/// The media type of the body, lowercase, without parameters.
pub fn content_type(h: &HeaderMap) -> String {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decode a JSON, YAML or protobuf request body; a body we cannot read is a 400 or 415
/// Status.
pub fn decode_body(h: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type(h);
    let v: Value = match ct.as_str() {
        "" | "application/json" | "*/*" | "text/plain" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}")))?,
        "application/yaml" | "application/apply-patch+yaml" | "application/x-yaml" => {
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))?
        }
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        "application/vnd.kubernetes.protobuf" => {
            coxswain_api::protobuf::decode(body, kinds::protobuf_schema)
                .map_err(|e| ApiError::unsupported_media_type_because(&e.0))?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

/// What representation of objects the client asked for in `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The objects themselves.
    Object,
    /// A server-side Table (`as=Table;g=meta.k8s.io`).
    Table,
    /// Metadata only (`as=PartialObjectMetadata` or `as=PartialObjectMetadataList`;
    /// `g=meta.k8s.io`), as metadata informers ask for.
    Metadata,
}

/// The first representation in `Accept` this server serves (kubectl lists Table first and
/// plain JSON as the fallback).
pub fn accept(h: &HeaderMap) -> Accept {
    let Some(a) = h
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Accept::Object;
    };
    for part in a.split(',') {
        let param = |k: &str| {
            part.split(';').skip(1).find_map(|kv| {
                let (name, value) = kv.split_once('=')?;
                (name.trim() == k).then(|| value.trim())
            })
        };
        match param("as") {
            Some("Table") => return Accept::Table,
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if param("g") == Some("meta.k8s.io") =>
            {
                return Accept::Metadata
            }
            Some(_) => continue,
            None => return Accept::Object,
        }
    }
    Accept::Object
}

/// Whether the client asked for a server-side Table.
/// For a resource served for reading only (get and list): 405 for any other method and for
/// a watch, with kube-apiserver's texts (`what` names the resource in the watch message).
pub fn get_only(method: &axum::http::Method, q: &Query, what: &str) -> Result<(), ApiError> {
    if *method != axum::http::Method::GET {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        )));
    }
    if q.flag("watch")? {
        return Err(ApiError::method_not_allowed(format!(
            "watch is not supported on resources of kind \"{what}\""
        )));
    }
    Ok(())
}

pub fn wants_table(h: &HeaderMap) -> bool {
    accept(h) == Accept::Table
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_accept(a: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::ACCEPT, HeaderValue::from_static(a));
        h
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(accept(&HeaderMap::new()), Accept::Object);
        assert_eq!(
            accept(&with_accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            )),
            Accept::Table
        );
        assert_eq!(
            accept(&with_accept(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
            )),
            Accept::Metadata
        );
        assert_eq!(
            accept(&with_accept(
                "application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1, application/json"
            )),
            Accept::Metadata
        );
        assert_eq!(
            accept(&with_accept(
                "application/json;as=Widget;g=x,application/json"
            )),
            Accept::Object
        );
    }
}
