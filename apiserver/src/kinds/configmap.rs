//! v1 ConfigMap: keys valid and unique across `data` and `binaryData`, at most 1 MiB of
//! data in all (Kubernetes' limits); `immutable: true` freezes the data; kubectl's DATA
//! column counts both.

use super::Kind;
use crate::table::{age, col, s, Column};
use coxswain_api::protobuf::{Schema, CONFIG_MAP_SCHEMA};
use coxswain_api::resources::{ResourceInfo, CONFIGMAPS};
use coxswain_api::status::Cause;
use coxswain_api::validation::is_config_key;
use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

/// Kubernetes' limit on a ConfigMap's data (`MaxSecretSize`).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Standard base64 with padding, as `binaryData` and Secret `data` values are.
pub fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    b.len().is_multiple_of(4)
        && b.iter().enumerate().all(|(i, c)| {
            c.is_ascii_alphanumeric()
                || *c == b'+'
                || *c == b'/'
                || (*c == b'=' && i + 2 >= b.len())
        })
}

/// The ConfigMap kind.
pub struct ConfigMap;

impl Kind for ConfigMap {
    fn info(&self) -> &'static ResourceInfo {
        &CONFIGMAPS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<core::ConfigMap>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(CONFIG_MAP_SCHEMA)
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        let mut total = 0usize;
        let mut seen = std::collections::HashSet::new();
        for field in ["data", "binaryData"] {
            let Some(m) = v.get(field).and_then(Value::as_object) else {
                continue;
            };
            for (k, val) in m {
                if !is_config_key(k) {
                    causes.push(Cause::invalid(
                        &format!("{field}[{k}]"),
                        format!("\"{k}\""),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
                if !seen.insert(k.as_str()) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate".into(),
                        message: format!("Duplicate value: \"{k}\""),
                        field: format!("{field}[{k}]"),
                    });
                }
                if field == "binaryData" && !is_base64(val.as_str().unwrap_or("")) {
                    causes.push(Cause::invalid(
                        &format!("binaryData[{k}]"),
                        "<binary>",
                        "must be base64-encoded bytes",
                    ));
                }
                // binaryData holds base64: count the bytes it stands for.
                let len = val.as_str().map_or(0, str::len);
                total += k.len()
                    + if field == "binaryData" {
                        len / 4 * 3
                    } else {
                        len
                    };
            }
        }
        if total > MAX_DATA_BYTES {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
                field: "data".into(),
            });
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        super::secret::check_immutable(old, new, &["data", "binaryData"], causes);
    }

    fn columns(&self) -> Vec<Column> {
        vec![
            col("Name", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ]
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let count = |k: &str| v.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
        vec![
            json!(s(v, "/metadata/name")),
            json!(count("data") + count("binaryData")),
            json!(age(&v["metadata"]["creationTimestamp"])),
        ]
    }
}
