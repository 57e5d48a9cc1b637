"""The kubelet API that kube-apiserver calls for `pods/portforward`: HTTPS `/portForward/<ns>/<pod>`.

One HTTPS listener per node, on the node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`
(10250), with a certificate from the kubelet CA that kube-apiserver checks
(`--kubelet-certificate-authority`); kube-apiserver authenticates with its client certificate
(`--kubelet-client-certificate`, from the API CA), required here. kube-apiserver passes the client's
WebSocket upgrade through; the channel protocol is the one localcluster/apiserver/portforward.py speaks.
"""
from __future__ import annotations

import logging
import ssl
import tempfile
from pathlib import Path

from aiohttp import web

from localcluster.aio import close_all
from localcluster.apiserver import errors, portforward
from localcluster.client import ApiError, path
from localcluster.pki import CertificateAuthority

log = logging.getLogger("localcluster.realcp.kubeletapi")

KUBELET_PORT = 10250


class KubeletAPI:
    def __init__(self, client, node_ips: list[str], kubelet_ca: CertificateAuthority, client_ca_pem: bytes,
                 port: int = KUBELET_PORT):
        self.client = client
        self.node_ips = node_ips
        self.kubelet_ca = kubelet_ca
        self.client_ca_pem = client_ca_pem
        self.port = port
        self._runner: web.AppRunner | None = None
        self._sockets: set = set()

    def _ssl(self) -> ssl.SSLContext:
        cert, key = self.kubelet_ca.issue("localcluster-kubelet", dns_names=["localhost"],
                                          ip_addresses=self.node_ips)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=self.client_ca_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "c").write_bytes(cert + self.kubelet_ca.cert_pem)
            (Path(d) / "k").write_bytes(key)
            ctx.load_cert_chain(str(Path(d) / "c"), str(Path(d) / "k"))
        return ctx

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        try:
            try:
                pod = await self.client.get(path("v1", "pods", ns, name))
            except ApiError as e:
                if e.status == 404:
                    raise errors.APIError(404, "NotFound", f'pods "{name}" not found') from None
                raise
            # kube-apiserver names the ports `port` (api.PortHeader); direct callers may say `ports`.
            query = request.query.copy()
            for p in request.query.getall("port", []):
                query.add("ports", p)

            class _Q:
                def getall(self, key, default=()):
                    return query.getall(key, default)
            ports = portforward.parse_ports(_Q())
            want_uid = request.match_info.get("uid")
            if want_uid and want_uid != pod["metadata"].get("uid"):
                raise errors.APIError(404, "NotFound", f'pods "{name}" not found')
            return await portforward.serve(request, pod, ports, self._sockets)
        except errors.APIError as e:
            return web.json_response(e.status(), status=e.code)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/portForward/{namespace}/{pod}/{uid}", self._port_forward)
        app.router.add_post("/portForward/{namespace}/{pod}", self._port_forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        ctx = self._ssl()
        for ip in self.node_ips:
            await web.TCPSite(self._runner, ip, self.port, ssl_context=ctx).start()
        log.info("kubelet API on %s port %d", ", ".join(self.node_ips), self.port)

    async def stop(self) -> None:
        await close_all(self._sockets)
        if self._runner is not None:
            await self._runner.cleanup()
