"""deploy/run-in-cluster.sh, the image's entry point, picks its cluster as an admin expects: $KUBECONFIG
(a bastion's `podman run -e KUBECONFIG=/kube/config`, a CI step), else a kubeconfig mounted at
/kube/config, else the pod's ServiceAccount token; with none of them it exits 9 saying what to give.
The choice is read from the command it runs (a stand-in `python` that prints its arguments); the bastion
form then runs the real suite against a served local cluster and writes its reports to the mounted
directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from utilities.localcluster_process import REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "run-in-cluster.sh"
FAKE_PYTHON = """#!/bin/sh
printf '%s\\n' "$@"
"""


def run(tmp_path: Path, env: dict, *args: str, python: str | None = None) -> subprocess.CompletedProcess:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": python or str(fake),
            "REPORTS_DIR": str(tmp_path / "reports"), "KUBECONFIG_FILE": str(tmp_path / "generated-kubeconfig"),
            # Nothing of this machine's: no ServiceAccount, no mounted kubeconfig unless a case gives one.
            "SERVICEACCOUNT_DIR": str(tmp_path / "no-sa"), "MOUNTED_KUBECONFIG": str(tmp_path / "no-kube/config")}
    return subprocess.run(["bash", str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=600)


def _kubeconfig_arg(proc) -> str:
    return next(a.split("=", 1)[1] for a in proc.stdout.splitlines() if a.startswith("--kubeconfig="))


@pytest.fixture
def service_account(tmp_path) -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token")
    (sa / "ca.crt").write_text("ca")
    return sa


def test_kubeconfig_wins_over_the_pod_token(tmp_path, service_account):
    kc = tmp_path / "kube" / "config"
    kc.parent.mkdir()
    kc.write_text("apiVersion: v1\n")
    proc = run(tmp_path, {"KUBECONFIG": str(kc), "SERVICEACCOUNT_DIR": str(service_account)}, "--allow-destructive")
    assert proc.returncode == 0, proc.stderr
    assert _kubeconfig_arg(proc) == str(kc)
    args = proc.stdout.splitlines()
    assert args[:3] == ["-m", "pytest", "tests"] and "--allow-destructive" in args
    assert f"--reports-dir={tmp_path / 'reports'}" in args
    assert any(a.startswith("--run-id=run-") for a in args)
    assert "kubeconfig from KUBECONFIG" in proc.stderr


def test_a_mounted_kubeconfig_without_kubeconfig_set(tmp_path, service_account):
    kc = tmp_path / "kube" / "config"
    kc.parent.mkdir()
    kc.write_text("apiVersion: v1\n")
    proc = run(tmp_path, {"MOUNTED_KUBECONFIG": str(kc), "SERVICEACCOUNT_DIR": str(service_account)})
    assert proc.returncode == 0, proc.stderr
    assert _kubeconfig_arg(proc) == str(kc)


def test_the_pod_token_when_no_kubeconfig_is_given(tmp_path, service_account):
    proc = run(tmp_path, {"SERVICEACCOUNT_DIR": str(service_account), "KUBERNETES_SERVICE_HOST": "10.0.0.1",
                          "KUBERNETES_SERVICE_PORT": "443", "PYTEST_ARGS": "-k storage"})
    assert proc.returncode == 0, proc.stderr
    generated = Path(_kubeconfig_arg(proc))
    assert generated == tmp_path / "generated-kubeconfig"
    text = generated.read_text()
    assert f"tokenFile: {service_account}/token" in text and "server: https://10.0.0.1:443" in text
    assert "sa-token" not in text                # the token is read from its file, never copied
    assert oct(generated.stat().st_mode & 0o777) == "0o600"
    args = proc.stdout.splitlines()
    assert any(a.startswith("--run-id=nightly-") for a in args) and args[-2:] == ["-k", "storage"]


@pytest.mark.parametrize("env, words", [
    ({}, ["no cluster to run against", "KUBECONFIG", "ServiceAccount"]),
    ({"KUBECONFIG": "/nowhere/config"}, ["KUBECONFIG=/nowhere/config does not exist", "-v ~/.kube:/kube:ro,Z"]),
    ({"KUBECONFIG": "/a/config:/b/config"}, ["lists several files", "--flatten"]),
])
def test_nothing_usable_exits_9_saying_what_to_give(tmp_path, env, words):
    proc = run(tmp_path, env)
    assert proc.returncode == 9, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""                     # pytest was not started
    for w in words:
        assert w in proc.stderr, proc.stderr


def test_the_bastion_form_runs_the_suite_and_writes_the_reports_to_the_mounted_directory(tmp_path):
    """As `podman run -v ~/.kube:/kube:ro,Z -e KUBECONFIG=/kube/config -v ./out:/reports:Z IMAGE` would:
    KUBECONFIG set, reports to the mounted directory; a readonly run (no --allow-destructive) of the
    whole suite against a served local cluster."""
    from selftests.support import served_cluster
    with served_cluster(tmp_path / "cluster") as (lc, _):
        out = tmp_path / "out"
        proc = run(tmp_path, {"KUBECONFIG": str(lc.kubeconfig), "REPORTS_DIR": str(out), "RUN_ID": "bastion"},
                   f"--ingress-address={lc.info['ingress_address']}", "-q", python=sys.executable)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run_dir = out / "bastion"
    for name in ("junit.xml", "certificate.md", "matrix.md", "preupgrade.md"):
        assert (run_dir / name).is_file(), sorted(p.name for p in run_dir.iterdir())
    assert f"kubeconfig from KUBECONFIG; reports in {out}" in proc.stderr
