"""Pure logic of the workload controllers: no API server needed."""
from __future__ import annotations

import asyncio

import pytest

from localcluster.controllers.deployment import (
    WorkQueue, int_or_percent, pod_template_hash, resolve_fenceposts, same_template, selector_matches,
    set_condition, tolerates)
from localcluster.controllers.provisioner import decide
from localcluster.controllers.scheduler import fit_error, prefilter_error


@pytest.mark.parametrize("surge, unavailable, replicas, expected", [
    ("25%", "25%", 1, (1, 0)),      # surge rounds up, unavailable down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 10, (3, 2)),
    (1, 0, 3, (1, 0)),
    (0, 0, 3, (0, 1)),              # never both zero
    ("50%", "50%", 3, (2, 1)),
    ("0%", "0%", 5, (0, 1)),
])
def test_fenceposts_round_like_kubernetes(surge, unavailable, replicas, expected):
    assert resolve_fenceposts(surge, unavailable, replicas) == expected


def test_int_or_percent():
    assert int_or_percent("33%", 10, True) == 4
    assert int_or_percent("33%", 10, False) == 3
    assert int_or_percent(2, 10, True) == 2
    assert int_or_percent("2", 10, False) == 2


def test_pod_template_hash_is_stable_and_ignores_its_own_label():
    t = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    h = pod_template_hash(t)
    t2 = {"metadata": {"labels": {"app": "a", "pod-template-hash": h}},
          "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert pod_template_hash(t2) == h and same_template(t, t2)
    t3 = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "j"}]}}
    assert pod_template_hash(t3) != h and not same_template(t, t3)
    assert pod_template_hash(t, 1) != h
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_selector_and_tolerations():
    assert selector_matches({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not selector_matches({"matchLabels": {"a": "1"}}, {"a": "2"})
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"})
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {})
    assert selector_matches({}, {"x": "y"})
    assert not selector_matches(None, {"x": "y"})
    taint = {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}
    assert tolerates([{"key": "node-role.kubernetes.io/master", "operator": "Exists"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([{"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoExecute"}],
                         taint)
    assert not tolerates([], taint)


def test_set_condition_keeps_times_unless_status_changes():
    old = [{"type": "Available", "status": "True", "reason": "R", "lastTransitionTime": "T0",
            "lastUpdateTime": "T0", "message": "m"}]
    same = set_condition(old, {"type": "Available", "status": "True", "reason": "R", "message": "m",
                               "lastTransitionTime": "T1", "lastUpdateTime": "T1"})
    assert same == old
    flipped = set_condition(old, {"type": "Available", "status": "False", "reason": "X", "message": "m",
                                  "lastTransitionTime": "T1", "lastUpdateTime": "T1"})
    assert flipped[0]["lastTransitionTime"] == "T1"


def test_fit_error_reads_like_kube_scheduler():
    reasons = {f"worker-{i}": ("node(s) didn't match pod anti-affinity rules", True) for i in range(3)}
    reasons.update({f"master-{i}": ("node(s) had untolerated taint {node-role.kubernetes.io/master: }", False)
                    for i in range(3)})
    assert fit_error(6, reasons) == (
        "0/6 nodes are available: 3 node(s) didn't match pod anti-affinity rules, 3 node(s) had untolerated "
        "taint {node-role.kubernetes.io/master: }. preemption: 0/6 nodes are available: 3 No preemption "
        "victims found for incoming pod, 3 Preemption is not helpful for scheduling.")
    assert prefilter_error(6, "pod has unbound immediate PersistentVolumeClaims") == (
        "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/6 nodes are "
        "available: 6 Preemption is not helpful for scheduling.")


@pytest.mark.parametrize("provisioner, modes, vsan, ok", [
    ("csi.vsphere.vmware.com", ["ReadWriteOnce"], False, True),
    ("csi.vsphere.vmware.com", ["ReadWriteMany"], True, True),
    ("csi.vsphere.vmware.com", ["ReadWriteMany"], False, False),
    ("kubernetes.io/vsphere-volume", ["ReadWriteOnce"], True, True),
    ("kubernetes.io/vsphere-volume", ["ReadWriteMany"], True, False),
    ("openshift-storage.cephfs.csi.ceph.com", ["ReadWriteMany"], False, True),
    ("openshift-storage.rbd.csi.ceph.com", ["ReadWriteOnce"], False, True),
    ("openshift-storage.rbd.csi.ceph.com", ["ReadWriteMany"], False, False),
])
def test_provisioner_rules(provisioner, modes, vsan, ok):
    assert decide(provisioner, "sc", modes, vsan)[0] is ok


def test_work_queue_deduplicates_and_requeues_dirty_keys():
    asyncio.run(_work_queue())


async def _work_queue():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert await q.get() == "a"
    q.add("a")              # while processing: dirty, not queued twice
    assert await q.get() == "b"
    q.done("b")
    q.done("a")             # re-queued now
    assert await q.get() == "a"
    q.done("a")
    assert q._queue.empty()
