//! rbac.authorization.k8s.io/v1 ClusterRoleBinding: a ClusterRole (immutable reference)
//! granted cluster-wide to users, groups and ServiceAccounts (with their namespace); kubectl's columns (ROLE, and USERS, GROUPS,
//! SERVICEACCOUNTS with `-o wide`). Stored only: RBAC is not enforced yet.

use super::rbac::{
    binding_cells, binding_defaults, check_binding, check_path_segment, check_role_ref_unchanged,
};
use super::Kind;
use crate::table::Column;
use coxswain_api::resources::{ResourceInfo, CLUSTERROLEBINDINGS};
use coxswain_api::status::Cause;
use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::Value;

/// The ClusterRoleBinding kind.
pub struct ClusterRoleBinding;

impl Kind for ClusterRoleBinding {
    fn info(&self) -> &'static ResourceInfo {
        &CLUSTERROLEBINDINGS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<rbac::ClusterRoleBinding>(v)
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
        check_binding(v, &["ClusterRole"], true, c);
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
