"""Deletion: finalizers, pod graceful deletion, namespace cascade, ownerReference garbage collection."""
from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from .helpers import status_of


def wait_gone(read, *args, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read(*args)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        time.sleep(0.02)
    return False


def exists(read, *args):
    try:
        read(*args)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def _pod(name, node=None, grace=None, finalizers=None):
    spec = {"containers": [{"name": "c", "image": "pause"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    meta = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta, "spec": spec}


def test_finalizers_hold_the_object(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})
    out = core.delete_namespaced_config_map("fin", ns)
    cm = core.read_namespaced_config_map("fin", ns)
    assert cm.metadata.deletion_timestamp is not None and cm.metadata.finalizers == ["example.com/hold"]
    # no new finalizers once deleting
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_config_map("fin", ns, {"metadata": {"finalizers": ["example.com/hold", "x/y"]}})
    assert e.value.status == 422
    core.patch_namespaced_config_map("fin", ns, {"metadata": {"finalizers": None}})
    assert not exists(core.read_namespaced_config_map, "fin", ns)
    assert out is not None


def test_pod_graceful_deletion(core, ns):
    core.create_namespaced_pod(ns, _pod("g", node="worker-0", grace=20))
    core.delete_namespaced_pod("g", ns)
    p = core.read_namespaced_pod("g", ns)
    assert p.metadata.deletion_timestamp is not None and p.metadata.deletion_grace_period_seconds == 20
    # deleting again keeps it
    core.delete_namespaced_pod("g", ns)
    assert exists(core.read_namespaced_pod, "g", ns)
    # the kubelet's final delete
    core.delete_namespaced_pod("g", ns, grace_period_seconds=0)
    assert not exists(core.read_namespaced_pod, "g", ns)


def test_pod_default_grace_and_unscheduled_pods(core, ns):
    core.create_namespaced_pod(ns, {"metadata": {"name": "d"}, "spec": {
        "nodeName": "worker-1", "containers": [{"name": "c", "image": "pause"}]}})
    core.delete_namespaced_pod("d", ns, body=k8s.V1DeleteOptions())
    assert core.read_namespaced_pod("d", ns).metadata.deletion_grace_period_seconds == 30
    # as in kube, a pod not bound to a node goes at once
    core.create_namespaced_pod(ns, _pod("u"))
    core.delete_namespaced_pod("u", ns)
    assert not exists(core.read_namespaced_pod, "u", ns)


def test_pod_with_finalizer_waits_after_grace_zero(core, ns):
    core.create_namespaced_pod(ns, _pod("pf", node="worker-0", finalizers=["example.com/f"]))
    core.delete_namespaced_pod("pf", ns, grace_period_seconds=0)
    assert exists(core.read_namespaced_pod, "pf", ns)
    core.patch_namespaced_pod("pf", ns, {"metadata": {"finalizers": None}})   # SMP: [] would merge
    assert not exists(core.read_namespaced_pod, "pf", ns)


def test_delete_preconditions(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "pre"}})
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("pre", ns, body=k8s.V1DeleteOptions(
            preconditions=k8s.V1Preconditions(uid="other")))
    assert e.value.status == 409 and "Precondition failed" in status_of(e.value)["message"]


def test_namespace_cascade(core, apps):
    name = "casc-" + uuid.uuid4().hex[:6]
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "cm"}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "held", "finalizers": ["x.io/f"]}})
    core.create_namespaced_pod(name, _pod("running", node="worker-0"))
    core.delete_namespace(name)
    nso = core.read_namespace(name)
    assert nso.status.phase == "Terminating" and nso.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(name, {"metadata": {"name": "late"}})
    assert e.value.status == 403 and "because it is being terminated" in status_of(e.value)["message"]
    assert wait_gone(core.read_namespaced_config_map, "cm", name)
    # the pod is being deleted gracefully, the held configmap waits for its finalizer
    assert core.read_namespaced_pod("running", name).metadata.deletion_timestamp is not None
    assert core.read_namespaced_config_map("held", name).metadata.deletion_timestamp is not None
    time.sleep(0.1)
    assert core.read_namespace(name).status.phase == "Terminating"
    core.delete_namespaced_pod("running", name, grace_period_seconds=0)
    core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    assert wait_gone(core.read_namespace, name)


def _owned(owner, kind, api_version="apps/v1"):
    return [{"apiVersion": api_version, "kind": kind, "name": owner.metadata.name, "uid": owner.metadata.uid,
             "controller": True, "blockOwnerDeletion": True}]


def _rs(name, owner_refs=None):
    meta = {"name": name, "labels": {"app": name}}
    if owner_refs:
        meta["ownerReferences"] = owner_refs
    return {"metadata": meta, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                       "template": {"metadata": {"labels": {"app": name}},
                                                    "spec": {"containers": [{"name": "c", "image": "p"}]}}}}


def _tree(apps, core, ns, prefix):
    dep = apps.create_namespaced_deployment(ns, {**_rs(prefix)})
    rs = apps.create_namespaced_replica_set(ns, _rs(prefix + "-rs", _owned(dep, "Deployment")))
    pod_body = _pod(prefix + "-pod")
    pod_body["metadata"]["ownerReferences"] = _owned(rs, "ReplicaSet")
    core.create_namespaced_pod(ns, pod_body)
    return dep, rs


def test_owner_background_cascade(apps, core, ns):
    _tree(apps, core, ns, "bg")
    apps.delete_namespaced_deployment("bg", ns)
    assert not exists(apps.read_namespaced_deployment, "bg", ns)
    assert wait_gone(apps.read_namespaced_replica_set, "bg-rs", ns)
    assert wait_gone(core.read_namespaced_pod, "bg-pod", ns)   # unbound pod: no grace


def test_owner_foreground_cascade(apps, core, ns):
    _tree(apps, core, ns, "fg")
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    assert wait_gone(apps.read_namespaced_deployment, "fg", ns)
    assert not exists(apps.read_namespaced_replica_set, "fg-rs", ns)
    assert not exists(core.read_namespaced_pod, "fg-pod", ns)


def test_owner_orphan(apps, core, ns):
    _tree(apps, core, ns, "or")
    apps.delete_namespaced_deployment("or", ns, propagation_policy="Orphan")
    assert not exists(apps.read_namespaced_deployment, "or", ns)
    time.sleep(0.1)
    rs = apps.read_namespaced_replica_set("or-rs", ns)
    assert not rs.metadata.owner_references
    assert exists(core.read_namespaced_pod, "or-pod", ns)


def test_delete_collection(core, ns):
    for i, team in enumerate(("a", "a", "b")):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"dc{i}", "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="team=a")
    assert [c.metadata.name for c in core.list_namespaced_config_map(ns).items] == ["dc2"]
