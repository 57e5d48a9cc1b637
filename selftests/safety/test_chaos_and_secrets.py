"""With 10% of the suite's API calls failing transiently (429/500/503), added latency, dropped watches
and write conflicts (the local cluster's --api-* chaos flags), the whole suite still passes (every
backend crossed with every check), and nothing it wrote (the reports directory: JUnit, allure results and attachments,
logs) holds a secret: the kubeconfig's tokens, an S3 key read from a Secret."""
from __future__ import annotations

import base64
import os
import secrets

import pytest
import requests

from selftests.safety.conftest import start_local
from utilities import kube, redact

CHAOS = ["--api-error-rate=0.1", "--api-latency=0.01", "--api-watch-drop-rate=0.1", "--api-conflict-rate=0.05",
         "--api-chaos-seed=42"]


@pytest.fixture(scope="module")
def chaotic(tmp_path_factory):
    lc = start_local(tmp_path_factory.mktemp("chaos"), *CHAOS)
    try:
        yield lc
    finally:
        lc.cluster.api_client.close()
        lc.proc.stop()


def _chaos_counts(lc) -> dict:
    r = requests.get(lc.info["api_url"] + "/localcluster/chaos", verify=lc.cluster.ca_file,
                     headers={"Authorization": f"Bearer {lc.cluster.token}"}, timeout=10)
    r.raise_for_status()
    return r.json()


def test_suite_passes_under_api_chaos_and_leaks_no_secret(chaotic, tmp_path):
    lc = chaotic
    key = "S3" + secrets.token_urlsafe(24)
    kube.call(lc.cluster.core.create_namespaced_secret, "openshift-image-registry",
              {"metadata": {"name": "safety-probe-s3"}, "type": "Opaque",
               "data": {"AWS_ACCESS_KEY_ID": base64.b64encode(b"AKIAPROBE0001").decode(),
                        "AWS_SECRET_ACCESS_KEY": base64.b64encode(key.encode()).decode()}})
    os.environ["SAFETY_PROBE_SECRET"] = "openshift-image-registry/safety-probe-s3"
    try:
        run = lc.suite(lc.run_id("chaos"), "tests", "selftests/safety/secret_probe.py")
        rc = run.wait(420)
    finally:
        os.environ.pop("SAFETY_PROBE_SECRET", None)
    assert rc == 0, f"the suite failed under API chaos ({rc}):\n{run.output[-4000:]}"
    closing = run.lines[-3]         # pytest's closing line, before the run's two lines on the cluster
    assert "passed" in closing and "xfailed" in closing, run.lines[-3:]
    injected = _chaos_counts(lc)["status"]["injected"]
    assert injected["errors"] >= 10 and injected["watchDrops"] >= 1, injected
    lc.assert_back(run.run_id)

    # the scan: every file the run wrote, for every secret value (and its base64)
    values = redact.kubeconfig_secrets(lc.kubeconfig) + [key]
    assert len(values) >= 4
    forms = {v for v in values} | {base64.b64encode(v.encode()).decode() for v in values}
    files = [p for p in run.run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "junit.xml" for p in files) and any("attachment" in p.name for p in files), files
    leaks = [(str(p.relative_to(run.run_dir)), v[:12]) for p in files for v in forms if v.encode() in p.read_bytes()]
    assert not leaks, f"secrets found in the reports: {leaks}"
    # ...while the probe did leak them on purpose: the redaction is what kept them out
    junit = (run.run_dir / "junit.xml").read_text()
    assert "the API token is ***" in junit and "***" in junit, junit[:3000]
    on_terminal = [ln for ln in run.lines if any(v in ln for v in values)]
    assert not on_terminal, f"a secret reached the terminal: {on_terminal}"
