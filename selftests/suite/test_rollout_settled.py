"""The registry is at rest only once the Deployment's other ReplicaSets are empty (issue 16 item 7): the
states recorded in the one-node matrix right after test_manual_deployment_edit_is_reverted, where the
rollout read complete for a moment while the edit's ReplicaSet still asked for the pod it surged."""
from __future__ import annotations

from selftests.suite.test_waits import READY, config, deployment, snap
from utilities.rollout_settled import other_replica_sets, settled
from utilities.waits import RolloutJudge

DEP_UID = "dep-uid"


def registry(replicas_status=1):
    dep = deployment(replicas=1, status_replicas=replicas_status)
    dep["metadata"]["uid"] = DEP_UID
    return dep


def replica_set(name, spec, status, owner=DEP_UID):
    return {"metadata": {"name": name, "ownerReferences": [{"kind": "Deployment", "uid": owner}]},
            "spec": {"replicas": spec}, "status": {"replicas": status}}


RUNNING = replica_set("image-registry-5d8f", 1, 1)        # the template the operator put back


def test_complete_while_the_edits_replica_set_still_asks_for_its_pod_is_not_settled():
    # Deployment gen 16 observed, 1/1/1/1, the Config Ready: complete, yet the edit's ReplicaSet asks for 1
    state = snap(config(READY), registry())
    surged = replica_set("image-registry-7c4b", 1, 0)
    assert RolloutJudge.complete(state)
    assert not settled(state, [RUNNING, surged])
    assert other_replica_sets(state.deployment, [RUNNING, surged]) == [
        "ReplicaSet openshift-image-registry/image-registry-5d8f: spec.replicas 1, status.replicas 1",
        "ReplicaSet openshift-image-registry/image-registry-7c4b: spec.replicas 1, status.replicas 0"]


def test_scaled_down_but_still_holding_its_pod_is_not_settled():
    assert not settled(snap(config(READY), registry()), [RUNNING, replica_set("image-registry-7c4b", 0, 1)])


def test_other_replica_sets_scaled_to_zero_and_empty_is_settled():
    state = snap(config(READY), registry())
    rss = [RUNNING, replica_set("image-registry-7c4b", 0, 0), replica_set("someone-else", 3, 3, owner="other")]
    assert settled(state, rss)


def test_not_complete_is_not_settled():
    assert not settled(snap(config(READY), registry(replicas_status=2)), [RUNNING])
