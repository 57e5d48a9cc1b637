"""The rollout wait's classification: complete, keep waiting, or fail at once naming the cause."""
from __future__ import annotations

import pytest

from utilities.waits import Graces, RolloutFailed, RolloutJudge, Snapshot

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


def event(kind, name, uid, reason, message, ts=NOW_TS, count=1, first=None):
    return {"involvedObject": {"kind": kind, "name": name, "namespace": "openshift-image-registry", "uid": uid},
            "reason": reason, "message": message, "type": "Warning", "lastTimestamp": ts,
            "firstTimestamp": first or ts, "count": count}


def later(seconds: int) -> str:
    """NOW_TS plus `seconds`."""
    import datetime
    t = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def snap(cfg=None, dep=None, pods=(), pvcs=(), events=()):
    return Snapshot(cfg, dep, list(pods), list(pvcs), list(events))


def test_complete_rollout_is_done():
    assert RolloutJudge(SINCE).judge(snap(config(READY), deployment()), 0) == "done"


@pytest.mark.parametrize("dep", [deployment(ready=0, available=0), deployment(updated=0),
                                 deployment(status_replicas=2)])
def test_incomplete_deployment_keeps_waiting(dep):
    assert RolloutJudge(SINCE).judge(snap(config(READY), dep), 0) is None


def test_stale_config_generation_keeps_waiting():
    assert RolloutJudge(SINCE).judge(snap(config(READY, observed=1), deployment()), 0) is None


PROV_MSG = "failed to provision volume with StorageClass \"thin-csi\": ReadWriteMany not supported"


def test_provisioning_failed_once_is_transient():
    """ceph-csi / vSphere CSI retry: one ProvisioningFailed is no failure."""
    ev = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", PROV_MSG)
    judge = RolloutJudge(SINCE, graces=Graces(provisioning=30))
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev])
    assert judge.judge(s, 0.0) is None
    assert judge.judge(s, 60.0) is None          # not reported again: still no failure
    assert "ProvisioningFailed" in judge.describe(s)


def test_provisioning_failed_that_recurs_over_the_grace_fails_naming_it():
    judge = RolloutJudge(SINCE, graces=Graces(provisioning=30))
    first = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", PROV_MSG)
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [first]), 0.0) is None
    again = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", PROV_MSG,
                  ts=later(20), count=3)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [again])
    assert judge.judge(s, 20.0) is None          # recurred, but within the grace
    with pytest.raises(RolloutFailed, match=r"PersistentVolumeClaim openshift-image-registry/image-registry-storage: "
                                            r"ProvisioningFailed: failed to provision .*ReadWriteMany.*"
                                            r"3 time\(s\).*still Pending, expected Bound"):
        judge.judge(s, 31.0)


def test_event_whose_own_count_and_timestamps_span_the_grace_fails():
    ev = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", PROV_MSG,
               ts=later(40), first=NOW_TS, count=5)
    with pytest.raises(RolloutFailed, match="5 time\\(s\\) over 40 s"):
        RolloutJudge(SINCE, graces=Graces(provisioning=30)).judge(
            snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev]), 0.0)


def test_provisioning_failed_of_a_bound_claim_is_ignored():
    ev = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", PROV_MSG,
               ts=later(40), first=NOW_TS, count=5)
    assert RolloutJudge(SINCE, graces=Graces(provisioning=30)).judge(
        snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc(phase="Bound")], [ev]), 0.0) is None


def test_old_or_foreign_events_are_ignored():
    old = event("PersistentVolumeClaim", "image-registry-storage", "c1", "ProvisioningFailed", "x",
                ts="2026-11-26T11:00:00Z")
    other = event("PersistentVolumeClaim", "image-registry-storage", "gone-uid", "ProvisioningFailed", "x")
    assert RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()],
                                          [old, other]), 0) is None


def test_failed_scheduling_while_old_pods_terminate_is_transient_then_fails_when_it_persists():
    msg = ("0/6 nodes are available: 3 node(s) had untolerated taint, 3 node(s) didn't match pod "
           "anti-affinity rules.")
    judge = RolloutJudge(SINCE, graces=Graces(scheduling=10))
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling", msg)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], events=[ev])
    assert judge.judge(s, 100.0) is None
    again = event("Pod", "image-registry-p1", "p1", "FailedScheduling", msg, ts=later(5), count=2)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], events=[again])
    assert judge.judge(s, 105.0) is None
    with pytest.raises(RolloutFailed, match="Pod openshift-image-registry/image-registry-p1: FailedScheduling: 0/6"
                                            ".*still not scheduled"):
        judge.judge(s, 110.5)


def test_unbound_pvc_scheduling_fails_only_when_it_persists():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling",
               "0/6 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    judge = RolloutJudge(SINCE, unbound_grace=10)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev])
    assert judge.judge(s, 100.0) is None
    assert judge.judge(s, 105.0) is None
    ev2 = dict(ev, count=4, lastTimestamp=later(8))
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod()], [pvc()], [ev2])
    with pytest.raises(RolloutFailed, match="unbound immediate PersistentVolumeClaims"):
        judge.judge(s, 110.5)


def unschedulable_pod(uid="p1"):
    p = pod(uid)
    p["status"]["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    return p


def test_failed_scheduling_reported_once_fails_when_the_pod_stays_unschedulable():
    """kube-scheduler reports FailedScheduling once, then parks the pod in its unschedulable queue until a
    cluster event (or 5 minutes): the pod staying PodScheduled=False/Unschedulable is what persists."""
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling",
               "0/6 nodes are available: 6 node(s) were unschedulable.")
    judge = RolloutJudge(SINCE, graces=Graces(scheduling=10))
    s = snap(config(ROLLING), deployment(ready=0, available=0), [unschedulable_pod()], events=[ev])
    assert judge.judge(s, 100.0) is None
    assert judge.judge(s, 109.0) is None
    with pytest.raises(RolloutFailed, match="FailedScheduling: 0/6 nodes.*over 10 s.*still not scheduled"):
        judge.judge(s, 110.5)


def test_unschedulable_state_must_last_the_grace_without_a_break():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling", "0/6 nodes are available")
    judge = RolloutJudge(SINCE, graces=Graces(scheduling=10))
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [unschedulable_pod()],
                            events=[ev]), 100.0) is None
    # the scheduler placed it (a node appeared): the clock starts again if it is found unschedulable anew
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")],
                            events=[ev]), 105.0) is None
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [unschedulable_pod()],
                            events=[ev]), 111.0) is None


def test_scheduled_pod_ignores_its_old_failed_scheduling():
    ev = event("Pod", "image-registry-p1", "p1", "FailedScheduling", "0/6 nodes are available")
    assert RolloutJudge(SINCE).judge(snap(config(ROLLING), deployment(ready=0, available=0),
                                          [pod(node="worker-0")], events=[ev]), 0) is None


MULTI = 'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) image-registry-p1'


def test_multi_attach_during_a_recreate_is_transient():
    """The old pod's volume is still attached to its node for a while after a Recreate deleted it."""
    judge = RolloutJudge(SINCE, graces=Graces(attach=60))
    for i, t in enumerate((0, 10, 30, 50)):
        ev = event("Pod", "image-registry-p2", "p2", "FailedAttachVolume", MULTI, ts=later(t), count=i + 1)
        assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0),
                                [pod("p2", node="worker-1")], events=[ev]), float(t)) is None
    ready = snap(config(READY), deployment(), [pod("p2", node="worker-1", ready=True)], events=[ev])
    assert judge.judge(ready, 55.0) == "done"


def test_multi_attach_that_persists_fails_naming_it():
    judge = RolloutJudge(SINCE, graces=Graces(attach=60))
    ev = event("Pod", "image-registry-p2", "p2", "FailedAttachVolume", MULTI)
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod("p2", node="worker-1")],
                            events=[ev]), 0.0) is None
    ev = event("Pod", "image-registry-p2", "p2", "FailedAttachVolume", MULTI, ts=later(61), count=9, first=NOW_TS)
    with pytest.raises(RolloutFailed, match='FailedAttachVolume: Multi-Attach error for volume "pvc-1".*'
                                            '9 time\\(s\\) over 61 s.*still not ready'):
        judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [pod("p2", node="worker-1")],
                         events=[ev]), 61.0)


def test_one_failed_mount_is_transient():
    ev = event("Pod", "image-registry-p1", "p1", "FailedMount", "MountVolume.SetUp failed for volume")
    judge = RolloutJudge(SINCE, mount_grace=20)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")], events=[ev])
    assert judge.judge(s, 0.0) is None
    assert judge.judge(s, 100.0) is None     # it did not recur


def test_failed_mount_fails_when_it_persists():
    ev = event("Pod", "image-registry-p1", "p1", "FailedMount", "MountVolume.SetUp failed for volume")
    judge = RolloutJudge(SINCE, mount_grace=20)
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")], events=[ev])
    assert judge.judge(s, 0.0) is None
    ev = dict(ev, count=3, lastTimestamp=later(15))
    s = snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")], events=[ev])
    assert judge.judge(s, 19.0) is None
    with pytest.raises(RolloutFailed, match="FailedMount: MountVolume.SetUp failed"):
        judge.judge(s, 21.0)


def test_events_series_count_as_recurrence():
    """events.k8s.io/v1 events seen through core v1: `series` carries the count and the last time."""
    ev = event("Pod", "image-registry-p1", "p1", "FailedMount", "MountVolume.SetUp failed for volume")
    ev.update(count=None, lastTimestamp=None, firstTimestamp=None, eventTime="2026-11-26T12:00:00.000000Z",
              series={"count": 7, "lastObservedTime": "2026-11-26T12:00:50.000000Z"})
    with pytest.raises(RolloutFailed, match="7 time\\(s\\) over 50 s"):
        RolloutJudge(SINCE, mount_grace=20).judge(
            snap(config(ROLLING), deployment(ready=0, available=0), [pod(node="worker-0")], events=[ev]), 0.0)


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


DEADLINE = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "image-registry-5d8f" has timed out progressing.'}


def test_progress_deadline_exceeded_is_no_failure_while_pods_come_up():
    """60 s on 4.12-4.21: a slow attach passes it and the rollout still completes (facts §12.1)."""
    dep = deployment(ready=0, available=0, conditions=[DEADLINE])
    judge = RolloutJudge(SINCE)
    s = snap(config(ROLLING), dep, [pod(node="worker-0")])
    assert judge.judge(s, 0) is None
    assert "progressDeadlineSeconds" in judge.describe(s) and "not a failure by itself" in judge.describe(s)
    assert judge.judge(snap(config(READY), deployment(), [pod(node="worker-0", ready=True)]), 1) == "done"


def test_config_degraded_progress_deadline_exceeded_is_no_failure():
    cfg = config([("Available", "True", "MinimumAvailability", "x"),
                  ("Progressing", "True", "DeploymentNotCompleted", "The deployment has not completed"),
                  ("Degraded", "True", "ProgressDeadlineExceeded", "Registry deployment has timed out progressing")])
    assert RolloutJudge(SINCE).judge(snap(cfg, deployment(ready=0, available=0, conditions=[DEADLINE])), 0) is None


def running_not_ready(uid="p1"):
    p = pod(uid, node="worker-0")
    p["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                  "message": "containers with unready status: [registry]"}]
    return p


def test_pods_running_but_not_ready_fail_after_the_grace_naming_the_readiness_failure():
    unhealthy = event("Pod", "image-registry-p1", "p1", "Unhealthy",
                      "Readiness probe failed: HTTP probe failed with statuscode: 503", count=4)
    judge = RolloutJudge(SINCE, graces=Graces(not_ready=10))
    dep = deployment(ready=0, available=0, conditions=[DEADLINE])
    s = snap(config(ROLLING), dep, [running_not_ready()], events=[unhealthy])
    assert judge.judge(s, 0.0) is None
    assert judge.judge(s, 9.0) is None
    with pytest.raises(RolloutFailed) as e:
        judge.judge(s, 10.5)
    text = str(e.value)
    assert "Pod openshift-image-registry/image-registry-p1: Running on node worker-0 but not Ready" in text
    assert "ContainersNotReady" in text and "Readiness probe failed" in text
    assert "ProgressDeadlineExceeded" not in text


def test_a_pod_that_becomes_ready_resets_the_not_ready_clock():
    judge = RolloutJudge(SINCE, graces=Graces(not_ready=10))
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [running_not_ready()]), 0.0) is None
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0),
                            [pod(node="worker-0", ready=True)]), 5.0) is None
    assert judge.judge(snap(config(ROLLING), deployment(ready=0, available=0), [running_not_ready()]), 12.0) is None


def test_crash_looping_container_fails_after_the_grace():
    p = running_not_ready()
    p["status"]["containerStatuses"] = [{"name": "registry", "restartCount": 5, "state": {"waiting": {
        "reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 2}}}]
    judge = RolloutJudge(SINCE, graces=Graces(not_ready=10))
    s = snap(config(ROLLING), deployment(ready=0, available=0), [p])
    assert judge.judge(s, 0.0) is None
    with pytest.raises(RolloutFailed, match="container registry is CrashLoopBackOff.*restartCount 5, last exit code 2"):
        judge.judge(s, 11.0)


# --- a wrong settled state fails at once (issue 9) ---------------------------------------------------
def dep_with(replicas=1, strategy="RollingUpdate", volume=None, env=None):
    d = deployment(replicas=replicas, updated=replicas, ready=replicas, available=replicas)
    d["spec"]["strategy"] = {"type": strategy}
    d["spec"]["template"] = {"spec": {"containers": [{"name": "registry", "env": env or []}],
                                      "volumes": [volume] if volume else []}}
    return d


EMPTYDIR_VOL = {"name": "registry-storage", "emptyDir": {}}


def cfg_with(storage, replicas=1, strategy=None, observed=2):
    c = config(ROLLING, replicas=replicas, observed=observed)
    c["spec"]["storage"] = storage
    if strategy:
        c["spec"]["rolloutStrategy"] = strategy
    return c


def test_deployment_with_other_replicas_than_the_config_fails_at_once():
    with pytest.raises(RolloutFailed, match=r"observed generation 2 of Config cluster.*"
                                            r"Deployment openshift-image-registry/image-registry spec.replicas: "
                                            r"expected 2 \(Config cluster spec.replicas\), found 1"):
        RolloutJudge(SINCE).judge(snap(cfg_with({"emptyDir": {}}, replicas=2), dep_with(1, volume=EMPTYDIR_VOL)), 0)


def test_deployment_with_other_strategy_fails_at_once():
    vol = {"name": "registry-storage", "persistentVolumeClaim": {"claimName": "image-registry-storage"}}
    with pytest.raises(RolloutFailed, match=r"spec.strategy.type: expected Recreate \(Config cluster "
                                            r"spec.rolloutStrategy\), found RollingUpdate"):
        RolloutJudge(SINCE).judge(snap(cfg_with({"pvc": {"claim": "image-registry-storage"}}, strategy="Recreate"),
                                       dep_with(1, volume=vol)), 0)


@pytest.mark.parametrize("storage,volume,env,found", [
    ({"pvc": {"claim": "registry-storage-pvc"}}, EMPTYDIR_VOL, None, "found emptyDir"),
    ({"pvc": {"claim": "registry-storage-pvc"}},
     {"name": "registry-storage", "persistentVolumeClaim": {"claimName": "image-registry-storage"}}, None,
     "found persistentVolumeClaim image-registry-storage"),
    ({"emptyDir": {}}, {"name": "registry-storage", "persistentVolumeClaim": {"claimName": "old"}}, None,
     "found persistentVolumeClaim old"),
    ({"s3": {"bucket": "b1"}}, EMPTYDIR_VOL, [{"name": "REGISTRY_STORAGE", "value": "filesystem"}], "found emptyDir"),
])
def test_deployment_that_keeps_another_storage_fails_at_once(storage, volume, env, found):
    with pytest.raises(RolloutFailed, match=f"volumes\\[registry-storage\\]: expected .*{found}"):
        RolloutJudge(SINCE).judge(snap(cfg_with(storage), dep_with(1, volume=volume, env=env)), 0)


def test_differences_wait_for_the_operator_to_observe_the_generation():
    assert RolloutJudge(SINCE).judge(snap(cfg_with({"emptyDir": {}}, replicas=2, observed=1),
                                          dep_with(1, volume=EMPTYDIR_VOL)), 0) is None


def test_matching_deployment_is_no_difference():
    s = snap(cfg_with({"emptyDir": {}}, replicas=1), dep_with(1, volume=EMPTYDIR_VOL))
    assert RolloutJudge(SINCE).failure(s, 0) is None


def test_deployment_settled_with_fewer_replicas_fails_after_the_settle_window():
    d = dep_with(2, volume=EMPTYDIR_VOL)
    d["status"].update(replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    judge = RolloutJudge(SINCE, graces=Graces(settle=3))
    s = snap(cfg_with({"emptyDir": {}}, replicas=2), d, [pod("p1", node="worker-0", ready=True)])
    assert judge.judge(s, 0.0) is None
    with pytest.raises(RolloutFailed, match=r"status.replicas 1, expected spec.replicas 2.*fewer pods"):
        judge.judge(s, 3.5)


def test_replicaset_failed_create_is_named():
    d = dep_with(2, volume=EMPTYDIR_VOL)
    d["status"].update(replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    ev = event("ReplicaSet", "image-registry-5d8f", "rs1", "FailedCreate",
               'Error creating: pods "image-registry-5d8f-x" is forbidden: exceeded quota: q', count=6,
               first=NOW_TS, ts=later(70))
    with pytest.raises(RolloutFailed, match="ReplicaSet openshift-image-registry/image-registry-5d8f: FailedCreate: "
                                            "Error creating.*exceeded quota"):
        RolloutJudge(SINCE, graces=Graces(create=60)).judge(
            snap(cfg_with({"emptyDir": {}}, replicas=2), d, [pod("p1", node="worker-0", ready=True)], events=[ev]), 0)


def test_operator_refusing_its_own_claim_is_not_reported_as_a_user_rwo_claim():
    msg = ("Unable to apply resources: unable to sync storage configuration: cannot use ReadWriteOnce access mode "
           "with RollingUpdate rollout strategy")
    cfg = config([("Available", "False", "DeploymentNotFound", "x"), ("Progressing", "True", "Error", msg)])
    cfg["spec"]["storage"] = {"pvc": {"claim": ""}}
    own = {"metadata": {"name": "image-registry-storage", "uid": "c1",
                        "annotations": {"imageregistry.openshift.io": "true"}},
           "spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"phase": "Bound"}}
    judge = RolloutJudge(SINCE, apply_error_grace=0)
    with pytest.raises(RolloutFailed) as e:
        judge.judge(snap(cfg, None, pvcs=[own]), 0.0)
    assert "the claim is the operator's own" in str(e.value)
    assert "the user asked for no ReadWriteOnce claim" in str(e.value)


# --- settings ----------------------------------------------------------------------------------------
def test_graces_from_items():
    g = Graces().with_items(["all=2", "attach=5"])
    assert (g.provisioning, g.attach, g.not_ready) == (2, 5, 2)
    with pytest.raises(ValueError, match="NAME one of all, provisioning"):
        Graces().with_items(["nope=1"])
    with pytest.raises(ValueError, match="SECONDS >= 0"):
        Graces().with_items(["mount=-1"])


# --- ClusterOperator reasons are unions (facts §12.7) -----------------------------------------------
@pytest.mark.parametrize("reason,expected,ok", [
    ("Removed", "Removed", True),
    ("NodeCADaemonNoAvailableReplicas::Removed", "Removed", True),
    ("ImagePrunerJobFailed::StorageNotConfigured", "StorageNotConfigured", True),
    ("NodeCADaemonUnavailable::Ready", "Ready", True),
    ("NodeCADaemonUnavailable::Ready", "Removed", False),
    ("ReadyX", "Ready", False),
])
def test_clusteroperator_reason_matches_by_component(reason, expected, ok):
    from utilities.conditions import condition_matches, reason_matches
    assert reason_matches(reason, expected) is ok
    assert condition_matches({"status": "True", "reason": reason}, "True", expected) is ok
