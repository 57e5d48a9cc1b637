"""`python -m localcluster serve`: ready quickly, seeded as a vSphere IPI cluster, stops what it started.

Driven from outside, as a user would: the serve command in a subprocess, the official kubernetes client
on the kubeconfig it writes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from selftests.support import wait_until
from utilities.localcluster_process import LocalClusterProcess


def _processes_under(path) -> list[str]:
    """Command lines of live processes that mention `path` (registry and S3 servers of the cluster)."""
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(path) in line and " ps " not in line]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    lc = LocalClusterProcess(tmp_path_factory.mktemp("serve"))
    started = time.monotonic()
    lc.start()
    lc.ready_seconds = time.monotonic() - started
    yield lc
    lc.stop()


def _api(lc, context="admin"):
    return config.new_client_from_config(str(lc.kubeconfig), context=context)


def test_ready_with_kubeconfig_and_info(served):
    # How fast it is ready is measured in bench/ (a shared machine makes a time limit here flaky).
    assert served.info["ingress_address"].startswith("127.0.0.1:")
    assert oct(served.kubeconfig.stat().st_mode & 0o777) == "0o600"


def test_seeded_as_a_vsphere_ipi_cluster(served):
    api = _api(served)
    custom = client.CustomObjectsApi(api)
    infra = custom.get_cluster_custom_object("config.openshift.io", "v1", "infrastructures", "cluster")
    assert infra["status"]["platformStatus"]["type"] == "VSphere"
    assert infra["status"]["platformStatus"]["vsphere"]["ingressIPs"]
    assert custom.get_cluster_custom_object("config.openshift.io", "v1", "clusterversions", "version")[
        "status"]["desired"]["version"]
    nodes = client.CoreV1Api(api).list_node().items
    workers = [n for n in nodes if "node-role.kubernetes.io/worker" in (n.metadata.labels or {})]
    assert len(workers) == 3
    classes = {sc.metadata.name: sc for sc in client.StorageV1Api(api).list_storage_class().items}
    default = [n for n, sc in classes.items()
               if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert default == ["thin-csi"] and classes["thin-csi"].provisioner == "csi.vsphere.vmware.com"
    core = client.CoreV1Api(api)
    assert core.read_namespaced_secret("router-certs-default", "openshift-ingress").type == "kubernetes.io/tls"
    assert "ca-bundle.crt" in core.read_namespaced_config_map("default-ingress-cert", "openshift-config-managed").data
    custom.get_namespaced_custom_object("operator.openshift.io", "v1", "openshift-ingress-operator",
                                        "ingresscontrollers", "default")


def test_registry_bootstrapped_removed_as_on_vsphere(served):
    custom = client.CustomObjectsApi(_api(served))

    def config_synced():
        try:
            c = custom.get_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
        except ApiException:
            return None
        conds = {x["type"]: x for x in (c.get("status") or {}).get("conditions") or []}
        return c if conds.get("Available", {}).get("reason") == "Removed" else None

    cfg = wait_until(config_synced, timeout=20, what="the operator to bootstrap the Config")
    spec = cfg["spec"]
    assert (spec["managementState"], spec["storage"], spec["replicas"], spec["rolloutStrategy"]) == \
        ("Removed", {}, 1, "RollingUpdate")
    assert "imageregistry.operator.openshift.io/finalizer" in cfg["metadata"]["finalizers"]
    def co_conditions():
        co = custom.get_cluster_custom_object("config.openshift.io", "v1", "clusteroperators", "image-registry")
        return {c["type"]: c for c in (co.get("status") or {}).get("conditions") or []}

    # Settled once the node-ca daemon set is available too (a few seconds after start).
    def settled():
        c = co_conditions()
        state = tuple(c.get(t, {}).get("status") for t in ("Available", "Progressing", "Degraded"))
        return c if state == ("True", "False", "False") else None

    co = wait_until(settled, timeout=20, what="ClusterOperator Available, not Progressing, not Degraded")
    assert co["Available"]["reason"] == "Removed", co["Available"]


def test_user_without_rights_is_forbidden(served):
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(_api(served, "nobody")).list_namespace()
    assert e.value.status == 403


def test_sigterm_stops_every_process_it_started(tmp_path):
    lc = LocalClusterProcess(tmp_path / "lc").start()
    try:
        custom = client.CustomObjectsApi(_api(lc))
        custom.patch_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster",
                                           {"spec": {"managementState": "Managed", "storage": {"emptyDir": {}}}})
        # A real registry process runs for the pod (its config file lives under the state directory).
        wait_until(lambda: [p for p in _processes_under(lc.state_dir) if "docker-registry" in p],
                   timeout=30, what="a registry process")
        os.kill(lc.proc.pid, signal.SIGTERM)          # the serve process only, not its process group
        assert lc.proc.wait(20) == 0
        assert not lc.kubeconfig.exists() and not lc.info_path.exists()
        wait_until(lambda: not _processes_under(lc.state_dir), timeout=5,
                   what=f"every process of the cluster to stop: {_processes_under(lc.state_dir)}")
    finally:
        lc.stop()
