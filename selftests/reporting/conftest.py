"""One small real run of the suite on a local cluster, shared by the reporting selftests: a check that
passes with steps (push and pull on emptyDir), a read-only check, and a backend whose set-up fails
(default-pvc on a provisioner that fails: ProvisioningFailed, fault `provisioner.fail`), so a failed check
has evidence, and a second default-pvc check that errors on the same failed set-up."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from selftests.suite.test_suite_against_faults import set_faults
from selftests.support import served_cluster
from utilities.localcluster_process import REPO_ROOT

SELECTION = ["tests/test_management_state.py::test_config_and_clusteroperator_exist",
             "tests/test_storage_backends.py", "-k",
             "exist or (default-pvc and (rollout_completes or ready_replicas)) or (emptydir and push_and_pull)"]


@dataclasses.dataclass
class Run:
    reports: Path
    run_dir: Path
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("reporting")
    reports = tmp / "reports"
    with served_cluster(tmp / "cluster") as (lc, cluster):
        set_faults(cluster, {"provisioner.fail": "true"})
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *SELECTION, "-q", "-p", "no:cacheprovider", f"--reports-dir={reports}",
             f"--kubeconfig={lc.kubeconfig}", "--allow-destructive", f"--ingress-address={lc.info['ingress_address']}",
             "--run-id=small", "--rollout-timeout=60", "--grace=all=20", "--grace=provisioning=2"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, f"the run should fail (default-pvc cannot provision):\n{proc.stdout[-3000:]}"
    return Run(reports, reports / "small", proc)
