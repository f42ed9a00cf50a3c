//! v1 Secret: `stringData` merged into `data` (base64) on every write and never stored, the
//! type `Opaque` when none is given and immutable after creation, each type's required
//! keys (`tls.crt`/`tls.key`, `.dockerconfigjson` as JSON, ...), keys and the 1 MiB limit as
//! ConfigMaps have them, `immutable: true` freezing the data; kubectl's columns (TYPE, DATA).

use super::Kind;
use crate::table::{age, col, s, Column};
use base64::Engine;
use coxswain_api::protobuf::{Schema, SECRET_SCHEMA};
use coxswain_api::resources::{ResourceInfo, SECRETS};
use coxswain_api::status::Cause;
use coxswain_api::validation::is_config_key;
use coxswain_api::At;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// The Secret kind.
pub struct Secret;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn decoded(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.at("/data")?
        .get(key)?
        .as_str()
        .and_then(|s| B64.decode(s).ok())
}

/// The rules shared with ConfigMaps: immutable objects keep their data.
pub fn check_immutable(old: &Value, new: &Value, fields: &[&str], c: &mut Vec<Cause>) {
    if old["immutable"] != json!(true) {
        return;
    }
    let msg = "field is immutable when `immutable` is set";
    if new["immutable"] != json!(true) {
        c.push(Cause::forbidden("immutable", msg));
    }
    for f in fields {
        let (a, b) = (
            old.get(*f).filter(|x| !x.is_null()),
            new.get(*f).filter(|x| !x.is_null()),
        );
        if a != b {
            c.push(Cause::forbidden(f, msg));
        }
    }
}

impl Kind for Secret {
    fn info(&self) -> &'static ResourceInfo {
        &SECRETS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::Secret>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(SECRET_SCHEMA)
    }

    fn defaults(&self, v: &mut Value) {
        let Some(m) = v.as_object_mut() else { return };
        if m.get("type").is_none_or(|t| t.is_null() || t == "") {
            m.insert("type".into(), json!("Opaque"));
        }
        if let Some(Value::Object(sd)) = m.remove("stringData") {
            if !m.get("data").is_some_and(Value::is_object) {
                m.insert("data".into(), json!({}));
            }
            if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
                for (k, val) in sd {
                    let text = val.as_str().unwrap_or("").to_string();
                    data.insert(k, json!(B64.encode(text)));
                }
            }
        }
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        let mut total = 0usize;
        let data = v
            .at("/data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, val) in &data {
            if !is_config_key(k) {
                c.push(Cause::invalid(
                    &format!("data[{k}]"),
                    format!("\"{k}\""),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
            // Checked here too: a body whose shape decoded before is not decoded again.
            if !super::configmap::is_base64(val.as_str().unwrap_or("")) {
                c.push(Cause::invalid(
                    &format!("data[{k}]"),
                    "\"<secret contents redacted>\"",
                    "illegal base64 data",
                ));
            }
            total += val.as_str().map_or(0, |s| s.len() / 4 * 3);
        }
        if total > super::configmap::MAX_DATA_BYTES {
            c.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: may not be more than 1048576 bytes".into(),
                field: "data".into(),
            });
        }
        let has = |k: &str| data.contains_key(k);
        let required = |k: &str, c: &mut Vec<Cause>| c.push(Cause::required(&format!("data[{k}]")));
        match v["type"].as_str().unwrap_or("Opaque") {
            "kubernetes.io/service-account-token"
                if v.at("/metadata/annotations/kubernetes.io~1service-account.name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty) =>
            {
                c.push(Cause::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
            t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
                let key = if t.ends_with("json") {
                    ".dockerconfigjson"
                } else {
                    ".dockercfg"
                };
                match decoded(v, key) {
                    None if !has(key) => required(key, c),
                    bytes => {
                        if let Err(e) = serde_json::from_slice::<serde_json::Map<String, Value>>(
                            &bytes.unwrap_or_default(),
                        ) {
                            c.push(Cause::invalid(
                                &format!("data[{key}]"),
                                "\"<secret contents redacted>\"",
                                &e.to_string(),
                            ));
                        }
                    }
                }
            }
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                required("username", c);
                required("password", c);
            }
            "kubernetes.io/ssh-auth"
                if decoded(v, "ssh-privatekey").is_none_or(|b| b.is_empty()) =>
            {
                required("ssh-privatekey", c)
            }
            "kubernetes.io/tls" => {
                for k in ["tls.crt", "tls.key"] {
                    if !has(k) {
                        required(k, c);
                    }
                }
            }
            _ => {}
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        if old["type"] != new["type"] {
            c.push(Cause::invalid("type", &new["type"], "field is immutable"));
        }
        check_immutable(old, new, &["data"], c);
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Type", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/type")),
            json!(v
                .at("/data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
