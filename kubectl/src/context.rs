//! What every command shares: the client, the namespace, resolving what the user typed or
//! what a manifest says into a resource, and printing server errors as kubectl does.

use anyhow::Context as _;
use coxswain_api::resources::{by_kind, by_user_name, ResourceInfo};
use coxswain_client::{Client, Error as ClientError};
use serde_json::Value;

/// The client and the namespace a command works in.
pub struct Ctx {
    /// API client.
    pub client: Client,
    /// `-n`, else `default`.
    pub namespace: String,
    /// `-n` was given (it overrides a manifest's namespace).
    pub explicit_ns: bool,
}

/// The resource a user typed (`po`, `deployments.apps`).
pub fn resource(name: &str) -> anyhow::Result<&'static ResourceInfo> {
    by_user_name(name)
        .with_context(|| format!("the server doesn't have a resource type \"{name}\""))
}

/// The message kubectl prints for a server error.
pub fn server_error(e: &ClientError, verb: &str, source: Option<&str>) -> String {
    match e {
        ClientError::Api(a) if a.reason == "Invalid" && a.kind().is_some() => {
            let causes: Vec<String> = a
                .causes()
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect();
            let list = if causes.len() == 1 {
                causes[0].clone()
            } else {
                format!("[{}]", causes.join(", "))
            };
            format!(
                "The {} \"{}\" is invalid: {list}",
                a.kind().unwrap_or(""),
                a.name().unwrap_or("")
            )
        }
        ClientError::Api(a) => match source {
            Some(s) => format!(
                "Error from server ({}): error when {verb} \"{s}\": {}",
                a.reason, a.message
            ),
            None => format!("Error from server ({}): {}", a.reason, a.message),
        },
        other => format!("error: {other}"),
    }
}

impl Ctx {
    /// The namespace for an object of `r` (the manifest's unless `-n` was given).
    pub fn ns_for(&self, r: &ResourceInfo, obj: Option<&Value>) -> Option<String> {
        if !r.namespaced {
            return None;
        }
        let from_obj = obj
            .and_then(|o| o.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        Some(match (from_obj, self.explicit_ns) {
            (Some(o), false) => o.to_string(),
            _ => self.namespace.clone(),
        })
    }

    /// The resource, namespace and name of a manifest document.
    pub fn doc_target(
        &self,
        obj: &Value,
    ) -> anyhow::Result<(&'static ResourceInfo, Option<String>, String)> {
        let av = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let r = by_kind(av, kind).with_context(|| {
            format!("resource mapping not found for kind \"{kind}\" in version \"{av}\"")
        })?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Ok((r, self.ns_for(r, Some(obj)), name))
    }
}
