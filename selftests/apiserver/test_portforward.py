"""pods/portforward over WebSocket, through the OFFICIAL client (`kubernetes.stream.portforward`): the
server connects to the pod's status.podIP and relays both ways; refusals as kube answers them."""
from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import time

import pytest
import requests
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward

from localcluster.pki import CertificateAuthority
from utilities.portforward import open_local_port

ECHO_IP = "127.1.251.10"
HTTPS_IP = "127.1.251.11"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data.upper())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def echo_server():
    srv = _Server((ECHO_IP, 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """A tiny HTTPS server (stdlib) with a certificate for the pod IP; yields (port, ca_path)."""
    import http.server

    d = tmp_path_factory.mktemp("pf-https")
    ca = CertificateAuthority.create("pf-test-ca")
    crt, key = ca.issue("pod", ip_addresses=[HTTPS_IP, "127.0.0.1"])
    (d / "tls.crt").write_bytes(crt)
    (d / "tls.key").write_bytes(key)
    (d / "ca.crt").write_bytes(ca.cert_pem)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            body = f"hello from {HTTPS_IP} path={self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer((HTTPS_IP, 0), H)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(d / "tls.crt"), str(d / "tls.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], str(d / "ca.crt")
    srv.shutdown()
    srv.server_close()


def make_pod(core, ns, name, ip, phase="Running", node="worker-0"):
    spec = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}
    if node:
        spec["nodeName"] = node
    core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": spec})
    if phase != "Pending" or ip:
        core.patch_namespaced_pod_status(name, ns, {"status": {"phase": phase, "podIP": ip,
                                                                "podIPs": [{"ip": ip}] if ip else None}})


def recv_exactly(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def test_discovery_lists_portforward(core):
    res = {r.name: r for r in core.get_api_resources().resources}
    assert sorted(res["pods/portforward"].verbs) == ["create", "get"]
    assert res["pods/portforward"].kind == "PodPortForwardOptions"


def test_echo_through_official_client(core, ns, echo_server):
    make_pod(core, ns, "echo", ECHO_IP)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "echo", ns, ports=str(echo_server))
    try:
        s = pf.socket(echo_server)
        s.sendall(b"hello pod")
        assert recv_exactly(s, 9) == b"HELLO POD"
        big = bytes(range(97, 123)) * 20000          # 520 kB, several frames each way
        s.sendall(big)
        assert recv_exactly(s, len(big), timeout=20) == big.upper()
        assert pf.error(echo_server) is None
    finally:
        pf.close()


def test_two_ports_in_one_connection(core, ns, echo_server, https_server):
    # Two ports on one pod address: the echo server's port and a closed one (error channel).
    make_pod(core, ns, "two", ECHO_IP)
    closed = _closed_port(ECHO_IP)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "two", ns, ports=f"{echo_server},{closed}")
    try:
        s = pf.socket(echo_server)
        s.sendall(b"abc")
        assert recv_exactly(s, 3) == b"ABC"
        dead = pf.socket(closed)
        dead.settimeout(5)
        assert dead.recv(10) == b""      # the client closes a port on an error-channel message
        err = pf.error(closed)
        assert err and "connection refused" in err and f"{ECHO_IP}:{closed}" in err
    finally:
        pf.close()


def _closed_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def test_https_get_through_portforward_socket(core, ns, https_server):
    port, ca_path = https_server
    make_pod(core, ns, "web", HTTPS_IP)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", ns, ports=str(port))
    try:
        ctx = ssl.create_default_context(cafile=ca_path)
        raw = pf.socket(port)
        raw.setblocking(True)
        with ctx.wrap_socket(raw._socket, server_hostname=HTTPS_IP) as tls:
            tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {HTTPS_IP}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            tls.settimeout(5)
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert data.endswith(f"hello from {HTTPS_IP} path=/v2/".encode())
    finally:
        pf.close()


def test_connection_closes_when_pod_side_closes(core, ns):
    ip = "127.1.251.12"
    lst = socket.socket()
    lst.bind((ip, 0))
    lst.listen(1)
    port = lst.getsockname()[1]

    def serve_once():
        c, _ = lst.accept()
        c.sendall(b"bye")
        c.close()
    t = threading.Thread(target=serve_once, daemon=True)
    t.start()
    make_pod(core, ns, "closer", ip)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "closer", ns, ports=str(port))
    try:
        s = pf.socket(port)
        assert recv_exactly(s, 10) == b"bye"      # data, then EOF
        deadline = time.monotonic() + 5
        while pf.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pf.connected
    finally:
        pf.close()
        lst.close()


def _handshake(cluster, user, ns, name, ports):
    """A WebSocket handshake as the official client makes it; answers (status, Status body or None)."""
    import json

    import websocket
    url = cluster.url.replace("https://", "wss://") + f"/api/v1/namespaces/{ns}/pods/{name}/portforward"
    if ports is not None:
        url += f"?ports={ports}"
    try:
        ws = websocket.create_connection(
            url, header=[f"authorization: Bearer {cluster.tokens[user]}",
                         "sec-websocket-protocol: v5.channel.k8s.io,v4.channel.k8s.io"],
            sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": _ca_file(cluster)}, timeout=5)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code, json.loads(e.resp_body)
    proto = (ws.getheaders() or {}).get("sec-websocket-protocol")
    ws.close()
    return 101, proto


def test_refusals(core, ns, cluster, echo_server):
    make_pod(core, ns, "pending", None, phase="Pending")
    make_pod(core, ns, "unbound", None, phase="Pending", node=None)
    make_pod(core, ns, "done", ECHO_IP, phase="Succeeded")
    make_pod(core, ns, "ok", ECHO_IP)
    port = str(echo_server)
    assert _handshake(cluster, "kube:admin", ns, "ok", port) == (101, "v4.channel.k8s.io")
    cases = [
        ("kube:admin", "pending", port, 400, "BadRequest", "unable to upgrade connection: pod pending is not "
                                                           "running (current phase is Pending)"),
        ("kube:admin", "unbound", port, 400, "BadRequest", "pod unbound does not have a host assigned"),
        ("kube:admin", "done", port, 400, "BadRequest", "unable to upgrade connection: pod done is not running "
                                                        "(current phase is Succeeded)"),
        ("kube:admin", "missing", port, 404, "NotFound", 'pods "missing" not found'),
        ("kube:admin", "ok", None, 400, "BadRequest", 'query parameter "ports" is required'),
        ("kube:admin", "ok", "0", 400, "BadRequest", "port 0 must be > 0 and < 65536"),
        ("nobody", "ok", port, 403, "Forbidden", f'pods "ok" is forbidden: User "nobody" cannot create '
                                                 f'resource "pods/portforward" in API group "" in the namespace '
                                                 f'"{ns}"'),
        ("puller", "ok", port, 403, "Forbidden", f'pods "ok" is forbidden: User "puller" cannot create '
                                                 f'resource "pods/portforward" in API group "" in the namespace '
                                                 f'"{ns}"'),
    ]
    for user, name, ports, code, reason, message in cases:
        status, body = _handshake(cluster, user, ns, name, ports)
        assert (status, body["reason"], body["message"]) == (code, reason, message), (user, name)
    # The official client refuses too (its error handling of a failed handshake is an AttributeError).
    with pytest.raises((ApiException, AttributeError)):
        portforward(core.connect_get_namespaced_pod_portforward, "pending", ns, ports=port)


def test_plain_get_without_upgrade_is_400(cluster, ns, core, echo_server):
    make_pod(core, ns, "plain", ECHO_IP)
    r = requests.get(f"{cluster.url}/api/v1/namespaces/{ns}/pods/plain/portforward",
                     params={"ports": str(echo_server)},
                     headers={"Authorization": f"Bearer {cluster.tokens['kube:admin']}"},
                     verify=_ca_file(cluster))
    assert r.status_code == 400 and r.json()["message"] == "Upgrade request required"
    r = requests.get(f"{cluster.url}/api/v1/namespaces/{ns}/pods/plain/portforward",
                     headers={"Authorization": f"Bearer {cluster.tokens['kube:admin']}"},
                     verify=_ca_file(cluster))
    assert r.status_code == 400 and '"ports" is required' in r.json()["message"]


_CA_FILES: dict = {}


def _ca_file(cluster):
    if cluster.url not in _CA_FILES:
        import tempfile
        f = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)
        f.write(cluster.ca_pem)
        f.close()
        _CA_FILES[cluster.url] = f.name
    return _CA_FILES[cluster.url]


def test_server_stop_leaves_no_open_forward(core, ns, echo_server, cluster):
    make_pod(core, ns, "count", ECHO_IP)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "count", ns, ports=str(echo_server))
    s = pf.socket(echo_server)
    s.sendall(b"x")
    assert recv_exactly(s, 1) == b"X"
    assert len(cluster.server._websockets) >= 1
    pf.close()
    deadline = time.monotonic() + 5
    while cluster.server._websockets and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not cluster.server._websockets


# ---------------------------------------------------------------- utilities.portforward.open_local_port
def test_open_local_port_any_http_client(core, ns, https_server):
    port, ca_path = https_server
    make_pod(core, ns, "helper", HTTPS_IP)
    with open_local_port(core, ns, "helper", port) as (host, local_port):
        assert host == "127.0.0.1" and local_port != port
        urls = [f"https://{host}:{local_port}/r{i}" for i in range(6)]
        # Several connections at once (a new port-forward each), while the caller's client is busy too.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(6) as pool:
            futs = [pool.submit(requests.get, u, verify=ca_path, timeout=10) for u in urls]
            for _ in range(5):
                assert core.read_namespaced_pod("helper", ns).status.pod_ip == HTTPS_IP
            answers = [f.result() for f in futs]
        assert [a.text for a in answers] == [f"hello from {HTTPS_IP} path=/r{i}" for i in range(6)]
        with requests.Session() as s:   # keep-alive: two requests on one forwarded connection
            s.trust_env = False
            assert s.get(urls[0], verify=ca_path).status_code == 200
            assert s.get(urls[1], verify=ca_path).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(urls[0], verify=ca_path, timeout=2)


def test_open_local_port_reports_failures(core, ns, echo_server):
    make_pod(core, ns, "notrunning", None, phase="Pending")
    with open_local_port(core, ns, "notrunning", echo_server) as lp:
        with socket.create_connection(lp, timeout=5) as c:
            assert c.recv(10) == b""      # closed: nothing to forward to
        assert lp.connections == 1 and len(lp.errors) == 1
    make_pod(core, ns, "closedport", ECHO_IP)
    closed = _closed_port(ECHO_IP)
    with open_local_port(core, ns, "closedport", closed) as lp:
        with socket.create_connection(lp, timeout=5) as c:
            assert c.recv(10) == b""
        deadline = time.monotonic() + 5
        while not lp.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "connection refused" in lp.errors[0]
