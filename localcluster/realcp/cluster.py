"""RealCluster: the local cluster (LocalCluster's interface) on the real control plane.

Runs inside the private network namespace (netns.py). Replaces the project's API server, scheduler,
workload controllers and operator emulation with etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the real operator; keeps the node-side components as clients of kube-apiserver.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

from localcluster import settings as S
from localcluster.cluster import LocalCluster
from localcluster.client import ApiError, path
from localcluster.pki import CertificateAuthority
from localcluster.realcp import netns
from localcluster.realcp import seed as rseed
from localcluster.realcp.controlplane import ControlPlane, write_kubeconfig
from localcluster.realcp.kubeletapi import KUBELET_PORT, KubeletAPI
from localcluster.realcp.operator import operator_process, version
from localcluster.seed import seed

log = logging.getLogger("localcluster.realcp")


class RealCluster(LocalCluster):
    def __init__(self, settings: S.Settings):
        super().__init__(settings)
        self.release = settings.openshift
        self.cp: ControlPlane | None = None
        self.operator = None
        self.kubelet_api: KubeletAPI | None = None
        self.bridge: netns.InnerBridge | None = None
        self.timings: dict[str, float] = {}

    async def start(self) -> None:
        from localcluster.apiserver.auth import default_users

        t0 = time.monotonic()
        s = self.settings
        self._make_state_dir()
        netns.setup_inner_network()

        self.users = default_users()
        self.cp = ControlPlane(s.state_dir, self.users)
        await self.cp.start()
        self.api = SimpleNamespace(url=self.cp.url)
        self.api_ca = self.cp.ca
        # As the installer's auth/kubeconfig: system:admin with a client certificate (kube-apiserver's
        # --client-ca-file is this CA; O=system:masters).
        self.admin_cert = self.cp.ca.issue("system:admin", client=True, organizations=["system:masters"])
        self.timings.update(self.cp.timings)
        admin = self.user("kube:admin")
        client = self._client(admin.token)

        t = time.monotonic()
        await rseed.apply_crds(client, self.release)
        await rseed.pre_seed(client, self.release, version(self.release))
        await rseed.bootstrap_policy(client)
        ingress_ca = CertificateAuthority.create("ingress-operator@localcluster")
        service_ca = CertificateAuthority.create("openshift-service-serving-signer@localcluster")
        await seed(client, s, ingress_ca, self.cp.url)
        if s.odf:
            from localcluster.odf import ODF, seed_odf
            self.odf = ODF(s)
            for srv in self.odf.servers.values():
                srv.host = netns.EXTRA_ADDRESSES[0]   # Endpoints may not name loopback addresses
            await self.odf.start()
            await seed_odf(client, s, self.odf)
        await rseed.post_seed(client, version(self.release), KUBELET_PORT)
        self.timings["seed"] = time.monotonic() - t

        from localcluster.netproxy import NetProxy
        self.netproxy = NetProxy(self._client(admin.token), s,
                                 router_address=lambda: getattr(self.router, "address", None))
        await self.netproxy.start()
        s.netproxy_url = self.netproxy.url

        from localcluster.controllers.kubelet import Kubelet
        from localcluster.controllers.provisioner import Provisioner
        from localcluster.controllers.servingcert import ServiceCA
        from localcluster.registrypod import TokenSigner
        from localcluster.router import Router

        kubelet = Kubelet(self._client(admin.token), s, token_signer=TokenSigner.create())
        kubelet.pod_network = netns.POD_NETWORK
        controllers = [
            ServiceCA(self._client(admin.token), s, ca=service_ca),
            Provisioner(self._client(admin.token), s),
            kubelet,
        ]
        from localcluster.realcp.faults import RealFaults
        controllers.append(RealFaults(self._client(admin.token), s))
        if self.odf is not None:
            from localcluster.odf import ObjectBucketProvisioner
            controllers.append(ObjectBucketProvisioner(self._client(admin.token), s, odf=self.odf))
        self.router = Router(self._client(admin.token), s)
        self._run_tasks(controllers + [self.router])

        node_ips = sorted({a["address"] for n in (await client.list(path("v1", "nodes")))["items"]
                           for a in n["status"].get("addresses", []) if a["type"] == "InternalIP"})
        self.kubelet_api = KubeletAPI(self._client(admin.token), node_ips, self.cp.kubelet_ca, self.cp.ca.cert_pem)
        await self.kubelet_api.start()

        op_kc = write_kubeconfig(s.state_dir / "controlplane" / "operator.kubeconfig", self.cp.url,
                                 self.cp.dir / "ca.crt", admin.token)
        self.operator = operator_process(self.release, s.state_dir, op_kc, service_ca, s.netproxy_url)
        self.operator.start()
        self.cp.procs.append(self.operator)

        await self._wait_for_router()
        await self._wait_for_operator_report(client)
        self.timings["total"] = time.monotonic() - t0
        await self._expose()

    async def _wait_for_operator_report(self, client, timeout: float = 60.0) -> None:
        """Ready, as an installed cluster is, once the operator has reported on its ClusterOperator
        (Available, Progressing, Degraded). A stuck operator is the cluster's state, not a start-up
        failure (the fault selftests start such clusters): after `timeout` start-up goes on, logged."""
        t = time.monotonic()
        wanted = {"Available", "Progressing", "Degraded"}
        while True:
            try:
                co = await client.get(path("config.openshift.io/v1", "clusteroperators", name="image-registry"))
                if wanted <= {c.get("type") for c in (co.get("status") or {}).get("conditions") or []}:
                    break
            except ApiError as e:
                if e.status != 404:
                    raise
            self.cp.check()
            if time.monotonic() - t > timeout:
                log.warning("the operator has not reported Available/Progressing/Degraded on ClusterOperator "
                            "image-registry within %.0f s; see %s", timeout, self.settings.state_dir / "logs")
                break
            await asyncio.sleep(0.2)
        self.timings["operator_report"] = time.monotonic() - t

    async def _expose(self) -> None:
        bridge_dir = os.environ.get(netns.BRIDGE_ENV)
        if not bridge_dir:
            return
        self.bridge = netns.InnerBridge(Path(bridge_dir))
        await self.bridge.expose("api", "127.0.0.1", int(self.cp.url.rsplit(":", 1)[1]))
        host, port = self.router.address.rsplit(":", 1) if isinstance(self.router.address, str) \
            else self.router.address
        await self.bridge.expose("router", host, int(port))
        if getattr(self.router, "http_address", None):
            h, p = self.router.http_address.rsplit(":", 1)
            await self.bridge.expose("router-http", h, int(p))
        if self.netproxy is not None:
            hp = self.netproxy.url.split("://", 1)[-1].rstrip("/")
            h, p = hp.rsplit(":", 1)
            await self.bridge.expose("proxy", h, int(p))
        if self.odf is not None:
            for name, srv in self.odf.servers.items():
                await self.bridge.expose(f"s3-{name}", srv.host, int(srv.port))
        self.bridge.write_map()

    def info(self) -> dict:
        info = super().info()
        info["control_plane"] = "real"
        info["openshift"] = self.release
        info["operator_version"] = version(self.release)
        info["timings"] = {k: round(v, 2) for k, v in self.timings.items()}
        info["memory_kib"] = self.cp.memory_kib() if self.cp else {}
        return info

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()
        if self.operator is not None:
            await self.operator.stop()
        if self.kubelet_api is not None:
            await self.kubelet_api.stop()
        await self._cancel_tasks()
        self._tasks = []
        own = self._own_state_dir
        self._own_state_dir = False
        self.api = None          # LocalCluster.stop would stop the builtin API server
        await super().stop()
        if self.cp is not None:
            await self.cp.stop()
        if own:
            import shutil
            shutil.rmtree(self.settings.state_dir, ignore_errors=True)
