//! POST to a collection: decode, check the type and namespace, set what the server owns
//! (uid, creation time, generation), let the kind prepare, default and validate, and insert
//! (`generateName` retries on a name already taken). A dry run stops before the insert.

use super::{object_response, value_object_response};
use crate::fields;
use crate::kinds;
use crate::ownership;
use crate::request::{decode_body, Query};
use crate::routes::Target;
use crate::state::{check_storable, check_type, validate, AppState};
use axum::http::HeaderMap;
use axum::response::Response;
use coxswain_api::resources::ResourceInfo;
use coxswain_api::status::ApiError;
use coxswain_api::At;
use serde_json::{json, Value};

/// POST to a collection.
pub async fn create(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let v = decode_body(h, body)?;
    let manager = q.get("fieldManager").map(|m| (m, "Update"));
    create_as(st, t, q, h, v, manager).await
}

/// Create an object as the server itself (no request).
pub async fn create_object(
    st: &AppState,
    r: &'static ResourceInfo,
    ns: Option<&str>,
    v: Value,
) -> Result<(), ApiError> {
    let t = Target {
        resource: r,
        group: r.group,
        version: r.version,
        namespace: ns.map(str::to_string),
        name: None,
        sub: None,
    };
    create_as(st, &t, &Query::default(), &HeaderMap::new(), v, None).await?;
    Ok(())
}

/// The namespace a write goes to: the URL's, which the body must agree with.
fn write_namespace(r: &ResourceInfo, t: &Target, v: &mut Value) -> Result<String, ApiError> {
    if !r.namespaced {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(String::new());
    }
    let url_ns = t.namespace.clone().unwrap_or_default();
    let body_ns = v
        .at("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    v["metadata"]["namespace"] = json!(url_ns);
    Ok(url_ns)
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Create `v`, recording `manager` (name, operation) as the owner of the fields it sent.
pub async fn create_as(
    st: &AppState,
    t: &Target,
    q: &Query,
    h: &HeaderMap,
    mut v: Value,
    manager: Option<(&str, &str)>,
) -> Result<Response, ApiError> {
    let r = t.resource;
    let kind = kinds::of(r);
    check_type(r, &mut v)?;
    let warnings = fields::check(r, &mut v, fields::Mode::parse(q.get("fieldValidation"))?)?;
    let ns = write_namespace(r, t, &mut v)?;
    if let Some((m, op)) = manager {
        ownership::on_create(r, &mut v, m, op);
    } else if let Some(md) = v["metadata"].as_object_mut() {
        md.remove("managedFields");
    }
    let md = v["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for k in [
        "resourceVersion",
        "uid",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generation",
    ] {
        md.remove(k);
    }
    md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    md.insert("creationTimestamp".into(), json!(now()));
    if kind.has_generation() {
        md.insert("generation".into(), json!(1));
    }
    let generate = md
        .get("generateName")
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|_| {
            md.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        });
    kind.prepare_create(&mut v);
    kind.defaults(&mut v);
    for attempt in 0..8 {
        if let Some(g) = &generate {
            v["metadata"]["name"] = json!(format!("{g}{}", random_suffix()));
        }
        check_storable(r, &v)?;
        // Admission after the object decodes (400 before 403), before it is validated.
        kind.admit_create(st, &mut v)?;
        validate(kind, &v)?;
        st.check_namespace(r, &ns)?;
        if !q.dry_run() {
            crate::kinds::resourcequota::admit(st, r, &ns, &v).await?;
        }
        let mut v = v.clone();
        let (name, uid) = (
            v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            v["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        );
        let wants = kind.holdings(&v);
        let taken = st
            .reserve(r, &name, &[], wants, &mut v, &uid, q.dry_run())
            .await?;
        if q.dry_run() {
            return Ok(value_object_response(h, 201, &v));
        }
        match st.insert(r, &ns, v).await {
            Ok(bytes) => {
                let mut resp = object_response(h, 201, bytes);
                fields::add_warnings(&mut resp, &warnings);
                return Ok(resp);
            }
            Err(e) => {
                st.release(&taken).await;
                if e.reason == "AlreadyExists" && generate.is_some() && attempt < 7 {
                    continue;
                }
                return Err(e);
            }
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}
