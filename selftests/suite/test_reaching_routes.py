"""Reaching routes (issue 7 item 3): `*.apps` names do not resolve and the fallback (the Infrastructure's
vSphere ingress IPs on port 443, here 127.0.0.1:443 where nothing listens: refused, as a firewalled or
wrong ingress VIP is) fails in ONE line naming the host, the address tried, why, and what to pass; the
command `python -m localcluster serve` prints runs the suite against the cluster it started."""
from __future__ import annotations

import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    lc = LocalClusterProcess(tmp_path_factory.mktemp("routes"))
    lc.start()
    yield lc
    lc.stop()


def _failures(junit):
    out = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        for bad in list(tc.findall("failure")) + list(tc.findall("error")):
            out.append((bad.get("message") or "", bad.text or ""))
    return out


def test_refused_fallback_is_one_line_naming_host_address_and_option(served, tmp_path):
    junit = tmp_path / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "tests/test_registry_access.py", "-k", "anonymous_pull",
           f"--kubeconfig={served.kubeconfig}", "--allow-destructive", f"--reports-dir={tmp_path / 'r'}",
           "--run-id", "unreachable", f"--junitxml={junit}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 1, out[-3000:]
    failures = _failures(junit)
    assert failures, out[-3000:]
    message, text = failures[0]
    line = message.splitlines()[0]
    for want in ("cannot reach route host default-route-openshift-image-registry.apps.", "at 127.0.0.1:443",
                 "does not resolve", "ingressIPs", "Connection refused", "--ingress-address="):
        assert want in line, line
    assert "requests.exceptions.ConnectionError" not in out and "urllib3.exceptions" not in out, out[-4000:]
    assert "NewConnectionError" not in text


def test_serve_prints_the_suite_command(served, tmp_path):
    lines = [ln for ln in served.log_path.read_text().splitlines() if ln.startswith("suite: ")]
    assert lines, served.log_path.read_text()[-2000:]
    command = lines[-1][len("suite: "):]
    assert f"--ingress-address={served.info['ingress_address']}" in command
    assert f"--kubeconfig={served.kubeconfig.resolve()}" in command
    # Run it (a few checks only, and reports elsewhere): it reaches the routes.
    extra = ["tests/test_registry_access.py", "-k", "anonymous_pull", f"--reports-dir={tmp_path / 'r'}",
             "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(["bash", "-c", command + " " + " ".join(shlex.quote(a) for a in extra)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "1 passed" in out, out[-2000:]
