"""Each storage backend (utilities/backends.py, picked with --backend) crossed with the same checks.

The session-scoped `registry_backend` fixture (fixtures/storage.py, docs/design.md "The run structure")
runs the procedure for one backend (its claim / bucket claim, credentials and CA bundle, then its
storage, switched from the backend before while the registry stays Managed) and waits for the
rollout, failing at once, with the cluster's own reason, when it cannot succeed; a backend whose
prerequisites are missing on the cluster skips with what is missing; checks a backend cannot support
skip with the reason. Expected values: /work/shared/reference/operator-facts.md §3.3-§3.5, §5, §6.
"""
from __future__ import annotations

import time

import pytest

from fixtures.registry import push_fresh_image
from fixtures.verdicts import not_applicable
from utilities import deployed, kube, rwo_probe, waits
from utilities import registry_steps as steps
from utilities.backends import OPERATOR_PVC_ANNOTATION, without_zero_values
from utilities.conditions import reason_matches
from utilities.images import build_random_image
from utilities.kube import CLUSTEROPERATOR_GVR, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE
from utilities.registry_client import ManifestUnknown, RegistryError
from utilities.s3 import list_objects, registry_keys

pytestmark = [pytest.mark.destructive, pytest.mark.storage]

_GI = 1024 ** 3
BUCKET_SETTLE_SECONDS = 1.5   # S3 backends: how long pushed objects must have stayed when listed


def _require(backend, **needs):
    reason = backend.missing(**needs)
    if reason:
        not_applicable(reason)


def _quantity_bytes(q: str) -> int:
    units = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": _GI, "Ti": 1024 ** 4, "K": 1000, "M": 10 ** 6, "G": 10 ** 9,
             "T": 10 ** 12}
    for u in sorted(units, key=len, reverse=True):
        if q.endswith(u):
            return int(float(q[:-len(u)]) * units[u])
    return int(q)


def test_rollout_completes(cluster, registry_backend):
    """The rollout is complete, with the strategy the procedure asks for (Recreate for RWO block)."""
    snap = waits.read_snapshot(cluster)
    assert waits.RolloutJudge.complete(snap), waits.describe_snapshot(snap)
    conds = waits.conditions(snap.config)
    assert (conds["Available"]["status"], conds["Available"]["reason"]) == ("True", "Ready"), \
        waits.format_conditions(snap.config)
    assert conds["Progressing"]["status"] == "False", waits.format_conditions(snap.config)
    assert conds.get("Degraded", {}).get("status") != "True", waits.format_conditions(snap.config)
    want = registry_backend.backend.strategy
    got = ((snap.deployment.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate"
    assert got == want, f"Deployment strategy {got}, the procedure for {registry_backend.backend.id} needs {want}"


def test_ready_replicas_equal_spec_replicas(cluster, registry_backend):
    """Ready replicas == spec.replicas everywhere (Config spec and status, Deployment, Ready pods)."""
    cfg = cluster.registry_config()
    want = cfg["spec"]["replicas"]
    assert want == registry_backend.backend.replicas, f"Config spec.replicas {want}"
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    assert dep.spec.replicas == want, f"Deployment spec.replicas {dep.spec.replicas} != {want}"
    assert dep.status.ready_replicas == want, f"Deployment readyReplicas {dep.status.ready_replicas} != {want}"
    assert (cfg.get("status") or {}).get("readyReplicas") == want, \
        f"Config status.readyReplicas {(cfg.get('status') or {}).get('readyReplicas')} != {want}"
    ready = steps.ready_registry_pods(cluster)
    assert len(ready) == want, f"ready registry pods: {[p.metadata.name for p in ready]}"


def test_replicas_spread_over_nodes(cluster, registry_backend):
    """Two replicas run on two different nodes (the operator's required anti-affinity on the hostname)."""
    backend = registry_backend.backend
    if registry_backend.notes:
        pytest.skip("; ".join(registry_backend.notes))
    if backend.replicas < 2:
        not_applicable(f"{backend.id} runs {backend.replicas} replica: the check does not apply")
    ready = steps.ready_registry_pods(cluster)
    nodes = {p.metadata.name: p.spec.node_name for p in ready}
    want = backend.replicas
    inherited = (f" (placement inherited from the original Config: {registry_backend.inherited})"
                 if registry_backend.inherited else "")
    assert len(ready) == want, f"ready registry pods: {sorted(nodes)}"
    assert len(set(nodes.values())) == want, \
        f"{want} replicas are not spread over {want} nodes: {nodes}{inherited}"


def test_deployment_moved_to_the_new_storage(cluster, registry_backend):
    """Storage changed on a running registry (from the backend before, while Managed): the Deployment
    and every registry pod use only this backend's storage; no volume of the previous one stays."""
    setup = registry_backend
    came_from = f" (switched from {setup.previous.id})" if setup.previous else " (the run's first backend)"
    assert not setup.storage_problems, "right after the switch" + came_from + ": " + "; ".join(setup.storage_problems)
    now = steps.storage_problems(cluster, setup)
    assert not now, came_from.strip() + ": " + "; ".join(now)


def test_claim(cluster, registry_backend):
    """The claim the registry mounts: access mode, 100Gi requested and provided, class, Bound to a PV."""
    backend = registry_backend.backend
    _require(backend, pvc=True)
    pvc = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, backend.claim_name,
                           REGISTRY_NAMESPACE)
    assert pvc is not None, f"PVC {REGISTRY_NAMESPACE}/{backend.claim_name} not found"
    where = f"PVC {REGISTRY_NAMESPACE}/{backend.claim_name}"
    assert pvc.status.phase == "Bound", f"{where}: phase {pvc.status.phase}"
    assert pvc.spec.access_modes == [backend.access_mode], f"{where}: access modes {pvc.spec.access_modes}"
    assert backend.access_mode in (pvc.status.access_modes or []), \
        f"{where}: bound with access modes {pvc.status.access_modes}, asked {backend.access_mode}"
    assert pvc.spec.resources.requests.get("storage") == backend.claim_size, \
        f"{where}: requests {pvc.spec.resources.requests}"
    capacity = (pvc.status.capacity or {}).get("storage")
    assert capacity and _quantity_bytes(capacity) >= _quantity_bytes(backend.claim_size), \
        f"{where}: capacity {capacity}, asked {backend.claim_size}"
    want_class = backend.storage_class or steps.default_storage_class(cluster)
    assert pvc.spec.storage_class_name == want_class, f"{where}: class {pvc.spec.storage_class_name}, expected {want_class}"
    assert pvc.spec.volume_name, f"{where}: no volume"
    pv = kube.call(cluster.core.read_persistent_volume, pvc.spec.volume_name)
    assert pv.status.phase == "Bound", f"PV {pv.metadata.name}: phase {pv.status.phase}"
    assert pv.spec.claim_ref and (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == \
        (REGISTRY_NAMESPACE, backend.claim_name), f"PV {pv.metadata.name} claimRef {pv.spec.claim_ref}"
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    claims = [v.persistent_volume_claim.claim_name for v in dep.spec.template.spec.volumes or []
              if v.persistent_volume_claim]
    assert claims == [backend.claim_name], f"Deployment PVC volumes: {claims}"


def test_rwo_claim_is_held_to_one_node(cluster, registry_backend, suite_labels, rollout_timeout):
    """ReadWriteOnce (block storage): a pod on another node than the registry's that mounts the claim
    does not start; the cluster refuses the attach (Multi-Attach). The reason for one replica and
    Recreate. The probe mounts the claim read-only and is deleted at once (utilities/rwo_probe.py)."""
    backend = registry_backend.backend
    _require(backend, pvc=True)
    if backend.access_mode != "ReadWriteOnce":
        not_applicable(f"{backend.id} claims {backend.access_mode}, not ReadWriteOnce: the check does not apply")
    ready = steps.ready_registry_pods(cluster)
    assert ready, "no ready registry pod uses the claim"
    registry_pod, registry_node = ready[0].metadata.name, ready[0].spec.node_name
    others = [n for n in steps.schedulable_nodes(cluster) if n != registry_node]
    if not others:
        pytest.skip(f"single-node cluster (registry pod {registry_pod} on {registry_node}, no other schedulable "
                    "node): it cannot show that the ReadWriteOnce claim is held to one node")
    node = others[0]
    labels = kube.call(cluster.core.read_node, node).metadata.labels or {}
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    image = dep.spec.template.spec.containers[0].image
    timeout = min(rollout_timeout, 120.0)
    verdict = rwo_probe.probe_other_node(cluster, claim=backend.claim_name, node=node,
                                         node_hostname=labels.get("kubernetes.io/hostname", node), image=image,
                                         labels=suite_labels, timeout=timeout)
    where = (f"probe pod {verdict.pod} on node {node} mounting PVC {REGISTRY_NAMESPACE}/{backend.claim_name} "
             f"(ReadWriteOnce), used by registry pod {registry_pod} on node {registry_node}")
    assert not verdict.started, (f"{where}: it started ({verdict.started}): the claim is not held to one node, "
                                 "two nodes can write the registry's volume")
    if verdict.unschedulable:
        pytest.skip(f"{where}: the probe could not be scheduled ({verdict.unschedulable}): this cluster cannot "
                    "show that the claim is held to one node")
    assert verdict.refused, (f"{where}: neither refused with a Multi-Attach error nor started within "
                             f"{timeout:.0f}s: {verdict.status}")


def test_operator_created_claim(cluster, registry_backend):
    """claim left empty: image-registry-storage is created by the operator (annotated) and written back."""
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


def test_status_storage_equals_what_was_asked(cluster, registry_backend):
    """status.storage is the storage asked for, with the managementState the operator defaulted."""
    backend = registry_backend.backend
    cfg = cluster.registry_config()
    want = backend.expected_status_storage(registry_backend.asked_storage)
    status_storage = without_zero_values((cfg.get("status") or {}).get("storage") or {})   # Go omitempty
    assert status_storage == want, \
        f"status.storage {status_storage}, asked {registry_backend.asked_storage}, expected {want}: " \
        f"{steps.spec_diff(want, status_storage or {}, 'status.storage')}"
    spec_state = (cfg["spec"].get("storage") or {}).get("managementState")
    assert spec_state == backend.storage_management_state, \
        f"spec.storage.managementState {spec_state!r}, expected {backend.storage_management_state!r}"
    assert (cfg.get("status") or {}).get("storageManaged") == (backend.storage_management_state == "Managed"), \
        f"status.storageManaged {(cfg.get('status') or {}).get('storageManaged')}"


def test_operator_conditions_healthy(cluster, registry_backend, rollout_timeout):
    """Config: Available=True/Ready, Progressing=False/Ready, Degraded=False, StorageExists=True; the
    ClusterOperator: Available=True, Progressing=False, Degraded=False."""
    cfg = cluster.registry_config()
    conds = waits.conditions(cfg)
    text = waits.storage_conditions_text(cfg)
    for type_, status, reason in (("Available", "True", "Ready"), ("Progressing", "False", "Ready"),
                                  ("Degraded", "False", None), ("StorageExists", "True", None)):
        c = conds.get(type_) or {}
        assert c.get("status") == status and (reason is None or c.get("reason") == reason), \
            f"Config {type_}={c.get('status')}/{c.get('reason')}, expected {status}" + \
            (f"/{reason}" if reason else "") + f": {text}"
    co = waits.wait_for_clusteroperator(cluster, {"Available": ("True", None), "Progressing": ("False", None),
                                                  "Degraded": ("False", None)}, min(rollout_timeout, 60))
    assert cluster.get_cluster_object(CLUSTEROPERATOR_GVR, "image-registry") is not None
    assert reason_matches(waits.conditions(co)["Available"].get("reason"), "Ready"), waits.format_conditions(co)


def test_push_and_pull_through_the_route(cluster, registry_backend, backend_route, test_namespace):
    pushed = push_fresh_image(cluster, backend_route, test_namespace)
    assert pushed.digest == pushed.image.manifest_digest
    with steps.registry_client(cluster, backend_route) as client:
        pulled = client.pull_image(pushed.repository, pushed.tag, expected_digest=pushed.digest)
        client.verify_same(pulled, pushed.image)


def test_every_replica_serves_the_image(cluster, registry_backend, backend_route, test_namespace, service_ca):
    """An image pushed through the route is pulled from EACH registry pod (port-forward, TLS checked
    against the service CA for image-registry.openshift-image-registry.svc), every digest verified."""
    pushed = push_fresh_image(cluster, backend_route, test_namespace, name="replicas")
    pods = steps.ready_registry_pods(cluster)
    assert len(pods) == registry_backend.backend.replicas, f"ready pods: {[p.metadata.name for p in pods]}"
    failures = []
    for pod in pods:
        try:
            with steps.replica_client(cluster, pod.metadata.name, service_ca) as client:
                pulled = client.pull_image(pushed.repository, pushed.tag, expected_digest=pushed.digest)
                client.verify_same(pulled, pushed.image)
        except (RegistryError, AssertionError, OSError) as e:
            failures.append(f"pod {pod.metadata.name} (node {pod.spec.node_name}) does not serve "
                            f"{pushed.repository}:{pushed.tag}: {e.__class__.__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_blobs_are_in_the_bucket(cluster, registry_backend, backend_route, test_namespace):
    """S3: the pushed manifest and blobs are objects of the claimed bucket (ListObjectsV2 signed with the
    claim's keys, through the route, trusting the CA given to the registry)."""
    backend = registry_backend.backend
    _require(backend, s3=True)
    image = build_random_image()
    repo, tag = f"{test_namespace}/bucket", f"t-{image.manifest_digest[7:19]}"
    push_error = None
    try:
        with steps.registry_client(cluster, backend_route) as client:
            client.push_image(repo, tag, image)
    except RegistryError as e:      # still look into the bucket: what is missing there is the cause
        push_error = e
    time.sleep(BUCKET_SETTLE_SECONDS)   # the objects must stay, not only be accepted
    bucket = registry_backend.bucket
    ca_file = cluster.trust_bundle_file(registry_backend.ca_pem)   # the CA given to the registry + system roots
    endpoint = registry_backend.s3_endpoint     # the route's scheme: ODF 4.12's RGW route is plain HTTP
    keys = set(list_objects(endpoint, bucket.bucket, bucket.access_key, bucket.secret_key, ca_file=ca_file,
                            connect_to=cluster.ingress_for(registry_backend.s3_host, endpoint.split("://")[0]),
                            prefix="docker/registry/v2/"))
    want = registry_keys(repo, image.manifest_digest, [b.digest for b in image.blobs])
    missing = [k for k in want if k not in keys]
    assert not missing, (f"pushed objects missing from bucket {bucket.bucket} at {endpoint}: "
                         f"{missing}; the bucket holds {len(keys)} registry object(s)"
                         + (f"; the push failed: {push_error}" if push_error else "")
                         + f"; {deployed.registry_bucket_text(cluster)}")
    assert push_error is None, f"push through the route failed: {push_error}"


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
            try:
                _, digest = client.get_manifest(pushed.repository, pushed.tag)
            except ManifestUnknown:
                return      # lost with the pods, as the docs warn
            pytest.fail(f"{pushed.repository}:{pushed.tag} ({digest}) is still served after the registry pods were "
                        f"replaced, but {backend.id} storage is an emptyDir, which must be lost with its pod (the "
                        f"docs: non-production): the replacement pods reuse the old volume, or the registry "
                        f"does not store on the emptyDir (Deployment volumes: {deployed.registry_volumes(cluster)})")
