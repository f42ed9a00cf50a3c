"""The official Python client against a running Coxswain cluster.

Usage: python3 client_check.py http://127.0.0.1:PORT
Exercises create/read/list/patch/replace/delete of Deployments, Pods, Nodes, Namespaces,
Events and ReplicaSets, a watch stream, and error statuses; every response goes through the
client's strict models, so a missing required field fails here. Prints `N passed, 0 failed`.
"""
import sys
import time

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

server = sys.argv[1]
cfg = client.Configuration()
cfg.host = server
api_client = client.ApiClient(cfg)
core = client.CoreV1Api(api_client)
apps = client.AppsV1Api(api_client)

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
    raise AssertionError(f"timed out waiting for {what}")


ns = client.V1Namespace(metadata=client.V1ObjectMeta(name="py"))
core.create_namespace(ns)
check("namespace listed", "py" in [n.metadata.name for n in core.list_namespace().items])

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
eventually("3 pods", lambda: len(core.list_namespaced_pod("py", label_selector="app=py").items) == 3)
check("scaled with a strategic merge patch of /scale", True)

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

try:
    apps.read_namespaced_deployment("nope", "py")
    check("missing deployment is 404", False)
except ApiException as e:
    check("missing deployment is 404", e.status == 404 and "not found" in e.body)

apps.delete_namespaced_deployment("py", "py")
eventually("pods garbage collected", lambda: len(core.list_namespaced_pod("py").items) == 0)
check("delete cascades", True)
core.delete_namespace("py")
eventually("namespace gone", lambda: "py" not in [n.metadata.name for n in core.list_namespace().items])
check("namespace deleted", True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
