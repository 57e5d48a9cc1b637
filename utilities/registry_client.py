"""A small OCI distribution client on `requests`, verifying every digest it sees, in constant memory.

- Token flow: GET /v2/ -> 401 `Bearer realm=...` -> GET realm with Basic `user:<api token>` and
  `scope=repository:<name>:pull,push` -> token, then `Authorization: Bearer <token>`.
- Blob push: POST /v2/<name>/blobs/uploads/ then PUT <Location>&digest=<d> with the body streamed from
  bytes, a file, a path or an iterator of chunks (Content-Length when the size is known), its sha256
  computed as it is sent; with no digest given, PATCH the stream (hashing it) and PUT ?digest= after.
  Cross-repository mounts: POST ?mount=<d>&from=<repo>.
- Manifest push: PUT with the manifest's own media type (OCI or Docker v2 schema 2).
- Pull: the manifest and every blob, streamed to files (or to memory for small images); the registry's
  Docker-Content-Digest headers and the sha256 of every byte received are compared with the expected
  digests, and each layer's diff_id is computed while decompressing as it arrives.
- Redirects (storage redirects: an S3 backend answers blob GETs with 307 to a presigned URL on the S3
  endpoint) are followed without the registry's Authorization, trusting `redirect_verify` (the S3
  endpoint's CA; default: `ca_file`), connecting through `connect_to_for(host)` when the host does
  not resolve (route hosts -> the ingress address).
- Route hosts that do not resolve: `connect_to="IP:PORT"` makes a RouteAdapter connect there while
  sending SNI and Host = the route host and checking the certificate against that host name.

The Session never reads the environment (trust_env=False: these machines export REQUESTS_CA_BUNDLE),
and every request passes `verify=` explicitly.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from utilities.images import DOCKER_MANIFEST, OCI_MANIFEST, Image, LayerVerifier, sha256_digest

DOCKER_MANIFEST_V2 = DOCKER_MANIFEST
ACCEPT_MANIFESTS = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST_V2])
CHUNK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)
MAX_MANIFEST = 4 << 20       # distribution refuses larger manifests; never buffer more than this


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
        body = resp.json()
        errors = [e for e in (body.get("errors") or []) if isinstance(e, dict)] if isinstance(body, dict) else []
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
    """A pulled image. `blobs` maps digest -> bytes (pulled to memory) or -> Path (pulled to a directory)."""
    manifest_bytes: bytes
    manifest_digest: str
    blobs: dict[str, bytes | Path]
    diff_ids: tuple[str, ...] = ()

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)


class _Body:
    """A request body streamed from `source` (bytes, a binary file object, a path or an iterator of
    chunks), hashed as requests reads it. With `size` known it has a length (Content-Length, no chunked
    encoding); a seekable source can be sent again (after a 401)."""

    def __init__(self, source, size: int | None = None, chunk_size: int = CHUNK):
        self.source = source
        self.chunk_size = chunk_size
        self.sha = hashlib.sha256()
        self.sent = 0
        self._start = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            size = len(source)
        elif isinstance(source, (str, os.PathLike)):
            size = os.path.getsize(source) if size is None else size
        elif hasattr(source, "read"):
            try:
                self._start = source.tell()
                if size is None:
                    size = os.fstat(source.fileno()).st_size - self._start
            except (OSError, AttributeError, io.UnsupportedOperation, ValueError):
                if size is None and isinstance(source, io.BytesIO):
                    size = len(source.getbuffer()) - source.tell()
        self.size = size
        self._used = False

    def __len__(self) -> int:     # requests: Content-Length from len()
        return self.size

    def __bool__(self) -> bool:
        return True

    def rewindable(self) -> bool:
        return not self._used or isinstance(self.source, (bytes, bytearray, memoryview, str, os.PathLike)) \
            or self._start is not None

    def _chunks(self) -> Iterator[bytes]:
        src = self.source
        if isinstance(src, (bytes, bytearray, memoryview)):
            view = memoryview(src)
            for i in range(0, len(view), self.chunk_size):
                yield bytes(view[i:i + self.chunk_size])
        elif isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as f:
                while chunk := f.read(self.chunk_size):
                    yield chunk
        elif hasattr(src, "read"):
            if self._start is not None:
                src.seek(self._start)
            while chunk := src.read(self.chunk_size):
                yield chunk
        else:
            yield from src

    def __iter__(self) -> Iterator[bytes]:
        if self._used and not self.rewindable():
            raise RegistryError("a one-shot iterator cannot be sent twice")
        self.sha = hashlib.sha256()
        self.sent = 0
        chunks = self._chunks()
        self._used = True
        for chunk in chunks:
            if chunk:
                self.sha.update(chunk)
                self.sent += len(chunk)
                yield chunk

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


class _Sink:
    """Where pulled bytes go: a path, a binary file object, a callable, or memory (None)."""

    def __init__(self, dest):
        self.dest = dest
        self._f = None
        self._buf = bytearray() if dest is None else None

    def __enter__(self):
        if isinstance(self.dest, (str, os.PathLike)):
            self._f = open(self.dest, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        if self._buf is not None:
            self._buf += chunk
        elif self._f is not None:
            self._f.write(chunk)
        elif callable(self.dest):
            self.dest(chunk)
        else:
            self.dest.write(chunk)

    def __exit__(self, exc_type, *_):
        if self._f is not None:
            self._f.close()
            if exc_type is not None:
                try:
                    os.unlink(self.dest)
                except OSError:
                    pass

    def value(self):
        return bytes(self._buf) if self._buf is not None else self.dest


class RegistryClient:
    """Client for one registry host, e.g. the `default-route` host of the image registry."""

    def __init__(self, host: str, *, ca_file: str, token: str | None = None, username: str = "unused",
                 connect_to: str | None = None, timeout: float = 60.0, connect_reason: str | None = None,
                 redirect_verify: str | bool | None = None,
                 connect_to_for: Callable[[str], str | None] | None = None, chunk_size: int = CHUNK):
        self.host = host
        self.base = f"https://{host}"
        self.ca_file = ca_file
        self.api_token = token
        self.username = username
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.redirect_verify = ca_file if redirect_verify is None else redirect_verify
        self.connect_to_for = connect_to_for
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["User-Agent"] = "registry-conformance/1"
        self.session.mount(f"https://{host.split(':')[0]}",
                           RouteAdapter(host.split(":")[0], connect_to, reason=connect_reason))
        # Redirect targets (another host: S3) get a session of their own: no registry credentials, and
        # the redirect's trust, not the registry's.
        self.redirect_session = requests.Session()
        self.redirect_session.trust_env = False
        self.redirect_session.headers["User-Agent"] = "registry-conformance/1"
        self._redirect_mounted: set[str] = set()
        self._bearer: dict[str, str] = {}   # scope -> token
        self.redirects_followed = 0

    def __repr__(self) -> str:
        who = "with an API token" if self.api_token else "anonymous"
        return f"RegistryClient({self.host!r}, {who})"          # never the token itself

    def close(self):
        self.session.close()
        self.redirect_session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- HTTP plumbing -------------------------------------------------------------------------
    def _request(self, method: str, url: str, repo: str | None, *, also: Iterable[str] = (),
                 **kwargs) -> requests.Response:
        """`also`: further scopes the request needs (a mount's `repository:<from>:pull`)."""
        url = urljoin(self.base + "/", url)
        kwargs.setdefault("timeout", self.timeout)
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("allow_redirects", False)
        for attempt in (1, 2):
            headers = dict(kwargs.pop("headers", None) or {})
            scope = " ".join([self._scope(repo), *also]).strip()
            if scope in self._bearer and self._bearer[scope]:
                headers["Authorization"] = f"Bearer {self._bearer[scope]}"
            body = kwargs.get("data")
            if attempt == 2 and hasattr(body, "seek"):
                body.seek(0)
            resp = self.session.request(method, url, headers=headers, **kwargs)
            kwargs["headers"] = headers
            if resp.status_code == 401 and attempt == 1 and "WWW-Authenticate" in resp.headers \
                    and not _is_denial(resp):
                if isinstance(body, _Body) and not body.rewindable():
                    return resp
                resp.close()
                self._login(resp.headers["WWW-Authenticate"], scope)
                headers.pop("Authorization", None)
                continue
            return resp
        return resp

    def _follow(self, resp: requests.Response, method: str = "GET", headers: dict | None = None,
                stream: bool = True) -> requests.Response:
        """Follow redirects (at most 3) away from the registry: no Authorization, the redirect's trust,
        the connect-to mapping for hosts that do not resolve."""
        hops = 0
        current = self.base + "/"     # resp.url names the connect-to address, not the host
        while resp.status_code in REDIRECTS and hops < 3:
            target = current = urljoin(current, resp.headers["Location"])
            resp.close()
            host = urlsplit(target).hostname or ""
            session, verify = self.session, self.ca_file
            if host != self.host.split(":")[0]:
                session, verify = self.redirect_session, self.redirect_verify
                if host not in self._redirect_mounted and self.connect_to_for is not None:
                    address = self.connect_to_for(host)
                    if address:
                        session.mount(f"https://{host}", RouteAdapter(host, address))
                    self._redirect_mounted.add(host)
            try:
                resp = session.request(method, target, headers=headers or {}, stream=stream, verify=verify,
                                       timeout=self.timeout, allow_redirects=False)
            except requests.exceptions.SSLError as e:
                raise RegistryError(f"redirect to https://{host} (storage redirect): TLS verification failed "
                                    f"trusting {verify}: {e}") from e
            except requests.exceptions.ConnectionError as e:
                raise RegistryError(f"redirect to {target.split('?')[0]} (storage redirect) could not be "
                                    f"reached: {e}") from e
            self.redirects_followed += 1
            hops += 1
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
            query["scope"] = scope.split(" ")
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
            resp.close()
            cls = ManifestUnknown if (resp.status_code == 404 and "MANIFEST_UNKNOWN" in codes) else RegistryError
            raise cls(f"{what}: HTTP {resp.status_code} (expected {statuses}): {text}", resp.status_code, codes)
        return resp

    def _location(self, resp: requests.Response, what: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: {resp.status_code} without Location", resp.status_code)
        return urljoin(self.base + "/", location)

    # --- API -----------------------------------------------------------------------------------
    def ping(self, repo: str | None = None) -> int:
        """GET /v2/, authenticating for `repo` if asked; returns the final status."""
        return self._request("GET", "/v2/", repo).status_code

    def blob_size(self, repo: str, digest: str) -> int | None:
        """HEAD the blob: its size (Content-Length) when the registry has it, None on 404."""
        resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", repo)
        if resp.status_code in REDIRECTS:
            resp = self._follow(resp, "HEAD", stream=False)
        if resp.status_code == 404:
            return None
        self._expect(resp, (200,), f"HEAD blob {repo}@{digest}")
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise DigestMismatch(f"HEAD blob {repo}@{digest}: Docker-Content-Digest {got}")
        return int(resp.headers.get("Content-Length", "0"))

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount (POST ?mount=&from=): True when mounted (201), False when the registry
        opened an upload instead (202; the upload is cancelled)."""
        resp = self._request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={from_repo}", repo,
                             also=[f"repository:{from_repo}:pull"])
        if resp.status_code == 202:
            try:
                self._request("DELETE", self._location(resp, "mount"), repo).close()
            except requests.RequestException:
                pass
            return False
        self._expect(resp, (201,), f"mount {digest} from {from_repo} into {repo}")
        got = resp.headers.get("Docker-Content-Digest")
        if got != digest:
            raise DigestMismatch(f"mount {digest} into {repo}: registry answered Docker-Content-Digest {got}")
        return True

    def push_blob(self, repo: str, data, digest: str | None = None, size: int | None = None, *,
                  chunked: bool = False) -> str:
        """Upload a blob streamed from bytes, a binary file object, a path or an iterator of chunks.

        With `digest`: POST then one PUT ?digest= carrying the body (monolithic). Without it (or with
        `chunked`): POST, PATCH the body (hashing it as it goes), then PUT ?digest=<computed>. Either
        way the sha256 of the bytes sent must equal the digest and the registry's Docker-Content-Digest."""
        resp = self._expect(self._request("POST", f"/v2/{repo}/blobs/uploads/", repo), (202,),
                            f"start upload to {repo}")
        location = self._location(resp, f"upload to {repo}")
        body = _Body(data, size, self.chunk_size)
        headers = {"Content-Type": "application/octet-stream"}
        if digest is not None and not chunked:
            if body.size is None:
                raise RegistryError(f"push of {digest} to {repo}: a monolithic upload needs the size")
            sep = "&" if "?" in location else "?"
            resp = self._expect(self._request("PUT", f"{location}{sep}digest={digest}", repo,
                                              data=body if body.size else b"",
                                              headers=headers), (201,), f"finish upload of {digest} to {repo}")
            sent = body.digest
        else:
            if body.size is None:
                body_arg = iter(body)          # chunked transfer encoding, length unknown
            elif body.size == 0:
                body_arg = b""
            else:
                body_arg = body
                headers["Content-Range"] = f"0-{max(body.size - 1, 0)}"
            resp = self._expect(self._request("PATCH", location, repo, data=body_arg, headers=headers), (202,),
                                f"upload of a blob to {repo}")
            sent = body.digest
            if digest is not None and sent != digest:
                raise DigestMismatch(f"blob for {repo}: the {body.sent} bytes sent hash to {sent}, not {digest}")
            location = self._location(resp, f"upload to {repo}")
            sep = "&" if "?" in location else "?"
            resp = self._expect(self._request("PUT", f"{location}{sep}digest={sent}", repo, data=b"",
                                              headers={"Content-Type": "application/octet-stream"}),
                                (201,), f"finish upload of {sent} to {repo}")
            digest = digest or sent
        if sent != digest:
            raise DigestMismatch(f"blob {digest} pushed to {repo}: the {body.sent} bytes sent hash to {sent}")
        if body.size is not None and body.sent != body.size:
            raise DigestMismatch(f"blob {digest} pushed to {repo}: {body.sent} bytes sent, {body.size} announced")
        got = resp.headers.get("Docker-Content-Digest")
        if got != digest:
            raise DigestMismatch(f"blob {digest} pushed to {repo}: registry answered Docker-Content-Digest {got}")
        return got

    def push_manifest(self, repo: str, reference: str, manifest_bytes: bytes,
                      media_type: str | None = None) -> str:
        """PUT the manifest with its media type (default: the manifest's own `mediaType`, else OCI)."""
        expected = sha256_digest(manifest_bytes)
        if media_type is None:
            try:
                media_type = json.loads(manifest_bytes).get("mediaType") or OCI_MANIFEST
            except (ValueError, AttributeError):
                media_type = OCI_MANIFEST
        resp = self._expect(
            self._request("PUT", f"/v2/{repo}/manifests/{reference}", repo, data=manifest_bytes,
                          headers={"Content-Type": media_type}),
            (201,), f"push manifest {repo}:{reference}")
        got = resp.headers.get("Docker-Content-Digest")
        if got != expected:
            raise DigestMismatch(f"manifest {repo}:{reference}: registry answered Docker-Content-Digest {got}, "
                                 f"the manifest bytes are {expected}")
        return got

    def push_image(self, repo: str, tag: str, image: Image, *, chunked: bool = False) -> str:
        """Push every blob (streamed), then the manifest; returns the manifest digest (verified)."""
        for blob in image.blobs:
            source = blob.data if blob.data is not None else blob.path
            self.push_blob(repo, source, blob.digest, blob.size, chunked=chunked)
        return self.push_manifest(repo, tag, image.manifest_bytes)

    def get_manifest(self, repo: str, reference: str, expected_digest: str | None = None,
                     accept: str = ACCEPT_MANIFESTS) -> tuple[bytes, str]:
        resp = self._expect(
            self._request("GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": accept},
                          stream=True),
            (200,), f"pull manifest {repo}:{reference}")
        try:
            body = resp.raw.read(MAX_MANIFEST + 1, decode_content=True)
        finally:
            resp.close()
        if len(body) > MAX_MANIFEST:
            raise RegistryError(f"manifest {repo}:{reference} is larger than {MAX_MANIFEST} bytes")
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

    def _blob_response(self, repo: str, digest: str, headers: dict | None = None) -> requests.Response:
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", repo, stream=True, headers=headers)
        if resp.status_code in REDIRECTS:
            resp = self._follow(resp, "GET", headers=headers)
        return resp

    def get_blob(self, repo: str, digest: str, size: int | None = None, dest=None, *,
                 verifier: LayerVerifier | None = None):
        """Stream a blob to `dest` (a path, a binary file object, or a callable taking chunks; None:
        return the bytes), hashing as it arrives; `verifier` (a LayerVerifier) also sees every chunk.
        Returns the bytes (dest None) or `dest`. A path is removed again when the blob is wrong."""
        resp = self._expect(self._blob_response(repo, digest), (200,), f"pull blob {repo}@{digest}")
        h = hashlib.sha256()
        n = 0
        with _Sink(dest) as sink:
            try:
                for chunk in resp.iter_content(self.chunk_size):
                    h.update(chunk)
                    n += len(chunk)
                    if verifier is not None:
                        verifier.update(chunk)
                    sink.write(chunk)
            finally:
                resp.close()
            actual = "sha256:" + h.hexdigest()
            header = resp.headers.get("Docker-Content-Digest")
            if actual != digest:
                raise DigestMismatch(f"blob {repo}@{digest}: the {n} bytes received hash to {actual}")
            if header and header != digest:
                raise DigestMismatch(f"blob {repo}@{digest}: Docker-Content-Digest {header}")
            if size is not None and n != size:
                raise DigestMismatch(f"blob {repo}@{digest}: {n} bytes received, the manifest says {size}")
        return sink.value()

    def get_blob_range(self, repo: str, digest: str, start: int, end: int) -> bytes:
        """Bytes start..end (inclusive) of a blob (Range request; 206 expected)."""
        resp = self._blob_response(repo, digest, headers={"Range": f"bytes={start}-{end}"})
        self._expect(resp, (206,), f"range {start}-{end} of blob {repo}@{digest}")
        try:
            data = resp.raw.read(end - start + 2, decode_content=False)
        finally:
            resp.close()
        want = f"bytes {start}-{end}/"
        if not (resp.headers.get("Content-Range") or "").startswith(want):
            raise RegistryError(f"range of blob {repo}@{digest}: Content-Range {resp.headers.get('Content-Range')!r}, "
                                f"expected {want}<size>", 206)
        return data

    def pull_image(self, repo: str, reference: str, expected_digest: str | None = None,
                   dest_dir: str | os.PathLike | None = None) -> PulledImage:
        """Pull the manifest and every blob, verifying every digest, size and diff_id as the bytes arrive.
        With `dest_dir` the blobs are written there (named by digest) and never held in memory."""
        body, digest = self.get_manifest(repo, reference, expected_digest)
        manifest = json.loads(body)
        if dest_dir is not None:
            Path(dest_dir).mkdir(parents=True, exist_ok=True)

        def target(d: str):
            return None if dest_dir is None else Path(dest_dir) / d.replace(":", "-")

        blobs: dict[str, bytes | Path] = {}
        cdesc = manifest["config"]
        config_bytes = self.get_blob(repo, cdesc["digest"], cdesc.get("size"))
        if dest_dir is not None:
            target(cdesc["digest"]).write_bytes(config_bytes)
            blobs[cdesc["digest"]] = target(cdesc["digest"])
        else:
            blobs[cdesc["digest"]] = config_bytes
        config = json.loads(config_bytes)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        layers = manifest.get("layers", [])
        if len(diff_ids) != len(layers):
            raise DigestMismatch(f"{repo}:{reference}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        for desc, diff_id in zip(layers, diff_ids):
            verifier = LayerVerifier(gzipped="gzip" in desc.get("mediaType", ""))
            blobs[desc["digest"]] = self.get_blob(repo, desc["digest"], desc.get("size"), target(desc["digest"]),
                                                  verifier=verifier)
            verifier.finish()
            if verifier.error:
                raise DigestMismatch(f"layer {desc['digest']} of {repo}:{reference} is not valid gzip: "
                                     f"{verifier.error}")
            if verifier.diff_id != diff_id:
                raise DigestMismatch(f"layer {desc['digest']} of {repo}:{reference}: uncompressed sha256 "
                                     f"{verifier.diff_id} differs from the config's diff_id {diff_id}")
        return PulledImage(body, digest, blobs, tuple(diff_ids))

    def verify_same(self, pulled: PulledImage, image: Image) -> None:
        """The pulled image is byte for byte the pushed one (bytes compared, or, for blobs pulled to
        files, their verified digests and sizes)."""
        if pulled.manifest_digest != image.manifest_digest:
            raise DigestMismatch(f"pulled manifest {pulled.manifest_digest} != pushed {image.manifest_digest}")
        for blob in image.blobs:
            got = pulled.blobs.get(blob.digest)
            if got is None:
                raise DigestMismatch(f"blob {blob.digest} was not pulled")
            if isinstance(got, Path):
                if got.stat().st_size != blob.size:
                    raise DigestMismatch(f"pulled blob {blob.digest}: {got.stat().st_size} bytes, pushed {blob.size}")
            elif blob.data is not None and got != blob.data:
                raise DigestMismatch(f"pulled blob {blob.digest} differs from the pushed bytes")
            elif blob.data is None and (len(got) != blob.size or sha256_digest(got) != blob.digest):
                raise DigestMismatch(f"pulled blob {blob.digest} differs from the pushed file")
