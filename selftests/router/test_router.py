"""The router: admission, host generation, proxying by Host to Endpoints/pods, edge and reencrypt, 503s."""
from __future__ import annotations

import hashlib
import os
import socket
import ssl

import pytest
import requests
from aiohttp import web

from selftests.kubelet.kubelet_support import Cluster
from localcluster.pki import CertificateAuthority
from localcluster.settings import APPS_DOMAIN

NS = "router-tests"


class Backend:
    """An aiohttp server answering who it is, the Host and Authorization it saw, and a body hash."""

    def __init__(self, lt, ip, name, cert=None):
        self.lt, self.ip, self.name = lt, ip, name

        async def handler(request: web.Request):
            h = hashlib.sha256()
            n = 0
            async for chunk in request.content.iter_chunked(65536):
                h.update(chunk)
                n += len(chunk)
            return web.json_response({"backend": name, "host": request.host, "path": request.path_qs,
                                      "auth": request.headers.get("Authorization"), "sha256": h.hexdigest(),
                                      "len": n, "proto": request.headers.get("X-Forwarded-Proto")})

        async def start():
            app = web.Application(client_max_size=1 << 30)
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            ctx = None
            if cert:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                d = cluster_tmp / f"{name}"
                d.mkdir(exist_ok=True)
                (d / "c").write_bytes(cert[0])
                (d / "k").write_bytes(cert[1])
                ctx.load_cert_chain(d / "c", d / "k")
            site = web.TCPSite(runner, ip, 0, ssl_context=ctx)
            await site.start()
            return runner, runner.addresses[0][1]

        self.runner, self.port = lt.run(start())

    def close(self):
        self.lt.run(self.runner.cleanup())


cluster_tmp = None


@pytest.fixture(scope="module")
def env(api, loop_thread, tmp_path_factory):
    global cluster_tmp
    cluster_tmp = tmp_path_factory.mktemp("backends")
    c = Cluster(api, loop_thread).start(router=True)
    c.namespace(NS)
    yield c
    c.close()


def svc_with_endpoints(c, name, backends, port_name="http"):
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
             "spec": {"ports": [{"name": port_name, "port": 8080, "targetPort": 8080}]}})
    subsets = []
    for b in backends:
        subsets.append({"addresses": [{"ip": b.ip}], "ports": [{"name": port_name, "port": b.port}]})
    c.apply({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": NS},
             "subsets": subsets})


def route(c, name, service, termination="edge", host=None, **tls):
    spec = {"to": {"kind": "Service", "name": service}}
    if termination:
        spec["tls"] = {"termination": termination, **tls}
    if host:
        spec["host"] = host
    c.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
             "metadata": {"name": name, "namespace": NS}, "spec": spec})
    return c.wait(lambda: (c.get("route.openshift.io/v1", "routes", NS, name).get("status") or {}).get("ingress"),
                  what="admitted")


def get(c, host, path="/", **kw):
    ca = cluster_tmp / "ingress-ca.crt"
    ca.write_bytes(c.ingress_ca.cert_pem)
    s = requests.Session()
    s.trust_env = False
    # Connect to the router's address but present `host` for SNI and certificate checks.
    from requests.adapters import HTTPAdapter

    class Pin(HTTPAdapter):
        def init_poolmanager(self, *a, **k):
            k["server_hostname"] = host
            super().init_poolmanager(*a, **k)

    s.mount("https://", Pin())
    method = kw.pop("method", "GET")
    return s.request(method, f"https://{c.router.address}{path}", headers={"Host": host, **kw.pop("headers", {})},
                     verify=str(ca), timeout=10, **kw)


def test_route_admitted_with_generated_host(env):
    b = Backend(env.lt, "127.0.0.1", "one")
    try:
        svc_with_endpoints(env, "plain", [b])
        ingress = route(env, "gen", "plain")
        r = env.get("route.openshift.io/v1", "routes", NS, "gen")
        host = f"gen-{NS}.{APPS_DOMAIN}"
        assert r["spec"]["host"] == host
        ing = ingress[0]
        assert ing["host"] == host and ing["routerName"] == "default" and ing["wildcardPolicy"] == "None"
        assert ing["routerCanonicalHostname"] == f"router-default.{APPS_DOMAIN}"
        assert ing["conditions"][0]["type"] == "Admitted" and ing["conditions"][0]["status"] == "True"
        assert ing["conditions"][0]["lastTransitionTime"]
        resp = get(env, host, "/some/path?x=1", headers={"Authorization": "Bearer abc"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body == {**body, "backend": "one", "host": host, "path": "/some/path?x=1", "auth": "Bearer abc",
                        "proto": "https"}
    finally:
        b.close()


def test_large_body_streams_to_backend(env):
    b = Backend(env.lt, "127.0.0.1", "big")
    try:
        svc_with_endpoints(env, "bigsvc", [b])
        route(env, "big", "bigsvc")
        data = os.urandom(8 * 1024 * 1024)
        resp = get(env, f"big-{NS}.{APPS_DOMAIN}", "/upload", method="PUT", data=data)
        assert resp.status_code == 200
        assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest() and resp.json()["len"] == len(data)
    finally:
        b.close()


def test_round_robin_over_endpoints(env):
    bs = [Backend(env.lt, "127.0.0.1", "rr-a"), Backend(env.lt, "127.0.0.1", "rr-b")]
    try:
        svc_with_endpoints(env, "rrsvc", bs)
        route(env, "rr", "rrsvc")
        seen = {get(env, f"rr-{NS}.{APPS_DOMAIN}").json()["backend"] for _ in range(4)}
        assert seen == {"rr-a", "rr-b"}
    finally:
        for b in bs:
            b.close()


def test_unknown_host_and_no_endpoints_are_503(env):
    r = get(env, f"nothing-here.{APPS_DOMAIN}")
    assert r.status_code == 503 and "Application is not available" in r.text
    svc_with_endpoints(env, "empty", [])
    route(env, "empty", "empty")
    r = get(env, f"empty-{NS}.{APPS_DOMAIN}")
    assert r.status_code == 503 and "Application is not available" in r.text


def test_passthrough_is_503_for_now(env):
    b = Backend(env.lt, "127.0.0.1", "pt")
    try:
        svc_with_endpoints(env, "ptsvc", [b])
        route(env, "pt", "ptsvc", termination="passthrough")
        assert get(env, f"pt-{NS}.{APPS_DOMAIN}").status_code == 503
    finally:
        b.close()


def test_reencrypt_verifies_backend_against_service_ca(env):
    dns = f"secure.{NS}.svc"
    good = Backend(env.lt, "127.0.0.1", "good", cert=env.service_ca.issue(dns, dns_names=[dns]))
    try:
        svc_with_endpoints(env, "secure", [good])
        route(env, "secure", "secure", termination="reencrypt")
        r = get(env, f"secure-{NS}.{APPS_DOMAIN}")
        assert r.status_code == 200 and r.json()["backend"] == "good"
    finally:
        good.close()
    other_ca = CertificateAuthority.create("some-other-ca")
    bad = Backend(env.lt, "127.0.0.1", "bad", cert=other_ca.issue(dns, dns_names=[dns]))
    try:
        svc_with_endpoints(env, "secure", [bad])
        assert get(env, f"secure-{NS}.{APPS_DOMAIN}").status_code == 503
        # The route's own destinationCACertificate is trusted instead.
        route(env, "secure", "secure", termination="reencrypt",
              destinationCACertificate=other_ca.cert_pem.decode())
        env.wait(lambda: get(env, f"secure-{NS}.{APPS_DOMAIN}").status_code == 200, what="trusted by route CA")
    finally:
        bad.close()


def test_router_serves_the_ingress_wildcard_certificate(env):
    host, port = env.router.address.rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=env.ingress_ca.cert_pem.decode())
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=f"anything.{APPS_DOMAIN}") as tls:
            assert tls.getpeercert()["subject"][0][0][1] == f"*.{APPS_DOMAIN}"
