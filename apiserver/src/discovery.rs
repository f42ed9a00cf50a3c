//! Discovery and metadata endpoints: `/version`, `/api`, `/apis` (aggregated v2/v2beta1 and
//! legacy forms), `/api/v1`, `/apis/G/V`, and the minimal `/openapi/v3` kubectl validates with.

use crate::error::value_response;
use crate::kinds;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use coxswain_api::resources::{at_version, group_versions, groups, ResourceInfo};
use serde_json::{json, Value};

/// `GET /version`.
pub fn version() -> Response {
    value_response(
        200,
        &json!({"major": coxswain_api::KUBE_MAJOR, "minor": coxswain_api::KUBE_MINOR,
            "gitVersion": coxswain_api::GIT_VERSION, "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "n/a",
            "compiler": "rustc", "platform": "linux/amd64"}),
    )
}

/// The aggregated-discovery version the client accepts first, if any (`v2` or `v2beta1`).
fn aggregated(h: &HeaderMap) -> Option<&'static str> {
    let accept = h.get(header::ACCEPT)?.to_str().ok()?;
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
        if p.starts_with("application/json") && !p.contains("as=") {
            return None;
        }
    }
    None
}

fn subresources(r: &ResourceInfo, version: &str) -> Vec<Value> {
    kinds::subresources(kinds::of(r))
        .into_iter()
        .map(|sub| {
            let (g, v, k) = sub.response_kind().unwrap_or((r.group, version, r.kind));
            json!({"subresource": sub.name(), "responseKind": {"group": g, "version": v, "kind": k},
                "verbs": sub.verbs()})
        })
        .collect()
}

/// One group's aggregated discovery: each version (the preferred first) and its resources.
fn group_discovery(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let mut resources: Vec<Value> = at_version(group, version)
                .into_iter()
                .map(|r| {
                    // Only the preferred version is in the `all` category, as in Kubernetes.
                    let own = (r.group, r.version) == (group, *version);
                    let categories = if own { r.categories } else { &[] };
                    json!({"resource": r.plural,
                        "responseKind": {"group": group, "version": version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular, "verbs": kinds::of(r).verbs(), "shortNames": r.short_names,
                        "categories": categories, "subresources": subresources(r, version)})
                })
                .collect();
            if (group, *version) == ("", "v1") {
                resources.push(crate::componentstatus::aggregated_entry());
            }
            json!({"version": version, "freshness": "Current", "resources": resources})
        })
        .collect();
    let meta = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": meta, "versions": versions})
}

fn aggregated_response(v: &str, items: Vec<Value>) -> Response {
    let mut resp = value_response(
        200,
        &json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{v}"),
            "metadata": {}, "items": items}),
    );
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList");
    if let Ok(hv) = HeaderValue::from_str(&ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, hv);
    }
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `GET /api`.
pub fn api(h: &HeaderMap) -> Response {
    if let Some(v) = aggregated(h) {
        return aggregated_response(v, vec![group_discovery("", &["v1"])]);
    }
    value_response(
        200,
        &json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:8080"}]}),
    )
}

/// `GET /apis`.
pub fn apis(h: &HeaderMap) -> Response {
    let groups: Vec<(&str, Vec<&str>)> = groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .collect();
    if let Some(v) = aggregated(h) {
        let mut items: Vec<Value> = groups
            .iter()
            .map(|(g, vs)| group_discovery(g, vs))
            .collect();
        items.push(crate::resource_metrics::aggregated_group());
        return aggregated_response(v, items);
    }
    let list: Vec<Value> = groups
        .iter()
        .map(|(g, vs)| {
            let gvs: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "preferredVersion": gvs[0].clone(), "versions": gvs})
        })
        .chain([crate::resource_metrics::legacy_group()])
        .collect();
    value_response(
        200,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}),
    )
}

/// `GET /api/v1` or `GET /apis/G/V` (legacy discovery), if that group version is served.
pub fn resource_list(group: &str, version: &str) -> Option<Response> {
    let rs: Vec<&ResourceInfo> = at_version(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        let categories = if (r.group, r.version) == (group, version) {
            r.categories
        } else {
            &[]
        };
        out.push(json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": kinds::of(r).verbs(), "shortNames": r.short_names, "categories": categories}));
        for sub in kinds::subresources(kinds::of(r)) {
            let mut entry = json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": sub.verbs()});
            if let Some((g, v, k)) = sub.response_kind() {
                entry["kind"] = json!(k);
                if (g, v) != (r.group, version) {
                    entry["group"] = json!(g);
                    entry["version"] = json!(v);
                }
            }
            out.push(entry);
        }
    }
    if (group, version) == ("", "v1") {
        out.push(crate::componentstatus::legacy_entry());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(value_response(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    ))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: one entry per served group version.
pub fn openapi_root() -> Response {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=coxswain-{}", coxswain_api::GIT_VERSION)}),
        );
    }
    value_response(200, &json!({"paths": paths}))
}

/// `GET /openapi/v3/<group version>`: a patch operation per kind, advertising server-side
/// field validation, so kubectl leaves validation to the server.
pub fn openapi_group(path: &str) -> Option<Response> {
    let gv = path.trim_start_matches("/openapi/v3/");
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let mut paths = serde_json::Map::new();
    for r in at_version(group, version) {
        let path = if r.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}/{{name}}",
                gv_path(group, version),
                r.plural
            )
        } else {
            format!("/{}/{}/{{name}}", gv_path(group, version), r.plural)
        };
        paths.insert(
            path,
            json!({"patch": {"operationId": format!("patch{}", r.kind), "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "OK"}}}}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(value_response(
        200,
        &json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": coxswain_api::GIT_VERSION},
            "components": {"schemas": {}}, "paths": paths}),
    ))
}
