//! batch/v1 Job: defaults (parallelism, completions, backoffLimit, completionMode, suspend,
//! podReplacementPolicy, the template's pod spec), the generated selector and template labels
//! (`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name` and their legacy
//! twins) unless `manualSelector`, validation (restartPolicy OnFailure or Never, counts, the
//! Indexed mode, podFailurePolicy and successPolicy rules), what an update may not change,
//! generation, the `status` subresource, and kubectl's columns. The job spec rules are shared
//! with CronJob's `jobTemplate`.

use super::shared::{default, default_template, obj, workload_cells, workload_columns};
use super::{field_or, Kind, SelectableField};
use crate::table::{human_duration, n, s, Column};
use coxswain_api::protobuf::{Schema, JOB_SCHEMA};
use coxswain_api::resources::{ResourceInfo, JOBS};
use coxswain_api::status::Cause;
use coxswain_api::At;
use k8s_openapi::api::batch::v1 as batch;
use serde_json::{json, Map, Value};

/// The Job kind.
pub struct Job;

/// The label carrying the Job's UID (its generated selector).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
/// The label carrying the Job's name.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

impl Kind for Job {
    fn info(&self) -> &'static ResourceInfo {
        &JOBS
    }

    fn typed_check(&self, v: &Value) -> crate::fields::Typed {
        crate::fields::typed::<batch::Job>(v)
    }

    fn protobuf(&self) -> Option<Schema> {
        Some(JOB_SCHEMA)
    }

    fn has_generation(&self) -> bool {
        true
    }

    fn prepare_create(&self, v: &mut Value) {
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
        if v.at("/spec/manualSelector") != Some(&json!(true)) {
            generate_selector(v);
        }
    }

    fn defaults(&self, v: &mut Value) {
        if let Some(spec) = obj(v, "spec") {
            default_job_spec(spec);
            default(spec, "manualSelector", json!(false));
        }
        default_template(v);
        // A Job without labels takes its template's.
        let tmpl_labels = v.at("/spec/template/metadata/labels").cloned();
        if let (Some(l), Some(md)) = (tmpl_labels, obj(v, "metadata")) {
            if md
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                md.insert("labels".into(), l);
            }
        }
    }

    fn validate(&self, v: &Value, causes: &mut Vec<Cause>) {
        validate_job_spec(v.get("spec"), "spec", true, causes);
    }

    fn validate_update(&self, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
        let indexed = new.at("/spec/completionMode") == Some(&json!("Indexed"));
        let elastic = indexed && new.at("/spec/completions") == new.at("/spec/parallelism");
        for (field, ptr) in [
            ("spec.selector", "/spec/selector"),
            ("spec.template", "/spec/template"),
            ("spec.completionMode", "/spec/completionMode"),
            ("spec.podFailurePolicy", "/spec/podFailurePolicy"),
            ("spec.successPolicy", "/spec/successPolicy"),
            ("spec.completions", "/spec/completions"),
        ] {
            if ptr == "/spec/completions" && elastic {
                continue;
            }
            if old.at(ptr) != new.at(ptr) {
                causes.push(Cause::invalid(
                    field,
                    json!(new.at(ptr)).to_string(),
                    "field is immutable",
                ));
            }
        }
    }

    fn default_propagation(&self) -> Option<&'static str> {
        Some("Orphan")
    }

    fn columns(&self) -> Vec<Column> {
        workload_columns([
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
        ])
    }

    fn cells(&self, v: &Value) -> Vec<Value> {
        workload_cells(
            v,
            [
                json!(status_cell(v)),
                json!(completions_cell(v)),
                json!(duration_cell(v)),
            ],
        )
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        const FIELDS: &[SelectableField] =
            &[field_or("status.successful", "/status/succeeded", "0")];
        FIELDS
    }
}

/// The selector on the Job's UID and the labels it needs on the template.
fn generate_selector(v: &mut Value) {
    let uid = s(v, "/metadata/uid");
    let name = s(v, "/metadata/name");
    let Some(spec) = obj(v, "spec") else {
        return;
    };
    // A selector the user gave is kept (validation then says it is not the generated one);
    // the UID key is added to it as Kubernetes does.
    let sel = spec.entry("selector").or_insert_with(|| json!({}));
    if !sel.is_object() {
        *sel = json!({});
    }
    if let Some(sel) = sel.as_object_mut() {
        let ml = sel.entry("matchLabels").or_insert_with(|| json!({}));
        if !ml.is_object() {
            *ml = json!({});
        }
        if let Some(ml) = ml.as_object_mut() {
            ml.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
        }
    }
    let Some(tmpl) = spec
        .entry("template")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    let md = tmpl.entry("metadata").or_insert_with(|| json!({}));
    if !md.is_object() {
        *md = json!({});
    }
    let Some(md) = md.as_object_mut() else {
        return;
    };
    let labels = md.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        for (k, val) in [
            ("job-name", &name),
            (JOB_NAME, &name),
            ("controller-uid", &uid),
            (CONTROLLER_UID, &uid),
        ] {
            l.entry(k).or_insert_with(|| json!(val));
        }
    }
}

/// The defaults of a Job spec (a Job's, or a CronJob's `jobTemplate.spec`).
pub fn default_job_spec(spec: &mut Map<String, Value>) {
    let unset = |m: &Map<String, Value>, k: &str| m.get(k).is_none_or(Value::is_null);
    if unset(spec, "completions") && unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    let per_index = !unset(spec, "backoffLimitPerIndex");
    default(
        spec,
        "backoffLimit",
        json!(if per_index { i32::MAX as i64 } else { 6 }),
    );
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    let policy = if unset(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    default(spec, "podReplacementPolicy", json!(policy));
    if let Some(Value::Array(rules)) = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
    {
        for r in rules.iter_mut() {
            if let Some(Value::Array(pats)) = r.get_mut("onPodConditions") {
                for p in pats.iter_mut().filter_map(Value::as_object_mut) {
                    default(p, "status", json!("True"));
                }
            }
        }
    }
}

fn non_negative(v: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    if let Some(x) = v.and_then(Value::as_i64) {
        if x < 0 {
            causes.push(Cause::invalid(
                field,
                x,
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Validate a Job spec at `path`; `selector` says whether it must have one (a Job does; a
/// CronJob's job template gets its own when the Job is made).
pub fn validate_job_spec(
    spec: Option<&Value>,
    path: &str,
    selector: bool,
    causes: &mut Vec<Cause>,
) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(path));
        return;
    };
    let at = |k: &str| format!("{path}.{k}");
    for k in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        non_negative(spec.get(k), &at(k), causes);
    }
    non_negative(
        spec.get("activeDeadlineSeconds"),
        &at("activeDeadlineSeconds"),
        causes,
    );
    // Accepted by Kubernetes, not run by Coxswain yet: refused rather than ignored.
    for k in ["backoffLimitPerIndex", "maxFailedIndexes"] {
        if spec.get(k).is_some_and(|x| !x.is_null()) {
            causes.push(Cause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: per-index back-off limits are not supported by Coxswain yet"
                    .into(),
                field: at(k),
            });
        }
    }
    let mode = spec
        .get("completionMode")
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    if !["NonIndexed", "Indexed"].contains(&mode) {
        causes.push(Cause::not_supported(
            &at("completionMode"),
            mode,
            &["NonIndexed", "Indexed"],
        ));
    }
    let indexed = mode == "Indexed";
    if indexed && spec.get("completions").is_none_or(Value::is_null) {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: when completion mode is Indexed".into(),
            field: at("completions"),
        });
    }
    if let Some(p) = spec.get("parallelism").and_then(Value::as_i64) {
        if indexed && p > 100_000 {
            causes.push(Cause::invalid(
                &at("parallelism"),
                p,
                "must be less than or equal to 100000 when completion mode is Indexed",
            ));
        }
    }
    if !indexed {
        for k in ["backoffLimitPerIndex", "maxFailedIndexes", "successPolicy"] {
            if let Some(x) = spec.get(k).filter(|x| !x.is_null()) {
                causes.push(Cause::invalid(
                    &at(k),
                    x,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    let tmpl = format!("{path}.template");
    super::pod::validate_pod_spec(spec.at("/template/spec"), &format!("{tmpl}.spec"), causes);
    match spec
        .at("/template/spec/restartPolicy")
        .and_then(Value::as_str)
    {
        Some("OnFailure") | Some("Never") => {}
        Some(other) if other != "Always" && !other.is_empty() => causes.push(Cause::not_supported(
            &format!("{tmpl}.spec.restartPolicy"),
            other,
            &["OnFailure", "Never"],
        )),
        _ => causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value: valid values: \"OnFailure\", \"Never\"".into(),
            field: format!("{tmpl}.spec.restartPolicy"),
        }),
    }
    if selector {
        let sel = spec.get("selector");
        let labels = spec
            .at("/template/metadata/labels")
            .and_then(Value::as_object);
        match sel
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_object)
        {
            None if sel.is_none_or(Value::is_null) => causes.push(Cause::required(&at("selector"))),
            Some(ml)
                if !ml
                    .iter()
                    .all(|(k, val)| labels.and_then(|l| l.get(k)) == Some(val)) =>
            {
                causes.push(Cause::invalid(
                    &format!("{tmpl}.metadata.labels"),
                    json!(labels).to_string(),
                    "`selector` does not match template `labels`",
                ));
            }
            _ => {}
        }
    }
    if selector && spec.get("manualSelector") != Some(&json!(true)) {
        let generated = spec
            .at("/selector/matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| m.len() == 1 && m.contains_key(CONTROLLER_UID))
            && spec
                .at("/selector/matchExpressions")
                .is_none_or(|e| e.as_array().is_none_or(Vec::is_empty));
        if !generated {
            causes.push(Cause::invalid(
                &at("selector"),
                json!(spec.get("selector")).to_string(),
                "`selector` not auto-generated",
            ));
        }
    }
    validate_pod_failure_policy(spec, path, causes);
    validate_success_policy(spec, path, causes);
}

fn validate_pod_failure_policy(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(rules) = spec.at("/podFailurePolicy/rules").and_then(Value::as_array) else {
        return;
    };
    if spec.at("/template/spec/restartPolicy") != Some(&json!("Never")) {
        causes.push(Cause::invalid(
            &format!("{path}.template.spec.restartPolicy"),
            format!("\"{}\"", s(spec, "/template/spec/restartPolicy")),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    for (i, r) in rules.iter().enumerate() {
        let p = format!("{path}.podFailurePolicy.rules[{i}]");
        let action = r.get("action").and_then(Value::as_str).unwrap_or("");
        // FailIndex needs per-index back-off limits, which are not supported yet.
        let actions: &[&str] = &["Count", "FailJob", "Ignore"];
        if !actions.contains(&action) {
            causes.push(Cause::not_supported(
                &format!("{p}.action"),
                action,
                actions,
            ));
        }
        let codes = r.get("onExitCodes").filter(|x| !x.is_null());
        let conds = r.get("onPodConditions").filter(|x| !x.is_null());
        match (codes, conds) {
            (Some(_), Some(_)) => causes.push(Cause::invalid(
                &p,
                "specifying both OnExitCodes and OnPodConditions is not supported",
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            (None, None) => causes.push(Cause::invalid(
                &p,
                "specifying neither OnExitCodes nor OnPodConditions",
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            (Some(c), None) => {
                let op = c.get("operator").and_then(Value::as_str).unwrap_or("");
                if !["In", "NotIn"].contains(&op) {
                    causes.push(Cause::not_supported(
                        &format!("{p}.onExitCodes.operator"),
                        op,
                        &["In", "NotIn"],
                    ));
                }
                let values = c.get("values").and_then(Value::as_array);
                if values.is_none_or(|v| v.is_empty()) {
                    causes.push(Cause::required(&format!("{p}.onExitCodes.values")));
                }
                if op == "In" && values.is_some_and(|v| v.contains(&json!(0))) {
                    causes.push(Cause::invalid(
                        &format!("{p}.onExitCodes.values"),
                        0,
                        "must not be 0 for the In operator",
                    ));
                }
            }
            (None, Some(_)) => {}
        }
    }
}

fn validate_success_policy(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(rules) = spec.at("/successPolicy/rules").and_then(Value::as_array) else {
        return;
    };
    if rules.is_empty() {
        causes.push(Cause::required(&format!("{path}.successPolicy.rules")));
    }
    let completions = spec.get("completions").and_then(Value::as_i64).unwrap_or(0);
    for (i, r) in rules.iter().enumerate() {
        let p = format!("{path}.successPolicy.rules[{i}]");
        let idx = r.get("succeededIndexes").and_then(Value::as_str);
        let count = r.get("succeededCount").and_then(Value::as_i64);
        if idx.is_none() && count.is_none() {
            causes.push(Cause::required(&p));
        }
        if let Some(idx) = idx {
            match parse_indexes(idx, completions) {
                Ok(_) => {}
                Err(e) => causes.push(Cause::invalid(
                    &format!("{p}.succeededIndexes"),
                    format!("\"{idx}\""),
                    &e,
                )),
            }
        }
        if let Some(c) = count {
            if c < 0 {
                causes.push(Cause::invalid(
                    &format!("{p}.succeededCount"),
                    c,
                    "must be greater than or equal to 0",
                ));
            } else if c > completions {
                causes.push(Cause::invalid(
                    &format!("{p}.succeededCount"),
                    c,
                    &format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
        }
    }
}

/// Parse an index list (`1,3-5,7`) whose indexes are below `completions`.
fn parse_indexes(s: &str, completions: i64) -> Result<Vec<(i64, i64)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: i64 = lo.parse().map_err(|_| format!("cannot parse {part:?}"))?;
        let hi: i64 = hi.parse().map_err(|_| format!("cannot parse {part:?}"))?;
        if lo > hi || lo < 0 {
            return Err(format!("range {part:?} is not increasing"));
        }
        if hi >= completions {
            return Err(format!("too large index: {hi}"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// The STATUS cell: the last of Complete, Failed, Suspended (or their targets) that holds,
/// Terminating when being deleted, else Running.
fn status_cell(v: &Value) -> String {
    let holds = |t: &str| {
        v.at("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    if holds("Complete") {
        return "Complete".into();
    }
    if holds("Failed") {
        return "Failed".into();
    }
    if v.at("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    for t in ["Suspended", "FailureTarget"] {
        if holds(t) {
            return t.into();
        }
    }
    "Running".into()
}

fn completions_cell(v: &Value) -> String {
    let succeeded = n(v, "/status/succeeded");
    match v.at("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let p = n(v, "/spec/parallelism");
            if p > 1 {
                format!("{succeeded}/1 of {p}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}

fn duration_cell(v: &Value) -> String {
    let t = |p: &str| {
        v.at(p)
            .and_then(Value::as_str)
            .and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok())
    };
    match (t("/status/startTime"), t("/status/completionTime")) {
        (Some(a), Some(b)) => human_duration((b - a).num_seconds()),
        (Some(a), None) => {
            human_duration((chrono::Utc::now() - a.with_timezone(&chrono::Utc)).num_seconds())
        }
        _ => String::new(),
    }
}
