"""The rollout wait's classification: complete, keep waiting, or fail at once naming the cause."""
from __future__ import annotations

import pytest

from utilities.waits import RolloutFailed, RolloutJudge, Snapshot

NOW_TS = "2026-11-26T12:00:00Z"
SINCE = 1795694400.0 - 30    # 2026-11-26T12:00:00Z minus 30 s


def config(conds, replicas=1, generation=2, observed=2):
    return {"metadata": {"name": "cluster", "generation": generation},
            "spec": {"replicas": replicas, "managementState": "Managed"},
            "status": {"observedGeneration": observed,
                       "conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conds]}}


READY = [("Available", "True", "Ready", "The registry is ready"),
         ("Progressing", "False", "Ready", "The registry is ready"), ("Degraded", "False", "", "")]
ROLLING = [("Available", "False", "NoReplicasAvailable", "The deployment does not have available replicas"),
           ("Progressing", "True", "DeploymentNotCompleted", "The deployment has not completed"),
           ("Degraded", "False", "", "")]


def deployment(replicas=1, updated=1, ready=1, available=1, status_replicas=None, conditions=()):
    return {"metadata": {"name": "image-registry", "namespace": "openshift-image-registry", "generation": 3},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 3, "replicas": replicas if status_replicas is None else status_replicas,
                       "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                       "conditions": list(conditions)}}


def pod(uid="p1", node=None, ready=False):
    return {"metadata": {"name": f"image-registry-{uid}", "uid": uid},
            "spec": {"nodeName": node},
            "status": {"phase": "Running" if node else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pvc(uid="c1", phase="Pending"):
    return {"metadata": {"name": "image-registry-storage", "uid": uid}, "status": {"phase": phase}}


def event(kind, name, uid, reason, message, ts=NOW_TS):
    return {"involvedObject": {"kind": kind, "name": name, "namespace": "openshift-image-registry", "uid": uid},
            "reason": reason, "message": message, "type": "Warning", "lastTimestamp": ts}


def snap(cfg=None, dep=None, pods=(), pvcs=(), events=()):
    return Snapshot(cfg, dep, list(pods), list(pvcs), list(events))


def test_complete_rollout_is_done():
    assert RolloutJudge(SINCE).judge(snap(config(READY), deployment()), 0) == "done"


@pytest.mark.parametrize("dep", [deployment(ready=0, available=0), deployment(updated=0),
                                 deployment(status_replicas=2), deployment(replicas=2, updated=2, ready=2,
                                                                           available=2)])
def test_incomplete_deployment_keeps_waiting(dep):
    assert RolloutJudge(SINCE).judge(snap(config(READY), dep), 0) is None


def test_stale_config_generation_keeps_waiting():
    assert RolloutJudge(SINCE).judge(snap(config(READY, observed=1), deployment()), 0) is None


def test_provisioning_failed_fails_at_once():
    ev = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed",
               "failed to provision volume with StorageClass \"thin-csi\": ReadWriteMany not supported")
    with pytest.raises(RolloutFailed, match=r"PersistentVolumeClaim openshift-image-registry/image-registry-storage: "
                                            r"ProvisioningFailed: failed to provision .*ReadWriteMany"):
        RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev]), 0)


def test_old_or_foreign_events_are_ignored():
    old = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", "x",
                ts="2026-11-26T11:00:00Z")
    other = event("PersistentVolumeClaim", "image-registry-storage", "gone-uid", "ProvisioningFailed", "x")
    assert RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()],
                                          [old, other]), 0) is None


def test_failed_scheduling_fails_at_once():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling", "0/6 nodes are available: 3 node(s) had "
               "untolerated taint, 3 node(s) didn't match pod topology spread constraints.")
    with pytest.raises(RolloutFailed, match="Pod openshift-image-registry/image-registry-p1: FailedScheduling: 0/6"):
        RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod()], events=[ev]), 0)


def test_unbound_pvc_scheduling_fails_only_when_it_persists():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling",
               "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    judge = RolloutJudge(SINCE, unbound_grace=10)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev])
    assert judge.judge(s, 100.0) is None
    assert judge.judge(s, 105.0) is None
    with pytest.raises(RolloutFailed, match="unbound immediate PersistentVolumeClaims"):
        judge.judge(s, 110.5)


def test_scheduled_pod_ignores_its_old_failed_scheduling():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling", "0/6 nodes are available")
    assert RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0),
                                          [pod(node="worker-0")], events=[ev]), 0) is None


def test_multi_attach_fails_at_once():
    ev = event("Pod", "image-registry-p2", "p2", "FailedAttachVolume",
               'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) image-registry-p1')
    with pytest.raises(RolloutFailed, match='FailedAttachVolume: Multi-Attach error for volume "pvc-1"'):
        RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0),
                                       [pod("p2", node="worker-1")], events=[ev]), 0)


def test_failed_mount_fails_when_it_persists():
    ev = event("Pod", "image-registry-p1", "p1", "FailedMount", "MountVolume.SetUp failed for volume")
    judge = RolloutJudge(SINCE, mount_grace=20)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")], events=[ev])
    assert judge.judge(s, 0.0) is None
    assert judge.judge(s, 19.0) is None
    with pytest.raises(RolloutFailed, match="FailedMount: MountVolume.SetUp failed"):
        judge.judge(s, 21.0)


@pytest.mark.parametrize("reason,message", [
    ("StorageNotConfigured", "Error: storage backend not configured"),
    ("VerificationFailed", "Error: unable to complete resource: replicas must be greater than or equal to 0")])
def test_permanent_degraded_fails_at_once(reason, message):
    cfg = config([("Available", "False", reason, message), ("Progressing", "False", "Error", "x"),
                  ("Degraded", "True", reason, message)])
    with pytest.raises(RolloutFailed, match=f"Config cluster: Degraded=True: {reason}: {message}"):
        RolloutJudge(SINCE).judge(snap(cfg, None), 0)


def test_transient_degraded_keeps_waiting():
    cfg = config([("Available", "False", "NoReplicasAvailable", "x"), ("Progressing", "True", "DeploymentNotCompleted", "x"),
                  ("Degraded", "True", "Unavailable", "The deployment does not have available replicas")])
    assert RolloutJudge(SINCE).judge(snap(cfg, deployment(ready=0, available=0)), 0) is None


def test_apply_error_fails_when_it_persists():
    msg = ("Unable to apply resources: unable to sync storage configuration: cannot use ReadWriteOnce access mode "
           "with more than one replica of the image registry")
    cfg = config([("Available", "True", "Ready", "x"), ("Progressing", "True", "Error", msg), ("Degraded", "False", "", "")])
    judge = RolloutJudge(SINCE, apply_error_grace=5)
    assert judge.judge(snap(cfg, deployment()), 0.0) is None
    with pytest.raises(RolloutFailed, match="Progressing=True: Error: Unable to apply resources: .*ReadWriteOnce"):
        judge.judge(snap(cfg, deployment()), 5.5)


def test_apply_error_that_clears_resets_the_clock():
    msg = "Unable to apply resources: unable to sync storage configuration: conflict"
    bad = config([("Available", "False", "x", "x"), ("Progressing", "True", "Error", msg)])
    judge = RolloutJudge(SINCE, apply_error_grace=5)
    assert judge.judge(snap(bad, None), 0.0) is None
    assert judge.judge(snap(config(ROLLING), None), 3.0) is None
    assert judge.judge(snap(bad, None), 4.0) is None
    assert judge.judge(snap(bad, None), 8.0) is None


def test_progress_deadline_exceeded_fails_at_once():
    dep = deployment(ready=0, available=0, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "image-registry-5d8f" has timed out progressing.'}])
    with pytest.raises(RolloutFailed, match="Deployment openshift-image-registry/image-registry: "
                                            "ProgressDeadlineExceeded: ReplicaSet"):
        RolloutJudge(SINCE).judge(snap(config(ROLLING), dep), 0)
