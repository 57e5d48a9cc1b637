"""Issue 16 items 3 and 4 on one local cluster without ODF (reached with --kubeconfig), where the ODF
backends lack their storage classes:

- a backend named with --backend that cannot run fails the run (exit 16), one line per backend saying
  what is missing; a check that does not apply is n/a (JUnit property, matrix, certificate, counted as
  n/a and not listed test by test);
- without --backend, backends that lack prerequisites are n/a and the run passes when another backend
  is certified, but exits 17 when none is;
- the last lines say whether the Config was restored, how many control-plane rollouts the run caused
  and where the reports are.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from selftests.support import run_suite, served_cluster_in
from utilities import certificate
from utilities.junit import properties_of, pytest_id

BACKENDS = "tests/test_storage_backends.py"
CEPHFS_LACKS = "StorageClass ocs-storagecluster-cephfs not found on the cluster (is OpenShift Data Foundation installed?)"


@pytest.fixture(scope="module")
def no_odf(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "verdicts", ["--no-odf"]) as served:
        yield served


def _suite(served, run_id: str, args: list[str]):
    lc, _, tmp = served
    run = run_suite(lc, [BACKENDS, *args], tmp, run_id, rollout_timeout=60, timeout=300)
    cases = {pytest_id(tc): (properties_of(tc),
                              "skipped" if tc.find("skipped") is not None else "ran")
             for tc in ET.parse(run.junit).getroot().iter("testcase")}
    return run, cases, tmp / "reports" / run_id


def test_a_named_backend_that_cannot_run_fails_the_run(no_odf):
    run, cases, run_dir = _suite(no_odf, "named", ["--backend=emptydir", "--backend=cephfs", "-k",
                                                   "rollout_completes or spread"])
    out = run.output
    assert run.returncode == 16, f"exit {run.returncode}:\n{out[-4000:]}"
    assert "backends named with --backend that cannot run on this cluster (exit status 16)" in out, out[-3000:]
    assert f"\ncephfs: {CEPHFS_LACKS}\n" in out, out[-3000:]
    # The named backend's skips are real skips, folded into one -ra line; the n/a check is not listed.
    props, kind = cases["test_rollout_completes[cephfs]"]
    assert kind == "skipped" and "outcome" not in props, (kind, props)
    assert out.count("SKIPPED [2] ") == 1 and "runs 1 replica" not in out, out[-3000:]
    props, kind = cases["test_replicas_spread_over_nodes[emptydir]"]
    assert kind == "skipped" and props.get("outcome") == "n/a", (kind, props)
    assert re.search(r"\n1 passed, 2 skipped, \d+ deselected, 1 n/a in ", out), out[-3000:]
    assert "N/A 1 check(s) do not apply to their backend" in out, out[-3000:]
    rec = certificate.load(run_dir)
    assert rec.exitstatus == 16
    outcomes = {(r.check, r.backend): r.outcome for r in rec.results}
    assert outcomes[("test_replicas_spread_over_nodes", "emptydir")] == "n/a", outcomes
    assert outcomes[("test_rollout_completes", "cephfs")] == "skipped", outcomes
    md = (run_dir / "certificate.md").read_text()
    assert "| emptydir | ✓ yes | 1 check(s) passed, 1 not applicable |" in md and "| cephfs | ✗ no |" in md, md
    assert "○ n/a [" in (run_dir / "matrix.md").read_text()
    # Item 4: the last lines say what happened to the cluster and where the reports are.
    last = out.rstrip().splitlines()[-2:]
    assert last[0].startswith("cluster: the Config was restored exactly; the run caused ") \
        and last[0].endswith("control-plane rollout(s), settled"), last
    assert last[1].startswith(f"reports: {run_dir}/"), last


def test_backends_lacking_prerequisites_are_not_applicable_by_default(no_odf):
    run, cases, run_dir = _suite(no_odf, "default", ["-k", "rollout_completes and not default-pvc",
                                                     "--storage-class=block=nosuch-class"])
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.output[-4000:]}"
    assert cases["test_rollout_completes[emptydir]"][1] == "ran"
    for b in ("block", "cephfs", "ceph-rgw", "noobaa"):
        assert cases[f"test_rollout_completes[{b}]"] == (
            {"backend": b, "check": "test_rollout_completes", "openshift_version": "4.18.12", "outcome": "n/a"},
            "skipped"), b
    assert "SKIPPED" not in run.output and f"N/A 1 check(s) of cephfs: {CEPHFS_LACKS}" in run.output, run.output[-3000:]
    md = (run_dir / "certificate.md").read_text()
    assert "| emptydir | ✓ yes |" in md and f"| cephfs | ○ n/a | n/a: cephfs: {CEPHFS_LACKS} |" in md, md


def test_no_backend_certified_fails_the_run(no_odf):
    run, cases, run_dir = _suite(no_odf, "none", ["-k", "rollout_completes and not emptydir and not default-pvc",
                                                  "--storage-class=block=nosuch-class"])
    out = run.output
    assert run.returncode == 17, f"exit {run.returncode}:\n{out[-4000:]}"
    assert "no backend certified: the backends lack their prerequisites on this cluster (exit status 17)" in out
    for line in ("block: StorageClass nosuch-class not found on the cluster", f"cephfs: {CEPHFS_LACKS}"):
        assert f"\n{line}\n" in out, (line, out[-3000:])
    assert all(props.get("outcome") == "n/a" for props, _ in cases.values()), cases
    assert certificate.load(run_dir).exitstatus == 17
    assert out.rstrip().splitlines()[-2].startswith("cluster: the Config was restored exactly"), out[-1000:]
