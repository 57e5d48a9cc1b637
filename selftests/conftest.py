"""Fixtures shared by the selftests that run local-cluster parts in-process."""
from __future__ import annotations

import os

import pytest

from selftests.support import LoopThread

# The suite reads KUBECONFIG as oc does: a user's must never send the selftests, nor the suite runs they
# start in subprocesses (which inherit this environment), to their cluster. A selftest that means to
# test KUBECONFIG sets it in its subprocess's environment.
os.environ.pop("KUBECONFIG", None)


@pytest.fixture(scope="session")
def loop_thread():
    """One asyncio loop in a background thread for the whole session."""
    lt = LoopThread()
    yield lt
    lt.close()
