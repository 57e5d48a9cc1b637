"""A rollout that looks complete is not settled while a ReplicaSet of another template of the Deployment
still asks for or holds pods (issue 16 item 7).

Found in the one-node matrix selftest, which failed once under load in test_rollout_completes right
after test_manual_deployment_edit_is_reverted. That check edits the Deployment and the operator
reverts it: two rollouts back to back, the second a rollback to the ReplicaSet that already runs. The
Deployment then reads complete at once (observedGeneration current, 1/1/1/1) while the ReplicaSet of the
edit still asks for the pod it surged; a moment later the Deployment counts that pod (status.replicas 2
of 1) and the operator says Available=True/MinimumAvailability, Progressing=True/DeploymentNotCompleted
until the pod is gone (recorded: complete at .636, replicas 2 at .638, the Config MinimumAvailability
from .647 to .751; the window stretches on a loaded machine). Kubernetes computes the Deployment's
status from its ReplicaSets' reports, so a real cluster shows the same window. A wait that restores
the registry after such an edit therefore waits for `settled`: complete, and the Deployment's other
ReplicaSets scaled to zero and empty, so that the next check reads a registry at rest.
"""
from __future__ import annotations

from utilities import kube, waits
from utilities.kube import REGISTRY_NAMESPACE, Cluster


def other_replica_sets(dep: dict | None, replica_sets: list[dict]) -> list[str]:
    """The Deployment's ReplicaSets that ask for or hold more pods than its spec.replicas leaves room
    for (those of another template, while the current one has them all), each named with its counts."""
    if dep is None:
        return []
    uid = dep["metadata"].get("uid")
    owned = [rs for rs in replica_sets
             if any(o.get("uid") == uid for o in (rs.get("metadata") or {}).get("ownerReferences") or [])]
    want = (dep.get("spec") or {}).get("replicas", 1)

    def counts(rs):
        return ((rs.get("spec") or {}).get("replicas") or 0), ((rs.get("status") or {}).get("replicas") or 0)
    if sum(max(counts(rs)) for rs in owned) <= want:
        return []
    return [f"ReplicaSet {REGISTRY_NAMESPACE}/{rs['metadata'].get('name')}: spec.replicas {counts(rs)[0]}, "
            f"status.replicas {counts(rs)[1]}" for rs in owned if max(counts(rs))]


def settled(snap: waits.Snapshot, replica_sets: list[dict]) -> bool:
    return waits.RolloutJudge.complete(snap) and not other_replica_sets(snap.deployment, replica_sets)


def read_replica_sets(cluster: Cluster) -> list[dict]:
    return cluster.api_client.sanitize_for_serialization(
        kube.call(cluster.apps.list_namespaced_replica_set, REGISTRY_NAMESPACE)).get("items", [])


def wait_for_settled_rollout(cluster: Cluster, timeout: float, what: str) -> waits.Snapshot:
    """Wait until the rollout is complete and no other ReplicaSet of the Deployment asks for or holds pods."""
    state: dict = {}

    def evaluate():
        snap, rss = state["snap"], state["rss"] = waits.read_snapshot(cluster), read_replica_sets(cluster)
        return (snap,) if settled(snap, rss) else None

    def describe():
        snap = state.get("snap")
        left = other_replica_sets(snap.deployment if snap else None, state.get("rss") or [])
        return waits.describe_snapshot(snap) + (f"; not yet scaled down: {'; '.join(left)}" if left else "")

    sources = waits.rollout_sources(cluster) + [
        ("replicasets", cluster.apps.list_namespaced_replica_set, {"namespace": REGISTRY_NAMESPACE})]
    return waits._wait_loop(sources, evaluate, timeout, describe, what)[0]
