"""The official Python client against a running Coxswain cluster.

Usage: python3 client_check.py http://127.0.0.1:PORT
Exercises every verb (create, read, list, watch, patch, replace, delete, duplicate create) on
Namespaces, ConfigMaps (and their immutability), Nodes, Pods, ReplicaSets, ReplicationControllers, Events, Deployments, StatefulSets, DaemonSets, Jobs, CronJobs, PodDisruptionBudgets, HorizontalPodAutoscalers (autoscaling/v2 and v1), Services, Endpoints, EndpointSlices, Secrets, ServiceAccounts, Ingresses, IngressClasses, NetworkPolicies, PriorityClasses, APIServices, Roles, ClusterRoles, RoleBindings, ClusterRoleBindings, ResourceQuotas, LimitRanges, PersistentVolumes, PersistentVolumeClaims, StorageClasses, Events through events.k8s.io/v1, ComponentStatuses, watch streams, and error statuses; every response goes through the
client's strict models, so a missing required field fails here. Prints `N passed, 0 failed`.
"""
import sys
import time

import functools

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

server = sys.argv[1]
cfg = client.Configuration()
cfg.host = server
api_client = client.ApiClient(cfg)
core = client.CoreV1Api(api_client)
apps = client.AppsV1Api(api_client)
batch = client.BatchV1Api(api_client)
policy = client.PolicyV1Api(api_client)
hpa_v2 = client.AutoscalingV2Api(api_client)
hpa_v1 = client.AutoscalingV1Api(api_client)
discovery = client.DiscoveryV1Api(api_client)
networking = client.NetworkingV1Api(api_client)
scheduling = client.SchedulingV1Api(api_client)
apireg = client.ApiregistrationV1Api(api_client)
rbacapi = client.RbacAuthorizationV1Api(api_client)
storageapi = client.StorageV1Api(api_client)

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def eventually(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    print(f"timed out waiting for {what}")
    return None


def ns_lister(method, **fixed):
    """`method` on namespace py, keeping its signature (the watch reads the model type there)."""
    @functools.wraps(method)
    def f(**kw):
        return method("py", **fixed, **kw)
    return f


def crud(kind, create, read, list_, patch, replace, delete, body, patch_body, mutate, check_patch, check_replace):
    """Every verb on one kind through the client's typed methods and models."""
    name = body["metadata"]["name"]
    obj = create(body)
    check(f"{kind} create", obj.metadata.uid is not None and obj.metadata.resource_version)
    check(f"{kind} read", read(name).metadata.uid == obj.metadata.uid)
    check(f"{kind} list", name in [o.metadata.name for o in list_().items])
    w = watch.Watch()
    seen = False
    for ev in w.stream(list_, timeout_seconds=5):
        if ev["type"] == "ADDED" and ev["object"].metadata.name == name:
            seen = True
            w.stop()
    check(f"{kind} watch", seen)
    check(f"{kind} patch", check_patch(patch(name, patch_body)))
    for _ in range(10):
        cur = read(name)
        mutate(cur)
        try:
            replaced = replace(name, cur)
            break
        except ApiException as e:
            if e.status != 409:
                raise
    check(f"{kind} replace", check_replace(replaced))
    try:
        create(body)
        check(f"{kind} duplicate create is 409 AlreadyExists", False)
    except ApiException as e:
        check(f"{kind} duplicate create is 409 AlreadyExists", e.status == 409 and "AlreadyExists" in e.body)
    delete(name)
    def gone():
        try:
            read(name)
            return False
        except ApiException as e:
            return e.status == 404
    check(f"{kind} delete", eventually(f"{kind} gone", gone))


def labelled(o):
    o.metadata.labels = dict(o.metadata.labels or {}, replaced="yes")


crud(
    "namespace",
    core.create_namespace,
    core.read_namespace,
    core.list_namespace,
    core.patch_namespace,
    lambda n, b: core.replace_namespace(n, b),
    core.delete_namespace,
    {"metadata": {"name": "py-crud"}},
    {"metadata": {"labels": {"patched": "yes"}}},
    labelled,
    lambda o: o.metadata.labels.get("patched") == "yes",
    lambda o: o.metadata.labels.get("replaced") == "yes" and o.spec.finalizers == ["kubernetes"],
)

crud(
    "node",
    core.create_node,
    core.read_node,
    core.list_node,
    core.patch_node,
    core.replace_node,
    core.delete_node,
    {"metadata": {"name": "py-node", "labels": {"disk": "ssd"}}, "spec": {"unschedulable": True}},
    {"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}},
    labelled,
    lambda o: o.spec.taints[0].key == "k" and o.spec.unschedulable,
    lambda o: o.metadata.labels == {"disk": "ssd", "replaced": "yes"},
)

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
check("namespace listed", "py" in [n.metadata.name for n in core.list_namespace().items])

bare_pod = {
    "metadata": {"name": "bare", "labels": {"app": "bare"}},
    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
}
crud(
    "pod",
    lambda b: core.create_namespaced_pod("py", b),
    lambda n: core.read_namespaced_pod(n, "py"),
    ns_lister(core.list_namespaced_pod),
    lambda n, b: core.patch_namespaced_pod(n, "py", b),
    lambda n, b: core.replace_namespaced_pod(n, "py", b),
    lambda n: core.delete_namespaced_pod(n, "py", grace_period_seconds=0),
    bare_pod,
    {"metadata": {"annotations": {"patched": "yes"}}},
    labelled,
    lambda o: o.metadata.annotations.get("patched") == "yes" and o.spec.restart_policy == "Always",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)

rs_body = {
    "metadata": {"name": "py-rs"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "py-rs"}},
        "template": {"metadata": {"labels": {"app": "py-rs"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}},
    },
}
crud(
    "replicaset",
    lambda b: apps.create_namespaced_replica_set("py", b),
    lambda n: apps.read_namespaced_replica_set(n, "py"),
    ns_lister(apps.list_namespaced_replica_set),
    lambda n, b: apps.patch_namespaced_replica_set(n, "py", b),
    lambda n, b: apps.replace_namespaced_replica_set(n, "py", b),
    lambda n: apps.delete_namespaced_replica_set(n, "py"),
    rs_body,
    {"spec": {"replicas": 2}},
    labelled,
    lambda o: o.spec.replicas == 2,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
check(
    "replicaset pods garbage collected",
    eventually("replicaset pods gone", lambda: not core.list_namespaced_pod("py", label_selector="app=py-rs").items),
)

rc_body = {
    "metadata": {"name": "py-rc"},
    "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "py-rc"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
}
crud(
    "replicationcontroller",
    lambda b: core.create_namespaced_replication_controller("py", b),
    lambda n: core.read_namespaced_replication_controller(n, "py"),
    ns_lister(core.list_namespaced_replication_controller),
    lambda n, b: core.patch_namespaced_replication_controller(n, "py", b),
    lambda n, b: core.replace_namespaced_replication_controller(n, "py", b),
    lambda n: core.delete_namespaced_replication_controller(n, "py"),
    rc_body,
    {"spec": {"replicas": 2}},
    labelled,
    lambda o: o.spec.replicas == 2 and o.spec.selector == {"app": "py-rc"},
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
core.create_namespaced_replication_controller("py", dict(rc_body, metadata={"name": "py-rc-2"}))
core.patch_namespaced_replication_controller_scale("py-rc-2", "py", {"spec": {"replicas": 2}})
check("replicationcontroller scale", core.read_namespaced_replication_controller_scale("py-rc-2", "py").spec.replicas == 2)
check("replicationcontroller status", eventually("rc pods", lambda: (
    core.read_namespaced_replication_controller_status("py-rc-2", "py").status.replicas == 2)))
core.delete_namespaced_replication_controller("py-rc-2", "py")

event_body = {
    "metadata": {"name": "py-event"},
    "involvedObject": {"kind": "Pod", "namespace": "py", "name": "bare", "apiVersion": "v1"},
    "reason": "Testing",
    "message": "from the python client",
    "type": "Normal",
    "count": 1,
    "source": {"component": "client_check"},
}
crud(
    "event",
    lambda b: core.create_namespaced_event("py", b),
    lambda n: core.read_namespaced_event(n, "py"),
    ns_lister(core.list_namespaced_event),
    lambda n, b: core.patch_namespaced_event(n, "py", b),
    lambda n, b: core.replace_namespaced_event(n, "py", b),
    lambda n: core.delete_namespaced_event(n, "py"),
    event_body,
    {"count": 2},
    labelled,
    lambda o: o.count == 2 and o.involved_object.name == "bare",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)

body = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "py", "labels": {"app": "py"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "py"}},
        "template": {
            "metadata": {"labels": {"app": "py"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
        },
    },
}
d = apps.create_namespaced_deployment("py", body)
check("deployment created", d.metadata.uid is not None and d.spec.strategy.type == "RollingUpdate")
check("container port defaulted to TCP", d.spec.template.spec.containers[0].ports[0].protocol == "TCP")

pods = eventually(
    "2 running pods",
    lambda: [p for p in core.list_namespaced_pod("py", label_selector="app=py").items if p.status.phase == "Running"]
    if len([p for p in core.list_namespaced_pod("py", label_selector="app=py").items if p.status.phase == "Running"]) == 2
    else None,
)
p = pods[0]
cs = p.status.container_statuses[0]
check("container status complete", cs.image_id and cs.container_id and cs.ready and cs.started and cs.restart_count == 0)
check("pod ips", p.status.pod_ip and p.status.host_ip and p.status.start_time)
check("read pod", core.read_namespaced_pod(p.metadata.name, "py").metadata.uid == p.metadata.uid)

rs = apps.list_namespaced_replica_set("py").items
check("one replicaset owned by the deployment", len(rs) == 1 and rs[0].metadata.owner_references[0].uid == d.metadata.uid)

nodes = core.list_node().items
check("nodes deserialize", len(nodes) >= 1 and nodes[0].status.node_info.kubelet_version.startswith("v1.32"))

events = core.list_namespaced_event("py").items
check("events deserialize", any(e.reason == "Scheduled" for e in events))

apps.patch_namespaced_deployment_scale("py", "py", {"spec": {"replicas": 3}})
check(
    "scaled with a strategic merge patch of /scale",
    eventually("3 pods", lambda: len(core.list_namespaced_pod("py", label_selector="app=py").items) == 3),
)
check("read scale", apps.read_namespaced_deployment_scale("py", "py").spec.replicas == 3)
check("read status", apps.read_namespaced_deployment_status("py", "py").status.observed_generation >= 1)
check("list across namespaces", any(x.metadata.namespace == "py" for x in apps.list_deployment_for_all_namespaces().items))
check("pods across namespaces", len(core.list_pod_for_all_namespaces(label_selector="app=py").items) == 3)

# Read-modify-replace, retried on 409 as clients do: the controllers write status meanwhile.
for attempt in range(10):
    cur = apps.read_namespaced_deployment("py", "py")
    cur.metadata.labels["tier"] = "web"
    try:
        replaced = apps.replace_namespaced_deployment("py", "py", cur)
        break
    except ApiException as e:
        if e.status != 409:
            raise
check("replace", replaced.metadata.labels.get("tier") == "web")
stale = cur
stale.metadata.labels["tier"] = "stale"
try:
    apps.replace_namespaced_deployment("py", "py", stale)
    check("stale replace is a conflict", False)
except ApiException as e:
    check("stale replace is a conflict", e.status == 409)

patched = apps.patch_namespaced_deployment("py", "py", {"metadata": {"annotations": {"a": "b"}}})
check("patch", patched.metadata.annotations.get("a") == "b")

w = watch.Watch()
seen = []
for ev in w.stream(core.list_namespaced_pod, "py", label_selector="app=py", timeout_seconds=3):
    seen.append(ev["type"])
    if len(seen) >= 3:
        w.stop()
check("watch replays current pods as ADDED", seen[:3] == ["ADDED"] * 3, str(seen))

for ev in w.stream(apps.list_namespaced_deployment, "py", timeout_seconds=3):
    check("watch deployments", ev["type"] == "ADDED" and ev["object"].metadata.name == "py")
    w.stop()

invalid = dict(body, metadata={"name": "bad"}, spec=dict(body["spec"], replicas=-1))
try:
    apps.create_namespaced_deployment("py", invalid)
    check("invalid deployment is 422", False)
except ApiException as e:
    check("invalid deployment is 422", e.status == 422 and "spec.replicas" in e.body)

guaranteed = {
    "metadata": {"name": "guaranteed"},
    "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]},
}
check("qosClass Guaranteed", core.create_namespaced_pod("py", guaranteed).status.qos_class == "Guaranteed")

try:
    apps.read_namespaced_deployment("nope", "py")
    check("missing deployment is 404", False)
except ApiException as e:
    check("missing deployment is 404", e.status == 404 and "not found" in e.body)

apps.delete_namespaced_deployment("py", "py")
check("delete cascades", eventually("pods garbage collected", lambda: not core.list_namespaced_pod("py", label_selector="app=py").items))
# deletecollection, as the client's delete_collection_* methods call it.
for i, tier in enumerate(["web", "web", "db"]):
    core.create_namespaced_config_map("py", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=f"dc-{i}", labels={"tier": tier}), data={"k": "v"}))
core.delete_collection_namespaced_config_map("py", label_selector="tier=web")
left = sorted(c.metadata.name for c in core.list_namespaced_config_map("py").items if c.metadata.name.startswith("dc-"))
check("delete_collection_namespaced_config_map deletes what the selector matches", left == ["dc-2"], str(left))
sts_body = {
    "metadata": {"name": "py-sts"},
    "spec": {"replicas": 1, "serviceName": "py-sts", "selector": {"matchLabels": {"app": "py-sts"}},
        "template": {"metadata": {"labels": {"app": "py-sts"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
}
crud(
    "statefulset",
    lambda b: apps.create_namespaced_stateful_set("py", b),
    lambda n: apps.read_namespaced_stateful_set(n, "py"),
    ns_lister(apps.list_namespaced_stateful_set),
    lambda n, b: apps.patch_namespaced_stateful_set(n, "py", b),
    lambda n, b: apps.replace_namespaced_stateful_set(n, "py", b),
    lambda n: apps.delete_namespaced_stateful_set(n, "py"),
    sts_body,
    {"spec": {"replicas": 2}},
    labelled,
    lambda o: o.spec.replicas == 2 and o.spec.update_strategy.rolling_update.partition == 0,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
apps.create_namespaced_stateful_set("py", dict(sts_body, metadata={"name": "py-sts-2"}))
check("statefulset runs its pod", eventually("py-sts-2-0 running", lambda: (
    apps.read_namespaced_stateful_set_status("py-sts-2", "py").status.ready_replicas == 1)))
check("statefulset scale", apps.read_namespaced_stateful_set_scale("py-sts-2", "py").spec.replicas == 1)
check("controller revisions", any(r.revision == 1 for r in apps.list_namespaced_controller_revision("py").items))
apps.delete_namespaced_stateful_set("py-sts-2", "py")

ds_body = {
    "metadata": {"name": "py-ds"},
    "spec": {"selector": {"matchLabels": {"app": "py-ds"}},
        "template": {"metadata": {"labels": {"app": "py-ds"}},
            "spec": {"containers": [{"name": "c", "image": "fluentd:v1"}]}}},
}
crud(
    "daemonset",
    lambda b: apps.create_namespaced_daemon_set("py", b),
    lambda n: apps.read_namespaced_daemon_set(n, "py"),
    ns_lister(apps.list_namespaced_daemon_set),
    lambda n, b: apps.patch_namespaced_daemon_set(n, "py", b),
    lambda n, b: apps.replace_namespaced_daemon_set(n, "py", b),
    lambda n: apps.delete_namespaced_daemon_set(n, "py"),
    ds_body,
    {"spec": {"minReadySeconds": 1}},
    labelled,
    lambda o: o.spec.min_ready_seconds == 1 and o.spec.update_strategy.rolling_update.max_unavailable == 1,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
apps.create_namespaced_daemon_set("py", dict(ds_body, metadata={"name": "py-ds-2"}))
check("daemonset status", eventually("daemon pods", lambda: (
    apps.read_namespaced_daemon_set_status("py-ds-2", "py").status.desired_number_scheduled >= 1)))
apps.delete_namespaced_daemon_set("py-ds-2", "py")

job_body = {
    "metadata": {"name": "py-job"},
    "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox", "command": ["echo", "hi"]}]}}},
}
crud(
    "job",
    lambda b: batch.create_namespaced_job("py", b),
    lambda n: batch.read_namespaced_job(n, "py"),
    ns_lister(batch.list_namespaced_job),
    lambda n, b: batch.patch_namespaced_job(n, "py", b),
    lambda n, b: batch.replace_namespaced_job(n, "py", b),
    lambda n: batch.delete_namespaced_job(n, "py", propagation_policy="Background"),
    job_body,
    {"spec": {"parallelism": 2}},
    labelled,
    lambda o: o.spec.parallelism == 2 and o.spec.backoff_limit == 6 and o.spec.selector.match_labels,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
job = batch.create_namespaced_job("py", dict(job_body, metadata={"name": "py-run"}, spec=dict(job_body["spec"], suspend=False)))
done = eventually("job complete", lambda: any(
    c.type == "Complete" and c.status == "True"
    for c in (batch.read_namespaced_job_status("py-run", "py").status.conditions or [])))
check("job runs to completion (read_namespaced_job_status)", done)
check("job status counts", batch.read_namespaced_job("py-run", "py").status.succeeded == 1)
for ev in w.stream(batch.list_namespaced_job, "py", timeout_seconds=3):
    check("watch jobs", ev["type"] == "ADDED" and ev["object"].status is not None)
    w.stop()
# Without a propagation policy a Job's pods are orphaned, as Kubernetes does for batch/v1.
batch.delete_namespaced_job("py-run", "py")
orphaned = eventually("job gone", lambda: "py-run" not in [j.metadata.name for j in batch.list_namespaced_job("py").items])
pods_left = core.list_namespaced_pod("py", label_selector="job-name=py-run").items
check("delete_namespaced_job orphans pods by default", orphaned and len(pods_left) == 1
      and not pods_left[0].metadata.owner_references, str(pods_left and pods_left[0].metadata))

cron_body = {
    "metadata": {"name": "py-cron"},
    "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
        "containers": [{"name": "c", "image": "busybox"}]}}}}},
}
crud(
    "cronjob",
    lambda b: batch.create_namespaced_cron_job("py", b),
    lambda n: batch.read_namespaced_cron_job(n, "py"),
    ns_lister(batch.list_namespaced_cron_job),
    lambda n, b: batch.patch_namespaced_cron_job(n, "py", b),
    lambda n, b: batch.replace_namespaced_cron_job(n, "py", b),
    lambda n: batch.delete_namespaced_cron_job(n, "py"),
    cron_body,
    {"spec": {"suspend": True}},
    labelled,
    lambda o: o.spec.suspend and o.spec.concurrency_policy == "Allow" and o.spec.successful_jobs_history_limit == 3,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
batch.create_namespaced_cron_job("py", dict(cron_body, metadata={"name": "py-cron-2"}))
check("read cronjob status", batch.read_namespaced_cron_job_status("py-cron-2", "py").spec.schedule == "*/5 * * * *")
check("list cronjobs across namespaces", any(c.metadata.name == "py-cron-2" for c in batch.list_cron_job_for_all_namespaces().items))
try:
    batch.create_namespaced_cron_job("py", dict(cron_body, metadata={"name": "bad"}, spec=dict(cron_body["spec"], schedule="nope")))
    check("invalid schedule is 422", False)
except ApiException as e:
    check("invalid schedule is 422", e.status == 422 and "spec.schedule" in e.body)

crud(
    "poddisruptionbudget",
    lambda b: policy.create_namespaced_pod_disruption_budget("py", b),
    lambda n: policy.read_namespaced_pod_disruption_budget(n, "py"),
    ns_lister(policy.list_namespaced_pod_disruption_budget),
    lambda n, b: policy.patch_namespaced_pod_disruption_budget(n, "py", b),
    lambda n, b: policy.replace_namespaced_pod_disruption_budget(n, "py", b),
    lambda n: policy.delete_namespaced_pod_disruption_budget(n, "py"),
    {"metadata": {"name": "py-pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "none"}}}},
    {"spec": {"minAvailable": "50%"}},
    labelled,
    lambda o: o.spec.min_available == "50%",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
policy.create_namespaced_pod_disruption_budget("py", {"metadata": {"name": "py-pdb-2"},
    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "none"}}}})
check("pdb status", eventually("pdb status", lambda: (
    policy.read_namespaced_pod_disruption_budget_status("py-pdb-2", "py").status.observed_generation == 1)))

crud(
    "service",
    lambda b: core.create_namespaced_service("py", b),
    lambda n: core.read_namespaced_service(n, "py"),
    ns_lister(core.list_namespaced_service),
    lambda n, b: core.patch_namespaced_service(n, "py", b),
    lambda n, b: core.replace_namespaced_service(n, "py", b),
    lambda n: core.delete_namespaced_service(n, "py"),
    {"metadata": {"name": "py-svc"}, "spec": {"type": "NodePort", "selector": {"app": "none"}, "ports": [{"port": 80}]}},
    {"spec": {"sessionAffinity": "ClientIP"}},
    labelled,
    lambda o: o.spec.session_affinity == "ClientIP" and o.spec.cluster_ip.startswith("10."),
    lambda o: o.metadata.labels.get("replaced") == "yes" and 30000 <= o.spec.ports[0].node_port <= 32767,
)
crud(
    "endpoints",
    lambda b: core.create_namespaced_endpoints("py", b),
    lambda n: core.read_namespaced_endpoints(n, "py"),
    ns_lister(core.list_namespaced_endpoints),
    lambda n, b: core.patch_namespaced_endpoints(n, "py", b),
    lambda n, b: core.replace_namespaced_endpoints(n, "py", b),
    lambda n: core.delete_namespaced_endpoints(n, "py"),
    {"metadata": {"name": "py-ep"}, "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}]},
    {"subsets": [{"addresses": [{"ip": "10.1.2.4"}], "ports": [{"port": 81}]}]},
    labelled,
    lambda o: o.subsets[0].addresses[0].ip == "10.1.2.4" and o.subsets[0].ports[0].protocol == "TCP",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "endpointslice",
    lambda b: discovery.create_namespaced_endpoint_slice("py", b),
    lambda n: discovery.read_namespaced_endpoint_slice(n, "py"),
    ns_lister(discovery.list_namespaced_endpoint_slice),
    lambda n, b: discovery.patch_namespaced_endpoint_slice(n, "py", b),
    lambda n, b: discovery.replace_namespaced_endpoint_slice(n, "py", b),
    lambda n: discovery.delete_namespaced_endpoint_slice(n, "py"),
    {"metadata": {"name": "py-eps"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"]}],
     "ports": [{"port": 80, "protocol": "TCP"}]},
    {"endpoints": [{"addresses": ["10.1.2.5"], "conditions": {"ready": True}}]},
    labelled,
    lambda o: o.endpoints[0].addresses == ["10.1.2.5"],
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "secret",
    lambda b: core.create_namespaced_secret("py", b),
    lambda n: core.read_namespaced_secret(n, "py"),
    ns_lister(core.list_namespaced_secret),
    lambda n, b: core.patch_namespaced_secret(n, "py", b),
    lambda n, b: core.replace_namespaced_secret(n, "py", b),
    lambda n: core.delete_namespaced_secret(n, "py"),
    {"metadata": {"name": "py-secret"}, "stringData": {"user": "admin"}},
    {"data": {"pass": "czNjcmV0"}},
    labelled,
    lambda o: o.type == "Opaque" and o.data == {"user": "YWRtaW4=", "pass": "czNjcmV0"} and o.string_data is None,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "serviceaccount",
    lambda b: core.create_namespaced_service_account("py", b),
    lambda n: core.read_namespaced_service_account(n, "py"),
    ns_lister(core.list_namespaced_service_account),
    lambda n, b: core.patch_namespaced_service_account(n, "py", b),
    lambda n, b: core.replace_namespaced_service_account(n, "py", b),
    lambda n: core.delete_namespaced_service_account(n, "py"),
    {"metadata": {"name": "py-sa"}},
    {"automountServiceAccountToken": False},
    labelled,
    lambda o: o.automount_service_account_token is False,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "ingress",
    lambda b: networking.create_namespaced_ingress("py", b),
    lambda n: networking.read_namespaced_ingress(n, "py"),
    ns_lister(networking.list_namespaced_ingress),
    lambda n, b: networking.patch_namespaced_ingress(n, "py", b),
    lambda n, b: networking.replace_namespaced_ingress(n, "py", b),
    lambda n: networking.delete_namespaced_ingress(n, "py"),
    {"metadata": {"name": "py-ing"}, "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}},
    {"spec": {"ingressClassName": "other"}},
    labelled,
    lambda o: o.spec.ingress_class_name == "other",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "ingressclass",
    networking.create_ingress_class,
    networking.read_ingress_class,
    networking.list_ingress_class,
    networking.patch_ingress_class,
    networking.replace_ingress_class,
    networking.delete_ingress_class,
    {"metadata": {"name": "py-class"}, "spec": {"controller": "example.com/py"}},
    {"metadata": {"annotations": {"a": "b"}}},
    labelled,
    lambda o: o.metadata.annotations.get("a") == "b",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "networkpolicy",
    lambda b: networking.create_namespaced_network_policy("py", b),
    lambda n: networking.read_namespaced_network_policy(n, "py"),
    ns_lister(networking.list_namespaced_network_policy),
    lambda n, b: networking.patch_namespaced_network_policy(n, "py", b),
    lambda n, b: networking.replace_namespaced_network_policy(n, "py", b),
    lambda n: networking.delete_namespaced_network_policy(n, "py"),
    {"metadata": {"name": "py-np"}, "spec": {"podSelector": {}}},
    {"spec": {"egress": [{}], "policyTypes": ["Egress"]}},
    labelled,
    lambda o: o.spec.policy_types == ["Egress"],
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "priorityclass",
    scheduling.create_priority_class,
    scheduling.read_priority_class,
    scheduling.list_priority_class,
    scheduling.patch_priority_class,
    scheduling.replace_priority_class,
    scheduling.delete_priority_class,
    {"metadata": {"name": "py-pc"}, "value": 10},
    {"description": "patched"},
    labelled,
    lambda o: o.description == "patched" and o.preemption_policy == "PreemptLowerPriority",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "apiservice",
    apireg.create_api_service,
    apireg.read_api_service,
    apireg.list_api_service,
    apireg.patch_api_service,
    apireg.replace_api_service,
    apireg.delete_api_service,
    {"metadata": {"name": "v1.py.example.com"}, "spec": {"group": "py.example.com", "version": "v1",
        "groupPriorityMinimum": 100, "versionPriority": 100, "service": {"namespace": "py", "name": "api"}}},
    {"spec": {"versionPriority": 50}},
    labelled,
    lambda o: o.spec.version_priority == 50 and o.spec.service.port == 443,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
crud(
    "role",
    lambda b: rbacapi.create_namespaced_role("py", b),
    lambda n: rbacapi.read_namespaced_role(n, "py"),
    ns_lister(rbacapi.list_namespaced_role),
    lambda n, b: rbacapi.patch_namespaced_role(n, "py", b),
    lambda n, b: rbacapi.replace_namespaced_role(n, "py", b),
    lambda n: rbacapi.delete_namespaced_role(n, "py"),
    {"metadata": {"name": "py-role"}, "rules": [rule]},
    {"rules": [dict(rule, verbs=["get", "list"])]},
    labelled,
    lambda o: o.rules[0].verbs == ["get", "list"],
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "clusterrole",
    rbacapi.create_cluster_role,
    rbacapi.read_cluster_role,
    rbacapi.list_cluster_role,
    rbacapi.patch_cluster_role,
    rbacapi.replace_cluster_role,
    rbacapi.delete_cluster_role,
    {"metadata": {"name": "py-clusterrole"}, "rules": [rule]},
    {"metadata": {"annotations": {"a": "b"}}},
    labelled,
    lambda o: o.metadata.annotations.get("a") == "b",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
binding = {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
    "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "py"}]}
crud(
    "rolebinding",
    lambda b: rbacapi.create_namespaced_role_binding("py", b),
    lambda n: rbacapi.read_namespaced_role_binding(n, "py"),
    ns_lister(rbacapi.list_namespaced_role_binding),
    lambda n, b: rbacapi.patch_namespaced_role_binding(n, "py", b),
    lambda n, b: rbacapi.replace_namespaced_role_binding(n, "py", b),
    lambda n: rbacapi.delete_namespaced_role_binding(n, "py"),
    dict(binding, metadata={"name": "py-rb"}),
    {"subjects": [{"kind": "User", "name": "jane"}]},
    labelled,
    lambda o: o.subjects[0].api_group == "rbac.authorization.k8s.io",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "clusterrolebinding",
    rbacapi.create_cluster_role_binding,
    rbacapi.read_cluster_role_binding,
    rbacapi.list_cluster_role_binding,
    rbacapi.patch_cluster_role_binding,
    rbacapi.replace_cluster_role_binding,
    rbacapi.delete_cluster_role_binding,
    dict(binding, metadata={"name": "py-crb"}),
    {"subjects": [{"kind": "Group", "name": "devs"}]},
    labelled,
    lambda o: o.subjects[0].name == "devs",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "resourcequota",
    lambda b: core.create_namespaced_resource_quota("py", b),
    lambda n: core.read_namespaced_resource_quota(n, "py"),
    ns_lister(core.list_namespaced_resource_quota),
    lambda n, b: core.patch_namespaced_resource_quota(n, "py", b),
    lambda n, b: core.replace_namespaced_resource_quota(n, "py", b),
    lambda n: core.delete_namespaced_resource_quota(n, "py"),
    {"metadata": {"name": "py-quota"}, "spec": {"hard": {"configmaps": "100"}}},
    {"spec": {"hard": {"configmaps": "200"}}},
    labelled,
    lambda o: o.spec.hard["configmaps"] == "200",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
check("quota status counted", eventually("quota used", lambda: (
    (core.read_namespaced_resource_quota_status("py-quota-2", "py").status.used or {}).get("configmaps") is not None)) if (
    core.create_namespaced_resource_quota("py", {"metadata": {"name": "py-quota-2"}, "spec": {"hard": {"configmaps": "10"}}}) is not None) else False)
crud(
    "limitrange",
    lambda b: core.create_namespaced_limit_range("py", b),
    lambda n: core.read_namespaced_limit_range(n, "py"),
    ns_lister(core.list_namespaced_limit_range),
    lambda n, b: core.patch_namespaced_limit_range(n, "py", b),
    lambda n, b: core.replace_namespaced_limit_range(n, "py", b),
    lambda n: core.delete_namespaced_limit_range(n, "py"),
    {"metadata": {"name": "py-limits"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "4"}}]}},
    {"spec": {"limits": [{"type": "Container", "max": {"cpu": "8"}}]}},
    labelled,
    lambda o: o.spec.limits[0].max["cpu"] == "8" and o.spec.limits[0].default["cpu"] == "8",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "persistentvolume",
    core.create_persistent_volume,
    core.read_persistent_volume,
    core.list_persistent_volume,
    core.patch_persistent_volume,
    core.replace_persistent_volume,
    core.delete_persistent_volume,
    {"metadata": {"name": "py-pv"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": "/data/py"}}},
    {"spec": {"capacity": {"storage": "2Gi"}}},
    labelled,
    lambda o: o.spec.capacity["storage"] == "2Gi" and o.status.phase in ("Pending", "Available"),
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "storageclass",
    storageapi.create_storage_class,
    storageapi.read_storage_class,
    storageapi.list_storage_class,
    storageapi.patch_storage_class,
    storageapi.replace_storage_class,
    storageapi.delete_storage_class,
    {"metadata": {"name": "py-sc"}, "provisioner": "example.com/py"},
    {"allowVolumeExpansion": True},
    labelled,
    lambda o: o.allow_volume_expansion is True and o.volume_binding_mode == "Immediate",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "configmap",
    lambda b: core.create_namespaced_config_map("py", b),
    lambda n: core.read_namespaced_config_map(n, "py"),
    ns_lister(core.list_namespaced_config_map),
    lambda n, b: core.patch_namespaced_config_map(n, "py", b),
    lambda n, b: core.replace_namespaced_config_map(n, "py", b),
    lambda n: core.delete_namespaced_config_map(n, "py"),
    {"metadata": {"name": "py-cm"}, "data": {"a": "1"}},
    {"data": {"b": "2"}},
    labelled,
    lambda o: o.data == {"a": "1", "b": "2"},
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
core.create_namespaced_config_map("py", {"metadata": {"name": "py-frozen"}, "data": {"a": "1"}, "immutable": True})
try:
    core.patch_namespaced_config_map("py-frozen", "py", {"data": {"a": "2"}})
    check("an immutable configmap refuses a change", False)
except ApiException as e:
    check("an immutable configmap refuses a change", e.status == 422 and "field is immutable when `immutable` is set" in e.body, e.body)

core.create_persistent_volume({"metadata": {"name": "py-pv2"}, "spec": {"capacity": {"storage": "1Gi"},
    "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data/py2"}}})
check("persistentvolume becomes Available", eventually("py-pv2 Available", lambda: (
    core.read_persistent_volume("py-pv2").status.phase == "Available")))
crud(
    "persistentvolumeclaim",
    lambda b: core.create_namespaced_persistent_volume_claim("py", b),
    lambda n: core.read_namespaced_persistent_volume_claim(n, "py"),
    ns_lister(core.list_namespaced_persistent_volume_claim),
    lambda n, b: core.patch_namespaced_persistent_volume_claim(n, "py", b),
    lambda n, b: core.replace_namespaced_persistent_volume_claim(n, "py", b),
    lambda n: core.delete_namespaced_persistent_volume_claim(n, "py"),
    {"metadata": {"name": "py-claim"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
        "resources": {"requests": {"storage": "1Gi"}}}},
    {"metadata": {"labels": {"patched": "yes"}}},
    labelled,
    lambda o: o.metadata.labels.get("patched") == "yes" and o.metadata.finalizers == ["kubernetes.io/pvc-protection"],
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
check("claim and volume were bound (static binding)", eventually("py-pv2 Released", lambda: (
    core.read_persistent_volume("py-pv2").status.phase == "Released"
    and core.read_persistent_volume("py-pv2").spec.claim_ref.name == "py-claim")))
core.delete_persistent_volume("py-pv2")

eventsapi = client.EventsV1Api(api_client)
crud(
    "event (events.k8s.io/v1)",
    lambda b: eventsapi.create_namespaced_event("py", b),
    lambda n: eventsapi.read_namespaced_event(n, "py"),
    # Legacy events (the controllers' own) read through events.k8s.io/v1 have eventTime null,
    # as in Kubernetes, which this client's strict model refuses: select the new-style ones.
    ns_lister(eventsapi.list_namespaced_event, field_selector="reportingController=example.com/py"),
    lambda n, b: eventsapi.patch_namespaced_event(n, "py", b),
    lambda n, b: eventsapi.replace_namespaced_event(n, "py", b),
    lambda n: eventsapi.delete_namespaced_event(n, "py"),
    {"metadata": {"name": "py-ev"}, "eventTime": "2026-11-30T10:00:00.000000Z", "type": "Normal",
        "reason": "Synced", "action": "Reconcile", "note": "synced", "reportingController": "example.com/py",
        "reportingInstance": "py-0", "regarding": {"kind": "Pod", "namespace": "py", "name": "p"}},
    {"note": "synced again"},
    labelled,
    lambda o: o.note == "synced again" and o.regarding.name == "p",
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
eventsapi.create_namespaced_event("py", {"metadata": {"name": "py-ev2"}, "eventTime": "2026-11-30T10:00:00.000000Z",
    "type": "Warning", "reason": "Failed", "action": "Reconcile", "note": "both APIs",
    "reportingController": "example.com/py", "reportingInstance": "py-0", "regarding": {"kind": "Pod", "namespace": "py", "name": "p"}})
check("events.k8s.io event read through core/v1", core.read_namespaced_event("py-ev2", "py").message == "both APIs")
w = watch.Watch()
seen = None
for ev in w.stream(eventsapi.list_namespaced_event, "py", field_selector="reportingController=example.com/py",
                   timeout_seconds=5):
    if ev["object"].metadata.name == "py-ev2":
        seen = ev["object"]
        w.stop()
check("events.k8s.io watch", seen is not None and seen.note == "both APIs")
statuses = {c.metadata.name: c.conditions[0].status for c in core.list_component_status().items}
check("componentstatuses", statuses.get("scheduler") == "True" and statuses.get("controller-manager") == "True", str(statuses))
check("componentstatus read", core.read_component_status("scheduler").conditions[0].type == "Healthy")

check("namespace has its default service account", eventually("py/default", lambda: (
    "default" in [s.metadata.name for s in core.list_namespaced_service_account("py").items])))

hpa_target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "none"}
crud(
    "horizontalpodautoscaler (autoscaling/v2)",
    lambda b: hpa_v2.create_namespaced_horizontal_pod_autoscaler("py", b),
    lambda n: hpa_v2.read_namespaced_horizontal_pod_autoscaler(n, "py"),
    ns_lister(hpa_v2.list_namespaced_horizontal_pod_autoscaler),
    lambda n, b: hpa_v2.patch_namespaced_horizontal_pod_autoscaler(n, "py", b),
    lambda n, b: hpa_v2.replace_namespaced_horizontal_pod_autoscaler(n, "py", b),
    lambda n: hpa_v2.delete_namespaced_horizontal_pod_autoscaler(n, "py"),
    {"metadata": {"name": "py-hpa"}, "spec": {"scaleTargetRef": hpa_target, "maxReplicas": 4,
        "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]}},
    {"spec": {"maxReplicas": 5}},
    labelled,
    lambda o: o.spec.max_replicas == 5 and o.spec.min_replicas == 1,
    lambda o: o.metadata.labels.get("replaced") == "yes",
)
crud(
    "horizontalpodautoscaler (autoscaling/v1)",
    lambda b: hpa_v1.create_namespaced_horizontal_pod_autoscaler("py", b),
    lambda n: hpa_v1.read_namespaced_horizontal_pod_autoscaler(n, "py"),
    ns_lister(hpa_v1.list_namespaced_horizontal_pod_autoscaler),
    lambda n, b: hpa_v1.patch_namespaced_horizontal_pod_autoscaler(n, "py", b),
    lambda n, b: hpa_v1.replace_namespaced_horizontal_pod_autoscaler(n, "py", b),
    lambda n: hpa_v1.delete_namespaced_horizontal_pod_autoscaler(n, "py"),
    {"metadata": {"name": "py-hpa1"}, "spec": {"scaleTargetRef": hpa_target, "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 60}},
    {"spec": {"targetCPUUtilizationPercentage": 70}},
    labelled,
    lambda o: o.spec.target_cpu_utilization_percentage == 70,
    lambda o: o.metadata.labels.get("replaced") == "yes" and o.spec.target_cpu_utilization_percentage == 70,
)
# One object, both versions: a v1 HPA read through v2, its status through v1, its events
# through a v1 watch.
hpa_v1.create_namespaced_horizontal_pod_autoscaler("py", {"metadata": {"name": "py-both"},
    "spec": {"scaleTargetRef": hpa_target, "maxReplicas": 3, "targetCPUUtilizationPercentage": 40}})
both = hpa_v2.read_namespaced_horizontal_pod_autoscaler("py-both", "py")
check("v1 hpa read as v2", both.spec.metrics[0].resource.target.average_utilization == 40)
check("hpa status through v1", eventually("hpa status", lambda: (
    (hpa_v1.read_namespaced_horizontal_pod_autoscaler_status("py-both", "py").status.current_replicas or 0) >= 0
    and hpa_v2.read_namespaced_horizontal_pod_autoscaler_status("py-both", "py").status.conditions is not None)))
w = watch.Watch()
seen = None
for ev in w.stream(hpa_v1.list_namespaced_horizontal_pod_autoscaler, "py", timeout_seconds=5):
    if ev["object"].metadata.name == "py-both":
        seen = ev["object"]
        w.stop()
check("v1 hpa watch", seen is not None and seen.spec.target_cpu_utilization_percentage == 40)
hpa_v1.delete_namespaced_horizontal_pod_autoscaler("py-both", "py")

core.delete_namespace("py")
check(
    "namespace deleted",
    eventually("namespace gone", lambda: "py" not in [n.metadata.name for n in core.list_namespace().items]),
)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
