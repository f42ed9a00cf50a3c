//! batch/v1 Jobs and CronJobs on the real binaries, with the real kubectl where it has a verb
//! (`create job`, `create cronjob`, `create job --from`, `wait`, `get`): completion, parallel
//! and Indexed runs, the back-off limit, podFailurePolicy, the deadline, suspend, the TTL,
//! the schedule (driven by a test clock), concurrency policies, history pruning, cascading
//! deletion, and the API's validation.

use coxswain_testkit::{eventually, ok, stays, Options, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const CRONJOBS: &str = "/apis/batch/v1/namespaces/default/cronjobs";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// A cluster of two nodes whose Job back-off is short.
fn cluster(extra_controller_args: &[String]) -> TestCluster {
    let mut args = vec!["--job-pod-failure-backoff".to_string(), "200ms".into()];
    args.extend_from_slice(extra_controller_args);
    TestCluster::with(Options {
        nodes: 2,
        controller_args: args,
        ..Default::default()
    })
}

fn job(name: &str, spec: Value, script: &str) -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}]}}}});
    if let (Some(s), Some(extra)) = (j["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    j
}

fn condition(j: &Value, t: &str) -> Option<Value> {
    j["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t && c["status"] == "True")
        .cloned()
}

fn wait_condition(c: &TestCluster, name: &str, t: &str) -> Value {
    eventually(T, &format!("job {name} {t}"), || {
        let (_, j) = c.get(&format!("{JOBS}/{name}"));
        condition(&j, t).map(|_| j)
    })
}

fn job_pods(c: &TestCluster, job: &str) -> Vec<Value> {
    c.items(&format!(
        "{PODS}?labelSelector=batch.kubernetes.io/job-name%3D{job}"
    ))
}

#[test]
fn a_job_runs_to_completion_and_kubectl_waits_for_it() {
    let c = cluster(&[]);
    ok(&c.kubectl(&[
        "create",
        "job",
        "hello",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ]));
    let out = ok(&c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/hello",
        "--timeout=60s",
    ]));
    assert_eq!(out.trim(), "job.batch/hello condition met");
    let (_, j) = c.get(&format!("{JOBS}/hello"));
    assert_eq!(j["status"]["succeeded"], 1, "{j}");
    assert!(j["status"]["completionTime"].is_string());
    let types: Vec<&str> = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert_eq!(
        condition(&j, "Complete").unwrap()["reason"],
        "CompletionsReached"
    );
    // The generated selector and template labels; the Job took the template's labels.
    let uid = j["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        j["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    assert_eq!(j["metadata"]["labels"]["job-name"], "hello");
    // The pod finished, was counted, and lost its tracking finalizer.
    let pods = job_pods(&c, "hello");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["status"]["phase"], "Succeeded");
    assert!(pods[0]["metadata"]["finalizers"].is_null(), "{}", pods[0]);
    // kubectl's columns.
    let out = ok(&c.kubectl(&["get", "jobs"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["hello", "Complete", "1/1"], "{out}");
    assert!(out.starts_with("NAME"), "{out}");
    let out = ok(&c.kubectl(&["get", "pods", "-l", "job-name=hello"]));
    assert!(out.contains("Completed"), "{out}");
    // A Job is in `kubectl get all`; describe and logs find its pods.
    assert!(ok(&c.kubectl(&["get", "all"])).contains("job.batch/hello"));
    let out = ok(&c.kubectl(&["describe", "job", "hello"]));
    assert!(
        out.contains("Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed")
            && out.contains("SuccessfulCreate")
            && out.contains("Completed"),
        "{out}"
    );
    assert_eq!(ok(&c.kubectl(&["logs", "job/hello"])), "hi\n");
    // An unscripted program in a pod that runs to completion ends, as the docs' pi Job.
    let pi = job("pi", json!({}), "");
    let mut pi = pi;
    pi["spec"]["template"]["spec"]["containers"][0]["command"] =
        json!(["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]);
    assert_eq!(c.post(JOBS, &pi).0, 201);
    wait_condition(&c, "pi", "Complete");
}

#[test]
fn parallel_and_indexed_jobs() {
    let c = cluster(&[]);
    let spec = json!({"completions": 5, "parallelism": 2, "completionMode": "Indexed"});
    assert_eq!(
        c.post(JOBS, &job("idx", spec, "sleep 0.5; echo done")).0,
        201
    );
    let mut most = 0;
    let j = eventually(T, "indexed job complete", || {
        let active = job_pods(&c, "idx")
            .iter()
            .filter(|p| p["status"]["phase"] != "Succeeded")
            .count();
        most = most.max(active);
        let (_, j) = c.get(&format!("{JOBS}/idx"));
        condition(&j, "Complete").map(|_| j)
    });
    assert!(most <= 2, "at most `parallelism` pods ran at once: {most}");
    assert_eq!(j["status"]["completedIndexes"], "0-4");
    assert_eq!(j["status"]["succeeded"], 5);
    let pods = job_pods(&c, "idx");
    let mut idx: Vec<String> = pods
        .iter()
        .map(|p| {
            let i = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("idx-{i}-")));
            assert_eq!(p["spec"]["hostname"], format!("idx-{i}"));
            assert_eq!(
                p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
                i.as_str()
            );
            let env = &p["spec"]["containers"][0]["env"][0];
            assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
            i
        })
        .collect();
    idx.sort();
    assert_eq!(idx, ["0", "1", "2", "3", "4"]);

    // A work queue: no completions, three workers, done when one succeeds and all stop.
    let spec = json!({"parallelism": 3});
    assert_eq!(c.post(JOBS, &job("queue", spec, "echo work")).0, 201);
    let j = wait_condition(&c, "queue", "Complete");
    assert!(j["status"]["succeeded"].as_i64().unwrap() >= 1, "{j}");
    let out = ok(&c.kubectl(&["get", "job", "queue"]));
    assert!(out.contains("/1 of 3"), "{out}");
}

#[test]
fn failures_back_off_then_fail_the_job() {
    let c = cluster(&[]);
    // backoffLimit 2: three pods fail, then the Job fails.
    assert_eq!(
        c.post(
            JOBS,
            &job("flaky", json!({"backoffLimit": 2}), "echo oops; exit 1")
        )
        .0,
        201
    );
    let j = wait_condition(&c, "flaky", "Failed");
    assert_eq!(j["status"]["failed"], 3, "{j}");
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded");
    assert_eq!(
        failed["message"],
        "Job has reached the specified backoff limit"
    );
    assert!(condition(&j, "FailureTarget").is_some());
    assert_eq!(job_pods(&c, "flaky").len(), 3);
    let out = ok(&c.kubectl(&["get", "job", "flaky"]));
    assert!(out.contains("Failed") && out.contains("0/1"), "{out}");
    stays(
        Duration::from_secs(1),
        "no pod after the Job failed",
        || job_pods(&c, "flaky").len() == 3,
    );

    // podFailurePolicy: exit code 42 fails the Job at once, naming the rule.
    let spec = json!({"backoffLimit": 6, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}});
    assert_eq!(c.post(JOBS, &job("fatal", spec, "exit 42")).0, 201);
    let j = wait_condition(&c, "fatal", "Failed");
    let f = condition(&j, "Failed").unwrap();
    assert_eq!(f["reason"], "PodFailurePolicy");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Container c for pod default/fatal-")
            && msg.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{msg}"
    );
    assert_eq!(j["status"]["failed"], 1);

    // activeDeadlineSeconds: a pod that never ends is stopped, the Job fails.
    let spec = json!({"activeDeadlineSeconds": 2});
    assert_eq!(c.post(JOBS, &job("slow", spec, "sleep infinity")).0, 201);
    let j = wait_condition(&c, "slow", "Failed");
    assert_eq!(
        condition(&j, "Failed").unwrap()["reason"],
        "DeadlineExceeded"
    );
    eventually(T, "the slow pod is gone", || {
        job_pods(&c, "slow").is_empty().then_some(())
    });
}

#[test]
fn suspend_resume_and_ttl() {
    let c = cluster(&[]);
    // Three seconds: long enough to see it Complete on a loaded machine before it goes.
    let spec = json!({"suspend": true, "ttlSecondsAfterFinished": 3});
    assert_eq!(c.post(JOBS, &job("later", spec, "echo ran")).0, 201);
    let j = wait_condition(&c, "later", "Suspended");
    assert!(j["status"]["startTime"].is_null(), "{j}");
    assert!(job_pods(&c, "later").is_empty());
    let out = ok(&c.kubectl(&["get", "job", "later"]));
    assert!(out.contains("Suspended"), "{out}");
    ok(&c.kubectl(&[
        "patch",
        "job",
        "later",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]));
    let j = wait_condition(&c, "later", "Complete");
    let s = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Suspended")
        .unwrap()
        .clone();
    assert_eq!(
        (s["status"].as_str(), s["reason"].as_str()),
        (Some("False"), Some("JobResumed"))
    );
    // Three seconds after it finished, the TTL controller deletes it, pods first.
    eventually(T, "the finished Job is deleted", || {
        (c.get(&format!("{JOBS}/later")).0 == 404).then_some(())
    });
    eventually(T, "its pod is deleted", || {
        job_pods(&c, "later").is_empty().then_some(())
    });
}

#[test]
fn jobs_are_validated_as_kubernetes_does() {
    let c = TestCluster::apiserver_only(&[]);
    let mut no_policy = job("bad", json!({}), "echo");
    no_policy["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("restartPolicy");
    let (code, s) = c.post(JOBS, &no_policy);
    assert_eq!(code, 422, "{s}");
    assert_eq!(
        s["message"],
        "Job.batch \"bad\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );
    let (code, s) = c.post(JOBS, &job("bad", json!({"completions": -1}), "echo"));
    assert_eq!(code, 422);
    assert_eq!(s["details"]["causes"][0]["field"], "spec.completions");
    let (code, s) = c.post(
        JOBS,
        &job(
            "bad",
            json!({"completionMode": "Indexed", "parallelism": 2}),
            "echo",
        ),
    );
    assert_eq!(code, 422, "{s}");
    // The template is immutable; parallelism is not.
    assert_eq!(
        c.post(JOBS, &job("j", json!({"suspend": true}), "echo")).0,
        201
    );
    let (code, s) = c.patch(
        &format!("{JOBS}/j"),
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other"}]}}}}),
    );
    assert_eq!(code, 422, "{s}");
    assert_eq!(s["details"]["causes"][0]["field"], "spec.template");
    assert_eq!(
        c.patch(&format!("{JOBS}/j"), &json!({"spec": {"parallelism": 3}}))
            .0,
        200
    );
    // Ill-typed values are refused before validation.
    let (code, _) = c.post(JOBS, &job("bad", json!({"parallelism": "x"}), "echo"));
    assert_eq!(code, 400);

    let cj = |name: &str, schedule: &str, tz: Option<&str>| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "timeZone": tz, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    };
    let (code, s) = c.post(CRONJOBS, &cj("bad", "61 * * * *", None));
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "CronJob.batch \"bad\" is invalid: spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
    );
    let (code, s) = c.post(CRONJOBS, &cj("bad", "TZ=UTC * * * * *", None));
    assert_eq!(code, 422);
    assert!(s["message"]
        .as_str()
        .unwrap()
        .contains("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"));
    let (code, s) = c.post(CRONJOBS, &cj("bad", "@hourly", Some("Europe/Pariss")));
    assert_eq!(code, 422);
    assert!(
        s["message"].as_str().unwrap().ends_with(
            "spec.timeZone: Invalid value: \"Europe/Pariss\": unknown time zone Europe/Pariss"
        ),
        "{s}"
    );
    let long = "x".repeat(53);
    assert_eq!(c.post(CRONJOBS, &cj(&long, "@hourly", None)).0, 422);
    let (code, v) = c.post(
        CRONJOBS,
        &cj("ok", "0 9 * * mon-fri", Some("Europe/Berlin")),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(v["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(v["spec"]["failedJobsHistoryLimit"], 1);
    let out = ok(&c.kubectl(&["get", "cronjobs"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        [
            "ok",
            "0",
            "9",
            "*",
            "*",
            "mon-fri",
            "Europe/Berlin",
            "False",
            "0",
            "<none>",
            row[10]
        ],
        "{out}"
    );
}

/// Write the CronJob controller's clock.
fn set_clock(path: &std::path::Path, t: chrono::DateTime<chrono::Utc>) {
    std::fs::write(path, t.to_rfc3339()).unwrap();
}

#[test]
fn cronjobs_run_on_schedule_prune_history_and_cascade() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let start = chrono::Utc::now();
    set_clock(&clock, start);
    let c = cluster(&["--cronjob-clock-file".into(), clock.display().to_string()]);
    ok(&c.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "echo",
        "tick",
    ]));
    ok(&c.kubectl(&[
        "patch",
        "cronjob",
        "tick",
        "-p",
        r#"{"spec":{"successfulJobsHistoryLimit":2}}"#,
    ]));
    let jobs = || -> Vec<Value> {
        let mut j: Vec<Value> = c
            .items(JOBS)
            .into_iter()
            .filter(|j| j["metadata"]["ownerReferences"][0]["name"] == "tick")
            .collect();
        j.sort_by_key(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        j
    };
    // Nothing runs before the first schedule time.
    stays(Duration::from_millis(600), "no Job yet", || {
        jobs().is_empty()
    });
    // Move time past four schedule times, one at a time: a Job per run.
    let first = {
        let s = coxswain_api::cron::Schedule::parse("*/5 * * * *").unwrap();
        s.next_after(start, coxswain_api::cron::Tz::UTC).unwrap()
    };
    for run in 0..4 {
        let at = first + chrono::Duration::minutes(5 * run);
        set_clock(&clock, at + chrono::Duration::seconds(1));
        let name = format!("tick-{}", at.timestamp() / 60);
        let j = eventually(T, &format!("Job {name}"), || {
            c.get(&format!("{JOBS}/{name}"))
                .1
                .as_object()
                .filter(|o| o.contains_key("spec"))
                .cloned()
        });
        assert_eq!(
            j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        wait_condition(&c, &name, "Complete");
    }
    // Only the two newest successful Jobs are kept.
    let kept = eventually(T, "history pruned to 2", || {
        let j = jobs();
        (j.len() == 2).then_some(j)
    });
    let last = first + chrono::Duration::minutes(15);
    assert_eq!(
        kept[1]["metadata"]["name"],
        format!("tick-{}", last.timestamp() / 60)
    );
    // The last run's Job finishing and the CronJob's status saying so are two steps.
    let cj = eventually(T, "no active run", || {
        let (_, cj) = c.get(&format!("{CRONJOBS}/tick"));
        cj["status"]["active"].is_null().then_some(cj)
    });
    assert_eq!(
        cj["status"]["lastScheduleTime"],
        last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert!(cj["status"]["lastSuccessfulTime"].is_string(), "{cj}");

    // kubectl create job --from: a manual run owned by the CronJob (counted in its history,
    // which keeps one more so the manual run, started in the same second as the last
    // scheduled one, is not the one pruned).
    ok(&c.kubectl(&[
        "patch",
        "cronjob",
        "tick",
        "-p",
        r#"{"spec":{"successfulJobsHistoryLimit":3}}"#,
    ]));
    ok(&c.kubectl(&["create", "job", "manual", "--from=cronjob/tick"]));
    let j = wait_condition(&c, "manual", "Complete");
    assert_eq!(
        j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );

    // Forbid: while a run is active, the next time is skipped.
    ok(&c.kubectl(&[
        "create",
        "cronjob",
        "long",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "sleep",
        "infinity",
    ]));
    ok(&c.kubectl(&[
        "patch",
        "cronjob",
        "long",
        "-p",
        r#"{"spec":{"concurrencyPolicy":"Forbid"}}"#,
    ]));
    let at = first + chrono::Duration::minutes(20);
    set_clock(&clock, at + chrono::Duration::seconds(1));
    eventually(T, "one long Job", || {
        let (_, cj) = c.get(&format!("{CRONJOBS}/long"));
        (cj["status"]["active"].as_array().map(Vec::len) == Some(1)).then_some(())
    });
    set_clock(
        &clock,
        at + chrono::Duration::minutes(5) + chrono::Duration::seconds(1),
    );
    eventually(T, "the skip is reported", || {
        c.items("/api/v1/namespaces/default/events")
            .iter()
            .any(|e| e["reason"] == "JobAlreadyActive")
            .then_some(())
    });
    let long_jobs = c
        .items(JOBS)
        .into_iter()
        .filter(|j| j["metadata"]["ownerReferences"][0]["name"] == "long")
        .count();
    assert_eq!(long_jobs, 1);

    // Deleting the CronJob deletes its Jobs and their pods.
    ok(&c.kubectl(&["delete", "cronjob", "tick"]));
    eventually(T, "tick's Jobs are gone", || {
        jobs().is_empty().then_some(())
    });
    eventually(T, "tick's pods are gone", || {
        c.items(PODS)
            .iter()
            .all(|p| {
                !p["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("tick-")
            })
            .then_some(())
    });
}

#[test]
fn running_jobs_change_and_hostile_numbers_stop_nothing() {
    let c = cluster(&[]);
    // Numbers at the edge of their types neither crash nor stall the controllers.
    let spec = json!({"completionMode": "Indexed", "completions": 2147483647, "parallelism": 2});
    assert_eq!(c.post(JOBS, &job("huge", spec, "sleep infinity")).0, 201);
    let spec = json!({"activeDeadlineSeconds": 9223372036854775807i64});
    assert_eq!(c.post(JOBS, &job("forever", spec, "echo ok")).0, 201);
    wait_condition(&c, "forever", "Complete");
    eventually(T, "two pods of the huge Job", || {
        (job_pods(&c, "huge").len() == 2).then_some(())
    });

    // Suspending a running Job stops its pods without counting them as failures.
    let spec = json!({"parallelism": 3, "completions": 3});
    assert_eq!(c.post(JOBS, &job("pause", spec, "sleep infinity")).0, 201);
    let active = |name: &str| {
        job_pods(&c, name)
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count()
    };
    eventually(T, "3 running", || (active("pause") == 3).then_some(()));
    ok(&c.kubectl(&[
        "patch",
        "job",
        "pause",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]));
    eventually(T, "suspended, no pods", || {
        let (_, j) = c.get(&format!("{JOBS}/pause"));
        (condition(&j, "Suspended").is_some() && job_pods(&c, "pause").is_empty()).then_some(j)
    });
    let (_, j) = c.get(&format!("{JOBS}/pause"));
    assert!(j["status"]["failed"].is_null(), "{j}");
    ok(&c.kubectl(&[
        "patch",
        "job",
        "pause",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]));
    eventually(T, "3 running again", || {
        (active("pause") == 3).then_some(())
    });
    // Lowering parallelism removes pods, not as failures.
    ok(&c.kubectl(&[
        "patch",
        "job",
        "pause",
        "-p",
        r#"{"spec":{"parallelism":1}}"#,
    ]));
    eventually(T, "1 running", || {
        (active("pause") == 1 && job_pods(&c, "pause").len() == 1).then_some(())
    });
    let (_, j) = c.get(&format!("{JOBS}/pause"));
    assert!(j["status"]["failed"].is_null(), "{j}");
    assert!(condition(&j, "Failed").is_none());

    // Elastic Indexed Jobs: completions and parallelism together; pods beyond go.
    let spec = json!({"completionMode": "Indexed", "completions": 4, "parallelism": 4});
    assert_eq!(c.post(JOBS, &job("elastic", spec, "sleep infinity")).0, 201);
    eventually(T, "4 running", || (active("elastic") == 4).then_some(()));
    ok(&c.kubectl(&[
        "patch",
        "job",
        "elastic",
        "-p",
        r#"{"spec":{"completions":2,"parallelism":2}}"#,
    ]));
    eventually(T, "indexes 0 and 1 left", || {
        let mut ix: Vec<String> = job_pods(&c, "elastic")
            .iter()
            .map(|p| {
                p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        ix.sort();
        (ix == ["0", "1"]).then_some(())
    });

    // Deleting a running Job (kubectl: background) deletes its pods; none are re-created.
    ok(&c.kubectl(&["delete", "job", "pause"]));
    eventually(T, "the Job and its pods are gone", || {
        (c.get(&format!("{JOBS}/pause")).0 == 404 && job_pods(&c, "pause").is_empty()).then_some(())
    });
    stays(Duration::from_secs(1), "no pod comes back", || {
        job_pods(&c, "pause").is_empty()
    });
    // Unsupported fields are refused, not ignored.
    let (code, s) = c.post(
        JOBS,
        &job(
            "perindex",
            json!({"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1}),
            "echo",
        ),
    );
    assert_eq!(code, 422, "{s}");
    // A selector of one's own needs manualSelector.
    let mut own = job(
        "own",
        json!({"selector": {"matchLabels": {"app": "x"}}}),
        "echo",
    );
    own["spec"]["template"]["metadata"] = json!({"labels": {"app": "x"}});
    let (code, s) = c.post(JOBS, &own);
    assert_eq!(code, 422, "{s}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("`selector` not auto-generated"),
        "{s}"
    );
}
