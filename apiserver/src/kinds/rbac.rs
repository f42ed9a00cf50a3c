//! What the four RBAC kinds share: rule validation (verbs; API groups and resources, or
//! non-resource URLs in ClusterRoles only), role references and subjects of bindings, their
//! defaults, and the bootstrap metadata (`kubernetes.io/bootstrapping: rbac-defaults`,
//! autoupdate) of the objects the API server creates at start. Rules are stored as given:
//! RBAC is not enforced yet.

use crate::table::{age, col, s, Column};
use coxswain_api::status::Cause;
use serde_json::{json, Value};

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// A name that is a path segment (not `.` or `..`, no `/` or `%`).
pub fn check_path_segment(name: &str, field: &str, c: &mut Vec<Cause>) {
    if name == "." || name == ".." {
        c.push(Cause::invalid(
            field,
            format!("\"{name}\""),
            &format!("may not be '{name}'"),
        ));
    } else if name.contains('/') {
        c.push(Cause::invalid(
            field,
            format!("\"{name}\""),
            "may not contain '/'",
        ));
    } else if name.contains('%') {
        c.push(Cause::invalid(
            field,
            format!("\"{name}\""),
            "may not contain '%'",
        ));
    }
}

fn list(v: &Value, k: &str) -> Vec<String> {
    v[k].as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// Check a role's `rules` (`namespaced`: a Role's, which may not name URLs).
pub fn check_rules(v: &Value, namespaced: bool, c: &mut Vec<Cause>) {
    for (i, r) in v["rules"].as_array().into_iter().flatten().enumerate() {
        let f = |k: &str| format!("rules[{i}].{k}");
        if list(r, "verbs").is_empty() {
            c.push(Cause::required_because(
                &f("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = list(r, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                c.push(Cause::invalid(
                    &f("nonResourceURLs"),
                    format!("{urls:?}"),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !list(r, "apiGroups").is_empty()
                || !list(r, "resources").is_empty()
                || !list(r, "resourceNames").is_empty()
            {
                c.push(Cause::invalid(
                    &f("nonResourceURLs"),
                    format!("{urls:?}"),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if r["apiGroups"].as_array().is_none_or(Vec::is_empty) {
            c.push(Cause::required_because(
                &f("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if list(r, "resources").is_empty() {
            c.push(Cause::required_because(
                &f("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// A binding's defaults: the role's and the users' and groups' API group.
pub fn binding_defaults(v: &mut Value) {
    if let Some(r) = v.get_mut("roleRef").and_then(Value::as_object_mut) {
        if r.get("apiGroup")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            r.insert("apiGroup".into(), json!(GROUP));
        }
    }
    for sub in v
        .pointer_mut("/subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(m) = sub.as_object_mut() else {
            continue;
        };
        let kind = m
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if matches!(kind.as_str(), "User" | "Group")
            && m.get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            m.insert("apiGroup".into(), json!(GROUP));
        }
    }
}

/// Check a binding's role reference (`kinds`: what it may name) and subjects (`cluster`: a
/// ClusterRoleBinding's ServiceAccounts need a namespace).
pub fn check_binding(v: &Value, kinds: &[&str], cluster: bool, c: &mut Vec<Cause>) {
    let r = &v["roleRef"];
    let group = r["apiGroup"].as_str().unwrap_or("");
    if group != GROUP {
        c.push(Cause::not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = r["kind"].as_str().unwrap_or("");
    if !kinds.contains(&kind) {
        c.push(Cause::not_supported("roleRef.kind", kind, kinds));
    }
    match r["name"].as_str().unwrap_or("") {
        "" => c.push(Cause::required("roleRef.name")),
        n => check_path_segment(n, "roleRef.name", c),
    }
    for (i, sub) in v["subjects"].as_array().into_iter().flatten().enumerate() {
        let f = |k: &str| format!("subjects[{i}].{k}");
        let name = sub["name"].as_str().unwrap_or("");
        if name.is_empty() {
            c.push(Cause::required(&f("name")));
        }
        let api_group = sub["apiGroup"].as_str().unwrap_or("");
        match sub["kind"].as_str().unwrap_or("") {
            "ServiceAccount" => {
                if !name.is_empty() && !coxswain_api::validation::is_dns1123_subdomain(name) {
                    c.push(Cause::invalid(
                        &f("name"),
                        format!("\"{name}\""),
                        coxswain_api::validation::DNS1123_SUBDOMAIN_MSG,
                    ));
                }
                if !api_group.is_empty() {
                    c.push(Cause::not_supported(&f("apiGroup"), api_group, &[""]));
                }
                if cluster && sub["namespace"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(&f("namespace")));
                }
            }
            "User" | "Group" => {
                if api_group != GROUP {
                    c.push(Cause::not_supported(&f("apiGroup"), api_group, &[GROUP]));
                }
            }
            other => c.push(Cause::not_supported(
                &f("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// A binding's immutable role reference.
pub fn check_role_ref_unchanged(old: &Value, new: &Value, c: &mut Vec<Cause>) {
    if old["roleRef"] != new["roleRef"] {
        let r = &new["roleRef"];
        c.push(Cause::invalid(
            "roleRef",
            format!(
                "rbac.RoleRef{{APIGroup:\"{}\", Kind:\"{}\", Name:\"{}\"}}",
                r["apiGroup"].as_str().unwrap_or(""),
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            ),
            "cannot change roleRef",
        ));
    }
}

/// A role's columns: NAME, CREATED AT (the default Table).
pub fn role_columns() -> Vec<Column> {
    vec![col("Name", "string", 0), col("Created At", "date", 0)]
}

/// A binding's columns: NAME, ROLE, AGE, and USERS, GROUPS, SERVICEACCOUNTS with `-o wide`.
pub fn binding_columns() -> Vec<Column> {
    vec![
        col("Name", "string", 0),
        col("Role", "string", 0),
        col("Age", "string", 0),
        col("Users", "string", 1),
        col("Groups", "string", 1),
        col("ServiceAccounts", "string", 1),
    ]
}

/// A role's row: NAME, CREATED AT (the default Table).
pub fn role_cells(v: &Value) -> Vec<Value> {
    vec![
        json!(s(v, "/metadata/name")),
        json!(s(v, "/metadata/creationTimestamp")),
    ]
}

/// A binding's row: NAME, ROLE (`ClusterRole/view`), AGE, then USERS, GROUPS,
/// SERVICEACCOUNTS (wide).
pub fn binding_cells(v: &Value) -> Vec<Value> {
    let of = |kind: &str| -> String {
        v["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["kind"] == kind)
            .map(|x| {
                let name = x["name"].as_str().unwrap_or("");
                if kind == "ServiceAccount" {
                    format!("{}/{name}", x["namespace"].as_str().unwrap_or(""))
                } else {
                    name.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(s(v, "/metadata/name")),
        json!(format!(
            "{}/{}",
            s(v, "/roleRef/kind"),
            s(v, "/roleRef/name")
        )),
        json!(age(&v["metadata"]["creationTimestamp"])),
        json!(of("User")),
        json!(of("Group")),
        json!(of("ServiceAccount")),
    ]
}

/// The bootstrap metadata every default RBAC object carries.
pub fn bootstrap_meta(name: &str, labels: Value) -> Value {
    let mut l = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    if let (Some(m), Some(extra)) = (l.as_object_mut(), labels.as_object()) {
        m.extend(extra.clone());
    }
    json!({"name": name, "labels": l, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}
