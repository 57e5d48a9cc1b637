"""The cluster lock (a Lease) and the leftovers of earlier runs: a stale lock stops a run until broken
(--break-lock or `python -m utilities unlock`), a live one cannot be broken without --force; a run
starts by reporting leftovers, `python -m utilities sweep` removes them."""
from __future__ import annotations

import subprocess
import sys
import time

from utilities import kube, preflight
from utilities.labels import labels
from utilities.leftovers import find_leftovers
from utilities.localcluster_process import REPO_ROOT
from utilities.lock import ClusterLock, read_lock

QUICK = ["tests/test_management_state.py", "-k", "exist"]


def _cli(local, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "utilities", *args, f"--kubeconfig={local.kubeconfig}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_stale_lock_refuses_until_broken(local):
    dead = ClusterLock(local.cluster, "crashed-run", duration=1).acquire(renew=False)
    time.sleep(1.5)
    run = local.suite(local.run_id("stale"), *QUICK)
    assert run.wait(60) == preflight.EXIT_LOCKED, run.output[-2000:]
    line = run.wait_line("another run holds the cluster lock")
    assert "crashed-run" in line and dead.identity in line and "stale" in line and "--break-lock" in line, line
    assert sum("another run holds the cluster lock" in ln for ln in run.lines) == 1, run.output[-2000:]  # once
    run = local.suite(local.run_id("break"), *QUICK, "--break-lock")
    assert run.wait(60) == 0, run.output[-2000:]
    local.assert_back(run.run_id)


def test_unlock_command(local):
    live = ClusterLock(local.cluster, "live-run", duration=30).acquire(renew=False)
    r = _cli(local, "unlock")
    assert r.returncode == preflight.EXIT_LOCKED and "live-run" in r.stderr and "not broken" in r.stderr, r.stderr
    assert read_lock(local.cluster).run_id == "live-run"
    r = _cli(local, "unlock", "--force")
    assert r.returncode == 0 and "lock broken" in r.stdout, r.stderr
    assert read_lock(local.cluster) is None
    assert not live.release()
    assert _cli(local, "unlock").stdout.strip() == "no lock"


def test_leftovers_reported_then_swept(local):
    lbl = labels("an-earlier-run")
    ns = kube.call(local.cluster.core.create_namespace, {"metadata": {"generateName": "registry-conformance-",
                                                                       "labels": lbl}}).metadata.name
    kube.call(local.cluster.core.create_namespaced_config_map, "openshift-image-registry",
              {"metadata": {"name": "left-behind", "labels": lbl}, "data": {"a": "b"}})
    run = local.suite(local.run_id("leftovers"), *QUICK, destructive=False)
    assert run.wait(60) == 0, run.output[-2000:]
    warning = run.wait_line("WARNING: 2 leftover object(s) of earlier runs")
    assert f"Namespace {ns} (run an-earlier-run)" in warning and "python -m utilities sweep" in warning, warning
    header = run.output.split("collecting")[0]
    assert "leftover object(s)" in header, header        # in the report header too
    listed = _cli(local, "leftovers")
    assert listed.returncode == 0 and ns in listed.stdout and "left-behind" in listed.stdout, listed
    swept = _cli(local, "sweep")
    assert swept.returncode == 0 and f"deleted Namespace {ns}" in swept.stdout, swept
    assert "ConfigMap openshift-image-registry/left-behind" in swept.stdout, swept.stdout
    assert not find_leftovers(local.cluster)
    assert _cli(local, "sweep").stdout.strip() == "no leftovers"
