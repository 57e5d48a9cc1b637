"""The registry pod: a real `docker-registry` process with an "OpenShift layer" in front of it.

OpenShift's registry binary is CNCF distribution plus an auth layer that turns OpenShift API tokens into
registry access. Here the real Debian `/usr/bin/docker-registry` (2.8.2) listens in plain HTTP on
`<podIP>:<internal port>` with token auth, and an aiohttp front on `<podIP>:5000` (TLS from
REGISTRY_HTTP_TLS_CERTIFICATE/KEY) serves `/healthz`, `/openshift/token` and proxies the rest.

The front does what OpenShift's registry auth does (image-registry `pkg/dockerregistry/server/auth.go`,
`token.go`): `/openshift/token` answers the caller's own API token (Basic password) after checking it
with `GET users/~`, or "anonymous" without credentials; a `/v2/` request with an API token (Bearer, or
Basic password) or the anonymous token is checked with `GET users/~` and one
`POST selfsubjectaccessreviews` per action (pull = get, push = update on `image.openshift.io`
`imagestreams/layers`) made with that token (none for anonymous); a refusal is answered 401
`WWW-Authenticate: Basic realm=openshift,error="access denied"` (a bad Basic credential:
`error="failed to decode credentials"`). Allowed requests go on to distribution with a JWT (signed by
`TokenSigner`) that grants exactly the allowed actions. ServiceAccount tokens work like user tokens.
Fault knobs (`registry.anonymousPull`, `registry.anonymousPush`, `registry.pushWithPullRole`,
`registry.pullWithoutRole`) break one rule each (localcluster/README.md).
"""
from __future__ import annotations

import asyncio
import atexit
import base64
import ctypes
import hashlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import time
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiohttp
import jwt
import yaml
from aiohttp import web
from multidict import CIMultiDict
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger("localcluster.registrypod")

REGISTRY_BINARY = "/usr/bin/docker-registry"
TOKEN_SERVICE = "image-registry.openshift-image-registry.svc:5000"
TOKEN_ISSUER = "openshift-image-registry-localcluster"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

BASIC_REALM = "openshift"     # the registry's auth.realm as the operator configures it

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade",
}


# --------------------------------------------------------------------------- process bookkeeping
# Every docker-registry process started by this Python process, killed at exit even after a crash of
# the event loop; the children also get PR_SET_PDEATHSIG so a SIGKILLed parent does not orphan them.
_LIVE_PIDS: set[int] = set()


def _kill_all_at_exit() -> None:
    for pid in list(_LIVE_PIDS):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _LIVE_PIDS.clear()


atexit.register(_kill_all_at_exit)

try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def _child_setup() -> None:  # runs in the child between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- token signing
def libtrust_kid(public_key) -> str:
    """The key id docker/libtrust computes: base32(sha256(DER SPKI)[:30]) in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


@dataclass
class TokenSigner:
    """An RSA key and its self-signed certificate; the registry trusts JWTs signed by it."""
    key: rsa.RSAPrivateKey
    cert_pem: bytes
    kid: str
    issuer: str = TOKEN_ISSUER
    service: str = TOKEN_SERVICE

    @classmethod
    def create(cls) -> "TokenSigner":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localcluster registry token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert.public_bytes(serialization.Encoding.PEM), libtrust_kid(key.public_key()))

    def sign(self, subject: str, access: list[dict], expires_in: int = 300) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + expires_in,
            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(16), "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def issued_by_me(self, token: str) -> bool:
        if token.count(".") != 2:
            return False
        try:
            return jwt.get_unverified_header(token).get("kid") == self.kid
        except jwt.PyJWTError:
            return False


# --------------------------------------------------------------------------- streaming proxy
async def _body_iter(request: web.Request):
    async for chunk in request.content.iter_chunked(256 * 1024):
        yield chunk


async def proxy_request(session: aiohttp.ClientSession, request: web.Request, url: str, headers: CIMultiDict,
                        *, ssl_ctx=None, server_hostname=None,
                        transform_headers: Callable[[aiohttp.ClientResponse, CIMultiDict], None] | None = None,
                        transform_body: Callable[[bytes, int], bytes] | None = None,
                        on_done: Callable[[aiohttp.ClientResponse], object] | None = None) -> web.StreamResponse:
    """Send `request` to `url` and stream the answer back; neither body is held in memory."""
    data = None
    if request.body_exists:
        data = _body_iter(request)
    kwargs = {}
    if ssl_ctx is not None:
        kwargs["ssl"] = ssl_ctx
    if server_hostname:
        kwargs["server_hostname"] = server_hostname
    # Nothing of aiohttp's own (Accept, Accept-Encoding, User-Agent) is added: the backend sees what
    # the client sent.
    async with session.request(request.method, url, headers=headers, data=data, allow_redirects=False,
                               skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"), **kwargs) as up:
        out_headers = CIMultiDict()
        for k, v in up.headers.items():
            if k.lower() not in HOP_BY_HOP:
                out_headers.add(k, v)
        if transform_headers is not None:
            transform_headers(up, out_headers)
        resp = web.StreamResponse(status=up.status, reason=up.reason, headers=out_headers)
        length = up.headers.get("Content-Length")
        if length is not None:
            resp.content_length = int(length)
        await resp.prepare(request)
        if request.method != "HEAD":
            offset = 0
            async for chunk in up.content.iter_chunked(256 * 1024):
                if transform_body is not None:
                    chunk = transform_body(chunk, offset)
                offset += len(chunk)
                await resp.write(chunk)
        await resp.write_eof()
        if on_done is not None:
            r = on_done(up)
            if asyncio.iscoroutine(r):
                await r
        return resp


def end_to_end_headers(request: web.Request) -> CIMultiDict:
    """The request's headers minus hop-by-hop ones, every repeated header kept in order (several
    `Accept:` lines are how skopeo and podman list the manifest types they take)."""
    hop = set(HOP_BY_HOP)
    for token in request.headers.getall("Connection", []):   # RFC 9110 7.6.1: named in Connection
        hop.update(t.strip().lower() for t in token.split(",") if t.strip())
    out = CIMultiDict()
    for k, v in request.headers.items():
        if k.lower() not in hop:
            out.add(k, v)
    return out


_V2_ROUTE = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|tags/list)$")


def forward_headers(request: web.Request, proto: str) -> CIMultiDict:
    """Headers for the registry process behind the pod's front: the client's (or the router's) own,
    faithfully. The real registry serves TLS itself and builds its URLs from `Forwarded` (RFC 7239),
    else `X-Forwarded-Proto`/`-Host`, else its own scheme and the Host: the front, which terminates TLS
    for a plain-HTTP process, only says `X-Forwarded-Proto: <its scheme>` when nobody said anything."""
    headers = end_to_end_headers(request)
    if "Forwarded" not in headers and "X-Forwarded-Proto" not in headers:
        headers["X-Forwarded-Proto"] = proto
    return headers


# --------------------------------------------------------------------------- the pod
class RegistryContainer:
    """One registry container: the docker-registry process plus its front.

    `env` is the container environment after the kubelet resolved it (paths already point at host
    directories). `faults()` returns the current fault knobs (a dict of the faults ConfigMap data).
    `pods()` (optional) returns the pod objects the kubelet knows (its informer cache); the
    `registry.emptyReplica` fault needs it to tell which replica it is.
    """

    def __init__(self, *, pod_ip: str, env: dict[str, str], workdir: Path, signer: TokenSigner,
                 api_server: str, api_ca_pem: bytes | ssl.SSLContext, port: int = 5000,
                 faults: Callable[[], dict] = dict, name: str = "registry",
                 pods: Callable[[], list[dict]] | None = None,
                 on_manifest: Callable[..., object] | None = None):
        self.pod_ip = pod_ip
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.signer = signer
        self.api_server = api_server.rstrip("/")
        self.api_ca_pem = api_ca_pem
        self.port = port
        self.faults = faults
        self.name = name
        self.pods = pods
        # on_manifest(repo, reference, digest, media_type): a manifest was pushed (the image API records it).
        self.on_manifest = on_manifest
        self.internal_port: int | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._api_session: aiohttp.ClientSession | None = None
        self.tls = bool(env.get("REGISTRY_HTTP_TLS_CERTIFICATE") and env.get("REGISTRY_HTTP_TLS_KEY"))
        self._tag_pins: dict[tuple[str, str], str] = {}   # fault registry.staleTags: (repo, tag) -> digest

    # -------------------------------------------------------------- config
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def storage_root(self) -> Path | None:
        if self.env.get("REGISTRY_STORAGE", "filesystem") != "filesystem":
            return None
        return Path(self.env.get("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY") or (self.workdir / "storage"))

    def _config(self) -> dict:
        return {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "storage")},
                "delete": {"enabled": True},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"{self.pod_ip}:{self.internal_port}", "secret": secrets.token_hex(16)},
            "auth": {"token": {
                "realm": "https://registry.invalid/openshift/token",
                "service": self.signer.service,
                "issuer": self.signer.issuer,
                "rootcertbundle": str(self.workdir / "token-signer.crt"),
            }},
            "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 1}},
        }

    def _process_env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        for k, v in self.env.items():
            if k.startswith("REGISTRY_OPENSHIFT_") or k.startswith("REGISTRY_HTTP_TLS_") \
                    or k.startswith("REGISTRY_AUTH") or k in ("REGISTRY_HTTP_ADDR", "REGISTRY_HTTP_NET") \
                    or k.startswith("OPENSHIFT_") or k == "AWS_CA_BUNDLE":
                continue
            env[k] = v
        if env.get("REGISTRY_STORAGE"):
            # REGISTRY_STORAGE replaces the whole storage section: set the file's settings again.
            env.setdefault("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            env.setdefault("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "inmemory")
        # Storage redirects stay as the operator configured them: on, unless spec.disableRedirect made it
        # set REGISTRY_STORAGE_REDIRECT_DISABLE=true (facts §12.3). S3 blob GETs then answer 307.
        creds = self.env.get("REGISTRY_STORAGE_S3_CREDENTIALSCONFIGPATH")
        if creds:  # OpenShift's registry reads this; upstream needs the AWS SDK variable.
            env["AWS_SHARED_CREDENTIALS_FILE"] = creds
        bundle = self._ca_bundle()
        if bundle:
            env["SSL_CERT_FILE"] = bundle
        return env

    def _ca_bundle(self) -> str | None:
        """`update-ca-trust`: system CAs plus the anchors the pod mounts (CA_ANCHOR_DIRS)."""
        dirs = [d for d in self.env.get("LOCALCLUSTER_CA_ANCHOR_DIRS", "").split(os.pathsep) if d]
        if not dirs:
            return None
        parts = []
        try:
            parts.append(Path(SYSTEM_CA_BUNDLE).read_bytes())
        except OSError:
            pass
        for d in dirs:
            for f in sorted(Path(d).rglob("*")) if Path(d).is_dir() else []:
                if f.is_file():
                    data = f.read_bytes()
                    if b"BEGIN CERTIFICATE" in data:
                        parts.append(data if data.endswith(b"\n") else data + b"\n")
        out = self.workdir / "ca-bundle.pem"
        out.write_bytes(b"".join(parts))
        return str(out)

    # -------------------------------------------------------------- life cycle
    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "token-signer.crt").write_bytes(self.signer.cert_pem)
        if self.internal_port is None:
            self.internal_port = free_port(self.pod_ip)
        cfg = self.workdir / "config.yml"
        cfg.write_text(yaml.safe_dump(self._config()))
        logf = open(self.workdir / "registry.log", "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                REGISTRY_BINARY, "serve", str(cfg), env=self._process_env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=logf, stderr=logf, start_new_session=True, preexec_fn=_child_setup)
        finally:
            logf.close()
        _LIVE_PIDS.add(self.proc.pid)
        if self._runner is None:
            await self._start_front()

    async def _start_front(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, trust_env=False,
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        if isinstance(self.api_ca_pem, ssl.SSLContext):
            api_ctx = self.api_ca_pem
        else:
            api_ctx = ssl.create_default_context(cadata=self.api_ca_pem.decode())
        self._api_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=api_ctx), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=15),
            headers={"X-Localcluster-Component": "registry"})   # exempt from the API server's chaos
        app = web.Application(client_max_size=1 << 40)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/openshift/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        ssl_ctx = None
        if self.tls:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(self.env["REGISTRY_HTTP_TLS_CERTIFICATE"], self.env["REGISTRY_HTTP_TLS_KEY"])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.pod_ip, self.port, ssl_context=ssl_ctx, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._stop_front()
            raise

    def exited(self) -> int | None:
        """The exit code once the registry process has ended, else None."""
        if self.proc is None:
            return None
        return self.proc.returncode

    async def restart_process(self) -> None:
        await self._stop_process()
        self.internal_port = free_port(self.pod_ip)
        await self.start()

    async def _stop_process(self, grace: float = 1.5) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await asyncio.shield(proc.wait())
        else:
            try:  # the group may still hold children
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _LIVE_PIDS.discard(proc.pid)

    async def _stop_front(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for attr in ("_session", "_api_session"):
            s = getattr(self, attr)
            if s is not None:
                setattr(self, attr, None)
                await s.close()

    async def stop(self) -> None:
        try:
            await self._stop_process()
        finally:
            await self._stop_front()

    def kill_now(self) -> None:
        """Synchronous last-resort kill (used when the event loop is going away)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            _LIVE_PIDS.discard(self.proc.pid)

    # -------------------------------------------------------------- front handlers
    @property
    def upstream(self) -> str:
        return f"http://{self.pod_ip}:{self.internal_port}"

    async def registry_status(self) -> int | None:
        """The status the registry gives `GET /v2/` (401 or 200 when healthy, 503 on broken storage)."""
        if self.proc is None or self.proc.returncode is not None or self._session is None:
            return None
        try:
            async with self._session.get(self.upstream + "/v2/", timeout=aiohttp.ClientTimeout(total=3)) as r:
                await r.read()
                return r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return None

    async def _healthz(self, request: web.Request) -> web.Response:
        status = await self.registry_status()
        if status in (200, 401):
            return web.Response(status=200, text="ok")
        return web.Response(status=503, text=f"registry not healthy (upstream status {status})")

    async def _api_user(self, token: str) -> dict | None:
        """The User the token belongs to, or None when the API server refuses the token."""
        async with self._api_session.get(self.api_server + "/apis/user.openshift.io/v1/users/~",
                                         headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status in (403, 404):
                # No openshift-apiserver (the real control plane, localcluster/realcp): kube-apiserver
                # answers 404, or 403 to a user RBAC gives nothing there (a ServiceAccount; OpenShift's
                # system:basic-user lets everyone read users/~). Ask kube-apiserver who the token is
                # (SelfSubjectReview), as openshift-apiserver answers users/~.
                return await self._api_self_subject(token)
            if r.status != 200:
                return None
            return await r.json()

    async def _api_self_subject(self, token: str) -> dict | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        async with self._api_session.post(self.api_server + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                          json=body, headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status not in (200, 201):
                return None
            info = ((await r.json()).get("status") or {}).get("userInfo") or {}
            return {"kind": "User", "apiVersion": "user.openshift.io/v1",
                    "metadata": {"name": info.get("username", ""), "uid": info.get("uid", "")},
                    "groups": info.get("groups") or []}

    async def _allowed(self, token: str, namespace: str, name: str, verb: str,
                       resource: str = "imagestreams", subresource: str = "layers") -> bool:
        attrs = {"namespace": namespace, "verb": verb, "group": "image.openshift.io", "resource": resource,
                 "subresource": subresource, "name": name}
        if resource == "images":
            attrs = {"verb": verb, "group": "image.openshift.io", "resource": "images"}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        async with self._api_session.post(
                self.api_server + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body,
                headers={"Authorization": f"Bearer {token}"} if token else {}) as r:
            if r.status not in (200, 201):
                return False
            return bool((await r.json()).get("status", {}).get("allowed"))

    def _fault(self, name: str) -> bool:
        return str((self.faults() or {}).get(name, "")).lower() == "true"

    async def _action_allowed(self, token: str, ns: str, name: str, action: str, pushing: bool) -> bool:
        """One action for a repository, as the registry decides it (plus the fault knobs)."""
        if action == "pull":
            if not token and self._fault("registry.anonymousPull"):
                return True
            if not token and pushing and self._fault("registry.anonymousPush"):
                return True
            if token and self._fault("registry.pullWithoutRole"):
                return True
            return await self._allowed(token, ns, name, "get")
        if action == "push":
            if not token and self._fault("registry.anonymousPush"):
                return True
            if token and self._fault("registry.pushWithPullRole"):
                return await self._allowed(token, ns, name, "get")
            return await self._allowed(token, ns, name, "update")
        if action in ("delete", "*"):
            return await self._allowed(token, ns, name, "delete", resource="images")
        return False

    async def _grant(self, token: str, scopes: list[str], denied: list | None = None) -> list[dict]:
        """Access entries for the scopes the token's user may have (each action checked by SSAR);
        refused actions are appended to `denied` as (scope, action)."""
        access = []
        pushing = any(s.endswith(",push") or s.endswith(":push") for s in scopes)
        for scope in scopes:
            try:
                typ, rest = scope.split(":", 1)
                repo, actions = rest.rsplit(":", 1)
            except ValueError:
                continue
            if typ != "repository" or "/" not in repo:
                continue
            ns, name = repo.split("/", 1)
            granted = []
            for action in [a for a in actions.split(",") if a]:
                if await self._action_allowed(token, ns, name, action, pushing):
                    granted.append(action)
                elif denied is not None:
                    denied.append((scope, action))
            if granted:
                access.append({"type": "repository", "name": repo, "actions": granted})
        return access

    @staticmethod
    def _credentials(auth: str) -> tuple[str, str] | None:
        """(kind, api token) from an Authorization header; kind 'basic' or 'bearer'."""
        if not auth:
            return None
        kind, _, value = auth.partition(" ")
        kind = kind.lower()
        if kind == "basic":
            try:
                user_pass = base64.b64decode(value.strip()).decode()
            except (ValueError, UnicodeDecodeError):
                raise web.HTTPUnauthorized(text="failed to decode credentials")
            _, _, password = user_pass.partition(":")
            return "basic", password
        if kind == "bearer":
            return "bearer", value.strip()
        return None

    async def _token(self, request: web.Request) -> web.Response:
        """The registry's token endpoint: no credentials -> "anonymous"; Basic -> the password itself
        once `users/~` accepts it as an API token; anything else 401."""
        if not request.headers.get("Authorization"):
            return web.json_response({"token": "anonymous", "access_token": "anonymous"})
        try:
            creds = self._credentials(request.headers.get("Authorization", ""))
        except web.HTTPUnauthorized:
            creds = None
        if creds is None or creds[0] != "basic" or not creds[1]:
            return web.json_response(None, status=401)
        token = creds[1]
        if await self._api_user(token) is None:
            return web.json_response(None, status=401)
        return web.json_response({"token": token, "access_token": token})

    @staticmethod
    def _denied(error: str, details=None) -> web.Response:
        """distribution's answer to an auth challenge error: 401, Basic realm=openshift,error=..."""
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                            "detail": details or []}]}
        return web.json_response(body, status=401, headers={
            "WWW-Authenticate": f'Basic realm={BASIC_REALM},error="{error}"',
            "Docker-Distribution-Api-Version": "registry/2.0"})

    @staticmethod
    def _scopes_for(request: web.Request) -> list[str]:
        """The scope a /v2 request needs, as distribution 2.8 computes it."""
        # distribution's routes, matched from the end: a repository may itself be named "blobs" or "tags"
        m = _V2_ROUTE.match(request.path)
        if m is None:
            return []
        repo = m.group("name")
        m = request.method
        if m in ("GET", "HEAD"):
            actions = "pull"
        elif m == "DELETE":
            actions = "delete"
        else:
            actions = "pull,push"
        scopes = [f"repository:{repo}:{actions}"]
        if request.query.get("mount") and request.query.get("from"):
            scopes.append(f"repository:{request.query['from']}:pull")
        return scopes

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        headers = forward_headers(request, self.scheme)
        try:
            creds = self._credentials(request.headers.get("Authorization", ""))
        except web.HTTPUnauthorized:
            return self._denied("failed to decode credentials")
        if creds is not None:       # no (or an unknown) Authorization: distribution's Bearer challenge
            kind, token = creds
            if kind == "basic" and not token:
                return self._denied("failed to decode credentials")
            if kind == "bearer" and self.signer.issued_by_me(token):
                pass  # a registry JWT: the registry checks it
            else:
                token = "" if token == "anonymous" else token
                subject = "anonymous"
                if token:
                    user = await self._api_user(token)
                    if user is None:
                        return self._denied("access denied")
                    subject = user.get("metadata", {}).get("name", "unknown")
                scopes = self._scopes_for(request)
                denied: list = []
                access = await self._grant(token, scopes[:1], denied)
                if denied:
                    return self._denied("access denied", [
                        {"Type": "repository", "Name": sc.split(":")[1], "Action": a} for sc, a in denied])
                access += await self._grant(token, scopes[1:])   # a cross-mount source: optional
                headers["Authorization"] = f"Bearer {self.signer.sign(subject, access)}"
        host = request.host
        faults = self.faults() or {}

        def fix_headers(up: aiohttp.ClientResponse, out: CIMultiDict) -> None:
            values = out.popall("WWW-Authenticate", [])
            for v in values:
                out.add("WWW-Authenticate", v.replace("https://registry.invalid/openshift/token",
                                                      f"{self.scheme}://{host}/openshift/token"))

        transform_body = None
        is_blob_get = request.method == "GET" and "/blobs/sha256:" in request.path
        if is_blob_get and str(faults.get("registry.corruptBlobs", "")).lower() == "true":
            def transform_body(chunk: bytes, offset: int) -> bytes:
                if offset == 0 and chunk:
                    return bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                return chunk

        on_done = None
        if request.method == "PUT" and "/manifests/" in request.path:
            repo = request.path[len("/v2/"):request.path.index("/manifests/")]
            ref = request.path.rsplit("/manifests/", 1)[1]
            drop = str(faults.get("registry.dropImages", "")).lower() == "true"

            async def on_done(up: aiohttp.ClientResponse) -> None:
                if up.status != 201:
                    return
                if drop:
                    self.drop_repository(repo)
                if self.on_manifest is not None:
                    try:
                        await self.on_manifest(repo, ref, up.headers.get("Docker-Content-Digest"),
                                               request.headers.get("Content-Type"))
                    except Exception as e:  # noqa: BLE001 - the push itself succeeded
                        log.warning("recording the image of %s:%s failed: %s", repo, ref, e)

        upstream_path = request.rel_url.raw_path_qs
        if "/manifests/" in request.path and str(faults.get("registry.staleTags", "")).lower() == "true":
            # Fault (issue 9): a tag keeps pointing at the first manifest pushed to it.
            repo = request.path[len("/v2/"):request.path.index("/manifests/")]
            ref = request.path.rsplit("/manifests/", 1)[1]
            if request.method in ("GET", "HEAD") and (repo, ref) in self._tag_pins:
                upstream_path = f"/v2/{repo}/manifests/{self._tag_pins[(repo, ref)]}"
            elif request.method == "PUT" and ":" not in ref:
                previous = on_done

                def on_done(up: aiohttp.ClientResponse, _previous=previous) -> object:
                    digest = up.headers.get("Docker-Content-Digest")
                    if up.status == 201 and digest:
                        self._tag_pins.setdefault((repo, ref), digest)
                    return _previous(up) if _previous is not None else None

        if request.method in ("GET", "HEAD") and str(faults.get("registry.emptyReplica", "")).lower() == "true" \
                and self.is_first_ready_replica():
            empty = await self._empty_replica_answer(request, headers)
            if empty is not None:
                return empty

        try:
            return await proxy_request(self._session, request, self.upstream + upstream_path,
                                       headers, transform_headers=fix_headers, transform_body=transform_body,
                                       on_done=on_done)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            return web.json_response(
                {"errors": [{"code": "UNAVAILABLE", "message": f"registry unavailable: {e}"}]}, status=503)

    # -------------------------------------------------------------- fault: registry.emptyReplica
    def is_first_ready_replica(self) -> bool:
        """Whether this pod's name sorts first among the ready registry pods of its namespace."""
        if self.pods is None:
            log.warning("fault registry.emptyReplica: the kubelet gave this container no pods() view")
            return False
        from localcluster.settings import REGISTRY_IMAGE
        pods = [p for p in self.pods() or () if not (p.get("metadata") or {}).get("deletionTimestamp")]
        me = next((p for p in pods if (p.get("status") or {}).get("podIP") == self.pod_ip), None)
        if me is None:
            return False
        ns = me["metadata"].get("namespace")

        def ready_registry(p: dict) -> bool:
            st = p.get("status") or {}
            return p["metadata"].get("namespace") == ns and st.get("phase") == "Running" \
                and any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or ()) \
                and any(c.get("image") == REGISTRY_IMAGE for c in (p.get("spec") or {}).get("containers") or ())
        ready = sorted((p for p in pods if ready_registry(p)), key=lambda p: p["metadata"]["name"])
        return bool(ready) and ready[0] is me

    async def _empty_replica_answer(self, request: web.Request, headers: dict) -> web.Response | None:
        """404 for a manifest or blob GET/HEAD the registry would have served (auth errors pass)."""
        parts = request.path.split("/")
        kind = next((p for i, p in enumerate(parts) if i >= 3 and p in ("manifests", "blobs")), None)
        if kind is None or parts.index(kind) != len(parts) - 2 or parts[-1] == "uploads":
            return None
        i = parts.index(kind)
        repo, ref = "/".join(parts[2:i]), parts[-1]
        try:
            async with self._session.head(self.upstream + request.rel_url.raw_path_qs, headers=headers,
                                          allow_redirects=False) as up:
                if up.status >= 300:
                    return None   # 401, 404...: the real answer is as good
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
            return None
        if kind == "manifests":
            detail = {"Name": repo, "Revision": ref} if ref.startswith("sha256:") else {"Name": repo, "Tag": ref}
            body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": detail}]}
        else:
            body = {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": ref}]}
        log.info("fault registry.emptyReplica: %s %s answered 404", request.method, request.path)
        if request.method == "HEAD":
            return web.Response(status=404, headers={"Content-Type": "application/json; charset=utf-8",
                                                     "Docker-Distribution-Api-Version": "registry/2.0"})
        return web.json_response(body, status=404, headers={"Docker-Distribution-Api-Version": "registry/2.0"})

    def drop_repository(self, repo: str) -> None:
        root = self.storage_root()
        if root is None:
            return
        target = root / "docker" / "registry" / "v2" / "repositories" / repo
        shutil.rmtree(target, ignore_errors=True)
        log.info("fault registry.dropImages: removed %s", target)
