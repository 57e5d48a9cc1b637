"""Checks made before any change, each ending the run with ONE line (what is wrong, what to do) and
its own exit status (README.md, "Exit statuses").

    cluster = preflight.connect(kubeconfig, context)        # 9, 10 (and 9 on 401)
    preflight.check_openshift(cluster)                      # 6
    preflight.check_rights(cluster, destructive=True)       # 7
"""
from __future__ import annotations

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from utilities import kube, rights
from utilities import kubeconfig as kubeconfigs
from utilities.kube import CONFIG_GVR, Cluster

# Exit statuses. pytest's own: 0 passed, 1 tests failed, 2 interrupted, 3 internal error,
# 4 usage error (an unknown option or a bad option value), 5 no tests collected.
EXIT_USAGE = 4
EXIT_NOT_OPENSHIFT = 6
EXIT_FORBIDDEN = 7
EXIT_LOCKED = 8
EXIT_KUBECONFIG = 9
EXIT_UNREACHABLE = 10
EXIT_CHANGED = 11          # restore refused: someone else changed the Config since
EXIT_NO_SNAPSHOT = 12      # restore: no snapshot to restore from
EXIT_NOT_RESTORED = 13     # restore ran but the registry is not back as it was

CONNECT_TIMEOUT = 5.0


class PreflightError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def connect(kubeconfig, context: str | None = None, *, source=None, **kwargs) -> Cluster:
    """Load the kubeconfig (a path, or a KUBECONFIG list merged as kubectl does) and check the API
    answers and accepts the credentials. `source` (utilities.kubeconfig.Source): how the user named it,
    so the error says what to fix (--kubeconfig or KUBECONFIG)."""
    source = source or kubeconfigs.Source(kubeconfigs.OPTION, str(kubeconfig))
    try:
        found, why = kubeconfigs.is_readable(kubeconfig)
        if not found:
            raise ValueError(why)
        doc = kubeconfigs.merged(kubeconfig)
        if not doc.get("clusters"):
            raise ValueError("it has no clusters")
        cluster = kube.load_cluster(kubeconfig, context, **kwargs)
    except (OSError, ValueError, yaml.YAMLError, ConfigException, KeyError, StopIteration, TypeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [""])[0]
        named = f"the kubeconfig {kubeconfig}" if source.kind != kubeconfigs.ENVIRONMENT else \
            f"the kubeconfig in ${kubeconfigs.ENV} ({kubeconfig})"
        raise PreflightError(EXIT_KUBECONFIG, f"cannot use {named}"
                             f"{' (context ' + context + ')' if context else ''}: {reason or e.__class__.__name__}; "
                             f"{source.fix_hint()}") from None
    check_reachable(cluster)
    return cluster


def check_reachable(cluster: Cluster) -> None:
    """GET /version, bounded (a few quick tries), then who am I (401 means bad credentials)."""
    version = k8s.VersionApi(cluster.api_client)
    try:
        kube.retrying(attempts=3, deadline=CONNECT_TIMEOUT * 2, max_wait=1.0)(version.get_code)(
            _request_timeout=CONNECT_TIMEOUT)
    except ApiException as e:
        if e.status in (401,):
            raise PreflightError(EXIT_KUBECONFIG, f"the API server {cluster.server} rejected the credentials "
                                 f"(401 Unauthorized); log in again (oc login) or give a kubeconfig "
                                 "with a valid token") from None
        if e.status and e.status < 500 and e.status != 429:
            return      # /version forbidden is unusual but the server answers
        raise PreflightError(EXIT_UNREACHABLE, f"the API server {cluster.server} does not work: "
                             f"{e.status} {e.reason}; check the cluster and retry") from None
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise PreflightError(EXIT_UNREACHABLE, f"cannot reach the API server {cluster.server}: "
                             f"{_reason(e)}; check the server address in the kubeconfig, the network "
                             "and that the cluster is up") from None
    try:
        kube.call(cluster.custom.get_cluster_custom_object, "user.openshift.io", "v1", "users", "~")
    except ApiException as e:
        if e.status == 401:
            raise PreflightError(EXIT_KUBECONFIG, f"the API server {cluster.server} rejected the credentials "
                                 "(401 Unauthorized); log in again (oc login) or give a kubeconfig "
                                 "with a valid token") from None


def _reason(e) -> str:
    inner = getattr(e, "reason", None) or e
    text = str(inner)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "CERTIFICATE_VERIFY_FAILED", "certificate verify failed"):
        if marker.lower() in text.lower():
            return marker
    return text.splitlines()[0][:200] if text else e.__class__.__name__


def check_openshift(cluster: Cluster) -> None:
    """The image registry operator's API must be served."""
    group, version, plural = CONFIG_GVR
    try:
        groups = kube.call(k8s.ApisApi(cluster.api_client).get_api_versions).groups or []
    except ApiException as e:
        if e.status == 403:
            raise PreflightError(EXIT_FORBIDDEN, "the user may not read the API discovery (/apis, 403): "
                                 "use a cluster-admin kubeconfig") from None
        raise
    served = {(g.name, v.version) for g in groups for v in (g.versions or [])}
    if (group, version) not in served:
        raise PreflightError(EXIT_NOT_OPENSHIFT, f"{cluster.server} is not an OpenShift cluster with the image "
                             f"registry operator (no {group}/{version} API, so no {plural}); point "
                             "--kubeconfig at an OpenShift cluster")


def _review(api, verb, group, resource, subresource="", namespace=None, name=None) -> bool:
    body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
        resource_attributes=k8s.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                     namespace=namespace, subresource=subresource or None,
                                                     name=name)))
    review = kube.call(api.create_self_subject_access_review, body)
    return bool(review.status and review.status.allowed)


def _holds_role(cluster: Cluster, api, role: str) -> bool:
    """Whether the user holds every rule of ClusterRole `role` (then binding it needs no `bind`)."""
    try:
        obj = kube.call(k8s.RbacAuthorizationV1Api(cluster.api_client).read_cluster_role, role)
    except ApiException:
        return False
    for rule in obj.rules or []:
        for g in rule.api_groups or [""]:
            for res in rule.resources or []:
                resource, _, sub = res.partition("/")
                for v in rule.verbs or []:
                    for n in rule.resource_names or [None]:
                        if not _review(api, v, g, resource, sub, None, n):
                            return False
    return True


def missing_rights(cluster: Cluster, wanted) -> list[rights.Right]:
    """The rights of `wanted` (utilities/rights.py) that SelfSubjectAccessReviews refuse."""
    api = k8s.AuthorizationV1Api(cluster.api_client)
    missing = []
    for r in wanted:
        if _review(api, r.verb, r.group, r.resource, r.subresource, r.namespace, r.name):
            continue
        if r.alternative_role and _holds_role(cluster, api, r.alternative_role):
            continue
        missing.append(r)
    return missing


def whoami(cluster: Cluster) -> str:
    try:
        user = kube.call(cluster.custom.get_cluster_custom_object, "user.openshift.io", "v1", "users", "~")
        return (user.get("metadata") or {}).get("name") or "?"
    except ApiException:
        return "?"


def check_rights(cluster: Cluster, *, destructive: bool, run_namespace: str | None = None) -> None:
    """Every right of utilities/rights.py the run needs (all of them for a run that may change the
    cluster), each checked with a SelfSubjectAccessReview."""
    missing = missing_rights(cluster, rights.needed(destructive, run_namespace))
    if missing:
        who = whoami(cluster)
        shown = f"{missing[0]} ({missing[0].why})" + "".join(f", {r}" for r in missing[1:2]) + \
            (f" and {len(missing) - 2} more" if len(missing) > 2 else "")
        raise PreflightError(EXIT_FORBIDDEN, f"user {who} is not allowed to {shown} (403); run as cluster-admin "
                             f"(oc adm policy add-cluster-role-to-user cluster-admin {who}), grant the role of "
                             "`python -m utilities rights --yaml`, or use another --context")


def check_run_namespaces(cluster: Cluster, run_namespace: str) -> None:
    """--run-namespace names namespaces that must exist already (the run never creates or deletes one).
    Looked up with `list namespaces`, a right every run has (leftovers)."""
    for ns in (run_namespace, rights.outsider_namespace(run_namespace)):
        found = kube.call(cluster.core.list_namespace, field_selector=f"metadata.name={ns}").items
        if not found:
            raise PreflightError(EXIT_USAGE, f"--run-namespace={run_namespace}: namespace {ns} does not exist; "
                                 "create it and grant the run's rights there (deploy/namespace.yaml, "
                                 "deploy/rbac.yaml), or leave --run-namespace out to let the run make its own "
                                 "test namespaces (needs namespace create/delete)")


def run(kubeconfig, context: str | None, *, destructive: bool, run_namespace: str | None = None,
        **kwargs) -> Cluster:
    """All checks, in order; returns the connected Cluster or raises PreflightError."""
    cluster = connect(kubeconfig, context, **kwargs)
    try:
        check_openshift(cluster)
        check_rights(cluster, destructive=destructive, run_namespace=run_namespace)
        if run_namespace:
            check_run_namespaces(cluster, run_namespace)
    except BaseException:
        cluster.api_client.close()
        raise
    return cluster
