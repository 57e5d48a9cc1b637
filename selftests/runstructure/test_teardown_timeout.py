"""Issue 7 item 18: the per-test timeout never cuts a teardown short (fixtures/safety.py).

A test whose module fixture's teardown outlasts the test's timeout: with the hook, the teardown runs to
its end and the test passes; without it, pytest-timeout interrupts the teardown (its last line never
runs) and reports a timeout.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from utilities.localcluster_process import REPO_ROOT

TEST = '''
import threading
import pytest

@pytest.fixture(scope="module")
def slow_undo(tmp_path_factory):
    yield
    threading.Event().wait({wait})          # a chain of bounded waits, longer than the timeout
    open({marker!r}, "w").write("teardown finished")

@pytest.mark.timeout({timeout})
def test_quick(slow_undo):
    pass
'''


def test_teardown_outlasting_the_timeout_runs_to_its_end(tmp_path):
    marker = tmp_path / "finished"
    (tmp_path / "test_slow_teardown.py").write_text(textwrap.dedent(TEST.format(wait=3, timeout=1,
                                                                                marker=str(marker))))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "fixtures.safety",
                           "-o", "timeout_method=signal", str(tmp_path / "test_slow_teardown.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert marker.exists(), f"the teardown was cut short:\n{out[-3000:]}"
    assert proc.returncode == 0 and "Timeout" not in out, out[-3000:]
