"""Fixtures shared by the selftests that run local-cluster parts in-process."""
from __future__ import annotations

import pytest

from selftests.support import LoopThread


@pytest.fixture(scope="session")
def loop_thread():
    """One asyncio loop in a background thread for the whole session."""
    lt = LoopThread()
    yield lt
    lt.close()
