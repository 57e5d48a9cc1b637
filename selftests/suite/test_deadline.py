"""The waits of one test share one deadline (issue 16 item 6 c): a second wait gets what the first left,
and says so when it times out; a restore under `lifted()` and waits outside a test keep their own."""
from __future__ import annotations

import time
import types
from pathlib import Path

import pytest

import conftest
from fixtures import deadline as deadline_plugin
from utilities import deadline, waits


def never():
    return None


def timed_wait(timeout: float, what: str) -> tuple[float, str]:
    """How long a wait for what never comes took, and its message: a WaitTimeout when its own timeout ran
    out, deadline.Exhausted when the shared deadline cut it short."""
    t0 = time.monotonic()
    with pytest.raises((waits.WaitTimeout, deadline.Exhausted)) as e:
        waits._wait_loop([], never, timeout, lambda: "nothing came", what)
    return time.monotonic() - t0, str(e.value)


def test_a_wait_cut_short_is_no_timeout_verdict():
    """A check that reads a wait's timeout as its verdict (`except WaitTimeout: nothing happened`) must
    not get that verdict from a window the deadline shortened: the test fails instead."""
    with deadline.shared(0.2, "test test_w"):
        with pytest.raises(deadline.Exhausted, match="all the waits of test test_w share"):
            try:
                waits._wait_loop([], never, 30.0, lambda: "", "a replacement pod to become ready")
            except waits.WaitTimeout:
                pytest.fail("a wait the deadline cut short was taken for the check's own grace running out")
    with pytest.raises(waits.WaitTimeout):
        waits._wait_loop([], never, 0.2, lambda: "", "the same wait with its own timeout")


def test_two_waits_of_one_test_share_its_deadline():
    t0 = time.monotonic()
    with deadline.shared(1.5, "test test_x"):
        first, _ = timed_wait(1.0, "the Config")
        second, message = timed_wait(30.0, "the ClusterOperator")
    assert first == pytest.approx(1.0, abs=0.5)
    assert second < 1.5, f"the second wait took {second:.1f} s of its own 30 s"
    assert time.monotonic() - t0 < 2.5
    assert "the ClusterOperator: not reached within 0s" in message, message
    assert "all the waits of test test_x share" in message and "its own timeout was 30 s" in message, message


def test_wait_until_gone_takes_the_deadline_too():
    with deadline.shared(0.5, "test test_y"):
        t0 = time.monotonic()
        with pytest.raises(deadline.Exhausted, match="test test_y"):
            waits.wait_until_gone(lambda: {"metadata": {}}, "a pod", 30.0)
    assert time.monotonic() - t0 < 2.0


def test_a_restore_under_lifted_and_a_wait_outside_a_test_keep_their_own_timeout():
    assert deadline.bounded(30.0) == (30.0, "")
    with deadline.shared(0.0, "test test_z"):
        assert deadline.bounded(30.0)[0] == 0.0
        with deadline.lifted():
            assert deadline.bounded(30.0) == (30.0, "")
        assert deadline.bounded(30.0)[0] == 0.0
    assert deadline.current() is None


def _item(path: Path, rollout_timeout: float = 42.0):
    return types.SimpleNamespace(path=path, name="test_x", config=types.SimpleNamespace(
        getoption=lambda name: {"rollout_timeout": rollout_timeout}[name]))


def _during_call(item):
    hook = deadline_plugin.pytest_runtest_call(item)
    next(hook)
    seen = deadline.current()
    with pytest.raises(StopIteration):
        hook.send(None)
    return seen


def test_the_call_phase_of_a_check_under_tests_has_a_deadline_of_the_rollout_timeout():
    assert "fixtures.deadline" in conftest.pytest_plugins
    seen = _during_call(_item(deadline_plugin.TESTS_DIR / "test_management_state.py"))
    assert seen is not None and seen.seconds == 42.0 and seen.what == "test test_x"
    assert deadline.current() is None
    assert _during_call(_item(Path(__file__))) is None      # a selftest keeps its waits' own timeouts


def test_degraded_is_a_grace():
    assert "degraded" in waits.Graces.names()
    assert waits.Graces().with_items(["degraded=5"]).degraded == 5.0
