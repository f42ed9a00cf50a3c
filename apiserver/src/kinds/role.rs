//! rbac.authorization.k8s.io/v1 Role: namespaced rules (no non-resource URLs), names that are
//! path segments; kubectl's NAME, CREATED AT. Stored only: RBAC is not enforced yet.

use super::rbac::{check_path_segment, check_rules, role_cells};
use super::Kind;
use crate::table::Column;
use coxswain_api::resources::{ResourceInfo, ROLES};
use coxswain_api::status::Cause;
use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::Value;

/// The Role kind.
pub struct Role;

impl Kind for Role {
    fn info(&self) -> &'static ResourceInfo {
        &ROLES
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<rbac::Role>(v)
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::ROLE_SCHEMA)
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::Any
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        check_path_segment(
            v["metadata"]["name"].as_str().unwrap_or(""),
            "metadata.name",
            c,
        );
        check_rules(v, true, c);
    }

    fn columns(&self) -> Vec<Column> {
        super::rbac::role_columns()
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        role_cells(v)
    }
}
