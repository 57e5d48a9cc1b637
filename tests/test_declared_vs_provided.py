"""Declared versus provided (issue 9): what the cluster says it gives the registry is what it gives.

- the PersistentVolume behind the registry's claim matches the claim (capacity, access modes, class,
  the claimRef's uid): a provider whose claim status repeats the request while the volume is smaller or
  single-node passes every check on the claim alone;
- the PodDisruptionBudget `image-registry` (operator-facts.md §4.1, §4.3): minAvailable 1 with two or
  more replicas, 0 with one (with 1 and one replica a node drain during an upgrade hangs), selecting the
  registry pods;
- a tag pushed twice with different manifests points at the newer one (through the route, and the
  manifest pulled by tag is the newer image, every digest checked);
- images.config.openshift.io/cluster tells the control plane where the registry is
  (internalRegistryHostname, the default route among externalRegistryHostnames).

Each backend of --backend is crossed with these checks (fixtures/storage.py `registry_backend`).
"""
from __future__ import annotations

import pytest

from fixtures.verdicts import not_applicable
from utilities import deadline, kube, provided, rollout_settled, waits
from utilities import registry_steps as steps
from utilities.images import build_random_image
from utilities.kube import REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE

pytestmark = [pytest.mark.destructive, pytest.mark.storage]

PDB_NAME = "image-registry"
IMAGE_CONFIG_GRACE = 20.0     # seconds for the operator to publish the route host once it is admitted


def _mounted_claim(cluster) -> str | None:
    dep = kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    for v in dep.spec.template.spec.volumes or []:
        if v.persistent_volume_claim:
            return v.persistent_volume_claim.claim_name
    return None


def test_volume_behind_the_claim_is_what_the_claim_says(cluster, registry_backend):
    """The PV bound to the registry's claim: capacity at least the claim's request and equal to what the
    claim reports, the claim's access modes, the claim's class, claimRef naming this claim (uid)."""
    backend = registry_backend.backend
    if not backend.pvc:
        not_applicable(f"{backend.id} stores images on no PersistentVolumeClaim: the check does not apply")
    name = _mounted_claim(cluster) or backend.claim_name
    pvc = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, name, REGISTRY_NAMESPACE)
    assert pvc is not None, f"PVC {REGISTRY_NAMESPACE}/{name} (mounted by Deployment {REGISTRY_DEPLOYMENT}) not found"
    where = f"PVC {REGISTRY_NAMESPACE}/{name}"
    assert pvc.spec.volume_name, f"{where}: spec.volumeName is empty (phase {pvc.status.phase})"
    pv = kube.get_or_none(cluster.core.read_persistent_volume, pvc.spec.volume_name)
    assert pv is not None, f"{where}: its volume PV {pvc.spec.volume_name} does not exist"
    plain = cluster.api_client.sanitize_for_serialization
    problems = provided.volume_problems(plain(pvc), plain(pv))
    assert not problems, "the volume provided is not the volume declared: " + "; ".join(problems)


def test_pod_disruption_budget(cluster, registry_backend):
    """PDB image-registry: minAvailable 1 with two or more replicas, 0 with one (operator-facts.md §4.1),
    selecting the registry pods (docker-registry: default)."""
    from kubernetes import client as k8s
    replicas = int(cluster.registry_config()["spec"].get("replicas") or 1)
    api = k8s.PolicyV1Api(cluster.api_client)
    pdb = kube.get_or_none(api.read_namespaced_pod_disruption_budget, PDB_NAME, REGISTRY_NAMESPACE)
    assert pdb is not None, f"PodDisruptionBudget {REGISTRY_NAMESPACE}/{PDB_NAME} not found (the operator creates it)"
    problems = provided.pdb_problems(cluster.api_client.sanitize_for_serialization(pdb), replicas)
    assert not problems, "; ".join(problems)


def test_tag_points_at_the_newest_push(cluster, registry_backend, backend_route, test_namespace):
    """Two different images pushed to the same tag: the tag then names the second (by digest, and the
    image pulled by tag is the second, every digest checked)."""
    first, second = build_random_image(), build_random_image()
    repo, tag = f"{test_namespace}/retag", "latest"
    with steps.registry_client(cluster, backend_route) as client:
        d1 = client.push_image(repo, tag, first)
        d2 = client.push_image(repo, tag, second)
        assert d1 != d2, "the two images have the same digest: the check cannot tell them apart"
        _, by_tag = client.get_manifest(repo, tag)
        assert by_tag == d2, (f"tag {repo}:{tag} on {backend_route} points at {by_tag}"
                              f"{' (the FIRST push)' if by_tag == d1 else ''} after pushing {d1} and then {d2}: "
                              "a tag must point at the newest manifest pushed to it")
        pulled = client.pull_image(repo, tag, expected_digest=d2)
        client.verify_same(pulled, second)


def test_image_config_names_the_registry(cluster, registry_backend, backend_route):
    """images.config.openshift.io/cluster status (what the control plane is told, operator-facts.md §4.2,
    §12.4): internalRegistryHostname image-registry.openshift-image-registry.svc:5000 while the Service
    exists, and the default route's host among externalRegistryHostnames."""
    want_internal = f"{steps.SERVICE_HOST}:{steps.REGISTRY_PORT}"
    state = {}

    def names_it(obj):
        state["obj"] = obj
        st = (obj or {}).get("status") or {}
        return st.get("internalRegistryHostname") == want_internal and \
            backend_route in (st.get("externalRegistryHostnames") or [])

    sources = [("image", cluster.custom.list_cluster_custom_object,
                {"group": "config.openshift.io", "version": "v1", "plural": "images",
                 "field_selector": "metadata.name=cluster"})]
    read = lambda: kube.get_or_none(cluster.custom.get_cluster_custom_object,  # noqa: E731
                                    "config.openshift.io", "v1", "images", "cluster")
    try:
        waits._wait_loop(sources, lambda: names_it(read()), IMAGE_CONFIG_GRACE, lambda: "",
                         "images.config.openshift.io/cluster to name the registry")
    except waits.WaitTimeout:
        st = ((state.get("obj") or {}).get("status") or {})
        pytest.fail(f"images.config.openshift.io/cluster: status.internalRegistryHostname "
                    f"{st.get('internalRegistryHostname')!r} (expected {want_internal!r}), "
                    f"status.externalRegistryHostnames {st.get('externalRegistryHostnames')!r} (expected to "
                    f"contain the default route's host {backend_route!r}) {IMAGE_CONFIG_GRACE:.0f}s after the "
                    f"route was admitted: the operator does not tell the control plane where the registry is")


PROBE_ENV = "REGISTRY_CONFORMANCE_MANUAL_EDIT"
REVERT_GRACE = 60.0   # the operator's e2e TestRestoreDeploymentAfterUserChanges allows one minute


def _probe_index(dep) -> tuple[int, int | None]:
    containers = dep.spec.template.spec.containers or []
    ci = next((i for i, c in enumerate(containers) if c.name == "registry"), 0)
    env = containers[ci].env or []
    return ci, next((i for i, e in enumerate(env) if e.name == PROBE_ENV), None)


def test_manual_deployment_edit_is_reverted(cluster, registry_backend, rollout_timeout):
    """The Deployment is what the Config declares: an env variable added by hand to the registry container
    is removed by the operator within a minute (operator-facts.md §4.1)."""
    read = lambda: kube.call(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT,  # noqa: E731
                             REGISTRY_NAMESPACE)
    ci, _ = _probe_index(read())
    has_env = bool(read().spec.template.spec.containers[ci].env)
    patch = [{"op": "add", "path": f"/spec/template/spec/containers/{ci}/env/-",
              "value": {"name": PROBE_ENV, "value": "1"}}] if has_env else \
        [{"op": "add", "path": f"/spec/template/spec/containers/{ci}/env",
          "value": [{"name": PROBE_ENV, "value": "1"}]}]
    kube.call(cluster.apps.patch_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE, patch)
    sources = [("deployment", cluster.apps.list_namespaced_deployment,
                {"namespace": REGISTRY_NAMESPACE, "field_selector": f"metadata.name={REGISTRY_DEPLOYMENT}"})]
    try:
        waits._wait_loop(sources, lambda: _probe_index(read())[1] is None, REVERT_GRACE, lambda: "",
                         "the operator to revert the manual edit")
        reverted = True
    except waits.WaitTimeout:
        reverted = False
    finally:
        ci, ei = _probe_index(read())
        if ei is not None:      # put the Deployment back ourselves
            kube.call(cluster.apps.patch_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE,
                      [{"op": "remove", "path": f"/spec/template/spec/containers/{ci}/env/{ei}"}])
        # Two rollouts in a row (the edit, the revert): pods of one may wait for the other's to go
        # (anti-affinity), so wait without failing on that transient FailedScheduling; and until the
        # edit's ReplicaSet is empty too, not only complete (utilities/rollout_settled.py), so that the
        # next check reads a registry at rest. A restore: with a timeout of its own, whatever the wait
        # above left of the test's deadline.
        with deadline.lifted():
            rollout_settled.wait_for_settled_rollout(cluster, rollout_timeout,
                                                     "the registry rollout after the manual edit")
    assert reverted, (f"Deployment {REGISTRY_NAMESPACE}/{REGISTRY_DEPLOYMENT}: env {PROBE_ENV} added by hand to "
                      f"container {ci} is still there {REVERT_GRACE:.0f}s later: the operator does not put the "
                      "Deployment back to what the Config declares (it reverts manual edits)")
