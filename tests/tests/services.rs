//! Services on the real binaries with the real kubectl: cluster IPs and node ports taken
//! once across API servers and restarts, `kubectl expose` and `create service`, Endpoints and
//! EndpointSlices following pods, the simulated load balancer, ExternalName and headless
//! Services, the `kubernetes` Service.

use coxswain_testkit::{eventually, ok, Etcd, Options, TestCluster};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const SVCS: &str = "/api/v1/namespaces/default/services";

fn row(c: &TestCluster, args: &[&str]) -> Vec<String> {
    let out = ok(&c.kubectl(args));
    out.lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn ready_ips(ep: &Value) -> Vec<String> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect()
}

fn slices(c: &TestCluster, svc: &str) -> Vec<Value> {
    c.items(&format!(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io/service-name%3D{svc}"
    ))
}

#[test]
fn expose_a_deployment_and_its_endpoints_follow_scale_and_readiness() {
    let c = TestCluster::start(2);
    // The API server's own Service, first address of the range, and its Endpoints.
    let r = row(&c, &["get", "svc", "kubernetes"]);
    assert_eq!(
        r[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    );
    let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/kubernetes");
    assert_eq!(ready_ips(&ep), ["127.0.0.1"]);
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], c.port);

    ok(&c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
        "--port=80",
    ]));
    assert_eq!(
        ok(&c.kubectl(&[
            "expose",
            "deployment",
            "web",
            "--port=8080",
            "--target-port=80"
        ]))
        .trim(),
        "service/web exposed"
    );
    let (_, svc) = c.get(&format!("{SVCS}/web"));
    let ip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let n: std::net::Ipv4Addr = ip.parse().unwrap();
    assert!(
        u32::from(n) > u32::from(std::net::Ipv4Addr::new(10, 96, 1, 0))
            && u32::from(n) < u32::from(std::net::Ipv4Addr::new(10, 112, 0, 0)),
        "{ip}: in 10.96.0.0/12, above the addresses kept for static requests"
    );
    assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    let r = row(&c, &["get", "svc", "web", "-o", "wide"]);
    assert_eq!(
        r[..5],
        ["web", "ClusterIP", ip.as_str(), "<none>", "8080/TCP"]
    );
    assert_eq!(r[6], "app=web");
    // Three ready pods in the Endpoints and in one EndpointSlice.
    let ips = eventually(T, "3 ready endpoints", || {
        let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/web");
        let ips = ready_ips(&ep);
        (ips.len() == 3).then_some(ips)
    });
    let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/web");
    assert_eq!(
        ep["subsets"][0]["ports"],
        json!([{"port": 80, "protocol": "TCP"}])
    );
    assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["kind"], "Pod");
    assert!(ep["subsets"][0]["addresses"][0]["nodeName"].is_string());
    eventually(T, "one slice with 3 ready endpoints", || {
        let s = slices(&c, "web");
        let ready = s
            .first()?
            .get("endpoints")?
            .as_array()?
            .iter()
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (s.len() == 1 && ready == 3).then_some(())
    });
    let s = &slices(&c, "web")[0];
    assert!(s["metadata"]["name"].as_str().unwrap().starts_with("web-"));
    assert_eq!(s["addressType"], "IPv4");
    assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let out = ok(&c.kubectl(&["get", "endpoints", "web"]));
    for ip in &ips {
        assert!(out.contains(&format!("{ip}:80")), "{out}");
    }
    let describe = ok(&c.kubectl(&["describe", "service", "web"]));
    assert!(
        describe.contains(&format!("IP:                {ip}")) || describe.contains(&ip),
        "{describe}"
    );
    assert!(
        ips.iter().all(|ip| describe.contains(&format!("{ip}:80"))),
        "{describe}"
    );

    // Scale down: the endpoints follow.
    ok(&c.kubectl(&["scale", "deployment", "web", "--replicas=2"]));
    eventually(T, "2 endpoints", || {
        let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/web");
        let in_slice = slices(&c, "web")
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count();
        (ready_ips(&ep).len() == 2 && in_slice == 2).then_some(())
    });
    // A selected pod that never becomes ready: not ready in both.
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "lame", "labels": {"app": "web"},
            "annotations": {"runtime.coxswain.dev/nginx": "{neverReady: true}"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx",
            "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}]}});
    assert_eq!(c.post("/api/v1/namespaces/default/pods", &pod).0, 201);
    let lame_ip = eventually(T, "the unready pod listed as not ready", || {
        let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/web");
        let not_ready = ep["subsets"][0]["notReadyAddresses"][0]["ip"]
            .as_str()?
            .to_string();
        (ready_ips(&ep).len() == 2).then_some(not_ready)
    });
    eventually(T, "the slice has it not ready", || {
        slices(&c, "web")
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .any(|e| {
                e["addresses"][0] == lame_ip.as_str()
                    && e["conditions"]
                        == json!({"ready": false, "serving": false, "terminating": false})
            })
            .then_some(())
    });
    // Deleting the Service removes its Endpoints and slices and frees its address.
    ok(&c.kubectl(&["delete", "service", "web"]));
    eventually(T, "endpoints and slices gone", || {
        (c.get("/api/v1/namespaces/default/endpoints/web").0 == 404 && slices(&c, "web").is_empty())
            .then_some(())
    });
    let (code, again) = c.post(
        SVCS,
        &service("again", json!({"clusterIP": ip, "ports": [{"port": 80}]})),
    );
    assert_eq!(code, 201, "the released address is free again: {again}");
}

#[test]
fn addresses_and_node_ports_are_never_handed_out_twice() {
    let mut c = TestCluster::start(0);
    let np = |name: &str, port: u16| {
        service(
            name,
            json!({"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "nodePort": port}]}),
        )
    };
    assert_eq!(c.post(SVCS, &np("a", 30080)).0, 201);
    let (code, st) = c.post(SVCS, &np("b", 30080));
    assert_eq!(code, 422, "{st}");
    assert_eq!(
        st["message"],
        "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let (code, st) = c.post(SVCS, &np("b", 80));
    assert_eq!(code, 422);
    assert!(st["message"].as_str().unwrap().ends_with(
        "provided port is not in the valid range. The range of valid ports is 30000-32767"
    ));
    let with_ip =
        |name: &str, ip: &str| service(name, json!({"clusterIP": ip, "ports": [{"port": 80}]}));
    assert_eq!(c.post(SVCS, &with_ip("ip1", "10.96.0.10")).0, 201);
    let (code, st) = c.post(SVCS, &with_ip("ip2", "10.96.0.10"));
    assert_eq!(code, 422);
    assert_eq!(
        st["message"],
        "Service \"ip2\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.10\"}: failed to allocate IP 10.96.0.10: provided IP is already allocated"
    );
    let (code, st) = c.post(SVCS, &with_ip("ip3", "1.1.1.1"));
    assert_eq!(code, 422);
    assert!(st["message"].as_str().unwrap().contains(
        "the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
    ));
    // A NodePort Service left to choose gets a port in range; nothing failed was kept.
    let (_, auto) = c.post(
        SVCS,
        &service(
            "auto",
            json!({"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}),
        ),
    );
    let port = auto["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&port), "{auto}");
    // The cluster IP may not change; an update that leaves values out keeps them.
    let (code, st) = c.patch(
        &format!("{SVCS}/ip1"),
        &json!({"spec": {"clusterIP": "10.96.0.11", "clusterIPs": ["10.96.0.11"]}}),
    );
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("may not change once set"),
        "{st}"
    );
    let (_, cur) = c.get(&format!("{SVCS}/auto"));
    let mut put = cur.clone();
    put["spec"]["ports"][0]["nodePort"].take();
    put["spec"]["clusterIP"] = json!("");
    put["spec"]["clusterIPs"] = json!([]);
    let (code, updated) = c.put(&format!("{SVCS}/auto"), &put);
    assert_eq!(code, 200, "{updated}");
    assert_eq!(
        updated["spec"]["ports"][0]["nodePort"],
        cur["spec"]["ports"][0]["nodePort"]
    );
    assert_eq!(updated["spec"]["clusterIP"], cur["spec"]["clusterIP"]);
    // Held across a restart of the API server.
    c.kill("apiserver");
    c.start_apiserver();
    assert_eq!(c.post(SVCS, &np("c", 30080)).0, 422);
    // Changing the type to ClusterIP gives the node port back.
    let (code, _) = c.patch(
        &format!("{SVCS}/a"),
        &json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(code, 200);
    assert_eq!(c.post(SVCS, &np("c", 30080)).0, 201);
}

#[test]
fn two_api_servers_on_etcd_never_hand_out_the_same_address() {
    let etcd = Etcd::start();
    let mut c = TestCluster::with(Options {
        nodes: 0,
        controllers: false,
        scheduler: false,
        apiserver_args: etcd.apiserver_args("/coxswain/"),
        ..Default::default()
    });
    let b = c.start_extra_apiserver("apiserver-2");
    let servers = [c.server.clone(), b];
    let http = reqwest::blocking::Client::new();
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let (server, http) = (servers[i % 2].clone(), http.clone());
            std::thread::spawn(move || {
                let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("s{i}")},
                    "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}});
                let v: Value = http
                    .post(format!("{server}{SVCS}"))
                    .json(&body)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                (
                    v["spec"]["clusterIP"].as_str().unwrap_or("").to_string(),
                    v["spec"]["ports"][0]["nodePort"].as_u64().unwrap_or(0),
                )
            })
        })
        .collect();
    let got: Vec<(String, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ips: std::collections::HashSet<&str> = got.iter().map(|(ip, _)| ip.as_str()).collect();
    let ports: std::collections::HashSet<u64> = got.iter().map(|(_, p)| *p).collect();
    assert_eq!((ips.len(), ports.len()), (40, 40), "all distinct: {got:?}");
    assert!(!ips.contains(""));
    // Two servers asking for the same address at once: one gets it.
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (server, http) = (servers[i].clone(), http.clone());
            std::thread::spawn(move || {
                let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("same{i}")},
                    "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}});
                http.post(format!("{server}{SVCS}")).json(&body).send().unwrap().status().as_u16()
            })
        })
        .collect();
    let mut codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [201, 422]);
}

#[test]
fn load_balancer_external_name_headless_and_create_service() {
    let c = TestCluster::start(1);
    // kubectl create service sends protobuf.
    assert_eq!(
        ok(&c.kubectl(&["create", "service", "loadbalancer", "lb", "--tcp=80:8080"])).trim(),
        "service/lb created"
    );
    let r = eventually(T, "an ingress IP", || {
        let r = row(&c, &["get", "svc", "lb"]);
        (r[3] != "<pending>").then_some(r)
    });
    assert_eq!(r[1], "LoadBalancer");
    assert_eq!(r[3], "172.18.255.200");
    assert!(r[4].starts_with("80:3") && r[4].ends_with("/TCP"), "{r:?}");
    let (_, lb) = c.get(&format!("{SVCS}/lb"));
    assert_eq!(
        lb["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "172.18.255.200", "ipMode": "VIP"}])
    );
    assert_eq!(lb["spec"]["ports"][0]["name"], "80-8080");
    eventually(T, "the Ensured event", || {
        c.items("/api/v1/namespaces/default/events?fieldSelector=reason%3DEnsuredLoadBalancer")
            .first()
            .map(|_| ())
    });
    ok(&c.kubectl(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name",
        "example.com",
    ]));
    let r = row(&c, &["get", "svc", "ext"]);
    assert_eq!(r[..4], ["ext", "ExternalName", "<none>", "example.com"]);
    ok(&c.kubectl(&["create", "service", "clusterip", "hl", "--clusterip=None"]));
    let r = row(&c, &["get", "svc", "hl"]);
    assert_eq!(r[..3], ["hl", "ClusterIP", "None"]);
    ok(&c.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:80",
        "--node-port=30099",
    ]));
    assert_eq!(row(&c, &["get", "svc", "np"])[4], "80:30099/TCP");
    // Bad input, named.
    let (code, st) = c.post(
        SVCS,
        &service(
            "bad",
            json!({"type": "Weird", "ports": [{"port": 0}, {"port": 70000, "protocol": "ICMP"}]}),
        ),
    );
    assert_eq!(code, 422, "{st}");
    let fields: Vec<&str> = st["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    for f in [
        "spec.type",
        "spec.ports[0].name",
        "spec.ports[0].port",
        "spec.ports[1].port",
        "spec.ports[1].protocol",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let (code, _) = c.post(SVCS, &service("1abc", json!({"ports": [{"port": 80}]})));
    assert_eq!(code, 422, "names are DNS-1035 labels");
    let (code, st) = c.post(SVCS, &service("noport", json!({"selector": {"a": "b"}})));
    assert_eq!(
        (code, st["message"].as_str()),
        (
            422,
            Some("Service \"noport\" is invalid: spec.ports: Required value")
        )
    );
}

#[test]
fn expose_a_pod_and_a_replication_controller() {
    let c = TestCluster::start(0);
    let pod = json!({"metadata": {"name": "solo", "labels": {"app": "solo", "tier": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
    assert_eq!(c.post("/api/v1/namespaces/default/pods", &pod).0, 201);
    assert_eq!(
        ok(&c.kubectl(&["expose", "pod", "solo", "--port=8080", "--target-port=80"])).trim(),
        "service/solo exposed"
    );
    let (_, svc) = c.get("/api/v1/namespaces/default/services/solo");
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": "solo", "tier": "web"})
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    let rc = json!({"metadata": {"name": "legacy"}, "spec": {"replicas": 1, "selector": {"app": "legacy"},
        "template": {"metadata": {"labels": {"app": "legacy"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        c.post("/api/v1/namespaces/default/replicationcontrollers", &rc)
            .0,
        201
    );
    assert_eq!(
        ok(&c.kubectl(&["expose", "rc", "legacy", "--port=80", "--type=NodePort"])).trim(),
        "service/legacy exposed"
    );
    let (_, svc) = c.get("/api/v1/namespaces/default/services/legacy");
    assert_eq!(svc["spec"]["selector"], json!({"app": "legacy"}));
    assert_eq!(svc["spec"]["type"], "NodePort");
    let port = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&port), "{port}");
}
