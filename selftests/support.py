"""Helpers shared by the selftests that drive local-cluster parts in-process, or a served local cluster
and the suite run against it in a subprocess."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest


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


def free_loopback_address() -> tuple[str, int]:
    """A port free on a random loopback address (127.64-250.x.y), for a process or listener that binds it
    later. On 127.0.0.1, any socket bound to port 0 in the meantime could be given the same port."""
    ip = f"127.{random.randint(64, 250)}.{random.randint(0, 250)}.{random.randint(2, 250)}"
    with socket.socket() as s:
        s.bind((ip, 0))
        return ip, s.getsockname()[1]


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


@contextlib.contextmanager
def served_cluster_in(tmp_path_factory, name: str, args=()):
    """`served_cluster` in a new temporary directory named after `name`, for a module's shared cluster:
    yields (LocalClusterProcess, Cluster, that directory)."""
    tmp = tmp_path_factory.mktemp(name)
    with served_cluster(tmp / "cluster", args) as (lc, cluster):
        yield lc, cluster, tmp


@dataclasses.dataclass
class SuiteRun:
    returncode: int
    output: str          # stdout and stderr of the run, interleaved
    junit: Path          # its JUnit XML (absent when the run did not get as far)


def run_suite(lc, args: list[str], workdir: Path, run_id: str, *, rollout_timeout: int,
              grace: str | None = "all=3", timeout: float = 600, fail_on_timeout: bool = True,
              after_snapshot: Callable[[], None] | None = None) -> SuiteRun:
    """Run the suite (`pytest ARGS`) in a subprocess against the served local cluster `lc`, destructive tests
    allowed, with reports and JUnit XML (`<run_id>.xml`) in `workdir`.

    `grace`: the `--grace` value (None: the suite's defaults). `after_snapshot`: called once the run has
    snapshotted the Config (or ended, or after 60 s), e.g. to set faults the snapshot must not see.
    A run that takes longer than `timeout` is killed: the test fails saying so, or, without
    `fail_on_timeout`, the output ends with "(killed after N s)".
    """
    from utilities.localcluster_process import REPO_ROOT
    junit = workdir / f"{run_id}.xml"
    cmd = [sys.executable, "-m", "pytest", *args, f"--kubeconfig={lc.kubeconfig}", "--allow-destructive",
           "--ingress-address", lc.info["ingress_address"], "--rollout-timeout", str(rollout_timeout),
           *([f"--grace={grace}"] if grace is not None else []), f"--reports-dir={workdir / 'reports'}",
           "--run-id", run_id, f"--junitxml={junit}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if after_snapshot is not None:
        snapshot = workdir / "reports" / run_id / "config-snapshot.json"
        deadline = time.monotonic() + 60
        while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        after_snapshot()
    try:
        output = proc.communicate(timeout=timeout)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
        if fail_on_timeout:
            pytest.fail(f"the suite did not finish within {timeout} s:\n{output[-3000:]}")
        output += f"\n(killed after {timeout} s)"
    return SuiteRun(proc.returncode, output, junit)
