"""Who pushes and pulls: ServiceAccounts of the run's test namespace, with TokenRequest tokens.

The registry wants an OpenShift API token as the password of its token realm (operator-facts §12.10).
A kubeconfig with a client certificate (the installer's auth/kubeconfig, system:admin) has none, and a
user's own token is not what CI uses: the run makes a ServiceAccount in its test namespace, binds it to
`system:image-builder` (push: update imagestreams/layers; and pull) and `system:image-puller` with
RoleBindings, and asks the TokenRequest API (`serviceaccounts/<name>/token`) for a token. That works
the same for certificate and token kubeconfigs. The rights this needs are in utilities/rights.py
(create serviceaccounts, serviceaccounts/token and rolebindings, and `bind` on the two ClusterRoles,
or holding their rights: kube's RBAC escalation check).

    with service_account(cluster, ns, "pusher", [IMAGE_BUILDER, IMAGE_PULLER], labels) as who:
        RegistryClient(host, ca_file=..., token=who.token())
"""
from __future__ import annotations

import contextlib
import datetime
import json
import threading
from typing import Iterator

from kubernetes.client.exceptions import ApiException

from utilities import kube, redact
from utilities.kube import Cluster

IMAGE_BUILDER = "system:image-builder"
IMAGE_PULLER = "system:image-puller"
PUSHER = "registry-conformance-pusher"
TOKEN_SECONDS = 4 * 3600          # asked for; the API server may give less
REFRESH_BEFORE_SECONDS = 600      # a new token when the current one has less than this left
RBAC_GROUP = "rbac.authorization.k8s.io"


class IdentityError(AssertionError):
    """The run could not make its registry identity (one line: what and what to do)."""


def _message(e: ApiException) -> str:
    try:
        return json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError):
        return f"{e.status} {e.reason}"


class ServiceAccountIdentity:
    """A ServiceAccount and its current TokenRequest token (renewed before it expires)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, roles: tuple[str, ...] = ()):
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.roles = tuple(roles)
        self._token: str | None = None
        self._expires: datetime.datetime | None = None
        self._lock = threading.Lock()

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def describe(self) -> str:
        roles = ", ".join(self.roles) if self.roles else "no role"
        return f"{self.username} ({roles} in {self.namespace})"

    def __repr__(self) -> str:
        return f"ServiceAccountIdentity({self.username!r})"      # who, never the token

    def token(self) -> str:
        with self._lock:
            now = datetime.datetime.now(datetime.timezone.utc)
            if self._token is None or self._expires is None or \
                    (self._expires - now).total_seconds() < REFRESH_BEFORE_SECONDS:
                self._token, self._expires = request_token(self.cluster, self.namespace, self.name)
            return self._token


def request_token(cluster: Cluster, namespace: str, name: str,
                  seconds: int = TOKEN_SECONDS) -> tuple[str, datetime.datetime]:
    """A TokenRequest token for the ServiceAccount (registered for redaction) and its expiry."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds}}
    try:
        tr = kube.call(cluster.core.create_namespaced_service_account_token, name, namespace, body)
    except ApiException as e:
        raise IdentityError(f"TokenRequest for ServiceAccount {namespace}/{name} refused ({e.status}: "
                            f"{_message(e)}); the run needs create on serviceaccounts/token "
                            "(python -m utilities rights)") from None
    token = tr.status.token
    redact.register(token)
    expires = tr.status.expiration_timestamp
    if isinstance(expires, str):
        expires = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
    if expires is None:
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return token, expires


def bind(cluster: Cluster, namespace: str, sa_name: str, cluster_role: str, labels: dict) -> str:
    """RoleBinding of ClusterRole `cluster_role` to the ServiceAccount in `namespace`; returns its name."""
    name = f"{sa_name}-{cluster_role.replace('system:', '').replace(':', '-')}"
    body = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]}
    from kubernetes import client as k8s
    try:
        kube.call(k8s.RbacAuthorizationV1Api(cluster.api_client).create_namespaced_role_binding, namespace, body)
    except ApiException as e:
        hint = (f"; binding a ClusterRole needs bind on clusterroles/{cluster_role} or holding its rights"
                if e.status == 403 else "")
        raise IdentityError(f"cannot bind ClusterRole {cluster_role} to ServiceAccount {namespace}/{sa_name} "
                            f"({e.status}: {_message(e).splitlines()[0]}){hint}") from None
    return name


@contextlib.contextmanager
def service_account(cluster: Cluster, namespace: str, name: str, cluster_roles, labels: dict
                    ) -> Iterator[ServiceAccountIdentity]:
    """A labelled ServiceAccount in `namespace` bound (RoleBindings) to `cluster_roles`; deleted with its
    bindings at exit (the namespace's deletion would take them too)."""
    from kubernetes import client as k8s
    rbac = k8s.RbacAuthorizationV1Api(cluster.api_client)
    body = {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)}}
    try:
        kube.call(cluster.core.create_namespaced_service_account, namespace, body)
    except ApiException as e:
        raise IdentityError(f"cannot create ServiceAccount {namespace}/{name} ({e.status}: {_message(e)})") from None
    bindings = []
    try:
        for role in cluster_roles:
            bindings.append(bind(cluster, namespace, name, role, labels))
        yield ServiceAccountIdentity(cluster, namespace, name, tuple(cluster_roles))
    finally:
        for b in bindings:
            with contextlib.suppress(ApiException):
                kube.call(rbac.delete_namespaced_role_binding, b, namespace)
        with contextlib.suppress(ApiException):
            kube.call(cluster.core.delete_namespaced_service_account, name, namespace)


def registry_token(cluster: Cluster) -> str | None:
    """The token the suite pushes and pulls with: the run's ServiceAccount's, else the kubeconfig's."""
    who = cluster.registry_identity
    if who is not None:
        return who.token()
    return cluster.token or None
