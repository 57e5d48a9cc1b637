"""Is a ReadWriteOnce claim held to one node? A probe pod that mounts the registry's claim, placed on
another node than the registry pod's, must not start: the volume is attached to the registry's node,
so the attach/detach controller reports `Multi-Attach error for volume ... Volume is already
exclusively attached to one node and can't be attached to another` (event FailedAttachVolume on the
pod) and the pod stays ContainerCreating. This is why the block procedure asks for one replica and
`rolloutStrategy: Recreate`.

Safety: the probe mounts the claim read-only (`persistentVolumeClaim.readOnly` and the mount), runs a
shell that only sleeps, asks for few resources, and is deleted (uid precondition) as soon as a verdict
is reached, or at the timeout. A healthy cluster attaches nothing; only where RWO is already not
enforced does the probe get the volume, and then it is removed at once.

    verdict = probe_other_node(cluster, claim="registry-storage-block", node="worker-1", image=..., labels=...,
                               timeout=120)
"""
from __future__ import annotations

import dataclasses
import secrets

from utilities import kube, waits
from utilities.kube import REGISTRY_NAMESPACE, Cluster

PROBE_PREFIX = "registry-conformance-rwo-probe-"
MULTI_ATTACH = "Multi-Attach"


@dataclasses.dataclass
class Verdict:
    pod: str
    node: str
    refused: str | None = None        # the Multi-Attach event's message: RWO held
    started: str | None = None        # what shows the probe got the volume: RWO broken
    unschedulable: str | None = None  # the probe could not be placed on `node` (FailedScheduling)
    status: str = ""                  # the probe's last status, for a timeout's message


def probe_pod(name: str, claim: str, node_hostname: str, image: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": REGISTRY_NAMESPACE, "labels": dict(labels)},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "nodeSelector": {"kubernetes.io/hostname": node_hostname},
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": image, "command": ["/bin/sh", "-c", "sleep 3600"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "claim", "mountPath": "/probe", "readOnly": True}],
            }],
            "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        },
    }


def _started(pod: dict) -> str | None:
    """What shows the probe's container ran, so its volume was attached and mounted: phase Running or
    Succeeded, or a container running or terminated after it started. A pod Failed before any
    container started (rejected by its node) does not count: that is no verdict on the claim."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded"):
        return f"phase {status['phase']}"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state or (state.get("terminated") or {}).get("startedAt"):
            return f"container {cs.get('name')} {next(iter(state))}"
    return None


def _status_text(pod: dict | None, events: list[dict]) -> str:
    if pod is None:
        return "the probe pod is gone"
    status = pod.get("status") or {}
    waiting = [f"{cs.get('name')}: {((cs.get('state') or {}).get('waiting') or {}).get('reason')}"
               for cs in status.get("containerStatuses") or []]
    evs = [f"{e.get('reason')}: {e.get('message')}" for e in events]
    return (f"phase {status.get('phase')}, node {(pod.get('spec') or {}).get('nodeName')}, containers {waiting}, "
            f"events {evs or 'none'}")


def probe_other_node(cluster: Cluster, *, claim: str, node: str, node_hostname: str, image: str, labels: dict,
                     timeout: float) -> Verdict:
    """Create the probe on `node`, wait for its verdict (refused, started, unschedulable), delete it."""
    # A name of its own (not generateName): a create retried after a lost answer finds its first try
    # (409) instead of making a second probe nobody knows of.
    name = PROBE_PREFIX + secrets.token_hex(4)
    try:
        created = kube.call(cluster.core.create_namespaced_pod, REGISTRY_NAMESPACE,
                            probe_pod(name, claim, node_hostname, image, labels))
    except kube.ApiException as e:
        created = kube.get_or_none(cluster.core.read_namespaced_pod, name, REGISTRY_NAMESPACE) \
            if e.status == 409 else None
        if created is None or (created.metadata.labels or {}) != dict(labels):
            raise
    uid = created.metadata.uid
    verdict = Verdict(name, node)
    pods = {"namespace": REGISTRY_NAMESPACE, "field_selector": f"metadata.name={name}"}
    about = {"namespace": REGISTRY_NAMESPACE, "field_selector": f"involvedObject.uid={uid}"}
    state: dict = {"pod": None, "events": []}

    def evaluate():
        pod = kube.get_or_none(cluster.core.read_namespaced_pod, name, REGISTRY_NAMESPACE)
        pod = cluster.api_client.sanitize_for_serialization(pod) if pod is not None else None
        events = cluster.api_client.sanitize_for_serialization(
            kube.call(cluster.core.list_namespaced_event, **about).items)
        state.update(pod=pod, events=events)
        if pod is None:
            verdict.status = "the probe pod was deleted by someone else"
            return verdict
        verdict.started = _started(pod)
        if verdict.started:
            return verdict
        for e in events:
            if e.get("reason") == "FailedAttachVolume" and MULTI_ATTACH in (e.get("message") or ""):
                verdict.refused = e.get("message")
                return verdict
        if not (pod.get("spec") or {}).get("nodeName"):
            failed = [e.get("message") for e in events if e.get("reason") == "FailedScheduling"]
            if failed:
                verdict.unschedulable = failed[-1]
                return verdict
        return None

    try:
        sources = [("pods", cluster.core.list_namespaced_pod, pods),
                   ("events", cluster.core.list_namespaced_event, about)]
        try:
            waits._wait_loop(sources, evaluate, timeout, lambda: _status_text(state["pod"], state["events"]),
                             f"the ReadWriteOnce probe {name} on node {node}")
        except waits.WaitTimeout:
            pass
        verdict.status = verdict.status or _status_text(state["pod"], state["events"])
        return verdict
    finally:
        _delete(cluster, name, uid, min(timeout, 60.0))


def _delete(cluster: Cluster, name: str, uid: str, timeout: float) -> None:
    """Delete the probe (only this one: uid precondition) and wait until it is gone."""
    from kubernetes import client as k8s
    try:
        kube.call(cluster.core.delete_namespaced_pod, name, REGISTRY_NAMESPACE,
                  body=k8s.V1DeleteOptions(grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=uid)))
    except kube.ApiException as e:
        if e.status in (404, 409):      # gone, or another pod of that name now
            return
        raise

    def still_there():
        pod = kube.get_or_none(cluster.core.read_namespaced_pod, name, REGISTRY_NAMESPACE)
        return pod if pod is not None and pod.metadata.uid == uid else None

    waits.wait_until_gone(still_there, f"the probe pod {name} to be deleted", timeout)
