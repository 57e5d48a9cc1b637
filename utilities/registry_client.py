"""A small OCI distribution client on `requests`, verifying every digest it sees.

- Token flow: GET /v2/ -> 401 `Bearer realm=...` -> GET realm with Basic `user:<api token>` and
  `scope=repository:<name>:pull,push` -> token, then `Authorization: Bearer <token>`.
- Blob push: POST /v2/<name>/blobs/uploads/ then PUT <Location>&digest=<d> with the body streamed.
- Manifest push: PUT with the OCI media type.
- Pull: the manifest and every blob; the registry's Docker-Content-Digest headers and the sha256 of
  every byte received are compared with the expected digests (and the layers' diff_ids with the config).
- Route hosts that do not resolve: `connect_to="IP:PORT"` makes a RouteAdapter connect there while
  sending SNI and Host = the route host and checking the certificate against that host name.

The Session never reads the environment (trust_env=False: these machines export REQUESTS_CA_BUNDLE),
and every request passes `verify=` explicitly.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import re
import zlib
from typing import Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from utilities.images import OCI_MANIFEST, Image, sha256_digest

DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST_V2])
CHUNK = 256 * 1024


class RegistryError(AssertionError):
    """The registry answered something other than what the distribution spec says it must."""

    def __init__(self, message: str, status: int | None = None, codes: Iterable[str] = ()):
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


class DigestMismatch(RegistryError):
    """Bytes or headers that do not match their digest."""


class ManifestUnknown(RegistryError):
    """The registry does not know the manifest (404 MANIFEST_UNKNOWN)."""


class AccessDenied(RegistryError):
    """The registry refused the identity: 403, or OpenShift's 401 `Basic realm=openshift` challenge
    (image-registry auth.go: access denied, or credentials it cannot decode)."""


class RouteUnreachable(RegistryError):
    """No connection to a route host at the address tried (one line: host, address, why, what to pass)."""


def _connect_error(e: Exception) -> str:
    text = str(e)
    for marker in ("Connection refused", "timed out", "Name or service not known", "No route to host",
                   "Network is unreachable", "Temporary failure in name resolution", "Connection reset"):
        if marker.lower() in text.lower():
            return marker
    return text.splitlines()[0][:160] if text else e.__class__.__name__


class RouteAdapter(HTTPAdapter):
    """Connects to `connect_to` ("IP:PORT") for URLs of `host`, with SNI, Host header and certificate
    check all for `host`: a route host that DNS does not know, without editing /etc/hosts. A refused or
    failed connection raises RouteUnreachable naming the host, the address tried and why it was tried
    (`reason`), instead of requests' ConnectionError."""

    def __init__(self, host: str, connect_to: str | None, reason: str | None = None, **kwargs):
        self.route_host = host
        self.connect_to = connect_to
        self.reason = reason
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):
        pool_kwargs["server_hostname"] = self.route_host
        pool_kwargs["assert_hostname"] = self.route_host
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        if parts.hostname == self.route_host:
            host_header = parts.netloc.rsplit("@", 1)[-1]
            if host_header.endswith(":443"):
                host_header = host_header[:-4]
            if self.connect_to:
                request.url = urlunsplit(parts._replace(netloc=self.connect_to))
                request.headers["Host"] = host_header
        try:
            return super().send(request, **kwargs)
        except requests.exceptions.ConnectionError as e:
            if isinstance(e, requests.exceptions.SSLError) or parts.hostname != self.route_host:
                raise
            __tracebackhide__ = True    # pytest: the one line is the story
            where = self.connect_to or f"{self.route_host}:{parts.port or 443}"
            why = self.reason or ("given" if self.connect_to else "resolved by DNS")
            raise RouteUnreachable(f"cannot reach route host {self.route_host} at {where} ({why}): "
                                   f"{_connect_error(e)}; pass --ingress-address=HOST[:PORT], the address of "
                                   "the router (or the load balancer in front of it) that serves *.apps") from None


def _error_text(resp: requests.Response) -> tuple[str, list[str]]:
    try:
        errors = resp.json().get("errors") or []
        codes = [e.get("code", "") for e in errors]
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        return text or resp.text[:500], codes
    except ValueError:
        return resp.text[:500], []


def _parse_challenge(header: str) -> tuple[str, dict]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def _is_denial(resp: requests.Response) -> bool:
    """403, or a 401 whose challenge is Basic (OpenShift's registry: access denied), not a Bearer one."""
    if resp.status_code == 403:
        return True
    return resp.status_code == 401 and _parse_challenge(resp.headers.get("WWW-Authenticate", ""))[0] == "basic"


@dataclasses.dataclass
class PulledImage:
    manifest_bytes: bytes
    manifest_digest: str
    blobs: dict[str, bytes]

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)


class RegistryClient:
    """Client for one registry host, e.g. the `default-route` host of the image registry."""

    def __init__(self, host: str, *, ca_file: str, token: str | None = None, username: str = "unused",
                 connect_to: str | None = None, timeout: float = 60.0, connect_reason: str | None = None):
        self.host = host
        self.base = f"https://{host}"
        self.ca_file = ca_file
        self.api_token = token
        self.username = username
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["User-Agent"] = "registry-conformance/1"
        self.session.mount(f"https://{host.split(':')[0]}",
                           RouteAdapter(host.split(":")[0], connect_to, reason=connect_reason))
        self._bearer: dict[str, str] = {}   # scope -> token

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- HTTP plumbing -------------------------------------------------------------------------
    def _request(self, method: str, url: str, repo: str | None, **kwargs) -> requests.Response:
        url = urljoin(self.base + "/", url)
        kwargs.setdefault("timeout", self.timeout)
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("allow_redirects", False)
        for attempt in (1, 2):
            headers = dict(kwargs.pop("headers", None) or {})
            scope = self._scope(repo)
            if scope in self._bearer and self._bearer[scope]:
                headers["Authorization"] = f"Bearer {self._bearer[scope]}"
            body = kwargs.get("data")
            if attempt == 2 and hasattr(body, "seek"):
                body.seek(0)
            resp = self.session.request(method, url, headers=headers, **kwargs)
            kwargs["headers"] = headers
            if resp.status_code == 401 and attempt == 1 and "WWW-Authenticate" in resp.headers \
                    and not _is_denial(resp):
                self._login(resp.headers["WWW-Authenticate"], scope)
                headers.pop("Authorization", None)
                continue
            return resp
        return resp

    @staticmethod
    def _scope(repo: str | None) -> str:
        return f"repository:{repo}:pull,push" if repo else ""

    def _login(self, challenge: str, scope: str) -> None:
        scheme, params = _parse_challenge(challenge)
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(f"unsupported auth challenge: {challenge}", 401)
        query = {"service": params["service"]} if params.get("service") else {}
        if scope:
            query["scope"] = scope
        auth = (self.username, self.api_token) if self.api_token else None
        resp = self.session.get(params["realm"], params=query, auth=auth, verify=self.ca_file,
                                timeout=self.timeout)
        if resp.status_code != 200:
            text, codes = _error_text(resp)
            raise RegistryError(f"token request to {params['realm']} failed: HTTP {resp.status_code}: {text}",
                                resp.status_code, codes)
        body = resp.json()
        self._bearer[scope] = body.get("token") or body.get("access_token") or ""

    def _expect(self, resp: requests.Response, statuses: tuple[int, ...], what: str) -> requests.Response:
        if resp.status_code not in statuses and _is_denial(resp):
            text, codes = _error_text(resp)
            challenge = resp.headers.get("WWW-Authenticate")
            raise AccessDenied(f"{what}: access denied (HTTP {resp.status_code}"
                               + (f", WWW-Authenticate: {challenge}" if challenge else "") + f"): {text}",
                               resp.status_code, codes)
        if resp.status_code not in statuses:
            text, codes = _error_text(resp)
            cls = ManifestUnknown if (resp.status_code == 404 and "MANIFEST_UNKNOWN" in codes) else RegistryError
            raise cls(f"{what}: HTTP {resp.status_code} (expected {statuses}): {text}", resp.status_code, codes)
        return resp

    # --- API -----------------------------------------------------------------------------------
    def ping(self, repo: str | None = None) -> int:
        """GET /v2/, authenticating for `repo` if asked; returns the final status."""
        return self._request("GET", "/v2/", repo).status_code

    def push_blob(self, repo: str, data, digest: str, size: int | None = None) -> str:
        """Upload a blob (bytes or a binary file object, streamed) with POST then PUT ?digest=."""
        resp = self._expect(self._request("POST", f"/v2/{repo}/blobs/uploads/", repo), (202,),
                            f"start upload to {repo}")
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"upload to {repo}: 202 without Location", 202)
        location = urljoin(self.base + "/", location)
        sep = "&" if "?" in location else "?"
        body = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        if size is None:
            size = len(data) if isinstance(data, (bytes, bytearray)) else None
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        resp = self._expect(
            self._request("PUT", f"{location}{sep}digest={digest}", repo, data=body, headers=headers),
            (201,), f"finish upload of {digest} to {repo}")
        got = resp.headers.get("Docker-Content-Digest")
        if got != digest:
            raise DigestMismatch(f"blob {digest} pushed to {repo}: registry answered Docker-Content-Digest {got}")
        return got

    def push_manifest(self, repo: str, reference: str, manifest_bytes: bytes,
                      media_type: str = OCI_MANIFEST) -> str:
        expected = sha256_digest(manifest_bytes)
        resp = self._expect(
            self._request("PUT", f"/v2/{repo}/manifests/{reference}", repo, data=manifest_bytes,
                          headers={"Content-Type": media_type}),
            (201,), f"push manifest {repo}:{reference}")
        got = resp.headers.get("Docker-Content-Digest")
        if got != expected:
            raise DigestMismatch(f"manifest {repo}:{reference}: registry answered Docker-Content-Digest {got}, "
                                 f"the manifest bytes are {expected}")
        return got

    def push_image(self, repo: str, tag: str, image: Image) -> str:
        """Push every blob, then the manifest; returns the manifest digest (verified)."""
        for blob in image.blobs:
            self.push_blob(repo, blob.data, blob.digest, blob.size)
        return self.push_manifest(repo, tag, image.manifest_bytes)

    def get_manifest(self, repo: str, reference: str, expected_digest: str | None = None) -> tuple[bytes, str]:
        resp = self._expect(
            self._request("GET", f"/v2/{repo}/manifests/{reference}", repo,
                          headers={"Accept": ACCEPT_MANIFESTS}),
            (200,), f"pull manifest {repo}:{reference}")
        body = resp.content
        actual = sha256_digest(body)
        header = resp.headers.get("Docker-Content-Digest")
        if header and header != actual:
            raise DigestMismatch(f"manifest {repo}:{reference}: Docker-Content-Digest {header} but the bytes "
                                 f"received are {actual}")
        if reference.startswith("sha256:") and actual != reference:
            raise DigestMismatch(f"manifest {repo}@{reference}: the bytes received are {actual}")
        if expected_digest and actual != expected_digest:
            raise DigestMismatch(f"manifest {repo}:{reference}: expected {expected_digest}, received {actual}")
        return body, actual

    def get_blob(self, repo: str, digest: str, size: int | None = None) -> bytes:
        url = f"/v2/{repo}/blobs/{digest}"
        resp = self._request("GET", url, repo, stream=True)
        hops = 0
        while resp.status_code in (301, 302, 303, 307, 308) and hops < 3:
            target = urljoin(self.base + "/", resp.headers["Location"])
            resp.close()
            resp = self.session.get(target, stream=True, verify=self.ca_file, timeout=self.timeout)
            hops += 1
        self._expect(resp, (200,), f"pull blob {repo}@{digest}")
        h = hashlib.sha256()
        buf = bytearray()
        try:
            for chunk in resp.iter_content(CHUNK):
                h.update(chunk)
                buf += chunk
        finally:
            resp.close()
        actual = "sha256:" + h.hexdigest()
        header = resp.headers.get("Docker-Content-Digest")
        if actual != digest:
            raise DigestMismatch(f"blob {repo}@{digest}: the {len(buf)} bytes received hash to {actual}")
        if header and header != digest:
            raise DigestMismatch(f"blob {repo}@{digest}: Docker-Content-Digest {header}")
        if size is not None and len(buf) != size:
            raise DigestMismatch(f"blob {repo}@{digest}: {len(buf)} bytes received, the manifest says {size}")
        return bytes(buf)

    def pull_image(self, repo: str, reference: str, expected_digest: str | None = None) -> PulledImage:
        """Pull the manifest and every blob, verifying every digest, size and diff_id."""
        body, digest = self.get_manifest(repo, reference, expected_digest)
        manifest = json.loads(body)
        blobs: dict[str, bytes] = {}
        descs = [manifest["config"], *manifest.get("layers", [])]
        for desc in descs:
            blobs[desc["digest"]] = self.get_blob(repo, desc["digest"], desc.get("size"))
        config = json.loads(blobs[manifest["config"]["digest"]])
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest.get("layers", [])
        if len(diff_ids) != len(layers):
            raise DigestMismatch(f"{repo}:{reference}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        for desc, diff_id in zip(layers, diff_ids):
            data = blobs[desc["digest"]]
            try:
                raw = gzip.decompress(data) if "gzip" in desc.get("mediaType", "") else data
            except (OSError, EOFError, zlib.error) as e:
                raise DigestMismatch(f"layer {desc['digest']} of {repo}:{reference} is not valid gzip: {e}")
            if sha256_digest(raw) != diff_id:
                raise DigestMismatch(f"layer {desc['digest']} of {repo}:{reference}: uncompressed sha256 "
                                     f"{sha256_digest(raw)} differs from the config's diff_id {diff_id}")
        return PulledImage(body, digest, blobs)

    def verify_same(self, pulled: PulledImage, image: Image) -> None:
        """The pulled image is byte for byte the pushed one."""
        if pulled.manifest_digest != image.manifest_digest:
            raise DigestMismatch(f"pulled manifest {pulled.manifest_digest} != pushed {image.manifest_digest}")
        for blob in image.blobs:
            if pulled.blobs.get(blob.digest) != blob.data:
                raise DigestMismatch(f"pulled blob {blob.digest} differs from the pushed bytes")
