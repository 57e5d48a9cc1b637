"""Start and stop the local stand-in cluster (`python -m localcluster serve`) as a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class LocalClusterError(RuntimeError):
    pass


class LocalClusterProcess:
    """`serve` in its own process group; ready when the kubeconfig and its .info.json exist."""

    def __init__(self, workdir: Path, extra_args: list[str] | tuple = (), start_timeout: float = 90.0,
                 stop_timeout: float = 20.0, log_path: Path | None = None):
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.info_path = Path(str(self.kubeconfig) + ".info.json")
        self.state_dir = self.workdir / "localcluster-state"
        self.log_path = log_path or self.workdir / "localcluster.log"
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "localcluster", "serve", "--kubeconfig", str(self.kubeconfig)]
        if not any(a == "--state-dir" or a.startswith("--state-dir=") for a in self.extra_args):
            args += ["--state-dir", str(self.state_dir)]
        return args + self.extra_args

    def start(self) -> "LocalClusterProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for p in (self.kubeconfig, self.info_path):
            if p.exists():
                p.unlink()
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise LocalClusterError(f"local cluster exited with {self.proc.returncode} before it was "
                                        f"ready; log {self.log_path}:\n{self.log_tail()}")
            if self.kubeconfig.exists() and self.info_path.exists():
                try:
                    self.info = json.loads(self.info_path.read_text())
                    return self
                except ValueError:
                    pass   # being written
            if time.monotonic() > deadline:
                self.stop()
                raise LocalClusterError(f"local cluster not ready within {self.start_timeout:.0f}s; "
                                        f"log {self.log_path}:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM to the process group; SIGKILL if it does not stop in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        else:
            # the leader is gone; make sure nothing of its group survives
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
