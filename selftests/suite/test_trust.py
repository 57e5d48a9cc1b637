"""Trust (issue 7 item 15): a cluster whose default IngressController serves a custom certificate signed
by a public CA. default-ingress-cert then holds that certificate (leaf + intermediate), which does not
verify on its own; the suite trusts it AND the system roots, so route pushes and pulls work."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from utilities.kube import load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess
from utilities.registry_client import RouteAdapter


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    lc = LocalClusterProcess(tmp_path_factory.mktemp("trust"), ["--custom-default-certificate"])
    lc.start()
    yield lc
    lc.stop()


def _get(host, ingress, ca_file):
    s = requests.Session()
    s.trust_env = False
    s.mount(f"https://{host}", RouteAdapter(host, ingress))
    return s.get(f"https://{host}/healthz", verify=ca_file, timeout=10)


def test_the_local_cluster_serves_a_publicly_signed_default_certificate(served, tmp_path):
    c = load_cluster(served.kubeconfig, embedded=True, info=served.info)
    try:
        ic = c.custom.get_namespaced_custom_object("operator.openshift.io", "v1", "openshift-ingress-operator",
                                                   "ingresscontrollers", "default")
        assert ic["spec"]["defaultCertificate"]["name"] == "custom-default-cert"
        host = "console-openshift-console.apps.vsphere-local.example.test"
        only_published = tmp_path / "published.pem"
        only_published.write_bytes(c.router_ca_pem())
        with pytest.raises(requests.exceptions.SSLError):
            _get(host, served.info["ingress_address"], str(only_published))
        # With the system roots (here the local cluster's stand-in for them) it verifies.
        r = _get(host, served.info["ingress_address"], c.router_ca_file)
        assert r.status_code in (200, 404, 503)
    finally:
        c.api_client.close()


def test_push_and_pull_through_the_route_trusting_the_system_roots(tmp_path):
    """The embedded local cluster, started with --custom-default-certificate."""
    cmd = [sys.executable, "-m", "pytest", "tests/test_storage_backends.py", "-k", "emptydir and push_and_pull",
           "--localcluster-arg=--custom-default-certificate", f"--reports-dir={tmp_path / 'r'}", "--run-id", "trust",
           "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0 and "1 passed" in out, out[-3000:]
