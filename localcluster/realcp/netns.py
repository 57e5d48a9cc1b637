"""The private network namespace of the real control plane, and the loopback-only bridge out of it.

Why: the 4.16-4.20 operators listen for metrics on `:60000` on all interfaces (hard-coded), and two runs
on one machine would collide on the fixed control-plane ports. So `serve --control-plane=real` re-runs
itself ("the inner serve") under `unshare -n -m --propagation private`: a network namespace with only
`lo`, in which etcd, kube-apiserver, the controller manager, the scheduler, the operator and every
node-side component (kubelet, registry processes, router, S3 servers) run, on fixed ports.

How the suite, outside, reaches it: the inner serve puts a Unix socket (a filesystem path: those are not
scoped by network namespace) in front of each address the suite needs (API, router, cluster proxy, S3
servers); the outer serve listens on 127.0.0.1 (ephemeral ports) in the host's namespace and relays
each connection to its socket. The outer serve writes the kubeconfig and info file with its own
addresses. Nothing listens on any interface but loopback, in either namespace.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from localcluster.aio import pipe

log = logging.getLogger("localcluster.realcp.netns")

INNER_ENV = "LOCALCLUSTER_REALCP_INNER"
BRIDGE_ENV = "LOCALCLUSTER_REALCP_BRIDGE_DIR"
# Extra addresses on the namespace's lo for what kube-apiserver refuses on loopback (Endpoints).
EXTRA_ADDRESSES = ("10.128.10.1",)
POD_NETWORK = "10.129"        # pod IPs: 10.129.0.0/16, every address local (routed to lo)


def is_inner() -> bool:
    return os.environ.get(INNER_ENV) == "1"


def setup_inner_network() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "route", "add", "local", f"{POD_NETWORK}.0.0/16", "dev", "lo"], check=True)
    for a in EXTRA_ADDRESSES:
        subprocess.run(["ip", "addr", "add", f"{a}/32", "dev", "lo"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


RELAY_BACKLOG = 1024          # listen backlog of the bridge's sockets (asyncio's default is 100)
RELAY_CONNECT_TRIES = 8       # tries of the far side before a relayed connection is given up
RELAY_CONNECT_WAIT = 0.05     # seconds before the second try, doubled after each


async def _open_far_side(opener, tries: int = RELAY_CONNECT_TRIES, wait: float = RELAY_CONNECT_WAIT):
    """The far side of a relayed connection, tried again on a refused or failed connect (a listener
    restarting, or its backlog full under load) with a doubling wait: about 6 s in all by default.
    Returns None when every try failed, after logging why."""
    error: OSError | None = None
    for i in range(tries):
        try:
            return await opener()
        except OSError as e:
            error = e
        if i < tries - 1:
            await asyncio.sleep(wait * 2 ** i)
    log.warning("relay: could not connect the far side after %d tries: %s", tries, error)
    return None


async def _relay(r1, w1, opener) -> None:
    far = await _open_far_side(opener)
    if far is None:
        w1.close()
        return
    r2, w2 = far
    # A relay ends quietly on any socket error, and on cancellation.
    ends = (ConnectionError, OSError, asyncio.CancelledError)
    await asyncio.gather(pipe(r1, w2, ends), pipe(r2, w1, ends), return_exceptions=True)
    for w in (w1, w2):
        try:
            w.close()
        except Exception:  # noqa: BLE001
            pass


class InnerBridge:
    """Inside the namespace: one Unix socket per exposed address, relaying to it."""

    def __init__(self, bridge_dir: Path):
        self.dir = Path(bridge_dir)
        self.servers = []
        self.exposed: dict[str, str] = {}

    async def expose(self, name: str, host: str, port: int) -> None:
        sock = self.dir / f"{name}.sock"
        if sock.exists():
            sock.unlink()
        srv = await asyncio.start_unix_server(
            lambda r, w: _relay(r, w, lambda: asyncio.open_connection(host, port)), path=str(sock),
            backlog=RELAY_BACKLOG)
        os.chmod(sock, 0o600)
        self.servers.append(srv)
        self.exposed[name] = f"{host}:{port}"

    def write_map(self) -> None:
        tmp = self.dir / "bridge.json.tmp"
        tmp.write_text(json.dumps(self.exposed))
        os.replace(tmp, self.dir / "bridge.json")

    async def close(self) -> None:
        for s in self.servers:
            s.close()


class OuterBridge:
    """Outside: a 127.0.0.1 listener per Unix socket of the inner serve."""

    def __init__(self, bridge_dir: Path):
        self.dir = Path(bridge_dir)
        self.servers = []
        self.addresses: dict[str, str] = {}   # inner "host:port" -> outer "127.0.0.1:port"

    async def start(self, exposed: dict[str, str]) -> None:
        for name, inner in exposed.items():
            sock = str(self.dir / f"{name}.sock")
            srv = await asyncio.start_server(
                lambda r, w, sock=sock: _relay(r, w, lambda: asyncio.open_unix_connection(sock)),
                host="127.0.0.1", port=0, backlog=RELAY_BACKLOG)
            self.servers.append(srv)
            self.addresses[inner] = f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    def rewrite(self, text: str) -> str:
        for inner, outer in self.addresses.items():
            text = re.sub(re.escape(inner) + r"(?![0-9])", outer, text)
        return text

    async def close(self) -> None:
        for s in self.servers:
            s.close()


def inner_command(argv: list[str], kubeconfig: Path) -> list[str]:
    """The serve command line again, with the inner kubeconfig, under unshare."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--kubeconfig":
            skip = True
            continue
        if a.startswith("--kubeconfig="):
            continue
        out.append(a)
    return ["unshare", "-n", "-m", "--propagation", "private", "--",
            sys.executable, "-m", "localcluster"] + out + ["--kubeconfig", str(kubeconfig)]


async def serve_outer(argv: list[str], kubeconfig: Path, stop: asyncio.Event, start_timeout: float = 300.0) -> int:
    """Run the inner serve in its namespaces; expose it on 127.0.0.1; write the kubeconfig; wait for stop."""
    from localcluster.realcp import binaries
    why = binaries.missing_reason(_release(argv))
    if why:
        log.error("the real control plane cannot run here: %s; use --control-plane=builtin", why)
        return 2
    bridge_dir = Path(tempfile.mkdtemp(prefix="localcluster-realcp-"))
    inner_kc = bridge_dir / "kubeconfig"
    env = dict(os.environ, **{INNER_ENV: "1", BRIDGE_ENV: str(bridge_dir)})
    started = time.monotonic()
    from localcluster.realcp.controlplane import _die_with_parent
    proc = subprocess.Popen(inner_command(argv, inner_kc), env=env, stdin=subprocess.DEVNULL,
                            preexec_fn=_die_with_parent)
    bridge = OuterBridge(bridge_dir)
    info_path = Path(str(kubeconfig) + ".info.json")
    try:
        while not (inner_kc.exists() and Path(str(inner_kc) + ".info.json").exists()
                   and (bridge_dir / "bridge.json").exists()):
            if proc.poll() is not None:
                log.error("the real control plane exited with %s before it was ready", proc.returncode)
                return 1
            if stop.is_set():
                return 130
            if time.monotonic() - started > start_timeout:
                log.error("the real control plane was not ready within %.0f s", start_timeout)
                return 1
            await asyncio.sleep(0.1)
        await bridge.start(json.loads((bridge_dir / "bridge.json").read_text()))
        info = json.loads(bridge.rewrite(Path(str(inner_kc) + ".info.json").read_text()))
        info["pid"] = os.getpid()
        info["inner_pid"] = proc.pid
        kc_text = bridge.rewrite(inner_kc.read_text())
        for target, text in ((info_path, json.dumps(info, indent=2)), (Path(kubeconfig), kc_text)):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)
        log.info("real control plane ready in %.1f s: kubeconfig %s, API %s", time.monotonic() - started,
                 kubeconfig, info.get("api_url"))
        if info.get("ingress_address"):
            from localcluster import suite_command
            print(suite_command.line(kubeconfig, info["ingress_address"], info.get("ingress_http_address")), flush=True)
        while not stop.is_set() and proc.poll() is None:
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        return 0 if stop.is_set() else 1
    finally:
        for p in (Path(kubeconfig), info_path):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        await bridge.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if proc.poll() is None:
                proc.kill()
        import shutil
        shutil.rmtree(bridge_dir, ignore_errors=True)


def _release(argv: list[str]) -> str:
    from localcluster.realcp.binaries import DEFAULT_RELEASE
    for i, a in enumerate(argv):
        if a.startswith("--openshift="):
            return a.split("=", 1)[1]
        if a == "--openshift" and i + 1 < len(argv):
            return argv[i + 1]
    return os.environ.get("LOCALCLUSTER_OPENSHIFT", DEFAULT_RELEASE)
