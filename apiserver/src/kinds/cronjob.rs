//! batch/v1 CronJob: defaults (concurrencyPolicy, suspend, history limits, the job
//! template's), validation (the schedule's grammar, `TZ=` refused, a known `timeZone`, a name
//! short enough for the Jobs named after it, the job template as a Job spec), generation, the
//! `status` subresource, and kubectl's columns.

use super::job::validate_job_spec;
use super::shared::{default, obj};
use super::Kind;
use crate::table::{age, col, or_none, s, Column};
use coxswain_api::cron::{time_zone, Schedule};
use coxswain_api::protobuf::{Schema, CRONJOB_SCHEMA};
use coxswain_api::resources::{ResourceInfo, CRONJOBS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::batch::v1 as batch;
use serde_json::{json, Value};

/// The CronJob kind.
pub struct CronJob;

/// The longest CronJob name: its Jobs add `-` and up to 10 digits and must stay within 63.
const MAX_NAME: usize = 52;

impl Kind for CronJob {
    fn info(&self) -> &'static ResourceInfo {
        &CRONJOBS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<batch::CronJob>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(CRONJOB_SCHEMA)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        if let Some(ps) = v.pointer_mut("/spec/jobTemplate/spec/template/spec") {
            super::pod::default_pod_spec(ps);
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        let name = s(v, "/metadata/name");
        if name.len() > MAX_NAME {
            causes.push(Cause::invalid(
                "metadata.name",
                format!("\"{name}\""),
                &format!("must be no more than {MAX_NAME} characters"),
            ));
        }
        match v.at("/spec/schedule").and_then(Value::as_str) {
            None | Some("") => causes.push(Cause::required("spec.schedule")),
            Some(sched) => {
                if let Err(e) = Schedule::parse(sched) {
                    causes.push(Cause::invalid(
                        "spec.schedule",
                        format!("\"{sched}\""),
                        &e.0,
                    ));
                }
            }
        }
        if let Some(tz) = v.at("/spec/timeZone").and_then(Value::as_str) {
            if tz.is_empty() {
                causes.push(Cause::invalid(
                    "spec.timeZone",
                    "\"\"",
                    "timeZone must be nil or non-empty string",
                ));
            } else if tz.eq_ignore_ascii_case("local") {
                causes.push(Cause::invalid(
                    "spec.timeZone",
                    format!("\"{tz}\""),
                    "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                ));
            } else if let Err(e) = time_zone(Some(tz)) {
                causes.push(Cause::invalid("spec.timeZone", format!("\"{tz}\""), &e.0));
            }
        }
        let policy = v
            .at("/spec/concurrencyPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Allow");
        if !["Allow", "Forbid", "Replace"].contains(&policy) {
            causes.push(Cause::not_supported(
                "spec.concurrencyPolicy",
                policy,
                &["Allow", "Forbid", "Replace"],
            ));
        }
        for k in [
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ] {
            if let Some(x) = v.at(&format!("/spec/{k}")).and_then(Value::as_i64) {
                if x < 0 {
                    causes.push(Cause::invalid(
                        &format!("spec.{k}"),
                        x,
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        validate_job_spec(
            v.at("/spec/jobTemplate/spec"),
            "spec.jobTemplate.spec",
            false,
            causes,
        );
        if let Some(sel) = v
            .at("/spec/jobTemplate/spec/selector")
            .filter(|x| !x.is_null())
        {
            causes.push(Cause::invalid(
                "spec.jobTemplate.spec.selector",
                sel,
                "`selector` will be auto-generated",
            ));
        }
        if v.at("/spec/jobTemplate/spec/manualSelector") == Some(&json!(true)) {
            causes.push(Cause::not_supported(
                "spec.jobTemplate.spec.manualSelector",
                "true",
                &["nil", "false"],
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        let mut c = vec![
            col("Name", "string", 0),
            col("Schedule", "string", 0),
            col("Timezone", "string", 0),
            col("Suspend", "boolean", 0),
            col("Active", "integer", 0),
            col("Last Schedule", "string", 0),
            col("Age", "string", 0),
        ];
        c.extend(["Containers", "Images", "Selector"].map(|n| col(n, "string", 1)));
        c
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        let [containers, images] =
            super::shared::containers_images(v, "/spec/jobTemplate/spec/template/spec");
        let last = match v.at("/status/lastScheduleTime") {
            Some(t @ Value::String(_)) => age(t),
            _ => "<none>".into(),
        };
        vec![
            json!(s(v, "/metadata/name")),
            json!(s(v, "/spec/schedule")),
            json!(or_none(s(v, "/spec/timeZone"))),
            json!(match v.at("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            }),
            json!(v
                .at("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)),
            json!(last),
            json!(age(&v["metadata"]["creationTimestamp"])),
            json!(containers),
            json!(images),
            json!(super::shared::selector_cell(
                v.at("/spec/jobTemplate/spec/selector")
            )),
        ]
    }
}
