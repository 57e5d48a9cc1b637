"""Start and stop the whole local cluster: API server, seed objects, controllers, router, pods."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from localcluster.aio import close_all
from localcluster.client import KubeClient
from localcluster.pki import CertificateAuthority
from localcluster.seed import seed
from localcluster.settings import Settings

log = logging.getLogger("localcluster")


class LocalCluster:
    """One local OpenShift vSphere cluster, inside the running event loop."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.api = None
        self.router = None
        self.users = []
        self._clients: list[KubeClient] = []
        self._tasks: list[asyncio.Task] = []
        self._own_state_dir = False
        self.api_ca: CertificateAuthority | None = None
        self.odf = None        # localcluster.odf.ODF when settings.odf
        self.netproxy = None   # localcluster.netproxy.NetProxy
        self.must_gather = None  # localcluster.mustgather.MustGather when serving one

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        from localcluster.apiserver import APIServer
        from localcluster.apiserver.auth import default_users

        s = self.settings
        self._make_state_dir()
        if s.odf and not s.must_gather:
            from localcluster.odf import ODF
            self.odf = ODF(s)
            self.odf.begin()        # the S3 servers start while the API server does

        self.api_ca = CertificateAuthority.create("localcluster-kube-apiserver-ca")
        api_cert, api_key = self.api_ca.issue(
            "kube-apiserver", dns_names=["localhost", "kubernetes.default.svc"], ip_addresses=["127.0.0.1"])
        self.users = default_users()
        # Client certificates as the installer's auth/kubeconfig has: system:admin in system:masters.
        self.client_ca = CertificateAuthority.create("admin-kubeconfig-signer")
        self.admin_cert = self.client_ca.issue("system:admin", client=True, organizations=["system:masters"])
        self.api = APIServer(s, api_cert, api_key, self.users, host="127.0.0.1", port=s.api_port,
                             client_ca_pem=self.client_ca.cert_pem)
        await self.api.start()
        log.info("API server at %s", self.api.url)
        if s.must_gather:       # issue 10: a must-gather, read-only; nothing else runs
            from localcluster.mustgather import serve_into
            self.must_gather = serve_into(self.api, Path(s.must_gather))
            return

        ingress_ca = CertificateAuthority.create("ingress-operator@localcluster")
        service_ca = CertificateAuthority.create("openshift-service-serving-signer@localcluster")
        admin = self.user("kube:admin")
        await seed(self._client(admin.token), s, ingress_ca, self.api.url)

        # The cluster network (route hosts, <svc>.<ns>.svc) for registry processes and the operator.
        from localcluster.netproxy import NetProxy
        self.netproxy = NetProxy(self._client(admin.token), s,
                                 router_address=lambda: getattr(self.router, "address", None),
                                 router_http_address=lambda: getattr(self.router, "http_address", None))
        await self.netproxy.start()
        s.netproxy_url = self.netproxy.url

        from localcluster.controllers.deployment import (
            DaemonSetController, DeploymentController, ReplicaSetController)
        from localcluster.controllers.controlplane import ControlPlaneOperators
        from localcluster.controllers.kubelet import Kubelet
        from localcluster.controllers.operator import ImageRegistryOperator
        from localcluster.controllers.provisioner import Provisioner
        from localcluster.controllers.scheduler import Scheduler
        from localcluster.controllers.servingcert import ServiceCA
        from localcluster.registrypod import TokenSigner
        from localcluster.router import Router

        kubelet = Kubelet(self._client(admin.token), s, token_signer=TokenSigner.create())
        self.api.kubelet = kubelet      # pods/exec runs through it
        controllers = [
            ServiceCA(self._client(admin.token), s, ca=service_ca),
            Provisioner(self._client(admin.token), s),
            Scheduler(self._client(admin.token), s),
            ReplicaSetController(self._client(admin.token), s),
            DeploymentController(self._client(admin.token), s),
            DaemonSetController(self._client(admin.token), s),
            kubelet,
            ImageRegistryOperator(self._client(admin.token), s),
            ControlPlaneOperators(self._client(admin.token), s),
        ]
        self.router = Router(self._client(admin.token), s)
        self._run_tasks(controllers + [self.router])
        if self.odf is not None:
            # The S3 servers have been starting meanwhile (ODF.begin): the ODF objects and the
            # ObjectBucketClaim provisioner once they answer. Ready only after this.
            from localcluster.odf import ObjectBucketProvisioner, seed_odf
            await self.odf.start()
            await seed_odf(self._client(admin.token), s, self.odf)
            self._run_tasks([ObjectBucketProvisioner(self._client(admin.token), s, odf=self.odf)])
        await self._wait_for_router()

    def _make_state_dir(self) -> None:
        """A temporary state directory (removed at stop) unless the settings name one."""
        s = self.settings
        if not s.state_dir or str(s.state_dir) == "/tmp/localcluster":
            s.state_dir = Path(tempfile.mkdtemp(prefix="localcluster-"))
            self._own_state_dir = True
        s.state_dir.mkdir(parents=True, exist_ok=True)

    def _run_tasks(self, components: list) -> None:
        """Run each component (controllers, the router) as a task, cancelled at stop."""
        for c in components:
            self._tasks.append(asyncio.create_task(c.run(), name=type(c).__name__))

    async def _wait_for_router(self) -> None:
        """The router picks its port when it starts serving: wait for that (5 s at the most)."""
        for _ in range(500):
            if getattr(self.router, "address", None):
                break
            self._raise_if_a_task_died()
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("the router did not start serving within 5 s")

    def _raise_if_a_task_died(self) -> None:
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise RuntimeError(f"{t.get_name()} failed at start: {t.exception()!r}") from t.exception()

    def _client(self, token: str) -> KubeClient:
        c = KubeClient(self.api.url, token, self.api_ca.cert_pem)
        self._clients.append(c)
        return c

    def user(self, name: str):
        for u in self.users:
            if u.name == name:
                return u
        raise KeyError(name)

    # ------------------------------------------------------------------ outputs
    def kubeconfig(self) -> dict:
        ca = base64.b64encode(self.api_ca.cert_pem).decode()
        contexts = {"admin": "kube:admin", "nobody": "nobody", "puller": "puller"}
        users = [{"name": ctx, "user": {"token": self.user(user).token}} for ctx, user in contexts.items()]
        # As the installer's auth/kubeconfig: a client certificate, no token.
        cert_pem, key_pem = self.admin_cert
        users.append({"name": "system:admin", "user": {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                                                        "client-key-data": base64.b64encode(key_pem).decode()}})
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "localcluster", "cluster": {
                "server": self.api.url, "certificate-authority-data": ca}}],
            "users": users,
            "contexts": [{"name": u["name"], "context": {"cluster": "localcluster", "user": u["name"]}}
                         for u in users],
            "current-context": "admin",
        }

    def info(self) -> dict:
        if self.must_gather is not None:
            mg = self.must_gather
            return {"api_url": self.api.url, "ingress_address": None, "state_dir": str(self.settings.state_dir),
                    "pid": os.getpid(), "must_gather": {
                        "dir": str(mg.root), "image_dirs": [str(d) for d in mg.dirs],
                        "captured_at": mg.captured_at, "newest_object_at": mg.newest_object_at,
                        "objects": len(mg.objects)}}
        return {
            "api_url": self.api.url,
            "ingress_address": self.router.address,
            "ingress_http_address": getattr(self.router, "http_address", None),
            "state_dir": str(self.settings.state_dir),
            # The cluster network proxy (route hosts, <svc>.<ns>.svc) and, with ODF, the S3 servers.
            "proxy_url": self.settings.netproxy_url,
            "s3_endpoints": ({k: v.endpoint for k, v in self.odf.servers.items()} if self.odf else {}),
            # --custom-default-certificate: the public root, as the machine's trust store would hold it.
            **({"system_ca_file": str(self.settings.state_dir / "system-roots.pem")}
               if self.settings.custom_default_certificate else {}),
            "pid": os.getpid(),
        }

    def write_kubeconfig(self, path: Path) -> None:
        """Write atomically (readers poll for the file) with owner-only permissions."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, text in ((Path(str(path) + ".info.json"), json.dumps(self.info(), indent=2)),
                             (path, yaml.safe_dump(self.kubeconfig(), sort_keys=False))):
            tmp = target.with_name(target.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, target)

    # ------------------------------------------------------------------ stop
    async def _cancel_tasks(self) -> None:
        """Cancel the tasks, last started first, and wait for them (10 s at the most)."""
        for t in reversed(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)

    async def stop(self) -> None:
        await self._cancel_tasks()
        await close_all(self._clients)
        if self.netproxy is not None:
            await self.netproxy.stop()
        if self.odf is not None:
            await self.odf.stop()
        if self.api is not None:
            await self.api.stop()
        if self._own_state_dir:
            shutil.rmtree(self.settings.state_dir, ignore_errors=True)
