"""The default ingress router: admits Routes and serves their hosts over HTTPS.

- Listens on `settings.router_host:router_port` with the certificate of secret
  `openshift-ingress/router-certs-default` (reloaded when the secret changes); `.address` is
  "host:port" once serving.
- Admits every Route (status.ingress with Admitted=True), generating `spec.host` as
  `<name>-<namespace>.<apps domain>` when it is empty.
- Proxies by Host header to the route's service: the Ready pods its selector picks (round robin, on
  the target port), or, for a service without selector, the addresses of its Endpoints object.
- TLS termination: `edge` (and routes without tls) -> HTTP to the backend; `reencrypt` -> HTTPS,
  verifying the backend for `<service>.<namespace>.svc` against `spec.tls.destinationCACertificate` or
  the service CA (configmap `openshift-service-ca.crt` in the route's namespace); `passthrough` -> 503
  (not implemented).
- No route, or no ready endpoint -> 503 "Application is not available".
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import itertools
import logging
import os
import ssl
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from localcluster import settings as S
from localcluster.client import ApiError, Informer, path
from localcluster.registrypod import end_to_end_headers, proxy_request

log = logging.getLogger("localcluster.router")

ROUTER_NAME = "default"
CERT_NAMESPACE = "openshift-ingress"
CERT_SECRET = "router-certs-default"
# Fault knob `router.untrustedS3Cert`: the ODF S3 routes get a certificate from a CA nobody trusts.
FAULT_UNTRUSTED_S3_CERT = "router.untrustedS3Cert"
S3_ROUTES = {("openshift-storage", "ocs-storagecluster-cephobjectstore"), ("openshift-storage", "s3")}

UNAVAILABLE_PAGE = """<html>
<head>
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Application is not available</title>
<style type="text/css">
body { font-family: "Open Sans", Helvetica, Arial, sans-serif; color: #333; margin: 15px; }
h1 { font-size: 24px; font-weight: 400; }
</style>
</head>
<body>
<div>
<h1>Application is not available</h1>
<p>The application is currently not serving requests at this endpoint. It may not have been started or is still starting.</p>
<div>
<p>Possible reasons you are seeing this page:</p>
<ul>
<li><strong>The host doesn't exist.</strong> Make sure the hostname was typed correctly and that a route matching this hostname exists.</li>
<li><strong>The host exists, but doesn't have a matching path.</strong> Check if the URL path was typed correctly and that the route was created using the desired path.</li>
<li><strong>Route and path matches, but all pods are down.</strong> Make sure that the resources exposed by this route (pods, services, deployment configs, etc) have at least one pod running.</li>
</ul>
</div>
</div>
</body>
</html>
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unavailable() -> web.Response:
    return web.Response(status=503, text=UNAVAILABLE_PAGE, content_type="text/html",
                        headers={"Cache-Control": "private, max-age=0, no-cache, no-store", "Pragma": "no-cache"})


def _pod_ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    st = pod.get("status") or {}
    if not st.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


_TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def forwarded_value(value: str) -> str:
    """An RFC 7239 parameter value: a token as is, anything else (`host:port`, `[v6]`) quoted."""
    if value and all(ch in _TCHAR for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def router_headers(request: web.Request, proto: str = "https") -> CIMultiDict:
    """What OpenShift's HAProxy router sends the backend (haproxy-config.template, forwardedHeaderPolicy
    Append): every end-to-end header of the client, repeated ones kept; `Host` lower-cased; `Proxy`
    dropped; `X-Forwarded-Host`/`-Port`/`-Proto` set (replacing the client's); `X-Forwarded-For` and
    `Forwarded: for=..;host=..;proto=https` appended (RFC 7239: `host="name:port"` and IPv6 `for` quoted)."""
    headers = end_to_end_headers(request)
    for name in ("Proxy", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Forwarded-Proto-Version"):
        headers.popall(name, None)
    host = (request.headers.get("Host") or "").lower()
    if host:
        headers["Host"] = host
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    peer = request.remote or ""
    headers["X-Forwarded-Host"] = host
    headers["X-Forwarded-Port"] = str(sock[1]) if sock else ("443" if proto == "https" else "80")
    headers["X-Forwarded-Proto"] = proto
    headers.add("X-Forwarded-For", peer)
    for_ = forwarded_value(f"[{peer}]" if ":" in peer else peer)
    headers.add("Forwarded", f"for={for_};host={forwarded_value(host)};proto={proto}")
    return headers


class Router:
    def __init__(self, client, settings: S.Settings):
        self.client = client
        self.settings = settings
        self.address: str | None = None
        self.http_address: str | None = None      # plain HTTP (port 80 of a real router)
        self.apps_domain = S.APPS_DOMAIN
        self.ssl_ctx: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._rr: dict[tuple, itertools.count] = {}
        self._ca_cache: dict[str, tuple[float, ssl.SSLContext | None]] = {}
        self._cert_key: tuple | None = None
        self.routes = self.services = self.endpoints = self.pods = None
        self.faults = None
        self._untrusted_ctx: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ certificate
    async def _load_cert(self, secret: dict | None = None) -> bool:
        if secret is None:
            try:
                secret = await self.client.get(path("v1", "secrets", CERT_NAMESPACE, CERT_SECRET))
            except ApiError as e:
                if e.status == 404:
                    return False
                raise
        data = secret.get("data") or {}
        crt, key = base64.b64decode(data.get("tls.crt", "")), base64.b64decode(data.get("tls.key", ""))
        if not crt or not key or (crt, key) == self._cert_key:
            return bool(crt and key)
        d = Path(self.settings.state_dir) / "router"
        d.mkdir(parents=True, exist_ok=True)
        for name, blob in (("tls.crt", crt), ("tls.key", key)):
            fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
        if self.ssl_ctx is None:
            self.ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # Loading into the live context: new connections get the new certificate.
        self.ssl_ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        self._cert_key = (crt, key)
        return True

    def _fault(self, key: str) -> bool:
        cm = self.faults.get(S.FAULTS_NAMESPACE, S.FAULTS_CONFIGMAP) if self.faults else None
        return ((cm or {}).get("data") or {}).get(key, "").strip().lower() == "true"

    def _untrusted_context(self) -> ssl.SSLContext:
        """A wildcard certificate for the apps domain from a CA that nobody trusts (made once)."""
        if self._untrusted_ctx is None:
            from localcluster.pki import CertificateAuthority
            ca = CertificateAuthority.create("untrusted-s3-ca@localcluster")
            crt, key = ca.issue(f"*.{self.apps_domain}", dns_names=[f"*.{self.apps_domain}", self.apps_domain])
            d = Path(self.settings.state_dir) / "router"
            d.mkdir(parents=True, exist_ok=True)
            for name, blob in (("untrusted.crt", crt + ca.cert_pem), ("untrusted.key", key)):
                fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(d / "untrusted.crt", d / "untrusted.key")
            self._untrusted_ctx = ctx
        return self._untrusted_ctx

    def _sni(self, ssl_obj, server_name, _ctx) -> None:
        """Per-connection certificate choice (the `router.untrustedS3Cert` fault)."""
        if not server_name or not self.routes or not self._fault(FAULT_UNTRUSTED_S3_CERT):
            return None
        host = server_name.lower()
        for r in self.routes.items():
            meta = r.get("metadata") or {}
            if (meta.get("namespace"), meta.get("name")) in S3_ROUTES and \
                    ((r.get("spec") or {}).get("host") or "").lower() == host:
                try:
                    ssl_obj.context = self._untrusted_context()
                except Exception as e:  # noqa: BLE001 - never break the handshake for a fault knob
                    log.warning("untrusted S3 certificate not served: %s", e)
                break
        return None

    async def _on_secret(self, event_type: str, secret: dict) -> None:
        if event_type != "DELETED" and (secret.get("metadata") or {}).get("name") == CERT_SECRET:
            try:
                await self._load_cert(secret)
            except (ssl.SSLError, ValueError) as e:
                log.warning("router certificate not loaded: %s", e)

    async def _load_domain(self) -> None:
        try:
            ing = await self.client.get(path("config.openshift.io/v1", "ingresses", None, "cluster"))
            self.apps_domain = (ing.get("spec") or {}).get("domain") or self.apps_domain
        except ApiError:
            pass

    # ------------------------------------------------------------------ admission
    async def _on_route(self, event_type: str, route: dict) -> None:
        if event_type == "DELETED":
            return
        meta = route.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return
        name, ns = meta.get("name"), meta.get("namespace")
        spec = route.get("spec") or {}
        host = spec.get("host")
        try:
            if not host:
                host = f"{name}-{ns}.{self.apps_domain}"
                route = await self.client.patch(path("route.openshift.io/v1", "routes", ns, name),
                                                {"spec": {"host": host}})
            ingress = (route.get("status") or {}).get("ingress") or []
            mine = next((i for i in ingress if i.get("routerName") == ROUTER_NAME), None)
            admitted = mine is not None and mine.get("host") == host and any(
                c.get("type") == "Admitted" and c.get("status") == "True" for c in mine.get("conditions") or [])
            if admitted:
                return
            entry = {
                "host": host, "routerName": ROUTER_NAME, "wildcardPolicy": spec.get("wildcardPolicy") or "None",
                "routerCanonicalHostname": f"router-default.{self.apps_domain}",
                "conditions": [{"type": "Admitted", "status": "True", "lastTransitionTime": _now()}],
            }
            others = [i for i in ingress if i.get("routerName") != ROUTER_NAME]
            await self.client.patch(path("route.openshift.io/v1", "routes", ns, name, "status"),
                                    {"status": {"ingress": others + [entry]}})
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("admit route %s/%s: %s", ns, name, e)

    # ------------------------------------------------------------------ backends
    def _find_route(self, host: str, req_path: str) -> dict | None:
        best, best_len = None, -1
        for r in self.routes.items():
            spec = r.get("spec") or {}
            if (spec.get("host") or "").lower() != host or (r.get("metadata") or {}).get("deletionTimestamp"):
                continue
            rp = spec.get("path") or ""
            if rp and not req_path.startswith(rp):
                continue
            if len(rp) > best_len:
                best, best_len = r, len(rp)
        return best

    @staticmethod
    def _service_port(svc: dict, target) -> dict | None:
        ports = (svc.get("spec") or {}).get("ports") or []
        if not ports:
            return None
        if target is None:
            return ports[0]
        for p in ports:
            if str(target) in (str(p.get("name")), str(p.get("targetPort")), str(p.get("port"))):
                return p
        return None

    def _backends(self, route: dict) -> list[tuple[str, int]]:
        ns = route["metadata"]["namespace"]
        spec = route.get("spec") or {}
        svc_name = (spec.get("to") or {}).get("name")
        svc = self.services.get(ns, svc_name)
        if svc is None:
            return []
        sp = self._service_port(svc, (spec.get("port") or {}).get("targetPort"))
        if sp is None:
            return []
        selector = (svc.get("spec") or {}).get("selector")
        out = []
        if selector:
            for pod in self.pods.items():
                meta = pod.get("metadata") or {}
                if meta.get("namespace") != ns or not _pod_ready(pod):
                    continue
                labels = meta.get("labels") or {}
                if any(labels.get(k) != v for k, v in selector.items()):
                    continue
                tp = sp.get("targetPort", sp.get("port"))
                if isinstance(tp, str) and not tp.isdigit():
                    tp = next((p["containerPort"] for c in (pod.get("spec") or {}).get("containers") or []
                               for p in c.get("ports") or [] if p.get("name") == tp), None)
                    if tp is None:
                        continue
                out.append((pod["status"]["podIP"], int(tp)))
        else:
            ep = self.endpoints.get(ns, svc_name)
            for subset in (ep or {}).get("subsets") or []:
                ports = subset.get("ports") or []
                port = next((p["port"] for p in ports if p.get("name") == sp.get("name")), None)
                if port is None and ports:
                    port = ports[0]["port"]
                if port is None:
                    port = sp.get("targetPort", sp.get("port"))
                for a in subset.get("addresses") or []:
                    out.append((a["ip"], int(port)))
        out.sort()
        return out

    async def _backend_ssl(self, route: dict) -> ssl.SSLContext | None:
        ns = route["metadata"]["namespace"]
        tls = (route.get("spec") or {}).get("tls") or {}
        ca = tls.get("destinationCACertificate")
        key = f"route:{ca}" if ca else f"ns:{ns}"
        loop = asyncio.get_running_loop()
        cached = self._ca_cache.get(key)
        if cached is not None and (ca or loop.time() - cached[0] < 5):
            return cached[1]
        if not ca:
            try:
                cm = await self.client.get(path("v1", "configmaps", ns, "openshift-service-ca.crt"))
                ca = (cm.get("data") or {}).get("service-ca.crt")
            except ApiError:
                ca = None
        ctx = None
        if ca:
            try:
                ctx = ssl.create_default_context(cadata=ca)
            except (ssl.SSLError, ValueError):
                ctx = None
        self._ca_cache[key] = (loop.time(), ctx)
        return ctx

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower() if not (request.host or "").startswith("[") \
            else request.host
        route = self._find_route(host, request.path)
        if route is None:
            return _unavailable()
        spec = route.get("spec") or {}
        if (route["metadata"].get("namespace"), route["metadata"].get("name")) in S3_ROUTES:
            # A kept-alive connection made before `router.untrustedS3Cert` changed: close it, so the
            # client reconnects and meets the certificate the knob asks for.
            ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
            untrusted = ssl_obj is not None and self._untrusted_ctx is not None and \
                ssl_obj.context is self._untrusted_ctx
            if untrusted != self._fault(FAULT_UNTRUSTED_S3_CERT):
                request.transport.close()
                return _unavailable()
        termination = ((spec.get("tls") or {}).get("termination") or "").lower()
        if termination == "passthrough":
            return _unavailable()
        # As HAProxy's two frontends: plain HTTP (port 80) serves routes without TLS and edge routes with
        # insecureEdgeTerminationPolicy Allow (Redirect: 302 to https); HTTPS serves TLS routes only
        # (ODF 4.12's RGW route has no TLS: plain HTTP only, operator-facts §12.9).
        plain = not request.secure
        insecure = ((spec.get("tls") or {}).get("insecureEdgeTerminationPolicy") or "").lower()
        if plain and termination:
            if insecure == "redirect":
                raise web.HTTPFound(f"https://{request.host}{request.rel_url}")
            if not (termination == "edge" and insecure == "allow"):
                return _unavailable()
        if not plain and not termination:
            return _unavailable()
        backends = self._backends(route)
        if not backends:
            return _unavailable()
        key = (route["metadata"]["namespace"], route["metadata"]["name"])
        counter = self._rr.setdefault(key, itertools.count())
        ip, port = backends[next(counter) % len(backends)]
        proto = "http" if plain else "https"
        headers = router_headers(request, proto)
        kwargs = {}
        scheme = "http"
        if termination == "reencrypt":
            ctx = await self._backend_ssl(route)
            if ctx is None:
                return _unavailable()
            scheme = "https"
            kwargs = {"ssl_ctx": ctx, "server_hostname": f"{spec['to']['name']}.{key[0]}.svc"}
        url = f"{scheme}://{ip}:{port}{request.rel_url.raw_path_qs}"
        try:
            # encoded=True: send the path and query byte for byte (re-quoting `%2F` to `/` would break
            # signed requests such as S3 SigV4).
            return await proxy_request(self._session, request, URL(url, encoded=True), headers, **kwargs)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, ssl.SSLError) as e:
            log.info("route %s/%s backend %s failed: %s", key[0], key[1], url, e)
            return _unavailable()

    async def run(self) -> None:
        await self._load_domain()
        while not await self._load_cert():
            await asyncio.sleep(0.1)
        resync = self.settings.resync_seconds
        self.routes = Informer(self.client, path("route.openshift.io/v1", "routes"), self._on_route, resync=resync)
        self.services = Informer(self.client, path("v1", "services"), lambda t, o: None, resync=resync)
        self.endpoints = Informer(self.client, path("v1", "endpoints"), lambda t, o: None, resync=resync)
        self.pods = Informer(self.client, path("v1", "pods"), lambda t, o: None, resync=resync)
        secrets = Informer(self.client, path("v1", "secrets", CERT_NAMESPACE), self._on_secret, resync=resync)
        self.faults = Informer(self.client, path("v1", "configmaps", S.FAULTS_NAMESPACE), None, resync=resync)
        informers = [self.routes, self.services, self.endpoints, self.pods, secrets, self.faults]
        self.ssl_ctx.sni_callback = self._sni
        tasks = [asyncio.create_task(i.run()) for i in informers]
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers[:4])), 30)
            self._session = aiohttp.ClientSession(auto_decompress=False, trust_env=False,
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
            app = web.Application(client_max_size=1 << 40)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.router_host, self.settings.router_port,
                               ssl_context=self.ssl_ctx, reuse_address=True)
            await site.start()
            port = self._runner.addresses[0][1]
            plain_site = web.TCPSite(self._runner, self.settings.router_host,
                                     getattr(self.settings, "router_http_port", 0), reuse_address=True)
            await plain_site.start()
            http_port = self._runner.addresses[-1][1]
            self.address = f"{self.settings.router_host}:{port}"
            self.http_address = f"{self.settings.router_host}:{http_port}"
            log.info("router serving on %s (HTTPS) and %s (HTTP)", self.address, self.http_address)
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()
