"""The reporting hook never turns a test's failure into pytest's INTERNALERROR: it collects evidence
only from the suite's own cluster (a `utilities.kube.Cluster`), and a failure while collecting it is
logged beside the test's own failure. Each case runs a one-test pytest with the reporting plugin."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from utilities.localcluster_process import REPO_ROOT

FOREIGN_CLUSTER = """
    import pytest

    @pytest.fixture
    def cluster():
        return "a selftest's own cluster, not the suite's"

    def test_fails(cluster):
        assert False, "the test's own failure"
"""

EVIDENCE_FAILS = """
    import pytest
    import fixtures.reporting
    from utilities import kube

    def _boom(*args, **kwargs):
        raise RuntimeError("the evidence cannot be collected")

    fixtures.reporting.attach_evidence = _boom

    @pytest.fixture
    def cluster():
        return kube.Cluster.__new__(kube.Cluster)

    def test_fails(cluster):
        assert False, "the test's own failure"
"""


def _run(tmp_path, source: str) -> str:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(source))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fixtures.reporting",
         f"--rootdir={tmp_path}", "-o", "log_cli=true", "-o", "log_cli_level=WARNING",
         str(tmp_path / "test_inner.py")],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "INTERNALERROR" not in out, out
    assert "1 failed" in out and "the test's own failure" in out, out
    return out


def test_a_selftests_own_cluster_fixture_is_left_alone(tmp_path):
    out = _run(tmp_path, FOREIGN_CLUSTER)
    assert "could not collect the evidence" not in out, out


def test_evidence_that_cannot_be_collected_does_not_hide_the_failure(tmp_path):
    out = _run(tmp_path, EVIDENCE_FAILS)
    assert "could not collect the evidence" in out and "the evidence cannot be collected" in out, out
