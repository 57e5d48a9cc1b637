"""managementState: Removed -> Managed with no storage (vSphere), and back to Removed.

Both switch tests run LAST (marker `phase`), after the storage backends: the run goes back to Removed
once (operator-facts.md §12.4: each Removed <-> Managed switch rolls out parts of the control plane),
and "Managed with storage: {}" is checked from a registry with no Deployment, the only case where it
is Available=False/StorageNotConfigured (§12.5).

Procedure: OpenShift docs "Changing the image registry's management state" and the vSphere storage
modules; expected conditions: /work/shared/reference/operator-facts.md sections 2 and 6.
"""
from __future__ import annotations

import pytest

from utilities import kube, waits
from utilities import registry_steps as steps
from utilities.kube import CLUSTEROPERATOR_GVR, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE


@pytest.fixture
def no_storage(cluster, no_registry, rollout_timeout):
    """Managed with storage: {} (as bootstrapped on vSphere) from a registry that has no Deployment
    (operator-facts.md §12.5); put back afterwards."""
    with steps.spec_fields(cluster, managementState="Managed", storage={}):
        yield
    steps.wait_settled(cluster, rollout_timeout)


def _cond(obj, type_):
    return waits.conditions(obj).get(type_) or {}


@pytest.mark.readonly
def test_config_and_clusteroperator_exist(cluster, registry_config):
    assert registry_config["metadata"]["name"] == "cluster"
    assert "replicas" in registry_config["spec"], "spec.replicas is required by the CRD"
    co = cluster.get_cluster_object(CLUSTEROPERATOR_GVR, "image-registry")
    assert co is not None, "ClusterOperator image-registry not found"
    assert {"Available", "Progressing", "Degraded"} <= set(waits.conditions(co)), \
        f"ClusterOperator image-registry conditions: {waits.format_conditions(co)}"


@pytest.mark.destructive
@pytest.mark.phase("last")
def test_back_to_removed_deletes_the_deployment(cluster, registry_removal, rollout_timeout):
    """From Managed with storage (the last backend of the run, or emptyDir) to Removed: the run's one
    switch back (the original spec is put back after it)."""
    assert registry_removal.had_deployment, \
        f"no Deployment {REGISTRY_NAMESPACE}/{REGISTRY_DEPLOYMENT} while Managed with storage, before Removed"
    assert kube.get_or_none(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT,
                            REGISTRY_NAMESPACE) is None, \
        f"Deployment {REGISTRY_NAMESPACE}/{REGISTRY_DEPLOYMENT} still there after the operator reported Removed"
    cfg = cluster.registry_config()
    for type_, status in (("Available", "True"), ("Progressing", "False"), ("Degraded", "False"),
                          ("Removed", "True")):
        c = _cond(cfg, type_)
        assert (c.get("status"), c.get("reason")) == (status, "Removed"), waits.format_conditions(cfg)
    waits.wait_for_clusteroperator(cluster, {"Available": ("True", "Removed"),
                                             "Progressing": ("False", "Removed"),
                                             "Degraded": ("False", None)}, rollout_timeout)


@pytest.mark.destructive
@pytest.mark.phase("last")
def test_managed_without_storage_is_storage_not_configured(cluster, no_storage, rollout_timeout):
    cfg = waits.wait_for_conditions(cluster, {"Available": ("False", "StorageNotConfigured"),
                                              "Degraded": ("True", "StorageNotConfigured")}, rollout_timeout)
    assert "storage backend not configured" in _cond(cfg, "Available").get("message", ""), \
        waits.format_conditions(cfg)
    assert _cond(cfg, "Progressing").get("status") == "False", waits.format_conditions(cfg)
    co = waits.wait_for_clusteroperator(cluster, {"Available": ("False", "StorageNotConfigured"),
                                                  "Degraded": ("True", "StorageNotConfigured")}, rollout_timeout)
    assert "storage backend not configured" in _cond(co, "Degraded").get("message", ""), \
        waits.format_conditions(co)
    assert kube.get_or_none(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT,
                            REGISTRY_NAMESPACE) is None, "a registry Deployment exists without storage"
