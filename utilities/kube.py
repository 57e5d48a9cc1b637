"""Kubernetes API access for the suite: client creation from a kubeconfig, and retries.

Retries cover transient failures only (HTTP 429, 5xx, connection errors); a 4xx answer such as a
validation error, 403 or 404 is an answer, never retried.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, TypeVar

import tenacity
import urllib3
import yaml
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


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: throttling, server errors, broken connections."""
    if isinstance(exc, ApiException):
        return exc.status == 429 or (exc.status is not None and exc.status >= 500) or exc.status == 0
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, socket.timeout, TimeoutError))


def retrying(attempts: int = 6, max_wait: float = 4.0):
    """Decorator: retry a callable on transient API errors with exponential back-off."""
    return tenacity.retry(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential(multiplier=0.2, max=max_wait),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )


def call(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call an API function, retrying transient errors."""
    return retrying()(fn)(*args, **kwargs)


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


@dataclasses.dataclass
class Cluster:
    """Everything a test needs to talk to one cluster."""
    api_client: k8s.ApiClient
    token: str
    server: str
    ca_file: str                       # CA of the API server (a file path)
    kubeconfig: str
    context: str | None
    embedded: bool = False             # True: the local stand-in cluster started by this session
    ingress_address: str | None = None  # "HOST:PORT" to connect to for route hosts, None: resolve
    info: dict = dataclasses.field(default_factory=dict)
    _router_ca_file: str | None = None

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
        """The ingress CA, read from the cluster as OpenShift publishes it."""
        cm = call(self.core.read_namespaced_config_map, "default-ingress-cert", "openshift-config-managed")
        return (cm.data or {})["ca-bundle.crt"].encode()

    @property
    def router_ca_file(self) -> str:
        if self._router_ca_file is None:
            fd, p = tempfile.mkstemp(prefix="router-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as f:
                f.write(self.router_ca_pem())
            self._router_ca_file = p
        return self._router_ca_file

    def ingress_for(self, host: str) -> str | None:
        """Where to connect for a route host: the configured address; None when DNS resolves the
        host; else the Infrastructure's vSphere ingress IP on port 443."""
        if self.ingress_address:
            return self.ingress_address
        try:
            socket.getaddrinfo(host, 443)
            return None
        except socket.gaierror:
            pass
        infra = self.get_cluster_object(INFRASTRUCTURE_GVR, "cluster") or {}
        ips = (((infra.get("status") or {}).get("platformStatus") or {}).get("vsphere") or {}).get("ingressIPs")
        if ips:
            return f"{ips[0]}:443"
        raise LookupError(f"route host {host} does not resolve and the Infrastructure has no ingressIPs; "
                          "give --ingress-address")


def load_cluster(kubeconfig: str | os.PathLike, context: str | None = None, *, embedded: bool = False,
                 ingress_address: str | None = None, info: dict | None = None,
                 pool_size: int = 32) -> Cluster:
    """Build the official clients from a kubeconfig (bearer token and CA data)."""
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=cfg,
                                persist_config=False)
    cfg.connection_pool_maxsize = pool_size
    cfg.retries = False
    auth = (cfg.api_key or {}).get("authorization", "")
    token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    if not token:
        token = _token_from_kubeconfig(kubeconfig, context)
    api_client = k8s.ApiClient(cfg)
    return Cluster(api_client=api_client, token=token, server=cfg.host, ca_file=cfg.ssl_ca_cert or "",
                   kubeconfig=str(kubeconfig), context=context, embedded=embedded,
                   ingress_address=ingress_address, info=info or {})


def _token_from_kubeconfig(kubeconfig, context) -> str:
    data = yaml.safe_load(Path(kubeconfig).read_text())
    ctx_name = context or data.get("current-context")
    ctx = next(c["context"] for c in data["contexts"] if c["name"] == ctx_name)
    user = next(u["user"] for u in data["users"] if u["name"] == ctx["user"])
    if "token" in user:
        return user["token"]
    if "token-file" in user:
        return Path(user["token-file"]).read_text().strip()
    raise ValueError(f"context {ctx_name} has no bearer token")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
