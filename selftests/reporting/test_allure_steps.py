"""utilities/allure_steps.py: the wrappers keep each step's behaviour, report set-up and undo as two
steps, run the failure callback once per exception, and uninstall puts the originals back."""
from __future__ import annotations

import contextlib

import pytest

from utilities import allure_steps
from utilities import registry_steps as steps
from utilities import waits
from utilities.registry_client import RegistryClient


class Ctx(allure_steps.Context):
    def __init__(self):
        self.records, self.failures = [], []

    def backend(self):
        return "block"

    def record(self, step, title, backend, duration, status):
        self.records.append((title, backend, status))

    def on_failure(self, cluster, exc):
        self.failures.append(exc)


def test_install_and_uninstall_restore_the_originals():
    originals = {s.name: allure_steps.inspect.getattr_static(*allure_steps._owner_and_attr(s))
                 for s in allure_steps.STEPS}
    with allure_steps.installed_for(Ctx()):
        assert steps.configure_backend is not originals["configure_backend"]
        assert waits.wait_for_rollout.__wrapped_step__.name == "wait_for_rollout"
        assert RegistryClient.push_image.__wrapped_step__.title.startswith("push")
    assert steps.configure_backend is originals["configure_backend"]
    assert waits.wait_for_rollout is originals["wait_for_rollout"]
    assert RegistryClient.pull_image is originals["RegistryClient.pull_image"]


def test_a_context_manager_step_is_set_up_then_undo(monkeypatch):
    order = []

    @contextlib.contextmanager
    def fake_claim(cluster, name, *, access_mode, size, labels, storage_class=None, namespace="ns", timeout=1.0):
        order.append("enter")
        yield {"name": name}
        order.append("exit")
    monkeypatch.setattr(steps, "claim", fake_claim)
    ctx = Ctx()
    with allure_steps.installed_for(ctx):
        with steps.claim(None, "c1", access_mode="ReadWriteOnce", size="1Gi", labels={}) as got:
            assert got == {"name": "c1"} and order == ["enter"]
    assert order == ["enter", "exit"]
    assert [r[0] for r in ctx.records] == ["PVC ns/c1 (ReadWriteOnce, 1Gi)", "undo: PVC ns/c1 (ReadWriteOnce, 1Gi)"]
    assert all(r[1] == "block" and r[2] == "passed" for r in ctx.records)
    assert steps.claim is fake_claim


def test_a_failing_step_calls_back_once_with_the_cluster(monkeypatch):
    from utilities.kube import Cluster
    cluster = Cluster(api_client=None, token="", server="", ca_file="", kubeconfig="", context=None)

    def boom(c, timeout, since=None, judge=None):
        raise waits.RolloutFailed("registry rollout cannot succeed: x")
    monkeypatch.setattr(waits, "wait_for_rollout", boom)

    def outer(c):
        return waits.wait_for_rollout(c, 1.0)
    monkeypatch.setattr(steps, "restart_registry_pods", lambda c, timeout: outer(c))
    ctx = Ctx()
    with allure_steps.installed_for(ctx):
        with pytest.raises(waits.RolloutFailed):
            steps.restart_registry_pods(cluster, 1.0)
    assert len(ctx.failures) == 1                                  # the innermost step, not again outside
    assert [r[2] for r in ctx.records] == ["failed", "failed"]
