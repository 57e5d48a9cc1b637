"""Issue 7 item 2: `make validate CLUSTER_KUBECONFIG=...` sets up only the Python environment (no apt-get,
no sudo, no docker-registry, no system service); the registry binary is installed for the local cluster."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from utilities.localcluster_process import REPO_ROOT


def _plan(tmp_path, *args) -> str:
    """What make would run, with no registry binary and no .venv yet (a fresh machine)."""
    proc = subprocess.run(["make", "-n", "validate", f"REGISTRY_BIN={tmp_path / 'no-docker-registry'}",
                           f"VENV={tmp_path / 'venv'}", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_real_cluster_needs_only_python(tmp_path):
    plan = _plan(tmp_path, f"CLUSTER_KUBECONFIG={tmp_path / 'kubeconfig'}")
    for word in ("apt-get", "sudo", "docker-registry", "systemctl"):
        assert word not in plan, f"{word!r} in the real-cluster set-up:\n{plan}"
    assert "pip install" in plan and f"--kubeconfig={tmp_path / 'kubeconfig'}" in plan, plan


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_local_cluster_installs_the_registry(tmp_path):
    plan = _plan(tmp_path)
    assert "apt-get install -y docker-registry" in plan, plan


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_validate_exits_with_the_suites_status(tmp_path):
    """Issue 16: GNU make exits 2 whatever status the suite failed with; ./validate, with the same
    variables, exits with the suite's own (here 4, a usage error) and make validate names it."""
    args = ["CONTROL_PLANE=builtin", f"PYTEST_ARGS=--backend=nosuch --reports-dir={tmp_path}"]
    proc = subprocess.run([str(REPO_ROOT / "validate"), *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "unknown backend 'nosuch'" in proc.stderr, proc.stderr
    made = subprocess.run(["make", "--no-print-directory", "validate", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 2, made.stdout + made.stderr
    assert "make validate: the suite exited with status 4" in made.stderr, made.stderr
