"""`serve --control-plane=real`: the real kube-apiserver, controller manager, scheduler and the real
image registry operator (4.18) start, bootstrap the Config as on vSphere, and with Managed + emptyDir
roll the registry out with a real registry pod that a port-forward through kube-apiserver reaches.

Skips with the reason where ../shared/bin, etcd or root are missing (a user's fresh clone).
"""
from __future__ import annotations

import os
import subprocess

import pytest
import requests

from localcluster.realcp import binaries
from utilities import kube, waits
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess
from utilities.portforward import open_local_port

RELEASE = os.environ.get("LOCALCLUSTER_OPENSHIFT", binaries.DEFAULT_RELEASE)
WHY = binaries.missing_reason(RELEASE)
pytestmark = [pytest.mark.skipif(WHY is not None, reason=str(WHY)), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    lc = LocalClusterProcess(tmp_path_factory.mktemp("realcp"), ["--control-plane=real", f"--openshift={RELEASE}"],
                             start_timeout=300)
    lc.start()
    c = load_cluster(lc.kubeconfig, None, embedded=True, ingress_address=lc.info.get("ingress_address"),
                     info=lc.info)
    yield lc, c
    lc.stop()


def _config(c):
    return kube.call(c.custom.get_cluster_custom_object, "imageregistry.operator.openshift.io", "v1",
                     "configs", "cluster")


def test_it_is_the_real_control_plane(real):
    lc, c = real
    assert lc.info["control_plane"] == "real" and lc.info["openshift"] == RELEASE
    from kubernetes import client as k8s
    version = kube.call(k8s.VersionApi(c.api_client).get_code)
    assert version.git_version.startswith("v1.36"), version
    # The API is served on the host's loopback through the bridge; the control plane's own ports are
    # in the private network namespace only.
    assert lc.info["api_url"].startswith("https://127.0.0.1:") and not lc.info["api_url"].endswith(":6443")
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout if _has("ss") else ""
    assert ":60000 " not in out, "the operator's metrics listener leaked into the host's network namespace"


def test_serve_prints_the_suite_command_with_the_addresses_reachable_from_the_host(real):
    """The inner serve (in its network namespace) knows other addresses than the host sees: the line
    printed is the outer one, with the bridged router (HTTPS and plain HTTP) and the outer kubeconfig."""
    lc, _c = real
    lines = [ln for ln in lc.log_path.read_text().splitlines() if ln.startswith("suite: ")]
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"--kubeconfig={lc.kubeconfig.resolve()}" in line, line
    assert f"--ingress-address={lc.info['ingress_address']}" in line, line
    assert lc.info.get("ingress_http_address", "").startswith("127.0.0.1:"), lc.info
    assert f"--ingress-http-address={lc.info['ingress_http_address']}" in line, line


def _has(tool):
    from shutil import which
    return which(tool) is not None


def test_bootstrap_removed_on_vsphere(real):
    _, c = real
    cfg = waits.wait_for_conditions(c, {"Available": ("True", "Removed"), "Removed": ("True", "Removed")},
                                    timeout=120)
    assert cfg["spec"]["managementState"] == "Removed"
    assert cfg["spec"]["replicas"] == 1
    assert cfg["spec"]["rolloutStrategy"] == "RollingUpdate"


def test_managed_emptydir_rolls_out_a_real_registry(real):
    _, c = real
    kube.call(c.custom.patch_cluster_custom_object, "imageregistry.operator.openshift.io", "v1", "configs",
              "cluster", {"spec": {"managementState": "Managed", "storage": {"emptyDir": {}}}})
    snap = waits.wait_for_rollout(c, timeout=240)
    dep = kube.call(c.apps.read_namespaced_deployment, "image-registry", "openshift-image-registry")
    assert dep.spec.progress_deadline_seconds == (120 if RELEASE == "main" else 60)
    cfg = _config(c)
    conds = {x["type"]: x for x in cfg["status"]["conditions"]}
    assert conds["StorageExists"]["status"] == "True", conds["StorageExists"]
    assert cfg["status"]["readyReplicas"] == 1
    pods = [p for p in kube.call(c.core.list_namespaced_pod, "openshift-image-registry",
                                 label_selector="docker-registry=default").items
            if p.status.phase == "Running"]
    assert pods, snap
    # pods/portforward through kube-apiserver -> the kubelet API -> the real registry process.
    with open_local_port(c.core, "openshift-image-registry", pods[0].metadata.name, 5000) as lp:
        r = requests.get(f"https://{lp.host}:{lp.port}/healthz", verify=False, timeout=15)
    assert r.status_code == 200, (r.status_code, r.text, lp.errors)
