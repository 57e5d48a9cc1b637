"""Scheduler against the real API server."""
from __future__ import annotations

import collections

from localcluster.client import path

from .conftest import deployment

MASTERS = {"master-0", "master-1", "master-2"}
WORKERS = {"worker-0", "worker-1", "worker-2"}
ANTI_AFFINITY_MSG = (
    "0/6 nodes are available: 3 node(s) didn't match pod anti-affinity rules, 3 node(s) had untolerated taint "
    "{node-role.kubernetes.io/master: }. preemption: 0/6 nodes are available: 3 No preemption victims found for "
    "incoming pod, 3 Preemption is not helpful for scheduling.")
UNBOUND_MSG = ("0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/6 nodes "
               "are available: 6 Preemption is not helpful for scheduling.")


def pod(name, **spec):
    body = {"containers": [{"name": "c", "image": "i"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": body}


def scheduled_nodes(env, ns):
    return [p["spec"].get("nodeName") or "" for p in env.list(path("v1", "pods", ns))
            if not p["metadata"].get("deletionTimestamp")]


def pod_scheduled(p):
    return next((c for c in p.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


def wait_unschedulable(env, ns, name, message):
    def check():
        p = env.get(path("v1", "pods", ns, name))
        c = pod_scheduled(p)
        return p if c and c["status"] == "False" and c.get("message") == message else None
    p = env.wait(check, 8, what=f"{name} unschedulable; got {pod_scheduled(env.get(path('v1', 'pods', ns, name)))}")
    c = pod_scheduled(p)
    assert c["reason"] == "Unschedulable" and not p["spec"].get("nodeName")
    ev = env.wait_event(ns, "FailedScheduling", message)[0]
    assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == name
    assert ev["source"]["component"] == "default-scheduler"
    return p


def test_spreads_pods_of_one_owner_over_workers(env, ns):
    env.create(path("apps/v1", "deployments", ns), deployment("spread", replicas=3))
    env.wait(lambda: (lambda n: len(n) == 3 and all(n) and n)(scheduled_nodes(env, ns)), what="3 pods bound")
    nodes = scheduled_nodes(env, ns)
    assert sorted(nodes) == sorted(WORKERS)
    p = env.list(path("v1", "pods", ns))[0]
    assert pod_scheduled(p)["status"] == "True"
    env.wait_event(ns, "Scheduled", f"Successfully assigned {ns}/{p['metadata']['name']} to ")


def test_required_anti_affinity_leaves_the_fourth_pending(env, ns):
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "anti"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    d = deployment("anti", replicas=4, pod_spec={"containers": [{"name": "c", "image": "i"}], "affinity": anti})
    env.create(path("apps/v1", "deployments", ns), d)
    env.wait(lambda: sum(1 for n in scheduled_nodes(env, ns) if n) == 3 and len(scheduled_nodes(env, ns)) == 4)
    nodes = scheduled_nodes(env, ns)
    assert sorted(n for n in nodes if n) == sorted(WORKERS)
    pending = next(p for p in env.list(path("v1", "pods", ns)) if not p["spec"].get("nodeName"))
    wait_unschedulable(env, ns, pending["metadata"]["name"], ANTI_AFFINITY_MSG)
    # Scaling down to 3 deletes the unscheduled pod first (controller.ActivePods order).
    env.patch(path("apps/v1", "deployments", ns, "anti"), {"spec": {"replicas": 3}})
    env.wait(lambda: sorted(scheduled_nodes(env, ns)) == sorted(WORKERS), what="3 pods on 3 workers")


def test_topology_spread_on_hostname_and_worker_role(env, ns):
    tsc = [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "topologyKey": k,
            "labelSelector": {"matchLabels": {"app": "tsc"}}}
           for k in ("kubernetes.io/hostname", "node-role.kubernetes.io/worker")]
    d = deployment("tsc", replicas=5, pod_spec={"containers": [{"name": "c", "image": "i"}],
                                                "topologySpreadConstraints": tsc})
    env.create(path("apps/v1", "deployments", ns), d)
    env.wait(lambda: (lambda n: len(n) == 5 and all(n))(scheduled_nodes(env, ns)), what="5 pods bound")
    counts = collections.Counter(scheduled_nodes(env, ns))
    assert set(counts) == WORKERS and sorted(counts.values()) == [1, 2, 2]


def test_topology_spread_on_hostname_only_counts_tainted_masters(env, ns):
    # nodeTaintsPolicy defaults to Ignore: the masters are domains with 0 pods, so a worker can hold
    # at most 1 pod (maxSkew 1) and a fourth pod cannot be placed, as on a real cluster.
    tsc = [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app": "tsc1"}}}]
    d = deployment("tsc1", replicas=4, pod_spec={"containers": [{"name": "c", "image": "i"}],
                                                 "topologySpreadConstraints": tsc})
    env.create(path("apps/v1", "deployments", ns), d)
    env.wait(lambda: len(scheduled_nodes(env, ns)) == 4 and sum(1 for n in scheduled_nodes(env, ns) if n) == 3)
    pending = next(p for p in env.list(path("v1", "pods", ns)) if not p["spec"].get("nodeName"))
    wait_unschedulable(env, ns, pending["metadata"]["name"], (
        "0/6 nodes are available: 3 node(s) didn't match pod topology spread constraints, 3 node(s) had "
        "untolerated taint {node-role.kubernetes.io/master: }. preemption: 0/6 nodes are available: 3 No "
        "preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."))


def test_taints_tolerations_and_node_selector(env, ns):
    env.create(path("v1", "pods", ns), pod("on-master", nodeSelector={"node-role.kubernetes.io/master": ""},
                                          tolerations=[{"key": "node-role.kubernetes.io/master",
                                                        "operator": "Exists", "effect": "NoSchedule"}]))
    p = env.wait(lambda: env.get(path("v1", "pods", ns, "on-master"))["spec"].get("nodeName"))
    assert p in MASTERS
    env.create(path("v1", "pods", ns), pod("no-toleration", nodeSelector={"node-role.kubernetes.io/master": ""}))
    wait_unschedulable(env, ns, "no-toleration", (
        "0/6 nodes are available: 3 node(s) didn't match Pod's node affinity/selector, 3 node(s) had untolerated "
        "taint {node-role.kubernetes.io/master: }. preemption: 0/6 nodes are available: 6 Preemption is not "
        "helpful for scheduling."))


def test_unbound_pvc_keeps_pod_pending_until_bound(env, ns):
    claim = {"persistentVolumeClaim": {"claimName": "data"}}
    env.create(path("v1", "pods", ns), pod("needs-pvc", volumes=[{"name": "d", **claim}]))
    wait_unschedulable(env, ns, "needs-pvc", (
        '0/6 nodes are available: persistentvolumeclaim "data" not found. preemption: 0/6 nodes are '
        'available: 6 Preemption is not helpful for scheduling.'))
    # A claim nobody provisions (unknown provisioner): unbound.
    env.create(path("v1", "persistentvolumeclaims", ns), {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "nfs-client",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    wait_unschedulable(env, ns, "needs-pvc", UNBOUND_MSG)
    # Replace it with a claim thin-csi binds: the pod is scheduled.
    env.delete(path("v1", "persistentvolumeclaims", ns, "data"))
    env.wait(lambda: not [c for c in env.list(path("v1", "persistentvolumeclaims", ns))])
    env.create(path("v1", "persistentvolumeclaims", ns), {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "thin-csi",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    node = env.wait(lambda: env.get(path("v1", "pods", ns, "needs-pvc"))["spec"].get("nodeName"), 10)
    assert node in WORKERS


def test_fault_unschedulable(env, ns, faults):
    faults("scheduler.unschedulable")
    env.create(path("v1", "pods", ns), pod("nowhere"))
    wait_unschedulable(env, ns, "nowhere", (
        "0/6 nodes are available: 6 node(s) were unschedulable. preemption: 0/6 nodes are available: 6 "
        "Preemption is not helpful for scheduling."))
    faults("scheduler.unschedulable", "false")
    assert env.wait(lambda: env.get(path("v1", "pods", ns, "nowhere"))["spec"].get("nodeName"), 8) in WORKERS
