"""Helpers of the kubeconfig selftests: the suite in a subprocess with a KUBECONFIG of the test's choosing,
and a "trap" API server address that only counts who connects to it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from selftests.support import free_loopback_address
from utilities.localcluster_process import REPO_ROOT


def run_suite(args: list[str], tmp: Path, run_id: str, *, kubeconfig_env: str | None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` from the repository, KUBECONFIG set to `kubeconfig_env` (None: unset), the
    reports in `tmp/reports/<run_id>`; stdout and stderr together."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update({"COLUMNS": "200"} | ({"KUBECONFIG": kubeconfig_env} if kubeconfig_env is not None else {}))
    cmd = [sys.executable, "-m", "pytest", *args, f"--reports-dir={tmp / 'reports'}", f"--run-id={run_id}",
           "-p", "no:cacheprovider", "-rs"]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


class Trap:
    """A TCP listener on a loopback address that accepts and closes connections, counting them: a
    kubeconfig pointing at it shows whether anything tried to reach "the user's cluster"."""

    def __init__(self):
        self.host, self.port = free_loopback_address()
        self.sock = socket.socket()
        self.sock.bind((self.host, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "users-cluster",
            "clusters": [{"name": "users-cluster", "cluster": {"server": f"https://{self.host}:{self.port}",
                                                               "insecure-skip-tls-verify": True}}],
            "users": [{"name": "user", "user": {"token": "sha256~trap-token-not-used"}}],
            "contexts": [{"name": "users-cluster", "context": {"cluster": "users-cluster", "user": "user"}}]}))
        return path

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def variant(kubeconfig: Path, path: Path, **changes) -> Path:
    """A copy of `kubeconfig` with top-level keys changed (e.g. another current-context)."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc))
    return path
