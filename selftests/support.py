"""Helpers shared by the selftests that drive local-cluster parts in-process."""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class LoopThread:
    """An asyncio loop in a thread; `run(coro)` runs a coroutine there and waits for its result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro):
        """Start `coro` as a task in the loop; returns the task."""
        async def start():
            return asyncio.ensure_future(coro)
        return self.run(start())

    def call(self, fn, *args):
        """Call a plain function inside the loop's thread."""
        async def go():
            return fn(*args)
        return self.run(go())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def wait_until(fn, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `fn` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


@contextlib.contextmanager
def served_cluster(workdir, args=()):
    """A local cluster of its own (`python -m localcluster serve ARGS` in `workdir`) and a suite client
    for it: yields (LocalClusterProcess, Cluster); both are closed at exit."""
    from utilities.kube import load_cluster
    from utilities.localcluster_process import LocalClusterProcess
    lc = LocalClusterProcess(workdir, list(args))
    lc.start()
    try:
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        try:
            yield lc, cluster
        finally:
            cluster.api_client.close()
    finally:
        lc.stop()
