"""A real `/usr/bin/docker-registry` on a loopback address with TLS and token auth, for the client's selftests.

The token server here follows the registry's token protocol (RS256 JWT, libtrust `kid`), standing in
for the OpenShift layer's `/openshift/token` endpoint: the Basic password must be the API token.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import http.server
import json
import os
import secrets
import ssl
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from localcluster.pki import CertificateAuthority
from selftests.support import free_loopback_address

REGISTRY_BIN = "/usr/bin/docker-registry"
ROUTE_HOST = "default-route-openshift-image-registry.apps.selftest.example.test"
SERVICE = "selftest-registry"
ISSUER = "selftest-issuer"


def libtrust_kid(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def _signing_material():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token-signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    server_version = "selftest-token"

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        auth = self.headers.get("Authorization", "")
        password = None
        if auth.startswith("Basic "):
            password = base64.b64decode(auth[6:]).decode().partition(":")[2]
        if password != srv.api_token:
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad token"}]}')
            return
        q = parse_qs(urlsplit(self.path).query)
        access = []
        for scope in q.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "selftest", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        token = jwt.encode(claims, srv.signing_key, algorithm="RS256",
                           headers={"kid": libtrust_kid(srv.signing_key.public_key()), "typ": "JWT"})
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclasses.dataclass
class BareRegistry:
    host: str
    address: str          # "127.x.y.z:PORT" to connect to
    ca_file: str
    api_token: str
    root: Path            # filesystem storage root
    proc: subprocess.Popen
    token_server: http.server.ThreadingHTTPServer

    def blob_data_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self):
        self.token_server.shutdown()
        self.token_server.server_close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_bare_registry(workdir: Path, *, auth: bool = True) -> BareRegistry:
    ca = CertificateAuthority.create("selftest-ingress-ca")
    ip, port = free_loopback_address()
    cert, key = ca.issue("selftest-registry", dns_names=[ROUTE_HOST], ip_addresses=["127.0.0.1", ip])
    for name, data in (("ca.pem", ca.cert_pem), ("tls.crt", cert + ca.cert_pem), ("tls.key", key)):
        (workdir / name).write_bytes(data)
    signing_key, signing_cert = _signing_material()
    (workdir / "token-ca.pem").write_bytes(signing_cert)

    # token server on 127.0.0.1 (realm by IP; the same CA signs its certificate)
    token_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(workdir / "tls.crt", workdir / "tls.key")
    token_server.socket = ctx.wrap_socket(token_server.socket, server_side=True)
    token_server.api_token = secrets.token_urlsafe(24)
    token_server.signing_key = signing_key
    threading.Thread(target=token_server.serve_forever, daemon=True).start()
    realm = f"https://127.0.0.1:{token_server.server_address[1]}/openshift/token"

    root = workdir / "storage"
    root.mkdir()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True},
                    "cache": {}},
        "http": {"addr": f"{ip}:{port}", "secret": secrets.token_hex(16),
                 "tls": {"certificate": str(workdir / "tls.crt"), "key": str(workdir / "tls.key")}},
    }
    if auth:
        config["auth"] = {"token": {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                                    "rootcertbundle": str(workdir / "token-ca.pem")}}
    (workdir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_"))}
    log = open(workdir / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(workdir / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    reg = BareRegistry(ROUTE_HOST, f"{ip}:{port}", str(workdir / "ca.pem"), token_server.api_token,
                       root, proc, token_server)
    deadline = time.monotonic() + 10
    while True:
        try:
            requests.get(f"https://{ip}:{port}/v2/", verify=str(workdir / "ca.pem"), timeout=1)
            return reg
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                reg.stop()
                raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")
            time.sleep(0.03)
