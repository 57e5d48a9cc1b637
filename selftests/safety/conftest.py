"""Shared pieces of the safety selftests: one local cluster per module, the suite run in a subprocess
against it (--kubeconfig --allow-destructive), and what to compare before and after."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from utilities import kube
from utilities.kube import load_cluster
from utilities.leftovers import find_leftovers
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess
from utilities.lock import read_lock

FAULTS_NS, FAULTS_CM = "localcluster-system", "localcluster-faults"


class Local:
    def __init__(self, proc: LocalClusterProcess, workdir: Path):
        self.proc = proc
        self.workdir = workdir
        self.kubeconfig = str(proc.kubeconfig)
        self.info = proc.info
        self.cluster = load_cluster(proc.kubeconfig, embedded=True)
        self.original = self.spec()
        self._n = 0

    def spec(self) -> dict:
        return (self.cluster.registry_config() or {}).get("spec") or {}

    def resource_version(self) -> str:
        return self.cluster.registry_config()["metadata"]["resourceVersion"]

    def set_faults(self, faults: dict) -> None:
        try:
            kube.call(self.cluster.core.patch_namespaced_config_map, FAULTS_CM, FAULTS_NS, {"data": faults})
        except kube.ApiException as e:
            if e.status != 404:
                raise
            kube.call(self.cluster.core.create_namespaced_config_map, FAULTS_NS,
                      {"metadata": {"name": FAULTS_CM, "namespace": FAULTS_NS},
                       "data": {k: v for k, v in faults.items() if v is not None}})

    def run_id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{os.getpid()}-{self._n}"

    def suite(self, run_id: str, *args, destructive: bool = True, kubeconfig: str | None = None) -> "SuiteRun":
        return SuiteRun(self, run_id, list(args), destructive=destructive, kubeconfig=kubeconfig)

    def restore(self, run_dir, *extra) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "utilities", "restore", f"--kubeconfig={self.kubeconfig}",
                               f"--run-dir={run_dir}", "--timeout=60", *extra], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)

    def wait_for(self, predicate, timeout: float = 30, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"{what}: not within {timeout}s")

    def assert_back(self, run_id: str) -> None:
        """The exact original Config, no lock, nothing of the run left."""
        assert self.spec() == self.original, f"Config spec not back: {self.spec()} != {self.original}"
        assert read_lock(self.cluster) is None, f"lock left: {read_lock(self.cluster).describe()}"
        left = find_leftovers(self.cluster, run_id=run_id)
        assert not left, f"left behind: {left}"


class SuiteRun:
    """`python -m pytest ... --kubeconfig=... --allow-destructive -v` with its output read line by line."""

    def __init__(self, local: Local, run_id: str, args: list[str], *, destructive: bool, kubeconfig: str | None):
        self.local = local
        self.run_id = run_id
        self.reports = local.workdir / "reports"
        self.run_dir = self.reports / run_id
        cmd = [sys.executable, "-m", "pytest", *args, f"--kubeconfig={kubeconfig or local.kubeconfig}",
               f"--ingress-address={local.info['ingress_address']}", f"--reports-dir={self.reports}",
               f"--run-id={run_id}", "-p", "no:cacheprovider", "-v", "--rollout-timeout=60"]
        if destructive:
            cmd.append("--allow-destructive")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, needle: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line with {needle!r} in the suite's output:\n{self.output[-3000:]}")
                self._cond.wait(min(left, 0.2))

    def signal(self, sig) -> None:
        os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def wait(self, timeout: float = 180) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the suite did not end within {timeout}s:\n{self.output[-3000:]}")
        self._reader.join(5)
        return rc

    def snapshot_written(self) -> bool:
        return (self.run_dir / "config-snapshot.json").exists()


def start_local(tmp: Path, *serve_args) -> Local:
    proc = LocalClusterProcess(tmp / "cluster", list(serve_args))
    proc.start()
    try:
        return Local(proc, tmp)
    except BaseException:
        proc.stop()
        raise


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    lc = start_local(tmp_path_factory.mktemp("safety"))
    try:
        yield lc
    finally:
        lc.cluster.api_client.close()
        lc.proc.stop()


def registry_spec_managed_with(local: Local, member: str):
    s = local.spec()
    return s.get("managementState") == "Managed" and member in (s.get("storage") or {})
