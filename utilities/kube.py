"""Kubernetes API access for the suite: client creation from a kubeconfig, and retries.

Retries cover transient failures only (HTTP 429, 5xx, connection errors); a 4xx answer such as a
validation error, 403 or 404 is an answer, never retried.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import tenacity
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

REGISTRY_NAMESPACE = "openshift-image-registry"
REGISTRY_DEPLOYMENT = "image-registry"
REGISTRY_POD_SELECTOR = "docker-registry=default"
CONFIG_GVR = ("imageregistry.operator.openshift.io", "v1", "configs")
CONFIG_NAME = "cluster"
CLUSTEROPERATOR_GVR = ("config.openshift.io", "v1", "clusteroperators")
INFRASTRUCTURE_GVR = ("config.openshift.io", "v1", "infrastructures")
ROUTE_GVR = ("route.openshift.io", "v1", "routes")


# Messages of errors known to be transient, whatever wraps them (kube-apiserver, etcd, proxies, Go's
# net/http, Python's ssl/socket layers).
TRANSIENT_MESSAGES = (
    "connection reset by peer", "connection refused", "connection aborted", "broken pipe",
    "remote end closed connection", "remotedisconnected", "eof occurred in violation of protocol",
    "unexpected eof", "http2: client connection lost", "tls handshake timeout", "i/o timeout",
    "etcdserver: request timed out", "etcdserver: leader changed", "etcdserver: too many requests",
    "the server is currently unable to handle the request", "too many requests",
    "please try again later", "try again later", "timeout: request did not complete within",
    "the server was unable to return a response in the time allotted",
)
RETRY_ATTEMPTS = 8           # at most this many tries of one call
RETRY_MAX_WAIT = 5.0         # seconds, between two tries
RETRY_DEADLINE = 60.0        # seconds, for all tries of one call


def _message_is_transient(text: str) -> bool:
    text = text.lower()
    return any(m in text for m in TRANSIENT_MESSAGES)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: throttling (429), server errors (5xx), broken or refused
    connections, timeouts and known transient messages. Never a 4xx answer other than 429: a
    validation error, 401, 403, 404 or 409 is an answer (409 conflicts are handled by the
    read-modify-write helpers, which re-read)."""
    if isinstance(exc, ApiException):
        status = exc.status
        if status == 429 or (status is not None and status >= 500):
            return True
        if status and 400 <= status < 500:
            return False
        # status 0/None: the client raised it for a transport problem
        return _message_is_transient(f"{exc.reason} {exc.body}") or isinstance(
            exc.__cause__ or exc.__context__, (urllib3.exceptions.HTTPError, ConnectionError, OSError))
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, socket.timeout, TimeoutError)):
        return True
    if isinstance(exc, OSError) and exc.errno is not None:
        return _message_is_transient(str(exc)) or isinstance(exc, ConnectionError)
    return _message_is_transient(str(exc))


def _retry_after(exc: BaseException | None) -> float | None:
    """The Retry-After header of a 429/503 answer, in seconds."""
    headers = getattr(exc, "headers", None) if isinstance(exc, ApiException) else None
    if not headers:
        return None
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class _Wait(tenacity.wait.wait_base):
    """Exponential back-off with jitter; at least what the server asked (Retry-After), capped."""

    def __init__(self, initial: float, max_wait: float):
        self._exp = tenacity.wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial)
        self._max = max_wait

    def __call__(self, retry_state) -> float:
        base = self._exp(retry_state)
        outcome = retry_state.outcome
        after = _retry_after(outcome.exception()) if outcome is not None and outcome.failed else None
        return min(max(base, after or 0.0), self._max)


def _log_retry(retry_state) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    logging.getLogger(__name__).info("transient API error (try %d), retrying: %s",
                                     retry_state.attempt_number, _short(exc))


def _short(exc) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"


def retrying(attempts: int = RETRY_ATTEMPTS, max_wait: float = RETRY_MAX_WAIT, deadline: float = RETRY_DEADLINE,
             initial: float = 0.2, transient=None):
    """Decorator: retry a callable on transient API errors (`is_transient`, or the given predicate),
    bounded in tries and time, with exponential back-off and jitter (honouring Retry-After)."""
    return tenacity.retry(
        retry=tenacity.retry_if_exception(transient or is_transient),
        wait=_Wait(initial, max_wait),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(deadline),
        before_sleep=_log_retry,
        reraise=True,
    )


# Observers of API calls made through `call` (the safety journal uses them: what the run wrote and
# created). An observer has `before(name, args, kwargs)` and `after(name, args, kwargs, result)`;
# their errors are logged, never raised.
_observers: list = []


def add_observer(observer) -> None:
    _observers.append(observer)


def remove_observer(observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def _notify(method: str, *a) -> None:
    for o in list(_observers):
        try:
            getattr(o, method)(*a)
        except Exception:  # noqa: BLE001 - an observer must not break the call it observes
            logging.getLogger(__name__).exception("API call observer failed")


def call(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call an API function, retrying transient errors (see `retrying`)."""
    name = getattr(fn, "__name__", "")
    if _observers:
        _notify("before", name, args, kwargs)
    result = retrying()(fn)(*args, **kwargs)
    if _observers:
        _notify("after", name, args, kwargs, result)
    return result


def status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status", None) if isinstance(exc, ApiException) else None


def get_or_none(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Call a read function; None when the object does not exist (404)."""
    try:
        return call(fn, *args, **kwargs)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


CONFLICT_ATTEMPTS = 10       # re-reads of one read-modify-write on 409 Conflict


def replace_latest(read: Callable, replace: Callable, name: str, namespace: str,
                   make_body: Callable[[dict], dict], plain: Callable[[object], dict],
                   attempts: int = CONFLICT_ATTEMPTS) -> tuple[dict, dict]:
    """Read-modify-write of one namespaced object: read it, PUT `make_body(read object)` (which keeps
    the read resourceVersion, so the write is conditional), and on 409 Conflict (it changed meanwhile)
    read it again and retry. Returns (the object as read before the successful write, the written
    object), both as plain dicts (`plain` turns a client model into one)."""
    for i in range(attempts):
        before = plain(call(read, name, namespace))
        try:
            return before, plain(call(replace, name, namespace, make_body(before)))
        except ApiException as e:
            if e.status != 409 or i == attempts - 1:
                raise
            logging.getLogger(__name__).info("write conflict on %s/%s (try %d), reading again",
                                             namespace, name, i + 1)
    raise AssertionError("unreachable")


class ApiClient(k8s.ApiClient):
    """The official ApiClient, with one of its bugs mended: an error the client raises itself, with
    no answer from the server (`ApiException(status=0)`, e.g. for an `SSLError` when the server closed
    the TLS handshake under load), has no body, and the client then calls `.decode()` on that body,
    raising `AttributeError` instead. That hid a transient transport error from `is_transient` (no
    retry) and from error messages. Here the missing body becomes empty, so the ApiException itself
    is raised."""

    def request(self, *args, **kwargs):
        try:
            return super().request(*args, **kwargs)
        except ApiException as e:
            if e.body is None:
                e.body = b""
            raise


@dataclasses.dataclass
class Cluster:
    """Everything a test needs to talk to one cluster. Its repr (pytest prints it with a failing test's
    arguments) names the server and the kubeconfig, never the token."""
    api_client: k8s.ApiClient
    token: str = dataclasses.field(repr=False)
    server: str
    ca_file: str                       # CA of the API server (a file path)
    kubeconfig: str
    context: str | None
    embedded: bool = False             # True: the local stand-in cluster started by this session
    ingress_address: str | None = None  # "HOST:PORT" to connect to for route hosts, None: resolve
    ingress_http_address: str | None = None  # the same for plain-HTTP routes (ODF 4.12's RGW route)
    info: dict = dataclasses.field(default_factory=dict)
    _router_ca_file: str | None = None
    # Who pushes and pulls (utilities/registry_access.py: a ServiceAccount of the run's test namespace
    # with a TokenRequest token); None: the kubeconfig's own token, if it has one.
    registry_identity: object | None = None
    _ingress_reasons: dict = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @functools.cached_property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api_client)

    @functools.cached_property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client)

    @functools.cached_property
    def dynamic(self):
        from kubernetes.dynamic import DynamicClient  # discovery happens here, on first use
        return call(DynamicClient, self.api_client)

    # --- convenience around the objects the suite uses -------------------------------------
    def get_cluster_object(self, gvr: tuple[str, str, str], name: str) -> dict | None:
        return get_or_none(self.custom.get_cluster_custom_object, *gvr, name)

    def registry_config(self) -> dict | None:
        return self.get_cluster_object(CONFIG_GVR, CONFIG_NAME)

    def router_ca_pem(self) -> bytes:
        """The ingress CA, read from the cluster as OpenShift publishes it (with a custom default
        certificate: that certificate's tls.crt, which needs the system roots to verify)."""
        cm = call(self.core.read_namespaced_config_map, "default-ingress-cert", "openshift-config-managed")
        return (cm.data or {})["ca-bundle.crt"].encode()

    @property
    def router_ca_file(self) -> str:
        """What route connections trust: the cluster's ingress CA bundle AND the system roots (a custom
        default certificate signed by a public CA verifies only with the latter)."""
        if self._router_ca_file is None:
            self._router_ca_file = self.trust_bundle_file(self.router_ca_pem(), prefix="router-ca-")
        return self._router_ca_file

    def trust_bundle_file(self, pem: bytes | str, prefix: str = "trust-") -> str:
        """A temporary CA file with `pem` and the system roots (`system_roots_pem`)."""
        pem = pem.encode() if isinstance(pem, str) else pem
        fd, p = tempfile.mkstemp(prefix=prefix, suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(pem if pem.endswith(b"\n") else pem + b"\n")
            f.write(self.system_roots_pem())
        return p

    def system_roots_pem(self) -> bytes:
        """The machine's trust store (OpenSSL's default CA file, else certifi's), or the local cluster's
        stand-in for it (info.json `system_ca_file`, --custom-default-certificate)."""
        out = b""
        for path in (system_ca_file(), self.info.get("system_ca_file")):
            if path:
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                out += data if data.endswith(b"\n") else data + b"\n"
        return out

    def ingress_for(self, host: str, scheme: str = "https") -> str | None:
        """Where to connect for a route host: the configured address; None when DNS resolves the
        host; else the Infrastructure's vSphere ingress IP on port 443 (80 for a plain-HTTP route;
        `ingress_reason` says which)."""
        plain = scheme == "http"
        port = 80 if plain else 443
        flag = "--ingress-http-address" if plain else "--ingress-address"
        configured = self.ingress_http_address if plain else self.ingress_address
        if configured:
            self._ingress_reasons[host] = flag
            return configured
        try:
            socket.getaddrinfo(host, port)
            self._ingress_reasons[host] = "resolved by DNS"
            return None
        except socket.gaierror:
            pass
        infra = self.get_cluster_object(INFRASTRUCTURE_GVR, "cluster") or {}
        ips = (((infra.get("status") or {}).get("platformStatus") or {}).get("vsphere") or {}).get("ingressIPs")
        if ips:
            self._ingress_reasons[host] = (f"{host} does not resolve, so the Infrastructure's "
                                           f"status.platformStatus.vsphere.ingressIPs[0] on port {port}")
            return f"{ips[0]}:{port}"
        raise LookupError(f"route host {host} does not resolve and the Infrastructure has no vSphere ingressIPs; "
                          f"pass {flag}=HOST[:PORT] (the router that serves *.apps"
                          f"{' over plain HTTP' if plain else ''})")

    def ingress_reason(self, host: str) -> str | None:
        """Why `ingress_for(host)` answered what it did (for error messages)."""
        return self._ingress_reasons.get(host)


def system_ca_file() -> str | None:
    """The system roots: OpenSSL's default CA file (Debian/RHEL/Fedora bundles), else certifi's."""
    import ssl
    paths = ssl.get_default_verify_paths()
    for p in (paths.cafile, paths.openssl_cafile, "/etc/pki/tls/certs/ca-bundle.crt",
              "/etc/ssl/certs/ca-certificates.crt"):
        if p and os.path.isfile(p):
            return p
    try:
        import certifi
        return certifi.where()
    except ImportError:
        return None


def load_cluster(kubeconfig: str | os.PathLike, context: str | None = None, *, embedded: bool = False,
                 ingress_address: str | None = None, ingress_http_address: str | None = None,
                 info: dict | None = None, pool_size: int = 32) -> Cluster:
    """Build the official clients from a kubeconfig: a bearer token or a client certificate (the
    installer's auth/kubeconfig); `Cluster.token` is "" for a certificate."""
    from utilities import kubeconfig as kubeconfigs
    cfg = k8s.Configuration()
    # A KUBECONFIG list: the official client merges it but lets the last file's current-context win;
    # kubectl's first one is passed instead (utilities/kubeconfig.py).
    context = context or kubeconfigs.current_context(kubeconfig)
    k8s_config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=cfg,
                                persist_config=False)
    cfg.connection_pool_maxsize = pool_size
    cfg.retries = False
    auth = (cfg.api_key or {}).get("authorization", "")
    token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    if not token:
        token = _token_from_kubeconfig(kubeconfig, context)
    api_client = ApiClient(cfg)
    return Cluster(api_client=api_client, token=token, server=cfg.host, ca_file=cfg.ssl_ca_cert or "",
                   kubeconfig=str(kubeconfig), context=context, embedded=embedded,
                   ingress_address=ingress_address, ingress_http_address=ingress_http_address,
                   info=info or {})


def _token_from_kubeconfig(kubeconfig, context) -> str:
    from utilities import kubeconfig as kubeconfigs
    data = kubeconfigs.merged(kubeconfig)
    ctx_name = context or data.get("current-context")
    ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
    user = next(u["user"] for u in data["users"] if u["name"] == ctx["user"])
    if "token" in user:
        return user["token"]
    if "token-file" in user:
        return Path(user["token-file"]).read_text().strip()
    return ""   # a client certificate (or an exec plugin the client ran): no token to reuse


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
