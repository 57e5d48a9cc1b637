"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler as processes, on loopback.

Run inside the private network namespace (netns.py), so the fixed ports below are private to this
cluster. Flags follow ../shared/reference/real-control-plane.md.

    ControlPlane(state_dir, users).start() / .stop(); .url, .ca (CertificateAuthority), .admin_kubeconfig
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from localcluster.pki import CertificateAuthority
from localcluster.realcp import binaries

log = logging.getLogger("localcluster.realcp")

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
API_PORT = 6443
SERVICE_CIDR = "10.0.0.0/24"


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the `serve` process dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except OSError:
        pass


class Process:
    """One control-plane process; its output goes to <state>/logs/<name>.log."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, preexec_fn=_die_with_parent,
                                     # Its own group: a signal to serve's group must not stop etcd before
                                     # kube-apiserver; serve stops them in order (and PDEATHSIG if it dies).
                                     start_new_session=True)
        out.close()
        log.info("%s started (pid %s)", self.name, self.proc.pid)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; {self.log_path}:\n{self.tail()}")

    def rss_kib(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, AttributeError):
            pass
        return 0

    async def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def write_kubeconfig(p: Path, server: str, ca_file: Path, token: str) -> Path:
    p.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "admin", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "admin",
    }))
    os.chmod(p, 0o600)
    return p


class ControlPlane:
    def __init__(self, state_dir: Path, users):
        self.dir = state_dir / "controlplane"
        self.log_dir = state_dir / "logs"
        self.users = users
        self.url = f"https://127.0.0.1:{API_PORT}"
        self.ca = CertificateAuthority.create("localcluster-kube-apiserver-ca")
        self.kubelet_ca = CertificateAuthority.create("localcluster-kubelet-ca")
        self.procs: list[Process] = []
        self.timings: dict[str, float] = {}

    def _admin(self):
        return next(u for u in self.users if u.name == "kube:admin")

    def _pki(self) -> None:
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "ca.crt").write_bytes(self.ca.cert_pem)
        cert, key = self.ca.issue("kube-apiserver", dns_names=[
            "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"], ip_addresses=["127.0.0.1", "10.0.0.1"])
        (d / "apiserver.crt").write_bytes(cert + self.ca.cert_pem)
        (d / "apiserver.key").write_bytes(key)
        # kube-apiserver -> kubelet API: a client certificate, and the CA the kubelet's certificate comes from.
        kc, kk = self.ca.issue("kube-apiserver-kubelet-client", client=True)
        (d / "kubelet-client.crt").write_bytes(kc)
        (d / "kubelet-client.key").write_bytes(kk)
        (d / "kubelet-ca.crt").write_bytes(self.kubelet_ca.cert_pem)
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (d / "sa.key").write_bytes(sa.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                                     serialization.NoEncryption()))
        (d / "sa.pub").write_bytes(sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        lines = []
        for u in self.users:
            groups = list(u.groups)
            if u.name == "kube:admin":
                groups = ["system:masters"] + groups
            lines.append(f'{u.token},{u.name},{u.uid},"{",".join(groups)}"')
        (d / "tokens.csv").write_text("\n".join(lines) + "\n")
        os.chmod(d / "tokens.csv", 0o600)
        self.admin_kubeconfig = write_kubeconfig(d / "admin.kubeconfig", self.url, d / "ca.crt",
                                                 self._admin().token)

    async def _wait_http(self, url: str, name: str, proc: Process, timeout: float = 90.0,
                         ctx: ssl.SSLContext | None = None, token: str | None = None) -> None:
        import aiohttp
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession(trust_env=False) as s:
            while True:
                proc.check()
                try:
                    async with s.get(url, ssl=ctx if ctx is not None else False, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=3)) as r:
                        if r.status == 200:
                            self.timings[name] = time.monotonic() - proc.started
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy within {timeout:.0f} s; {proc.log_path}:\n{proc.tail()}")
                await asyncio.sleep(0.2)

    async def start(self) -> None:
        self._pki()
        d = self.dir
        etcd = Process("etcd", [
            binaries.etcd_path(), "--name", "localcluster", "--data-dir", str(d / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--advertise-client-urls", f"http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
            "--initial-cluster", f"localcluster=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--log-level", "warn", "--quota-backend-bytes", str(2 << 30)], self.log_dir)
        # Unpack (first use) before etcd starts, so that its start-up time is its own.
        apiserver_bin = binaries.binary("kube-apiserver")
        kcm_bin = binaries.binary("kube-controller-manager")
        sched_bin = binaries.binary("kube-scheduler")
        self.procs.append(etcd.start())
        await self._wait_http(f"http://127.0.0.1:{ETCD_CLIENT_PORT}/health", "etcd", etcd)
        api = Process("kube-apiserver", [
            str(apiserver_bin), f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={API_PORT}",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}", f"--token-auth-file={d / 'tokens.csv'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}", f"--service-account-signing-key-file={d / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none", "--profiling=false", "--allow-privileged=true",
            f"--kubelet-client-certificate={d / 'kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'kubelet-client.key'}",
            f"--kubelet-certificate-authority={d / 'kubelet-ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--enable-aggregator-routing=true", "--shutdown-delay-duration=0s", "--v=1"], self.log_dir)
        self.procs.append(api.start())
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        await self._wait_http(self.url + "/readyz", "kube-apiserver", api, ctx=ctx, token=self._admin().token)
        k = str(self.admin_kubeconfig)
        kcm = Process("kube-controller-manager", [
            str(kcm_bin), f"--kubeconfig={k}", "--secure-port=0", "--leader-elect=false",
            f"--service-account-private-key-file={d / 'sa.key'}", f"--root-ca-file={d / 'ca.crt'}",
            # No kubelet heartbeats here (one node-side process plays every kubelet): the node-lifecycle
            # controller would mark the nodes NotReady and evict.
            "--controllers=*,-node-lifecycle-controller",
            # Kubernetes 1.36 (beta, on by default): a workload controller skips a sync until its
            # informer has seen its own last write, and backs off exponentially meanwhile. etcd 3.4
            # sends no watch progress, so with no other event the informer can lag long enough that a
            # DaemonSet's next sync is minutes away (node-ca never scheduled, seen in CI). The releases
            # the operator comes from (Kubernetes 1.29-1.33) had no such wait.
            "--feature-gates=" + ",".join(f"StaleControllerConsistency{kind}=false"
                                          for kind in ("DaemonSet", "ReplicaSet", "StatefulSet", "Job")),
            "--v=1"], self.log_dir)
        sched = Process("kube-scheduler", [
            str(sched_bin), f"--kubeconfig={k}", f"--authentication-kubeconfig={k}",
            f"--authorization-kubeconfig={k}", "--secure-port=0", "--leader-elect=false", "--v=1"],
            self.log_dir)
        self.procs += [kcm.start(), sched.start()]

    def check(self) -> None:
        for p in self.procs:
            p.check()

    def memory_kib(self) -> dict[str, int]:
        return {p.name: p.rss_kib() for p in self.procs}

    async def stop(self) -> None:
        for p in reversed(self.procs):
            await p.stop()
