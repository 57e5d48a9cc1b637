"""Gathering the pre-upgrade review's objects from a cluster (issue 10): GET and LIST only, as plain
dicts, through the official client (`utilities.kube.call`: transient errors retried).

The same code reads a live cluster and a must-gather served by `python -m localcluster serve
--must-gather DIR`; that server answers a read of something the must-gather did not collect with 404
and a `MustGatherFileMissing` cause naming the file, which becomes `NotGathered(file)` here, so the
check that needed it skips, naming the file.

`CHECKS` maps each check's name to (judge, inputs): `inputs(view)` returns the judge's keyword
arguments; `run_check(view, name)` gives the `Verdict`.
"""
from __future__ import annotations

import datetime
import json
import socket
from typing import Callable

from kubernetes.client.exceptions import ApiException

from utilities import kube
from utilities.preupgrade import judges
from utilities.preupgrade.sources import facts
from utilities.preupgrade.verdicts import NotGathered, Verdict, skipped

NS = "openshift-image-registry"
DEFAULT_MAX_AGE_HOURS = 24.0
CONFIG_API = "imageregistry.operator.openshift.io/v1"


def _path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return base + (f"/{name}" if name else "")


def _missing_file(exc: ApiException) -> str | None:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return None
    for c in ((body.get("details") or {}).get("causes") or []):
        if c.get("reason") == "MustGatherFileMissing":
            return c.get("field") or c.get("message")
    return None


class ClusterView:
    """Read-only access to one cluster (live, or a must-gather served by the local cluster).

    `now`: the time the review is made as of (a must-gather's capture time offline); `offline`: a
    must-gather (nothing can be resolved or reached from here on the cluster's behalf)."""

    def __init__(self, cluster, now: datetime.datetime | None = None, offline: bool = False,
                 production: bool = False, resolver: Callable[[str], bool] | None = None,
                 captured: tuple[datetime.datetime | None, str] = (None, ""),
                 max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
                 clock: Callable[[], datetime.datetime] | None = None):
        """`captured`: when a must-gather was taken and how that is known; `clock`: the wall clock its
        age is measured against."""
        self.cluster = cluster
        self.captured, self.captured_basis = captured
        self.max_age_hours = max_age_hours
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.api = cluster.api_client
        self.offline = offline
        self.production = production
        self.now = now or datetime.datetime.now(datetime.timezone.utc)
        self.resolver = resolver or _resolves
        self._cache: dict = {}

    def _raw(self, path: str, query: list | None = None):
        key = (path, tuple(query or ()))
        if key in self._cache:
            hit = self._cache[key]
            if isinstance(hit, BaseException):
                raise hit
            return hit
        try:
            resp = kube.call(self.api.call_api, path, "GET", query_params=query or [],
                             header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                             _preload_content=False, _return_http_data_only=True)
            out = json.loads(resp.data)
        except ApiException as e:
            missing = _missing_file(e) if e.status == 404 else None
            if missing:
                err = NotGathered(missing)
                self._cache[key] = err
                raise err from None
            if e.status == 404:
                out = None
            else:
                raise
        self._cache[key] = out
        return out

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict | None:
        return self._raw(_path(api_version, plural, namespace, name))

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        q = [("labelSelector", label_selector)] if label_selector else []
        out = self._raw(_path(api_version, plural, namespace), q)
        return list((out or {}).get("items") or [])

    def optional(self, fn, *a, **kw):
        """(result, None) or (None, missing file) for an input the judge can do without."""
        try:
            return fn(*a, **kw), None
        except NotGathered as e:
            return None, e.file

    # --- the objects ---------------------------------------------------------------------------------
    def config(self) -> dict | None:
        return self.get(CONFIG_API, "configs", "cluster")

    def must_config(self) -> dict:
        cfg = self.config()
        if cfg is None:
            raise NoConfig()
        return cfg

    def infrastructure(self) -> dict | None:
        return self.get("config.openshift.io/v1", "infrastructures", "cluster")

    def platform(self) -> str | None:
        infra, _ = self.optional(self.infrastructure)
        st = (infra or {}).get("status") or {}
        return (st.get("platformStatus") or {}).get("type") or st.get("platform")

    def infrastructure_name(self) -> str | None:
        infra, _ = self.optional(self.infrastructure)
        return ((infra or {}).get("status") or {}).get("infrastructureName")

    def clusteroperator(self) -> dict | None:
        return self.get("config.openshift.io/v1", "clusteroperators", "image-registry")

    def claim(self) -> dict | None:
        name = judges.claim_name(self.must_config())
        return self.get("v1", "persistentvolumeclaims", name, NS) if name else None


def must_gather_time(info: dict | None) -> tuple[datetime.datetime | None, str]:
    """When a served must-gather was taken, and how that is known: its `timestamp` file, else the
    newest time its objects record (`localcluster serve --must-gather` reports both)."""
    info = info or {}
    t = judges.parse_time(info.get("captured_at"))
    if t is not None:
        return t, "its timestamp file"
    t = judges.parse_time(info.get("newest_object_at"))
    return (t, "no timestamp file: the newest time in its objects") if t else (None, "")


class NoConfig(Exception):
    pass


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except (socket.gaierror, UnicodeError):
        return False


# --- inputs of each judge -----------------------------------------------------------------------------
def _storage_class(v: ClusterView, pvc):
    cls = ((pvc or {}).get("spec") or {}).get("storageClassName")
    if not cls:
        classes, missing = v.optional(v.list, "storage.k8s.io/v1", "storageclasses")
        default = next((c for c in classes or [] if ((c.get("metadata") or {}).get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class") == "true"), None)
        return default, missing
    return v.optional(v.get, "storage.k8s.io/v1", "storageclasses", cls)


def _in_claim(v):
    cfg = v.must_config()
    pvc = v.claim()
    sc, missing = _storage_class(v, pvc) if pvc else (None, None)
    return dict(config=cfg, pvc=pvc, storage_class=sc, class_missing_file=missing)


def _in_nfs(v):
    cfg = v.must_config()
    pvc = v.claim()
    pv, missing_pv = (None, None)
    vol = ((pvc or {}).get("spec") or {}).get("volumeName")
    if vol:
        pv, missing_pv = v.optional(v.get, "v1", "persistentvolumes", vol)
    sc, missing_sc = _storage_class(v, pvc) if pvc else (None, None)
    return dict(config=cfg, pvc=pvc, pv=pv, storage_class=sc, missing=[m for m in (missing_pv, missing_sc) if m])


def _in_s3_credentials(v):
    cfg = v.must_config()
    if ((cfg.get("spec") or {}).get("storage") or {}).get("s3") is None:
        return dict(config=cfg, user_secret=None)
    return dict(config=cfg, user_secret=v.get("v1", "secrets", "image-registry-private-configuration-user", NS),
                cloud_secret=v.get("v1", "secrets", "installer-cloud-credentials", NS), platform=v.platform())


def _in_trusted_ca(v):
    cfg = v.must_config()
    name = ((((cfg.get("spec") or {}).get("storage") or {}).get("s3") or {}).get("trustedCA") or {}).get("name")
    cm = v.get("v1", "configmaps", name, "openshift-config") if name else None
    return dict(config=cfg, configmap=cm, now=v.now)


def _in_endpoint(v):
    cfg = v.must_config()
    s3 = ((cfg.get("spec") or {}).get("storage") or {}).get("s3")
    if not (s3 or {}).get("regionEndpoint"):
        return dict(config=cfg, routes=[])
    return dict(config=cfg, routes=v.list("route.openshift.io/v1", "routes"),
                resolves=None if v.offline else v.resolver, offline=v.offline)


def _pods(v):
    return v.list("v1", "pods", NS)


def _in_node_ca(v):
    """The DaemonSet, and the nodes when they can be read (a must-gather may lack them, a user may not
    list them): without them the judge still catches node-ca on no node."""
    ds = v.get("apps/v1", "daemonsets", "node-ca", NS)
    try:
        nodes, missing = v.optional(v.list, "v1", "nodes")
        missing = missing and f"{missing} is not in the must-gather"
    except ApiException as e:
        if e.status != 403:
            raise
        nodes, missing = None, "the user may not list nodes"
    pods, _ = v.optional(_pods, v)
    return dict(daemonset=ds, nodes=nodes, pods=pods, nodes_missing=missing)


def _in_age(v):
    return dict(captured=v.captured, basis=v.captured_basis, now=v.clock(), max_age_hours=v.max_age_hours,
                offline=v.offline)


CHECKS: dict[str, tuple[Callable[..., Verdict], Callable[[ClusterView], dict]]] = {
    "clusteroperator": (judges.clusteroperator, lambda v: dict(co=v.clusteroperator())),
    "config-conditions": (judges.config_conditions, lambda v: dict(config=v.config())),
    "management-state": (judges.management_state, lambda v: dict(config=v.must_config(), platform=v.platform())),
    "storage": (judges.storage, lambda v: dict(config=v.must_config(), production=v.production)),
    "claim": (judges.claim, _in_claim),
    "claim-access-mode": (judges.claim_access, lambda v: dict(config=v.must_config(), pvc=v.claim())),
    "claim-nfs": (judges.claim_nfs, _in_nfs),
    "storage-management": (judges.storage_management, lambda v: dict(
        config=v.must_config(), pvc=v.claim(), infrastructure_name=v.infrastructure_name())),
    "s3-credentials": (judges.s3_credentials, _in_s3_credentials),
    "s3-trusted-ca": (judges.s3_trusted_ca, _in_trusted_ca),
    "s3-endpoint": (judges.s3_endpoint, _in_endpoint),
    "replicas-ready": (judges.replicas_ready, lambda v: dict(
        config=v.must_config(), deployment=v.get("apps/v1", "deployments", "image-registry", NS), pods=_pods(v))),
    "replicas-spread": (judges.replicas_spread, lambda v: dict(config=v.must_config(), pods=_pods(v))),
    "events": (judges.events, lambda v: dict(
        events_=v.list("v1", "events", NS), pods=_pods(v), pvcs=v.list("v1", "persistentvolumeclaims", NS),
        now=v.now)),
    "pruner": (judges.pruner, lambda v: dict(
        pruner_=v.get(CONFIG_API, "imagepruners", "cluster"),
        cronjob=v.optional(v.get, "batch/v1", "cronjobs", "image-pruner", NS)[0],
        jobs=v.optional(v.list, "batch/v1", "jobs", NS)[0])),
    "routes": (judges.routes, lambda v: dict(
        config=v.must_config(), routes_=v.list("route.openshift.io/v1", "routes", NS),
        image_config=v.optional(v.get, "config.openshift.io/v1", "images", "cluster")[0])),
    "node-ca": (judges.node_ca, _in_node_ca),
    "pdb": (judges.pdb, lambda v: dict(config=v.must_config(), pdbs=v.list("policy/v1", "poddisruptionbudgets", NS),
                                       pods=_pods(v))),
    "operator-version": (judges.operator_version, lambda v: dict(
        co=v.clusteroperator(), cluster_version=v.get("config.openshift.io/v1", "clusterversions", "version"))),
    "proxy": (judges.proxy, lambda v: dict(
        config=v.must_config(), cluster_proxy=v.get("config.openshift.io/v1", "proxies", "cluster"))),
    "overrides": (judges.overrides, lambda v: dict(config=v.must_config())),
    "must-gather-age": (judges.must_gather_age, _in_age),
}

# The facts behind each check (a verdict whose judge names none cites these): sections of
# docs/operator-facts.md, a document of this repository.
SOURCES: dict[str, str] = {
    "clusteroperator": facts("clusteroperator"), "config-conditions": facts("config-conditions"),
    "management-state": facts("management-states"), "storage": facts("storage-types"), "claim": facts("claims"),
    "claim-access-mode": facts("claims", "drains-during-an-upgrade"), "claim-nfs": facts("nfs"),
    "storage-management": facts("storage-management-state"), "s3-credentials": facts("s3-credentials"),
    "s3-trusted-ca": facts("s3-trusted-ca"), "s3-endpoint": facts("s3-endpoint"),
    "replicas-ready": facts("replicas-and-rollout"), "replicas-spread": facts("replicas-and-rollout"),
    "events": facts("events"), "pruner": facts("image-pruner"), "routes": facts("routes"), "node-ca": facts("node-ca"),
    "pdb": facts("pod-disruption-budget"), "operator-version": facts("cluster-version"), "proxy": facts("proxy"),
    "overrides": facts("config-spec"), "must-gather-age": facts("must-gather"),
}


def run_check(view: ClusterView, name: str) -> Verdict:
    judge, inputs = CHECKS[name]
    try:
        v = judge(**inputs(view))
    except NotGathered as e:
        v = skipped(f"{e.file} is not in the must-gather")
    except NoConfig:
        v = skipped("no Config cluster to judge (see config-conditions)")
    except ApiException as e:
        if e.status != 403:
            raise
        try:
            msg = json.loads(e.body or "{}").get("message") or e.reason
        except ValueError:
            msg = e.reason
        v = skipped(f"cannot tell: the user may not read what the check needs ({msg}); run as cluster-admin")
    v.check = name
    v.source = v.source or SOURCES[name]
    return v
