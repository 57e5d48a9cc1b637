"""The whole suite passes on a healthy local cluster: every backend crossed with every check.

The counterpart of the fault selftests: those show that each check can fail and names the cause; this
one shows that the same checks pass when the cluster behaves, and that the run leaves the cluster as it
found it (the session guard compares the Config at the end and fails the run if anything differs).
"""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from utilities.localcluster_process import REPO_ROOT


def test_whole_matrix_passes_and_restores(tmp_path):
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
         f"--reports-dir={reports}", "--run-id=healthy", "--rollout-timeout=60"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    suite = ET.parse(reports / "healthy" / "junit.xml").getroot().find("testsuite")
    failures, errors = int(suite.get("failures")), int(suite.get("errors"))
    tests, skipped = int(suite.get("tests")), int(suite.get("skipped"))
    assert failures == 0 and errors == 0, proc.stdout[-4000:]
    # Six backends crossed with the checks, the refusals and the management-state tests: the skips are
    # only the pairs that do not apply, so most of the matrix really ran.
    assert tests - skipped >= 50, f"only {tests - skipped} of {tests} tests ran:\n{proc.stdout[-3000:]}"
    skip_reasons = [s.get("message", "") for s in ET.parse(reports / "healthy" / "junit.xml").iter("skipped")]
    # A healthy run skips only what does not apply, or what this cluster cannot show (too fast to see).
    assert all("does not apply" in r or "cannot show" in r for r in skip_reasons), skip_reasons
