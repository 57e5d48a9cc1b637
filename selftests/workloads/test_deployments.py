"""Deployment, ReplicaSet and DaemonSet controllers against the real API server."""
from __future__ import annotations

import asyncio

from localcluster.client import Informer, path

from .conftest import HOLD, deployment


class PodHistory:
    """Every pod event of a namespace, in order, with the state of all pods after it."""

    def __init__(self, env, ns):
        self.env = env
        self.snapshots = []   # (event type, pod name, {name: (hash, terminating, ready)})
        self.informer = Informer(env.client, path("v1", "pods", ns), self._on)

        async def start():
            return asyncio.ensure_future(self.informer.run())
        self.task = env.lt.run(start())
        env.wait(lambda: self.informer.synced.is_set())

    def _on(self, type_, pod):
        if type_ == "SYNC":
            return
        state = {}
        for p in self.informer.items():
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in p.get("status", {}).get("conditions") or [])
            state[p["metadata"]["name"]] = (p["metadata"]["labels"].get("pod-template-hash"),
                                            bool(p["metadata"].get("deletionTimestamp")), ready)
        self.snapshots.append((type_, pod["metadata"]["name"], state))

    def stop(self):
        async def stop():
            self.task.cancel()
        self.env.lt.run(stop())


def dpath(ns, name=None, sub=None):
    return path("apps/v1", "deployments", ns, name, sub)


def condition(obj, type_):
    return next((c for c in obj.get("status", {}).get("conditions") or [] if c["type"] == type_), None)


def complete(env, ns, name, replicas):
    def check():
        d = env.get(dpath(ns, name))
        st = d.get("status", {})
        prog = condition(d, "Progressing")
        ok = (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("replicas") == replicas
              and st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
              and prog and prog["reason"] == "NewReplicaSetAvailable")
        return d if ok else None
    return env.wait(check, 15, what=f"deployment {name} complete")


def replica_sets(env, ns):
    return env.list(path("apps/v1", "replicasets", ns))


def test_deployment_creates_replicaset_pods_status_and_events(env, ns):
    env.create(dpath(ns), deployment("web", replicas=2))
    d = complete(env, ns, "web", 2)
    [rs] = replica_sets(env, ns)
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    ref = rs["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("Deployment", "web", d["metadata"]["uid"], True)
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["status"] == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                            "observedGeneration": rs["metadata"]["generation"]}
    pods = env.list(path("v1", "pods", ns))
    assert len(pods) == 2
    for p in pods:
        assert p["metadata"]["name"].startswith(f"web-{h}-")
        suffix = p["metadata"]["name"][len(f"web-{h}-"):]
        assert len(suffix) == 5 and suffix.isalnum() and suffix.islower()
        assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert p["metadata"]["labels"]["pod-template-hash"] == h
    st = d["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"], st.get("unavailableReplicas")) == (2, 2, 2, 0)
    avail = condition(d, "Available")
    assert (avail["status"], avail["reason"], avail["message"]) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    env.wait_event(ns, "ScalingReplicaSet", f"Scaled up replica set web-{h} to 2")
    # Idempotent: nothing more is written once the rollout is complete.
    rv = (env.get(dpath(ns, "web"))["metadata"]["resourceVersion"],
          env.get(path("apps/v1", "replicasets", ns, rs["metadata"]["name"]))["metadata"]["resourceVersion"])
    import time
    time.sleep(0.5)
    assert rv == (env.get(dpath(ns, "web"))["metadata"]["resourceVersion"],
                  env.get(path("apps/v1", "replicasets", ns, rs["metadata"]["name"]))["metadata"]["resourceVersion"])


def test_replicaset_replaces_deleted_pods_and_ignores_terminating_ones(env, ns):
    env.create(dpath(ns), deployment("rep", replicas=2))
    complete(env, ns, "rep", 2)
    victim = env.list(path("v1", "pods", ns))[0]["metadata"]["name"]
    env.kubelet.delete_delay = 1.0
    try:
        env.delete(path("v1", "pods", ns, victim))
        # A replacement appears while the victim is still terminating.
        def replaced():
            pods = env.list(path("v1", "pods", ns))
            active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            terminating = [p for p in pods if p["metadata"].get("deletionTimestamp")]
            return len(active) == 2 and victim not in {p["metadata"]["name"] for p in active} and terminating
        env.wait(replaced, 5, what="replacement pod")
    finally:
        env.kubelet.delete_delay = 0.2
    complete(env, ns, "rep", 2)


def _rollout(env, ns, name, replicas, strategy):
    env.create(dpath(ns), deployment(name, replicas=replicas, strategy=strategy))
    complete(env, ns, name, replicas)
    [old_rs] = replica_sets(env, ns)
    hist = PodHistory(env, ns)
    try:
        env.patch(dpath(ns, name), {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})
        d = env.wait(lambda: (lambda d: d if d["metadata"]["generation"] == 2 else None)(env.get(dpath(ns, name))))
        env.wait(lambda: len(replica_sets(env, ns)) == 2)
        new_rs = next(rs for rs in replica_sets(env, ns) if rs["metadata"]["uid"] != old_rs["metadata"]["uid"])
        d = complete(env, ns, name, replicas)
        env.wait(lambda: not env.list(path("v1", "pods", ns), label_selector="pod-template-hash=" +
                                      old_rs["metadata"]["labels"]["pod-template-hash"]), what="old pods gone")
    finally:
        hist.stop()
    return old_rs, new_rs, d, hist.snapshots


def test_rolling_update_max_surge_1_max_unavailable_0(env, ns):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    old_rs, new_rs, d, snaps = _rollout(env, ns, "surge", 3, strategy)
    assert new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert snaps, "no pod events recorded"
    max_active = max(sum(1 for _, term, _ in s.values() if not term) for _, _, s in snaps)
    min_ready = min(sum(1 for _, term, ready in s.values() if ready and not term) for _, _, s in snaps)
    assert max_active == 4          # surge used, never more than replicas + maxSurge
    assert min_ready >= 3           # maxUnavailable 0: never fewer ready than replicas
    old_rs_now = env.get(path("apps/v1", "replicasets", ns, old_rs["metadata"]["name"]))
    assert old_rs_now["spec"]["replicas"] == 0
    env.wait_event(ns, "ScalingReplicaSet", f"Scaled down replica set {old_rs['metadata']['name']} to 0")


def test_rolling_update_max_surge_0_max_unavailable_1(env, ns):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    _, _, _, snaps = _rollout(env, ns, "unavail", 3, strategy)
    max_active = max(sum(1 for _, term, _ in s.values() if not term) for _, _, s in snaps)
    min_ready = min(sum(1 for _, term, ready in s.values() if ready and not term) for _, _, s in snaps)
    assert max_active <= 3
    assert min_ready == 2


def test_rolling_update_percentages_round_surge_up_unavailable_down(env, ns):
    # 3 replicas, 25%/25%: surge 1 (0.75 up), unavailable 0 (0.75 down).
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    _, _, _, snaps = _rollout(env, ns, "pct", 3, strategy)
    max_active = max(sum(1 for _, term, _ in s.values() if not term) for _, _, s in snaps)
    min_ready = min(sum(1 for _, term, ready in s.values() if ready and not term) for _, _, s in snaps)
    assert (max_active, min_ready) == (4, 3)


def test_recreate_scales_old_to_zero_and_waits_for_pods_gone(env, ns):
    env.kubelet.delete_delay = 0.5
    try:
        old_rs, new_rs, _, snaps = _rollout(env, ns, "rec", 2, {"type": "Recreate"})
    finally:
        env.kubelet.delete_delay = 0.2
    old_h = old_rs["metadata"]["labels"]["pod-template-hash"]
    new_h = new_rs["metadata"]["labels"]["pod-template-hash"]
    first_new = next(i for i, (t, _, s) in enumerate(snaps) if any(h == new_h for h, _, _ in s.values()))
    last_old = max(i for i, (t, _, s) in enumerate(snaps) if any(h == old_h for h, _, _ in s.values()))
    assert last_old < first_new, "a new pod existed while an old pod was still there"
    # The new ReplicaSet is created straight at full size.
    env.wait_event(ns, "ScalingReplicaSet", f"Scaled up replica set {new_rs['metadata']['name']} to 2")


def test_progress_deadline_exceeded_then_recovers(env, ns):
    env.create(dpath(ns), deployment("slow", replicas=1, progress_deadline=1, hold=True))

    def timed_out():
        d = env.get(dpath(ns, "slow"))
        c = condition(d, "Progressing")
        return d if c and c["reason"] == "ProgressDeadlineExceeded" else None
    d = env.wait(timed_out, 8, what="ProgressDeadlineExceeded")
    [rs] = replica_sets(env, ns)
    c = condition(d, "Progressing")
    assert c["status"] == "False"
    assert c["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has timed out progressing.'
    avail = condition(d, "Available")
    assert (avail["status"], avail["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert d["status"]["unavailableReplicas"] == 1
    # Let the pod become ready: the rollout completes.
    pod = env.list(path("v1", "pods", ns))[0]
    env.patch(path("v1", "pods", ns, pod["metadata"]["name"]), {"metadata": {"labels": {HOLD: "false"}}})
    complete(env, ns, "slow", 1)


def test_daemonset_one_pod_per_matching_node(env, ns):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "node-ca"},
          "spec": {"selector": {"matchLabels": {"app": "node-ca"}},
                   "template": {"metadata": {"labels": {"app": "node-ca"}},
                                "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                         "containers": [{"name": "c", "image": "i"}]}}}}
    env.create(path("apps/v1", "daemonsets", ns), ds)

    def workers_only():
        st = env.get(path("apps/v1", "daemonsets", ns, "node-ca")).get("status", {})
        return st if st.get("numberReady") == 3 else None
    st = env.wait(workers_only, 10, what="daemonset on 3 workers")
    assert st["desiredNumberScheduled"] == 3 and st["currentNumberScheduled"] == 3
    assert st["updatedNumberScheduled"] == 3 and st["numberAvailable"] == 3 and st["observedGeneration"] == 1
    nodes = sorted(p["spec"]["nodeName"] for p in env.list(path("v1", "pods", ns)))
    assert nodes == ["worker-0", "worker-1", "worker-2"]
    # Tolerating the master taint: all six nodes.
    env.patch(path("apps/v1", "daemonsets", ns, "node-ca"), {"spec": {"template": {"spec": {
        "tolerations": [{"operator": "Exists"}]}}}})

    def everywhere():
        st = env.get(path("apps/v1", "daemonsets", ns, "node-ca")).get("status", {})
        return st if (st.get("numberReady") == 6 and st.get("updatedNumberScheduled") == 6
                      and st.get("observedGeneration") == 2) else None
    env.wait(everywhere, 15, what="daemonset on 6 nodes, updated")
    pods = [p for p in env.list(path("v1", "pods", ns)) if not p["metadata"].get("deletionTimestamp")]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(
        [f"worker-{i}" for i in range(3)] + [f"master-{i}" for i in range(3)])


def test_fault_stall_rollout(env, ns, faults):
    env.create(dpath(ns), deployment("stall", replicas=1, progress_deadline=1))
    complete(env, ns, "stall", 1)
    faults("deployment.stallRollout")
    env.patch(dpath(ns, "stall"), {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})

    def timed_out():
        d = env.get(dpath(ns, "stall"))
        c = condition(d, "Progressing")
        return d if c and c["reason"] == "ProgressDeadlineExceeded" else None
    d = env.wait(timed_out, 8, what="stalled rollout times out")
    assert d["status"]["availableReplicas"] == 1     # the old pod keeps serving
    assert d["status"]["updatedReplicas"] == 0
    new_rs = next(rs for rs in replica_sets(env, ns) if rs["spec"]["replicas"] == 1
                  and rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2")
    assert new_rs.get("status", {}).get("replicas", 0) == 0
    faults("deployment.stallRollout", "false")
    complete(env, ns, "stall", 1)
