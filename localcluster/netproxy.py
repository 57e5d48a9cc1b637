"""The cluster network, as an HTTP forward proxy: how pods (and the operator) reach cluster names.

On OpenShift a pod resolves `*.apps.<domain>` to the ingress load balancer and `<svc>.<ns>.svc` to the
service's endpoints. Here nothing resolves those names, so processes that must reach them (the real
`docker-registry` with an S3 `regionEndpoint`, the operator's own S3 client) get this proxy as
`HTTP_PROXY`/`HTTPS_PROXY`. It listens on 127.0.0.1:<free port> and:

- `CONNECT host:port` (HTTPS) and absolute-URI requests (`GET http://host/...`, plain HTTP);
- `*.<apps domain>` -> the router's address (port 443: its HTTPS port; port 80: its plain HTTP port, for
  routes without TLS and edge routes that allow insecure traffic);
- `<svc>.<ns>.svc` / `<svc>.<ns>.svc.cluster.local` -> a ready endpoint of the service (the Ready pods its
  selector picks, or the addresses of its Endpoints object), the service port mapped to the target port;
- anything else is refused (403 for names outside the cluster: there is no internet here; 503 for a
  cluster service without ready endpoints).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable, Optional

from localcluster import settings as S
from localcluster.aio import pipe
from localcluster.client import Informer, path

log = logging.getLogger("localcluster.netproxy")

NO_PROXY = "127.0.0.0/8,localhost"


def _pod_ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    st = pod.get("status") or {}
    return bool(st.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


class NetProxy:
    def __init__(self, client, settings: S.Settings, router_address: Callable[[], Optional[str]],
                 host: str = "127.0.0.1", apps_domain: str = S.APPS_DOMAIN,
                 router_http_address: Optional[Callable[[], Optional[str]]] = None):
        self.router_http_address = router_http_address   # the router's plain HTTP port (routes without TLS)
        self.client = client
        self.settings = settings
        self.router_address = router_address
        self.host = host
        self.apps_domain = apps_domain.lower()
        self.port: Optional[int] = None
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: list[asyncio.Task] = []
        self._conns: set[asyncio.Task] = set()
        self._rr = itertools.count()
        self.services = self.endpoints = self.pods = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ resolution
    def resolve(self, host: str, port: int) -> tuple[str, int]:
        """(ip, port) to connect to for `host:port`, as a pod on the cluster network would; or Refused."""
        host = host.lower().rstrip(".")
        if host == self.apps_domain or host.endswith("." + self.apps_domain):
            addr = self.router_address()
            if not addr:
                raise Refused(503, "Service Unavailable", "the router is not serving yet")
            if port == 80 and self.router_http_address is not None and self.router_http_address():
                addr = self.router_http_address()
            elif port != 443:
                raise Refused(502, "Bad Gateway", f"the router serves HTTPS on port 443 and HTTP on 80, not {port}")
            rhost, _, rport = addr.rpartition(":")
            return rhost, int(rport)
        labels = host.split(".")
        if host.endswith(".svc.cluster.local"):
            labels = labels[:-2]
        if len(labels) == 3 and labels[2] == "svc":
            return self._service_endpoint(labels[1], labels[0], port)
        raise Refused(403, "Forbidden", f"{host}: not a cluster name (no internet here)")

    def _service_endpoint(self, ns: str, name: str, port: int) -> tuple[str, int]:
        svc = self.services.get(ns, name) if self.services else None
        if svc is None:
            raise Refused(502, "Bad Gateway", f"lookup {name}.{ns}.svc: no such host")
        sp = next((p for p in (svc.get("spec") or {}).get("ports") or [] if int(p.get("port", 0)) == port), None)
        if sp is None:
            raise Refused(502, "Bad Gateway", f"{name}.{ns}.svc: service has no port {port}")
        selector = (svc.get("spec") or {}).get("selector")
        out: list[tuple[str, int]] = []
        if selector:
            for pod in self.pods.items():
                meta = pod.get("metadata") or {}
                labels = meta.get("labels") or {}
                if meta.get("namespace") != ns or not _pod_ready(pod) or \
                        any(labels.get(k) != v for k, v in selector.items()):
                    continue
                tp = sp.get("targetPort", sp.get("port"))
                if isinstance(tp, str) and not tp.isdigit():
                    tp = next((cp["containerPort"] for c in (pod.get("spec") or {}).get("containers") or []
                               for cp in c.get("ports") or [] if cp.get("name") == tp), None)
                    if tp is None:
                        continue
                out.append((pod["status"]["podIP"], int(tp)))
        else:
            ep = self.endpoints.get(ns, name) if self.endpoints else None
            for subset in (ep or {}).get("subsets") or []:
                ports = subset.get("ports") or []
                eport = next((p["port"] for p in ports if p.get("name") == sp.get("name")), None)
                if eport is None and len(ports) == 1:
                    eport = ports[0]["port"]
                if eport is None:
                    continue
                for a in subset.get("addresses") or []:
                    out.append((a["ip"], int(eport)))
        if not out:
            raise Refused(503, "Service Unavailable", f"{name}.{ns}.svc:{port}: no ready endpoints")
        out.sort()
        return out[next(self._rr) % len(out)]

    # ------------------------------------------------------------------ serving
    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, reason: str, message: str = "") -> None:
        body = (message + "\n").encode() if message else b""
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        up_writer = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                await self._reply(writer, 400, "Bad Request", "malformed request line")
                return
            headers = [ln for ln in lines[1:] if ln]
            if method.upper() == "CONNECT":
                host, _, port_s = target.rpartition(":")
                host = host.strip("[]")
                port = int(port_s) if port_s.isdigit() else 443
                rest = b""
            else:
                if not target.lower().startswith("http://"):
                    await self._reply(writer, 400, "Bad Request", "only CONNECT and absolute http:// URIs")
                    return
                hostport, _, rest_path = target[7:].partition("/")
                host, _, port_s = hostport.rpartition(":") if ":" in hostport else (hostport, "", "80")
                port = int(port_s) if port_s.isdigit() else 80
                keep = [h for h in headers if h.split(":", 1)[0].strip().lower()
                        not in ("proxy-connection", "connection", "keep-alive", "proxy-authorization")]
                rest = (f"{method} /{rest_path} {version}\r\n" + "\r\n".join(keep + ["Connection: close"])
                        + "\r\n\r\n").encode("latin-1")
            try:
                ip, tport = self.resolve(host, port)
            except Refused as e:
                log.info("proxy refused %s %s: %s", method, target, e.message)
                await self._reply(writer, e.status, e.reason, e.message)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(ip, tport), 5)
            except (OSError, asyncio.TimeoutError) as e:
                await self._reply(writer, 502, "Bad Gateway", f"dial {ip}:{tport}: {e}")
                return
            if method.upper() == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(rest)
            ends = (ConnectionError, asyncio.IncompleteReadError)
            await asyncio.gather(pipe(reader, up_writer, ends), pipe(up_reader, writer, ends))
        except ConnectionError:
            pass
        finally:
            for w in (up_writer, writer):
                if w is not None:
                    w.close()
            self._conns.discard(task)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        resync = self.settings.resync_seconds
        self.services = Informer(self.client, path("v1", "services"), None, resync=resync)
        self.endpoints = Informer(self.client, path("v1", "endpoints"), None, resync=resync)
        self.pods = Informer(self.client, path("v1", "pods"), None, resync=resync)
        informers = (self.services, self.endpoints, self.pods)
        self._tasks = [asyncio.create_task(i.run(), name=f"netproxy-informer-{n}")
                       for n, i in enumerate(informers)]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), 30)
        self._server = await asyncio.start_server(self._handle, self.host, 0, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("cluster network proxy on %s", self.url)

    async def run(self) -> None:
        """For use as a controller task: start, then serve until cancelled."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._conns) + self._tasks:
            t.cancel()
        await asyncio.gather(*self._conns, *self._tasks, return_exceptions=True)
        self._tasks = []


__all__ = ["NetProxy", "NO_PROXY", "Refused"]
