//! rbac.authorization.k8s.io/v1 RoleBinding: a Role or ClusterRole (immutable reference)
//! granted to users, groups and ServiceAccounts; kubectl's columns (ROLE, and USERS, GROUPS,
//! SERVICEACCOUNTS with `-o wide`). Stored only: RBAC is not enforced yet.

use super::rbac::{
    binding_cells, binding_defaults, check_binding, check_path_segment, check_role_ref_unchanged,
};
use super::Kind;
use crate::table::Column;
use coxswain_api::resources::{ResourceInfo, ROLEBINDINGS};
use coxswain_api::status::Cause;
use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::Value;

/// The RoleBinding kind.
pub struct RoleBinding;

impl Kind for RoleBinding {
    fn info(&self) -> &'static ResourceInfo {
        &ROLEBINDINGS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<rbac::RoleBinding>(v)
    }

    fn protobuf(&self) -> Option<coxswain_api::protobuf::Schema> {
        Some(coxswain_api::protobuf::ROLE_BINDING_SCHEMA)
    }

    fn name_rule(&self) -> super::NameRule {
        super::NameRule::Any
    }

    fn defaults(&self, v: &mut Value) {
        binding_defaults(v);
    }

    fn validate(&self, v: &Value, c: &mut Vec<Cause>) {
        check_path_segment(
            v["metadata"]["name"].as_str().unwrap_or(""),
            "metadata.name",
            c,
        );
        check_binding(v, &["Role", "ClusterRole"], false, c);
    }

    fn validate_update(&self, old: &Value, new: &Value, c: &mut Vec<Cause>) {
        check_role_ref_unchanged(old, new, c);
    }

    fn columns(&self) -> Vec<Column> {
        super::rbac::binding_columns()
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        binding_cells(v)
    }
}
