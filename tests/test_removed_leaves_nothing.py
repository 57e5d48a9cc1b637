"""Removed leaves nothing behind (issue 9; operator-facts.md §4.3, §7, §4.2): after Managed with storage
and the default route, managementState Removed deletes the Deployment, the Service, the Secret
image-registry-private-configuration, the ServiceAccount registry, the PodDisruptionBudget and the
operator's routes, and images.config.openshift.io/cluster no longer names the registry (internal and
external host names empty). The node-ca DaemonSet and image-registry-certificates are kept (not checked).

Judged on the run's one switch back to Removed (`registry_removal`, phase "last"): each Removed <->
Managed switch rolls out parts of the control plane on a real cluster (§12.4), so this module makes none
of its own.
"""
from __future__ import annotations

import pytest

from utilities import kube, waits
from utilities.kube import REGISTRY_NAMESPACE

pytestmark = [pytest.mark.destructive]

GRACE = 20.0      # seconds, after the operator reported Removed, for the objects and host names to go


def _leftovers(cluster) -> list[str]:
    from kubernetes import client as k8s
    policy = k8s.PolicyV1Api(cluster.api_client)
    reads = {
        "Deployment image-registry": (cluster.apps.read_namespaced_deployment, "image-registry"),
        "Service image-registry": (cluster.core.read_namespaced_service, "image-registry"),
        "Secret image-registry-private-configuration": (cluster.core.read_namespaced_secret,
                                                        "image-registry-private-configuration"),
        "ServiceAccount registry": (cluster.core.read_namespaced_service_account, "registry"),
        "PodDisruptionBudget image-registry": (policy.read_namespaced_pod_disruption_budget, "image-registry"),
    }
    left = [what for what, (fn, name) in reads.items()
            if (obj := kube.get_or_none(fn, name, REGISTRY_NAMESPACE)) is not None
            and not obj.metadata.deletion_timestamp]
    routes = kube.call(cluster.custom.list_namespaced_custom_object, *kube.ROUTE_GVR[:2], REGISTRY_NAMESPACE,
                       kube.ROUTE_GVR[2]).get("items", [])
    left += [f"Route {r['metadata']['name']}" for r in routes
             if "imageregistry.openshift.io" in (r["metadata"].get("annotations") or {})
             and not r["metadata"].get("deletionTimestamp")]
    image = kube.get_or_none(cluster.custom.get_cluster_custom_object, "config.openshift.io", "v1", "images",
                             "cluster") or {}
    st = image.get("status") or {}
    if st.get("internalRegistryHostname"):
        left.append(f"images.config.openshift.io/cluster status.internalRegistryHostname "
                    f"{st['internalRegistryHostname']!r}")
    if st.get("externalRegistryHostnames"):
        left.append(f"images.config.openshift.io/cluster status.externalRegistryHostnames "
                    f"{st['externalRegistryHostnames']!r}")
    return left


@pytest.mark.phase("last")
def test_removed_leaves_nothing_behind(cluster, registry_removal):
    assert registry_removal.had_deployment, \
        f"no Deployment {REGISTRY_NAMESPACE}/image-registry while Managed with storage, before Removed"
    state = {}

    def gone():
        state["left"] = _leftovers(cluster)
        return not state["left"]

    ns = {"namespace": REGISTRY_NAMESPACE}
    sources = [("services", cluster.core.list_namespaced_service, ns),
               ("secrets", cluster.core.list_namespaced_secret, ns),
               ("image", cluster.custom.list_cluster_custom_object,
                {"group": "config.openshift.io", "version": "v1", "plural": "images"})]
    try:
        waits._wait_loop(sources, gone, GRACE, lambda: "", "Removed to delete the registry's objects")
    except waits.WaitTimeout:
        pytest.fail(f"{GRACE:.0f}s after the operator reported Removed, still there: "
                    f"{'; '.join(state['left'])} (Removed deletes the registry's objects and empties "
                    "the image config's registry host names)")
