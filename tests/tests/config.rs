//! Secrets, ConfigMap immutability and ServiceAccounts on the real binaries with the real
//! kubectl (whose `create secret|serviceaccount` send protobuf).

use coxswain_testkit::{eventually, ok, TestCluster};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const SECRETS: &str = "/api/v1/namespaces/default/secrets";

#[test]
fn secrets_are_typed_validated_and_immutable_when_asked() {
    let c = TestCluster::start(0);
    assert_eq!(
        ok(&c.kubectl(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=user=admin",
            "--from-literal=pass=s3cret"
        ]))
        .trim(),
        "secret/db created"
    );
    let out = ok(&c.kubectl(&["get", "secret", "db"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["db", "Opaque", "2"]);
    let (_, db) = c.get(&format!("{SECRETS}/db"));
    assert_eq!(db["data"]["user"], "YWRtaW4=");
    ok(&c.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "reg",
        "--docker-username=u",
        "--docker-password=p",
    ]));
    let (_, reg) = c.get(&format!("{SECRETS}/reg"));
    assert_eq!(reg["type"], "kubernetes.io/dockerconfigjson");
    // stringData is merged into data and never stored.
    let (code, s) = c.post(
        SECRETS,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sd"},
        "data": {"a": "YQ=="}, "stringData": {"a": "x", "b": "yy"}}),
    );
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["data"], json!({"a": "eA==", "b": "eXk="}));
    assert!(s.get("stringData").is_none());
    // Each type's keys; base64; the type may not change.
    let (code, st) = c.post(
        SECRETS,
        &json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {}}),
    );
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "Secret \"t\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]"
    );
    let (code, st) = c.post(
        SECRETS,
        &json!({"metadata": {"name": "j"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "W10="}}),
    );
    assert_eq!(code, 422, "{st}");
    assert!(st["message"]
        .as_str()
        .unwrap()
        .contains("data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\""));
    let (code, st) = c.post(
        SECRETS,
        &json!({"metadata": {"name": "b64"}, "data": {"a": "not base64!"}}),
    );
    assert_eq!(code, 400, "{st}");
    let (code, st) = c.patch(
        &format!("{SECRETS}/db"),
        &json!({"type": "example.com/other"}),
    );
    assert_eq!(code, 422);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("type: Invalid value: \"example.com/other\": field is immutable"),
        "{st}"
    );
    // immutable: the data stays, the flag stays; labels may change.
    let (code, _) = c.post(
        SECRETS,
        &json!({"metadata": {"name": "frozen"}, "immutable": true, "stringData": {"k": "v"}}),
    );
    assert_eq!(code, 201);
    let (code, st) = c.patch(
        &format!("{SECRETS}/frozen"),
        &json!({"stringData": {"k": "other"}}),
    );
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "Secret \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let (code, _) = c.patch(
        &format!("{SECRETS}/frozen"),
        &json!({"metadata": {"labels": {"a": "b"}}}),
    );
    assert_eq!(code, 200);
    for b in [
        c.get(&format!("{SECRETS}/t")).0,
        c.get(&format!("{SECRETS}/b64")).0,
    ] {
        assert_eq!(b, 404, "nothing stored");
    }
    // ConfigMaps freeze the same way.
    ok(&c.kubectl(&["create", "configmap", "cm", "--from-literal=a=1"]));
    let cms = "/api/v1/namespaces/default/configmaps";
    assert_eq!(
        c.patch(&format!("{cms}/cm"), &json!({"immutable": true})).0,
        200
    );
    let (code, st) = c.patch(&format!("{cms}/cm"), &json!({"data": {"a": "2"}}));
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "ConfigMap \"cm\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let (code, _) = c.patch(&format!("{cms}/cm"), &json!({"immutable": false}));
    assert_eq!(code, 422);
}

#[test]
fn every_namespace_has_a_default_service_account_and_pods_use_it() {
    let c = TestCluster::start(1);
    ok(&c.kubectl(&["create", "namespace", "team"]));
    eventually(T, "team/default", || {
        (c.get("/api/v1/namespaces/team/serviceaccounts/default").0 == 200).then_some(())
    });
    let out = ok(&c.kubectl(&["get", "sa", "-n", "team"]));
    assert!(out.starts_with("NAME") && out.contains("default"), "{out}");
    // Deleted, it comes back.
    ok(&c.kubectl(&["delete", "sa", "default", "-n", "team"]));
    eventually(T, "default again", || {
        (c.get("/api/v1/namespaces/team/serviceaccounts/default").0 == 200).then_some(())
    });
    assert_eq!(
        ok(&c.kubectl(&["create", "serviceaccount", "robot", "-n", "team"])).trim(),
        "serviceaccount/robot created"
    );
    ok(&c.kubectl(&["run", "plain", "-n", "team", "--image=nginx"]));
    let (_, p) = c.get("/api/v1/namespaces/team/pods/plain");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    let pod = json!({"metadata": {"name": "bot"}, "spec": {"serviceAccountName": "robot",
        "containers": [{"name": "c", "image": "nginx"}]}});
    let (code, p) = c.post("/api/v1/namespaces/team/pods", &pod);
    assert_eq!(code, 201);
    assert_eq!(
        (
            p["spec"]["serviceAccountName"].as_str(),
            p["spec"]["serviceAccount"].as_str()
        ),
        (Some("robot"), Some("robot"))
    );
    // An update that leaves it out keeps it (from the pod as it is once scheduled).
    let p = eventually(T, "bot scheduled", || {
        let (_, p) = c.get("/api/v1/namespaces/team/pods/bot");
        p["spec"]["nodeName"].is_string().then_some(p)
    });
    let mut put = p.clone();
    put["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    put["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccountName");
    put["spec"]
        .as_object_mut()
        .unwrap()
        .remove("serviceAccount");
    let (code, p) = c.put("/api/v1/namespaces/team/pods/bot", &put);
    assert_eq!(code, 200, "{p}");
    assert_eq!(p["spec"]["serviceAccountName"], "robot");
}

#[test]
fn pods_wait_for_the_config_maps_secrets_and_claims_they_name() {
    let c = TestCluster::start(1);
    let pods = "/api/v1/namespaces/default/pods";
    let waiting = |name: &str| -> Option<(String, String)> {
        let (_, p) = c.get(&format!("{pods}/{name}"));
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        Some((
            w["reason"].as_str()?.to_string(),
            w["message"].as_str().unwrap_or("").to_string(),
        ))
    };
    let running = |name: &str| {
        let (_, p) = c.get(&format!("{pods}/{name}"));
        p["status"]["phase"] == "Running"
    };
    // The environment names a ConfigMap key: CreateContainerConfigError until it exists.
    let pod = json!({"metadata": {"name": "env"}, "spec": {"containers": [{"name": "c", "image": "nginx",
        "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nothere", "key": "x", "optional": true}}}]}]}});
    assert_eq!(c.post(pods, &pod).0, 201);
    eventually(T, "CreateContainerConfigError", || {
        (waiting("env")?
            == (
                "CreateContainerConfigError".into(),
                "configmap \"settings\" not found".into(),
            ))
            .then_some(())
    });
    let out = ok(&c.kubectl(&["get", "pod", "env"]));
    assert!(out.contains("CreateContainerConfigError"), "{out}");
    eventually(T, "the Failed event", || {
        c.items("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Denv,reason%3DFailed")
            .iter()
            .any(|e| e["message"] == "Error: configmap \"settings\" not found")
            .then_some(())
    });
    ok(&c.kubectl(&["create", "configmap", "settings", "--from-literal=other=1"]));
    eventually(T, "the missing key", || {
        (waiting("env")?.1 == "couldn't find key mode in ConfigMap default/settings").then_some(())
    });
    assert_eq!(
        c.patch(
            "/api/v1/namespaces/default/configmaps/settings",
            &json!({"data": {"mode": "fast"}})
        )
        .0,
        200
    );
    eventually(T, "running once the key exists", || {
        running("env").then_some(())
    });

    // A volume names a Secret: ContainerCreating and FailedMount until it exists.
    let pod = json!({"metadata": {"name": "vol"}, "spec": {"containers": [{"name": "c", "image": "nginx"}],
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "maybe", "configMap": {"name": "absent", "optional": true}}]}});
    assert_eq!(c.post(pods, &pod).0, 201);
    eventually(T, "FailedMount", || {
        c.items("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dvol,reason%3DFailedMount")
            .iter()
            .any(|e| e["message"] == "MountVolume.SetUp failed for volume \"creds\" : secret \"creds\" not found")
            .then_some(())
    });
    assert_eq!(
        waiting("vol").map(|w| w.0),
        Some("ContainerCreating".to_string())
    );
    assert!(!running("vol"));
    ok(&c.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=token=t",
    ]));
    eventually(T, "running once the secret exists", || {
        running("vol").then_some(())
    });
    // A claim that does not exist: the scheduler keeps the pod Pending, saying so, until
    // the claim exists; then the claim is provisioned for the pod's node and the pod runs.
    let pod = json!({"metadata": {"name": "claimed"}, "spec": {"containers": [{"name": "c", "image": "nginx"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}});
    assert_eq!(c.post(pods, &pod).0, 201);
    eventually(T, "unschedulable for the missing claim", || {
        let (_, p) = c.get(&format!("{pods}/claimed"));
        p["status"]["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("persistentvolumeclaim \"data\" not found"))
            .then_some(())
    });
    let claim = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(
        c.post("/api/v1/namespaces/default/persistentvolumeclaims", &claim)
            .0,
        201
    );
    eventually(T, "running once the claim exists", || {
        running("claimed").then_some(())
    });
    // A pod put on a node directly (no scheduler) waits in the kubelet instead.
    let pod = json!({"metadata": {"name": "direct"}, "spec": {"nodeName": "node-1",
        "containers": [{"name": "c", "image": "nginx"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "nope"}}]}});
    assert_eq!(c.post(pods, &pod).0, 201);
    eventually(T, "FailedMount for the claim", || {
        c.items("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Ddirect,reason%3DFailedMount")
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("persistentvolumeclaim \"nope\" not found")))
            .then_some(())
    });
}

/// A self-signed certificate (CN example.com, valid until 2126) and its key, for
/// `kubectl create secret tls` (kubectl checks that they belong together).
const TLS_CRT: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUcgRsdNeDXfLDtAyb5KpKdJyLg+gwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wIBcNMjYxMjAxMDAzODAzWhgPMjEyNjEx
MDcwMDM4MDNaMBYxFDASBgNVBAMMC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEZLhm0e5uEDKHpQqI4fUJRRK6o6HOnyEC3YZruBQtNENiQHv0
1CfGjlCWNf+sOh2UgjcDTxsaRnZUKZrwIivT4aNTMFEwHQYDVR0OBBYEFO2jpTVO
7GbY4Bhr/oxJY5ih7JE0MB8GA1UdIwQYMBaAFO2jpTVO7GbY4Bhr/oxJY5ih7JE0
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgSeS2CqLIB33vfU1Y
xKvzXCncKvqSBInzNDMwMefdfakCIBc455N+/yJJu16TeRK3me4sRRQMwm7clQsT
I/Ns4mDV
-----END CERTIFICATE-----
";
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgShhKeT5DJcIavb0p
J+9eIGJ0bWaKwYxVQJFFnSPLyDOhRANCAARkuGbR7m4QMoelCojh9QlFErqjoc6f
IQLdhmu4FC00Q2JAe/TUJ8aOUJY1/6w6HZSCNwNPGxpGdlQpmvAiK9Ph
-----END PRIVATE KEY-----
";

#[test]
fn kubectl_create_secret_tls() {
    let c = TestCluster::start(0);
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, TLS_CRT).unwrap();
    std::fs::write(&key, TLS_KEY).unwrap();
    let out = ok(&c.kubectl(&[
        "create",
        "secret",
        "tls",
        "web-tls",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ]));
    assert_eq!(out.trim(), "secret/web-tls created");
    let (_, s) = c.get(&format!("{SECRETS}/web-tls"));
    assert_eq!(s["type"], "kubernetes.io/tls");
    let decode = |k: &str| {
        use base64::Engine;
        let b = base64::engine::general_purpose::STANDARD.decode(s["data"][k].as_str().unwrap());
        String::from_utf8(b.unwrap()).unwrap()
    };
    assert_eq!(decode("tls.crt"), TLS_CRT);
    assert_eq!(decode("tls.key"), TLS_KEY);
    let out = ok(&c.kubectl(&["get", "secret", "web-tls"]));
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["web-tls", "kubernetes.io/tls", "2"]);
}
