"""A destructive run interrupted at several points: the cluster comes back to the exact original Config.

kill -9 (no teardown): `python -m utilities restore` brings it back (and deletes what the run created).
Ctrl-C, SIGTERM, pytest-timeout (signal method): the run restores by itself. A second run while one
holds the lock refuses, naming the holder. Restore refuses over someone else's change unless --force;
restoring twice is harmless. One local cluster for the module; `deployment.stallRollout` keeps a
rollout going as long as needed.
"""
from __future__ import annotations

import signal

import pytest

from selftests.safety.conftest import registry_spec_managed_with
from utilities import preflight
from utilities.lock import read_lock

BACKENDS = "tests/test_storage_backends.py"
STALL = "deployment.stallRollout"


@pytest.fixture(autouse=True)
def starts_and_ends_clean(local):
    assert local.spec() == local.original, "an earlier case left the Config changed"
    yield
    local.set_faults({STALL: None})


def _restored(local, run, *extra):
    r = local.restore(run.run_dir, *extra)
    assert r.returncode == 0, f"restore failed ({r.returncode}): {r.stderr}{r.stdout}\nsuite:\n{run.output[-2000:]}"
    return r


def test_kill9_right_after_the_snapshot(local):
    run = local.suite(local.run_id("k9-snap"), BACKENDS, "--backend=emptydir")
    local.wait_for(run.snapshot_written, 60, "the snapshot")
    run.kill9()
    _restored(local, run)
    local.assert_back(run.run_id)


def test_kill9_mid_rollout(local):
    local.set_faults({STALL: "true"})
    run = local.suite(local.run_id("k9-rollout"), BACKENDS, "--backend=default-pvc")
    local.wait_for(lambda: registry_spec_managed_with(local, "pvc"), 60, "Managed with pvc storage")
    local.wait_for(lambda: local.cluster.apps.list_namespaced_deployment("openshift-image-registry").items,
                   30, "the registry Deployment")
    run.kill9()
    assert local.spec() != local.original
    local.set_faults({STALL: None})
    r = _restored(local, run)
    assert "put back the original Config spec" in r.stdout
    local.assert_back(run.run_id)


def test_kill9_after_a_push(local):
    run = local.suite(local.run_id("k9-push"), BACKENDS, "--backend=emptydir")
    run.wait_line("test_push_and_pull_through_the_route[emptydir] PASSED", 90)
    run.kill9()
    ns = [n.metadata.name for n in local.cluster.core.list_namespace().items
          if n.metadata.name.startswith("registry-conformance-") and not n.metadata.deletion_timestamp]
    assert ns, "the run's test namespace should still exist after kill -9"
    r = _restored(local, run)
    assert "Namespace" in r.stdout, r.stdout
    local.assert_back(run.run_id)


def test_restore_refuses_someone_elses_change_then_force_then_twice(local):
    run = local.suite(local.run_id("k9-other"), BACKENDS, "--backend=emptydir")
    local.wait_for(lambda: registry_spec_managed_with(local, "emptyDir"), 60, "Managed with emptyDir")
    run.kill9()
    local.wait_for(lambda: "managementState" in local.spec()["storage"], 30, "the operator's write-back")
    local.cluster.custom.patch_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs",
                                                     "cluster", {"spec": {"logLevel": "Debug"}})
    changed = local.spec()
    r = local.restore(run.run_dir)
    assert r.returncode == preflight.EXIT_CHANGED, r.stderr + r.stdout
    assert "changed by someone else" in r.stderr and "spec.logLevel" in r.stderr and "--force" in r.stderr, r.stderr
    assert local.spec() == changed, "a refused restore must not write"
    _restored(local, run, "--force")
    local.assert_back(run.run_id)
    again = _restored(local, run)
    assert "already the original" in again.stdout
    local.assert_back(run.run_id)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_mid_rollout_restores_by_itself(local, sig):
    local.set_faults({STALL: "true"})
    run = local.suite(local.run_id(f"sig{int(sig)}"), BACKENDS, "--backend=emptydir")
    local.wait_for(lambda: registry_spec_managed_with(local, "emptyDir"), 60, "Managed with emptyDir")
    lock = local.wait_for(lambda: read_lock(local.cluster), 10, "the lock")
    assert lock.run_id == run.run_id
    if sig == signal.SIGINT:
        # meanwhile a second run refuses, naming the holder, and changes nothing
        local.wait_for(lambda: "managementState" in local.spec()["storage"], 30, "the operator's write-back")
        spec_before = local.spec()
        second = local.suite(local.run_id("second"), BACKENDS, "--backend=emptydir")
        assert second.wait(60) == preflight.EXIT_LOCKED, second.output[-2000:]
        line = second.wait_line("another run holds the cluster lock")
        assert run.run_id in line and lock.holder in line, line
        assert not second.snapshot_written()
        assert local.spec() == spec_before
    run.signal(sig)
    rc = run.wait(120)
    assert rc == 2, f"exit {rc}:\n{run.output[-3000:]}"
    local.assert_back(run.run_id)
    # The last lines, after pytest's KeyboardInterrupt report, say so (issue 16).
    last = [line for line in run.lines if line.strip()][-2:]
    assert last[0].startswith("cluster: the Config was restored exactly; the run caused "), run.output[-2000:]
    assert last[1] == f"reports: {run.run_dir}/ (certificate.md, matrix.md, journal.jsonl)", run.output[-2000:]


def test_pytest_timeout_mid_rollout_restores_by_itself(local):
    local.set_faults({STALL: "true"})
    run = local.suite(local.run_id("timeout"), BACKENDS, "--backend=emptydir", "-k", "rollout_completes",
                      "--timeout=6")
    rc = run.wait(120)
    assert rc == 1, f"exit {rc}:\n{run.output[-3000:]}"
    assert "Timeout" in run.output, run.output[-3000:]
    local.assert_back(run.run_id)
