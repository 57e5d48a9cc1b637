"""Each storage backend (utilities/backends.py) crossed with the same checks.

The module-scoped `registry_backend` fixture sets Managed + the backend's storage and waits for the
rollout (failing at once, with the cluster's own reason, when it cannot succeed); checks a backend
cannot support skip with the reason.
"""
from __future__ import annotations

import pytest

from fixtures.registry import push_fresh_image
from utilities import kube, waits
from utilities import registry_steps as steps
from utilities.backends import BACKENDS, OPERATOR_PVC_ANNOTATION
from utilities.kube import REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE
from utilities.registry_client import ManifestUnknown

pytestmark = [
    pytest.mark.destructive,
    pytest.mark.storage,
    pytest.mark.parametrize("registry_backend", BACKENDS, ids=[b.id for b in BACKENDS], indirect=True,
                            scope="module"),
]


def _require(backend, **needs):
    reason = backend.missing(**needs)
    if reason:
        pytest.skip(reason)


def test_rollout_completes(cluster, registry_backend):
    snap = waits.read_snapshot(cluster)
    assert waits.RolloutJudge.complete(snap), waits.describe_snapshot(snap)
    conds = waits.conditions(snap.config)
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == ("True", "Ready"), \
        waits.format_conditions(snap.config)
    assert conds["Progressing"]["status"] == "False", waits.format_conditions(snap.config)
    assert conds.get("Degraded", {}).get("status") != "True", waits.format_conditions(snap.config)


def test_ready_replicas_equal_spec_replicas(cluster, registry_backend):
    cfg = cluster.registry_config()
    want = cfg["spec"]["replicas"]
    assert want == registry_backend.backend.replicas
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    assert dep.status.ready_replicas == want, f"Deployment readyReplicas {dep.status.ready_replicas} != {want}"
    assert (cfg.get("status") or {}).get("readyReplicas") == want, \
        f"Config status.readyReplicas {(cfg.get('status') or {}).get('readyReplicas')} != {want}"
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=kube.REGISTRY_POD_SELECTOR)
    ready = [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))]
    assert len(ready) == want, f"ready registry pods: {ready}"


def test_operator_created_claim(cluster, registry_backend):
    backend = registry_backend.backend
    _require(backend, pvc=True, operator_creates_claim=True)
    pvc = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, backend.claim_name,
                           REGISTRY_NAMESPACE)
    assert pvc is not None, f"PVC {REGISTRY_NAMESPACE}/{backend.claim_name} was not created"
    assert pvc.spec.access_modes == [backend.access_mode]
    assert pvc.spec.resources.requests.get("storage") == backend.claim_size
    assert (pvc.metadata.annotations or {}).get(OPERATOR_PVC_ANNOTATION) == "true", pvc.metadata.annotations
    assert pvc.status.phase == "Bound", f"PVC phase {pvc.status.phase}"
    cfg = cluster.registry_config()
    assert cfg["spec"]["storage"]["pvc"].get("claim") == backend.claim_name, "claim not written back to spec"
    assert ((cfg["status"].get("storage") or {}).get("pvc") or {}).get("claim") == backend.claim_name, \
        f"status.storage: {cfg['status'].get('storage')}"
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    claims = [v.persistent_volume_claim.claim_name for v in dep.spec.template.spec.volumes or []
              if v.persistent_volume_claim]
    assert claims == [backend.claim_name], f"Deployment PVC volumes: {claims}"


def test_push_and_pull_through_the_route(cluster, registry_backend, backend_route, test_namespace):
    pushed = push_fresh_image(cluster, backend_route, test_namespace)
    assert pushed.digest == pushed.image.manifest_digest
    with steps.registry_client(cluster, backend_route) as client:
        pulled = client.pull_image(pushed.repository, pushed.tag, expected_digest=pushed.digest)
        client.verify_same(pulled, pushed.image)


def test_images_after_registry_restart(cluster, registry_backend, backend_route, test_namespace, rollout_timeout):
    """Persistent storage keeps the image; emptyDir loses it (the docs warn: non-production)."""
    backend = registry_backend.backend
    pushed = push_fresh_image(cluster, backend_route, test_namespace, name="restart")
    steps.restart_registry_pods(cluster, rollout_timeout)
    with steps.registry_client(cluster, backend_route) as client:
        if backend.persistent:
            pulled = client.pull_image(pushed.repository, pushed.tag, expected_digest=pushed.digest)
            client.verify_same(pulled, pushed.image)
        else:
            with pytest.raises(ManifestUnknown):
                client.get_manifest(pushed.repository, pushed.tag)
