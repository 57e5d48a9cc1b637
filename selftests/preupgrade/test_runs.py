"""The pre-upgrade review run as users run it (`pytest` in a subprocess):

- on the real must-gathers of ../shared/realdata (vSphere 4.8, AWS, Azure, metal; skipped where
  absent), with the verdicts those clusters deserve;
- on a live local cluster given by --kubeconfig without --allow-destructive: exit 0 with warnings,
  not one write request (the API server counts requests by verb), no lock, no snapshot;
- on the local cluster configured so (Managed, emptyDir; a user ReadWriteOnce claim; RollingUpdate
  set afterwards, which the operator does not re-validate, operator-facts §3.2), checked in-process.
"""
from __future__ import annotations

import base64
import glob
import json
import ssl
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from utilities import kube, waits
from utilities import registry_steps as steps
from utilities.backends import EMPTYDIR
from utilities.junit import properties_of
from utilities.kube import load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess
from utilities.preupgrade.gather import ClusterView, run_check

REALDATA = REPO_ROOT.parent / "shared" / "realdata"
EXPECTED = {
    # vSphere IPI 4.8.11, emptyDir (the CI recipe): emptyDir warns; install-time events are history.
    "vsphere": {"clusteroperator": "pass", "config-conditions": "pass", "management-state": "pass",
                "storage": "warn", "claim": "skip", "replicas-ready": "pass", "replicas-spread": "pass",
                "events": "pass", "pruner": "pass", "node-ca": "pass", "operator-version": "pass", "proxy": "skip",
                "storage-management": "pass", "overrides": "pass", "s3-credentials": "skip"},
    # AWS IPI, the operator's own S3 bucket, 2 replicas on 2 nodes; secrets are not in the must-gather.
    "aws": {"clusteroperator": "pass", "storage": "pass", "storage-management": "pass", "s3-credentials": "skip",
            "s3-trusted-ca": "pass", "s3-endpoint": "pass", "replicas-ready": "pass", "replicas-spread": "pass",
            "events": "pass", "operator-version": "pass", "claim": "skip"},
    "azure": {"clusteroperator": "pass", "storage": "pass", "storage-management": "pass", "replicas-ready": "pass",
              "replicas-spread": "pass", "s3-credentials": "skip", "operator-version": "pass"},
    "metal": {"clusteroperator": "pass", "storage": "warn", "management-state": "pass", "replicas-ready": "pass",
              "operator-version": "pass"},
}


def _must_gather(platform: str) -> Path:
    if not REALDATA.exists():
        pytest.skip(f"real cluster data not found at {REALDATA} (../shared/realdata is not beside the checkout)")
    found = glob.glob(str(REALDATA / f"*must-gather-{platform}*subset"))
    if not found:
        pytest.skip(f"no {platform} must-gather under {REALDATA}")
    return Path(found[0])


def _pytest(tmp_path: Path, *args, run_id="run") -> tuple[subprocess.CompletedProcess, Path]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--run-id={run_id}",
           f"--reports-dir={tmp_path / 'reports'}", "-q", *args]
    p = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return p, tmp_path / "reports" / run_id


def _verdicts(run_dir: Path) -> dict[str, dict]:
    return {v["check"]: v for v in json.loads((run_dir / "preupgrade.json").read_text())}


@pytest.mark.parametrize("platform", list(EXPECTED))
def test_real_must_gathers(tmp_path, platform):
    mg = _must_gather(platform)
    p, run_dir = _pytest(tmp_path, f"--must-gather={mg}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    got = _verdicts(run_dir)
    wrong = {c: got.get(c) for c, want in EXPECTED[platform].items() if (got.get(c) or {}).get("verdict") != want}
    assert not wrong, wrong
    assert not [v for v in got.values() if v["verdict"] == "fail"]
    for v in got.values():
        assert set(v) == {"check", "verdict", "reason", "source"} and v["reason"], v
    assert "pre-upgrade review" in p.stdout and "pre-upgrade verdicts:" in p.stdout
    md = (run_dir / "preupgrade.md").read_text()
    assert "| storage | **" in md
    assert "deselected" in p.stdout          # only the readonly checks run on a must-gather
    if platform == "vsphere":
        assert "proxies/cluster.yaml" in got["proxy"]["reason"]
        cases = ET.parse(run_dir / "junit.xml").getroot().iter("testcase")
        assert any(properties_of(tc).get("preupgrade_verdict") == "warn" for tc in cases)


def test_production_makes_emptydir_fail(tmp_path):
    p, run_dir = _pytest(tmp_path, f"--must-gather={_must_gather('vsphere')}", "--production",
                         "tests/test_preupgrade.py")
    assert p.returncode == 1, p.stdout[-2000:]
    assert _verdicts(run_dir)["storage"]["verdict"] == "fail"


def test_bad_must_gather_is_a_usage_error(tmp_path):
    (tmp_path / "nothing").mkdir()
    p, _ = _pytest(tmp_path, f"--must-gather={tmp_path / 'nothing'}")
    assert p.returncode == 4, p.stdout + p.stderr
    assert "is not a must-gather" in p.stderr


def _requests(lc: LocalClusterProcess) -> dict:
    k = yaml.safe_load(lc.kubeconfig.read_text())
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(k["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    req = urllib.request.Request(lc.info["api_url"] + "/localcluster/requests",
                                 headers={"Authorization": "Bearer " + k["users"][0]["user"]["token"]})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)["client"]


WRITES = ("create", "update", "patch", "delete", "deletecollection")


def test_readonly_kubeconfig_run_writes_nothing(tmp_path):
    with LocalClusterProcess(tmp_path / "lc") as lc:
        c = load_cluster(lc.kubeconfig)
        waits.wait_for_clusteroperator(c, {"Available": ("True", None), "Degraded": ("False", None)}, 60)
        before = _requests(lc)
        p, run_dir = _pytest(tmp_path, f"--kubeconfig={lc.kubeconfig}")
        after = _requests(lc)
        lease = kube.get_or_none(kube.k8s.CoordinationV1Api(c.api_client).read_namespaced_lease,
                                 "registry-conformance-lock", "openshift-image-registry")
        c.api_client.close()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    delta = {v: after.get(v, 0) - before.get(v, 0) for v in after}
    assert delta.get("get", 0) + delta.get("list", 0) > 20, delta       # it did read the cluster
    writes = {v: n for v, n in delta.items() if v in WRITES and n}
    assert not writes, f"a read-only run made write requests: {writes}"
    assert lease is None
    assert not (run_dir / "config-snapshot.json").exists() and not (run_dir / "journal.jsonl").exists()
    got = _verdicts(run_dir)
    assert got["management-state"]["verdict"] == "warn"          # the vSphere bootstrap default: Removed
    assert "destructive: changes the cluster" in p.stdout or "skipped" in p.stdout


def test_live_local_cluster_configured_so(tmp_path):
    """Verdicts follow what the local cluster is made to be."""
    with LocalClusterProcess(tmp_path / "lc") as lc:
        c = load_cluster(lc.kubeconfig, embedded=True, info=lc.info)
        try:
            _live_cases(c)
        finally:
            c.api_client.close()


def _live_cases(c):
    timeout = 90
    view = lambda production=False: ClusterView(c, production=production)  # noqa: E731 - fresh reads
    with steps.managed(c, timeout):
        with steps.storage(c, EMPTYDIR, timeout):
            assert run_check(view(), "management-state").verdict == "pass"
            assert run_check(view(), "storage").verdict == "warn"
            assert run_check(view(production=True), "storage").verdict == "fail"
            assert run_check(view(), "replicas-ready").verdict == "pass"
            assert run_check(view(), "claim").verdict == "skip"
        labels = {"app.kubernetes.io/managed-by": "registry-conformance"}
        with steps.claim(c, "registry-pvc", access_mode="ReadWriteOnce", size="10Gi", labels=labels):
            fields = {"rolloutStrategy": "Recreate", "replicas": 1,
                      "storage": {"managementState": "Managed", "pvc": {"claim": "registry-pvc"}}}
            with steps.spec_fields(c, **fields):
                waits.wait_for_rollout(c, timeout)
                verdicts = {n: run_check(view(), n) for n in ("claim", "claim-access-mode", "claim-nfs",
                                                              "storage-management", "storage")}
                assert verdicts["claim"].verdict == "warn" and "10Gi" in verdicts["claim"].reason, verdicts
                assert verdicts["claim-access-mode"].verdict == "pass", verdicts
                assert verdicts["claim-nfs"].verdict == "pass", verdicts
                assert verdicts["storage-management"].verdict == "warn", verdicts
                assert verdicts["storage"].verdict == "pass", verdicts
                # RollingUpdate afterwards: the operator does not re-check the claim (§3.2 step 4).
                with steps.spec_fields(c, rolloutStrategy="RollingUpdate"):
                    waits.wait_for_config_synced(c, timeout)
                    v = run_check(view(), "claim-access-mode")
                    assert v.verdict == "fail" and "Multi-Attach" in v.reason, v
