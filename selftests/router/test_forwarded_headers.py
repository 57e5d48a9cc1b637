"""The router forwards requests as OpenShift's HAProxy router does (haproxy-config.template): every
end-to-end header kept, repeated ones too and in order; `Host` lower-cased; `X-Forwarded-Host`,
`-Port` and `-Proto` set (the client's replaced); `X-Forwarded-For` and an RFC 7239 `Forwarded`
appended, with `host="name:port"` quoted; hop-by-hop headers (and those `Connection` names) dropped."""
from __future__ import annotations

import json
import socket
import ssl

import pytest
from aiohttp import web

from localcluster.router import forwarded_value
from selftests.kubelet.kubelet_support import Cluster

NS = "router-headers"


@pytest.fixture(scope="module")
def echo_env(api, loop_thread, tmp_path_factory):
    c = Cluster(api, loop_thread).start(router=True)
    c.namespace(NS)

    async def handler(request: web.Request):
        return web.json_response([[k, v] for k, v in request.headers.items()])

    async def start():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = loop_thread.run(start())
    c.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": NS},
             "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}})
    c.apply({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "echo", "namespace": NS},
             "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": port}]}]})
    c.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": {"name": "echo", "namespace": NS},
             "spec": {"to": {"kind": "Service", "name": "echo"}, "tls": {"termination": "edge"}}})
    c.wait(lambda: (c.get("route.openshift.io/v1", "routes", NS, "echo").get("status") or {}).get("ingress"),
           what="route admitted")
    ca = tmp_path_factory.mktemp("echo") / "ca.pem"
    ca.write_bytes(c.ingress_ca.cert_pem)
    c.echo_host = c.get("route.openshift.io/v1", "routes", NS, "echo")["spec"]["host"]
    c.echo_ca = str(ca)
    yield c
    loop_thread.run(runner.cleanup())
    c.close()


def raw_request(env, header_lines: list[str]) -> list[list[str]]:
    """Send exactly these header lines (repeated ones included) through the router; the headers the
    backend saw, in order."""
    host, port = env.router.address.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=env.echo_ca)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=env.echo_host) as s:
            s.sendall(("GET /v2/ HTTP/1.1\r\n" + "".join(h + "\r\n" for h in header_lines) +
                       "Connection: close\r\n\r\n").encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return json.loads(body)


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_repeated_headers_are_kept_in_order(echo_env):
    seen = raw_request(echo_env, [f"Host: {echo_env.echo_host}",
                                  "Accept: application/vnd.oci.image.manifest.v1+json",
                                  "Accept: application/vnd.docker.distribution.manifest.v2+json",
                                  "Accept: application/vnd.oci.image.index.v1+json"])
    assert values(seen, "Accept") == ["application/vnd.oci.image.manifest.v1+json",
                                      "application/vnd.docker.distribution.manifest.v2+json",
                                      "application/vnd.oci.image.index.v1+json"]


def test_forwarded_and_x_forwarded_as_haproxy_sets_them(echo_env):
    port = echo_env.router.address.rsplit(":", 1)[1]
    host_with_port = f"{echo_env.echo_host.upper()}:{port}"
    seen = raw_request(echo_env, [f"Host: {host_with_port}", "X-Forwarded-Proto: http",
                                  "X-Forwarded-Host: evil.example", "X-Forwarded-For: 10.9.8.7",
                                  "Forwarded: for=10.9.8.7", "Proxy: http://evil.example",
                                  "Connection: X-Drop-Me", "X-Drop-Me: 1", "Keep-Alive: timeout=5"])
    lower = host_with_port.lower()
    assert values(seen, "Host") == [lower]
    assert values(seen, "X-Forwarded-Host") == [lower]
    assert values(seen, "X-Forwarded-Port") == [port]
    assert values(seen, "X-Forwarded-Proto") == ["https"]
    assert values(seen, "X-Forwarded-For") == ["10.9.8.7", "127.0.0.1"]
    assert values(seen, "Forwarded") == ["for=10.9.8.7", f'for=127.0.0.1;host="{lower}";proto=https']
    for dropped in ("Proxy", "X-Drop-Me", "Keep-Alive"):
        assert values(seen, dropped) == [], dropped


def test_forwarded_host_without_port_is_a_token(echo_env):
    seen = raw_request(echo_env, [f"Host: {echo_env.echo_host}"])
    assert values(seen, "Forwarded") == [f"for=127.0.0.1;host={echo_env.echo_host};proto=https"]


def test_forwarded_value_quoting():
    assert forwarded_value("a.example") == "a.example"
    assert forwarded_value("a.example:8443") == '"a.example:8443"'
    assert forwarded_value("[2001:db8::1]") == '"[2001:db8::1]"'
    assert forwarded_value('we"ird') == '"we\\"ird"'
