"""The ONE list of the rights a run needs: preflight checks it (SelfSubjectAccessReviews), and
`cluster_role()` renders it as the RBAC the project ships (a ClusterRole and a ClusterRoleBinding), so the
two cannot drift apart.

Each `Right` is one verb on one resource: group, resource, subresource, namespace (None: the cluster, or
every namespace for a namespaced resource, e.g. the run's test namespace, which does not exist before the
run), name (None: any) and why the run needs it. `readonly` rights are needed by every run (also one
without --allow-destructive); the others by runs that may change the cluster.

Binding a ClusterRole (the run binds its ServiceAccounts to system:image-builder and
system:image-puller, utilities/registry_access.py) passes kube's RBAC escalation check only if the user
has `bind` on that ClusterRole, or already holds all of its rights in that namespace. The list asks for
`bind` on exactly those two (resourceNames), which is what a shipped role should grant; preflight accepts
either (`Right.alternative`: holding the role's own rights, e.g. cluster-admin).

    python -m utilities rights            # the list, one line each
    python -m utilities rights --yaml     # the ClusterRole + ClusterRoleBinding to apply
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

REGISTRY_NS = "openshift-image-registry"
RBAC = "rbac.authorization.k8s.io"
IMAGEREGISTRY = "imageregistry.operator.openshift.io"
CONFIG = "config.openshift.io"
ROLE_NAME = "registry-conformance-runner"


@dataclasses.dataclass(frozen=True)
class Right:
    verb: str
    group: str
    resource: str
    why: str
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    readonly: bool = False
    # A ClusterRole whose rules, if the user holds them all, make this right unnecessary (`bind`).
    alternative_role: str | None = None

    def __str__(self) -> str:
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.subresource:
            res += f"/{self.subresource}"
        if self.name:
            res += f" {self.name!r}"
        return f"{self.verb} {res}" + (f" in {self.namespace}" if self.namespace else "")


def _r(verbs: str, group: str, resource: str, why: str, **kw) -> list[Right]:
    return [Right(v, group, resource, why, **kw) for v in verbs.split(",")]


RIGHTS: list[Right] = [
    # --- the Config and what the operator reports (read by every run) ---
    *_r("get,list,watch", IMAGEREGISTRY, "configs", "read and watch the registry Config cluster", readonly=True),
    *_r("get,list,watch", CONFIG, "clusteroperators",
        "the image-registry ClusterOperator, and the control-plane operators a registry change rolls out",
        readonly=True),
    *_r("get", CONFIG, "infrastructures", "the vSphere ingress IPs; platform and infrastructure name (certificate)",
        readonly=True),
    *_r("get", CONFIG, "clusterversions", "the OpenShift version and cluster ID (certificate)", name="version",
        readonly=True),
    *_r("get,list,watch", CONFIG, "images", "images.config.openshift.io status (registry host names)"),
    *_r("get", "user.openshift.io", "users", "who the run is (users/~)", name="~", readonly=True),
    *_r("get,list,watch", "apps", "deployments", "the registry Deployment", namespace=REGISTRY_NS, readonly=True),
    *_r("get,list,watch", "", "pods", "the registry pods", namespace=REGISTRY_NS, readonly=True),
    *_r("get", "", "pods", "the registry pods' logs (a failed check's evidence)", subresource="log",
        namespace=REGISTRY_NS, readonly=True),
    *_r("list", "", "nodes", "where registry pods can run (spread over nodes, single-node, the RWO probe)",
        readonly=True),
    *_r("list,watch", "", "events", "causes of a failing rollout (ProvisioningFailed, FailedScheduling...)",
        namespace=REGISTRY_NS, readonly=True),
    *_r("get,list", "route.openshift.io", "routes", "the registry route default-route", namespace=REGISTRY_NS,
        readonly=True),
    *_r("get", "", "configmaps", "the ingress CA (default-ingress-cert)", namespace="openshift-config-managed",
        readonly=True),
    *_r("get", "", "configmaps", "the service CA (openshift-service-ca.crt) for the per-replica pulls",
        namespace=REGISTRY_NS),
    *_r("list", "storage.k8s.io", "storageclasses", "which backends the cluster can provide", readonly=True),
    # --- changing the Config (destructive runs) ---
    *_r("update,patch", IMAGEREGISTRY, "configs", "set managementState, storage, replicas, defaultRoute; restore"),
    # --- the cluster lock ---
    *_r("get,create,update,delete", "coordination.k8s.io", "leases", "the cluster lock registry-conformance-lock",
        namespace=REGISTRY_NS),
    # --- storage set-ups ---
    *_r("get,list,create,delete", "", "persistentvolumeclaims", "the claims of the PVC backends",
        namespace=REGISTRY_NS),
    *_r("get,list", "", "persistentvolumes", "the volume bound to a claim (capacity, access modes, claimRef)"),
    *_r("get,create,update,delete", "", "secrets",
        "image-registry-private-configuration-user (the S3 keys of the registry)", namespace=REGISTRY_NS),
    *_r("get", "", "secrets", "the default ingress certificate (the S3 routes' trustedCA)",
        namespace="openshift-ingress"),
    *_r("get,create,update,delete", "", "configmaps", "the S3 trustedCA config map", namespace="openshift-config"),
    *_r("get", "operator.openshift.io", "ingresscontrollers", "the default certificate's name",
        namespace="openshift-ingress-operator"),
    *_r("get,list,watch,create,delete", "objectbucket.io", "objectbucketclaims",
        "the buckets of the S3 backends (ODF)"),
    *_r("get", "", "secrets", "an ObjectBucketClaim's keys (its Secret, in the claim's namespace)"),
    *_r("get", "route.openshift.io", "routes", "the S3 routes (regionEndpoint)", namespace="openshift-storage"),
    # --- the registry pods ---
    *_r("delete", "", "pods", "restart the registry pods (persistence checks)", namespace=REGISTRY_NS),
    *_r("create", "", "pods", "the ReadWriteOnce probe: a pod on another node mounting the block claim",
        namespace=REGISTRY_NS),
    *_r("create", "", "pods", "pull from each replica through a port-forward", subresource="portforward",
        namespace=REGISTRY_NS),
    # --- the run's test namespaces and registry identities (utilities/registry_access.py) ---
    *_r("create,delete", "", "namespaces", "the run's test namespaces (images are pushed there)"),
    *_r("create,delete", "", "serviceaccounts", "the run's ServiceAccounts in its test namespace"),
    *_r("create", "", "serviceaccounts", "TokenRequest tokens for them (push and pull)", subresource="token"),
    *_r("create,delete", RBAC, "rolebindings", "bind them to system:image-builder / system:image-puller"),
    Right("bind", RBAC, "clusterroles", "RoleBindings to system:image-builder (RBAC escalation check)",
          name="system:image-builder", alternative_role="system:image-builder"),
    Right("bind", RBAC, "clusterroles", "RoleBindings to system:image-puller (RBAC escalation check)",
          name="system:image-puller", alternative_role="system:image-puller"),
    *_r("get", RBAC, "clusterroles", "read a ClusterRole's rules when bind is not granted (preflight)"),
    # --- what is in the registry, and what pushes leave behind ---
    *_r("list", "image.openshift.io", "imagestreams", "is the registry in use (image streams in user namespaces)"),
    *_r("delete", "image.openshift.io", "images", "remove the Image objects the run's pushes created"),
    # --- leftovers of earlier runs (labelled objects) ---
    *_r("list", "", "namespaces", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "persistentvolumeclaims", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "secrets", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "configmaps", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "services", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "pods", "leftovers of earlier runs", readonly=True),
    *_r("list", "objectbucket.io", "objectbucketclaims", "leftovers of earlier runs", readonly=True),
]


def needed(destructive: bool) -> list[Right]:
    return [r for r in RIGHTS if r.readonly or destructive]


def _key(r: Right):
    return (r.group, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.name)


def rules(rights: Iterable[Right]) -> list[dict]:
    """PolicyRules granting `rights` (namespaces are not part of a rule: see cluster_role)."""
    merged: dict[tuple, set] = {}
    for r in rights:
        merged.setdefault(_key(r), set()).add(r.verb)
    out = []
    for (group, resource, name), verbs in sorted(merged.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        rule = {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        if name:
            rule["resourceNames"] = [name]
        out.append(rule)
    return out


def cluster_role(destructive: bool = True, name: str = ROLE_NAME, subject: dict | None = None,
                 granted: Iterable[Right] | None = None) -> list[dict]:
    """The RBAC manifests that grant a run what it needs: one ClusterRole (rights in a namespace are granted
    cluster-wide: the test namespace's name is generated, and the ODF claim namespaces vary; narrowing
    them to namespaced Roles is possible for the rights that name a fixed namespace) and, when `subject`
    is given ({"kind": "User"|"Group"|"ServiceAccount", "name": ..., "namespace": ...}), a ClusterRoleBinding.
    `granted`: the rights the role holds instead of `needed(destructive)` (deploy/manifests.py moves the
    rights in fixed namespaces to Roles there and passes the rest)."""
    labels = {"app.kubernetes.io/name": "registry-conformance"}
    docs = [{"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
             "metadata": {"name": name, "labels": labels,
                          "annotations": {"registry-conformance.openshift.io/description":
                                          "what a registry conformance run needs (utilities/rights.py)"}},
             "rules": rules(needed(destructive) if granted is None else granted)}]
    if subject is not None:
        s = {k: v for k, v in subject.items() if v is not None}
        if s.get("kind") in ("User", "Group"):
            s.setdefault("apiGroup", RBAC)
        docs.append({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": name, "labels": labels},
                     "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                     "subjects": [s]})
    return docs


def describe(rights: Iterable[Right]) -> str:
    return "\n".join(f"{r!s:70} {r.why}" for r in rights)
