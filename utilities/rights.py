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

Where a right is needed can depend on `--run-namespace` (`Right.where`, `needed(..., run_namespace)`):
without it the run makes test namespaces with generated names, so its ServiceAccounts, tokens and
RoleBindings are rights in every namespace, and leftovers are looked for everywhere; with it they are
rights in that namespace (and its outsider namespace), leftovers are looked for where the run makes
them, and no namespace is created or deleted. deploy/manifests.py renders the second form.

    python -m utilities rights            # the list, one line each
    python -m utilities rights --yaml     # the ClusterRole + ClusterRoleBinding to apply
    python -m utilities rights --run-namespace=NS --yaml --user=U   # the Roles and the ClusterRole
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

REGISTRY_NS = "openshift-image-registry"
RBAC = "rbac.authorization.k8s.io"
IMAGEREGISTRY = "imageregistry.operator.openshift.io"
CONFIG = "config.openshift.io"
ODF_NS = "openshift-storage"          # utilities/backends.py ODF_NAMESPACE: the ObjectBucketClaims' home
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
    # Where the right is needed when that depends on --run-namespace (see `needed`): "" as listed.
    where: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        if self.subresource:
            res += f"/{self.subresource}"
        if self.name:
            res += f" {self.name!r}"
        return f"{self.verb} {res}" + (f" in {self.namespace}" if self.namespace else "")


# `Right.where` markers.
TEST = "test"                          # the run's test namespaces (ServiceAccounts, bindings, tokens)
NEW_NAMESPACES = "new-namespaces"      # only when the run makes its own test namespaces
RUN_NAMESPACE_ONLY = "run-namespace"   # only with --run-namespace, in it (and its outsider namespace)
LEFTOVERS = "leftovers"                # every namespace; with --run-namespace those of LEFTOVER_NAMESPACES

# With --run-namespace, where the run makes labelled objects of each kind, so where leftovers of an
# earlier run can be (utilities/leftovers.py lists them there instead of in every namespace; the run's
# ServiceAccounts and RoleBindings are looked for in the run's namespaces).
LEFTOVER_NAMESPACES = {
    "persistentvolumeclaims": (REGISTRY_NS,),
    "secrets": (REGISTRY_NS,),
    "configmaps": ("openshift-config",),
    "services": (REGISTRY_NS,),
    "pods": (REGISTRY_NS,),
    "objectbucketclaims": (ODF_NS,),
}


def outsider_namespace(run_namespace: str) -> str:
    """The second namespace a --run-namespace run uses: home of the ServiceAccount that the registry
    must refuse (tests/test_registry_access.py), which needs a namespace other than the images'."""
    return f"{run_namespace}-outsider"


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
    *_r("get", "", "nodes", "the node of a registry pod (the RWO probe picks another one)"),
    *_r("list,watch", "", "events", "causes of a failing rollout (ProvisioningFailed, FailedScheduling...)",
        namespace=REGISTRY_NS, readonly=True),
    *_r("get,list", "route.openshift.io", "routes", "the registry route default-route", namespace=REGISTRY_NS,
        readonly=True),
    *_r("get", "", "configmaps", "the ingress CA (default-ingress-cert)", namespace="openshift-config-managed",
        readonly=True),
    *_r("get", "", "configmaps", "the service CA (openshift-service-ca.crt) for the per-replica pulls",
        namespace=REGISTRY_NS),
    *_r("list", "storage.k8s.io", "storageclasses", "which backends the cluster can provide", readonly=True),
    # --- what the pre-upgrade review reads (utilities/preupgrade/gather.py) and the PDB check ---
    *_r("get", IMAGEREGISTRY, "imagepruners", "the image pruner (pre-upgrade review)", name="cluster", readonly=True),
    *_r("get", CONFIG, "proxies", "the cluster proxy (pre-upgrade review)", name="cluster", readonly=True),
    *_r("get", "apps", "daemonsets", "node-ca, the registry CA on every node (pre-upgrade review)", name="node-ca",
        namespace=REGISTRY_NS, readonly=True),
    *_r("get", "batch", "cronjobs", "the image pruner's CronJob (pre-upgrade review)", name="image-pruner",
        namespace=REGISTRY_NS, readonly=True),
    *_r("list", "batch", "jobs", "the image pruner's last runs (pre-upgrade review)", namespace=REGISTRY_NS,
        readonly=True),
    *_r("get,list", "policy", "poddisruptionbudgets", "every PodDisruptionBudget over the registry's pods "
        "(node drains; the pdb check lists them all: a budget someone added blocks a drain too)",
        namespace=REGISTRY_NS, readonly=True),
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
        "the buckets of the S3 backends (ODF)", namespace=ODF_NS),
    *_r("get", "", "secrets", "an ObjectBucketClaim's keys (its Secret, beside the claim)", namespace=ODF_NS),
    *_r("list,watch", "", "events", "why an ObjectBucketClaim does not bind", namespace=ODF_NS),
    *_r("get", "route.openshift.io", "routes", "the S3 routes (regionEndpoint)", namespace=ODF_NS),
    # --- the registry Deployment ---
    *_r("patch", "apps", "deployments", "the manual-edit check: an edit the operator must revert",
        name="image-registry", namespace=REGISTRY_NS),
    *_r("list", "apps", "replicasets", "a rollout is settled when the old ReplicaSets are scaled down",
        namespace=REGISTRY_NS),
    *_r("get", "", "services", "Removed leaves nothing: the registry Service", name="image-registry",
        namespace=REGISTRY_NS),
    *_r("watch", "", "services", "Removed leaves nothing: wait for the Service to go", namespace=REGISTRY_NS),
    *_r("get", "", "serviceaccounts", "Removed leaves nothing: the registry's ServiceAccount", name="registry",
        namespace=REGISTRY_NS),
    *_r("watch", "", "secrets", "Removed leaves nothing: wait for the registry's Secrets to go",
        namespace=REGISTRY_NS),
    # --- the registry pods ---
    *_r("delete", "", "pods", "restart the registry pods (persistence checks)", namespace=REGISTRY_NS),
    *_r("create", "", "pods", "the ReadWriteOnce probe: a pod on another node mounting the block claim",
        namespace=REGISTRY_NS),
    *_r("create", "", "pods", "pull from each replica through a port-forward", subresource="portforward",
        namespace=REGISTRY_NS),
    # --- the run's test namespaces and registry identities (utilities/registry_access.py) ---
    # TEST: in the run's test namespaces. Without --run-namespace their names are generated, so these
    # are rights in every namespace; with it, in that namespace and its outsider namespace only.
    *_r("create,delete", "", "namespaces", "the run's test namespaces (images are pushed there)",
        where=NEW_NAMESPACES),
    *_r("create,delete", "", "serviceaccounts", "the run's ServiceAccounts in its test namespace", where=TEST),
    *_r("create", "", "serviceaccounts", "TokenRequest tokens for them (push and pull)", subresource="token",
        where=TEST),
    *_r("create,delete", RBAC, "rolebindings", "bind them to system:image-builder / system:image-puller",
        where=TEST),
    Right("bind", RBAC, "clusterroles", "RoleBindings to system:image-builder (RBAC escalation check)",
          name="system:image-builder", alternative_role="system:image-builder", where=TEST),
    Right("bind", RBAC, "clusterroles", "RoleBindings to system:image-puller (RBAC escalation check)",
          name="system:image-puller", alternative_role="system:image-puller", where=TEST),
    *_r("get", RBAC, "clusterroles", "read a ClusterRole's rules when bind is not granted (preflight)"),
    # --- what is in the registry, and what pushes leave behind ---
    *_r("list", "image.openshift.io", "imagestreams", "is the registry in use (image streams in user namespaces)"),
    *_r("list,delete", "image.openshift.io", "images", "remove the Image objects the run's pushes created"),
    *_r("delete", "image.openshift.io", "imagestreams", "remove the image streams the run's pushes created "
        "in --run-namespace (without it, deleting the test namespace removes them)", where=RUN_NAMESPACE_ONLY),
    # --- leftovers of earlier runs (labelled objects): in every namespace, or with --run-namespace in
    # the namespaces where the run makes objects of that kind (utilities/leftovers.py) ---
    *_r("list", "", "namespaces", "leftovers of earlier runs", readonly=True),
    *_r("list", "", "persistentvolumeclaims", "leftovers of earlier runs", readonly=True, where=LEFTOVERS),
    *_r("list", "", "secrets", "leftovers of earlier runs", readonly=True, where=LEFTOVERS),
    *_r("list", "", "configmaps", "leftovers of earlier runs", readonly=True, where=LEFTOVERS),
    *_r("list", "", "services", "leftovers of earlier runs", readonly=True, where=LEFTOVERS),
    *_r("list", "", "pods", "leftovers of earlier runs", readonly=True, where=LEFTOVERS),
    *_r("list", "objectbucket.io", "objectbucketclaims", "leftovers of earlier runs", readonly=True,
        where=LEFTOVERS),
    *_r("list", "", "serviceaccounts", "leftovers of earlier runs in --run-namespace", readonly=True,
        where=RUN_NAMESPACE_ONLY),
    *_r("list", RBAC, "rolebindings", "leftovers of earlier runs in --run-namespace", readonly=True,
        where=RUN_NAMESPACE_ONLY),
]


def _placed(r: Right, run_namespace: str | None) -> list[Right]:
    """Right `r` where a run with (or without) --run-namespace needs it."""
    if not r.where:
        return [r]
    if run_namespace is None:
        return [] if r.where == RUN_NAMESPACE_ONLY else [r]
    if r.where == NEW_NAMESPACES:
        return []
    if r.where in (TEST, RUN_NAMESPACE_ONLY):
        # The outsider namespace holds one ServiceAccount without roles: no bindings, no images there.
        both = r.resource == "serviceaccounts"
        namespaces = (run_namespace, outsider_namespace(run_namespace)) if both else (run_namespace,)
        return [dataclasses.replace(r, namespace=ns) for ns in namespaces]
    return [dataclasses.replace(r, namespace=ns) for ns in LEFTOVER_NAMESPACES[r.resource]]


def needed(destructive: bool, run_namespace: str | None = None) -> list[Right]:
    """The rights of a run: all of them when it may change the cluster, else the readonly ones. With
    `run_namespace` (--run-namespace: an existing namespace for the run's own objects) no namespace is
    created or deleted and the rights in the run's namespaces are granted there only."""
    return [p for r in RIGHTS if r.readonly or destructive for p in _placed(r, run_namespace)]


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


def _subject(subject: dict) -> dict:
    s = {k: v for k, v in subject.items() if v is not None}
    if s.get("kind") in ("User", "Group"):
        s.setdefault("apiGroup", RBAC)
    return s


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
        docs.append({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": name, "labels": labels},
                     "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                     "subjects": [_subject(subject)]})
    return docs


def namespaced_roles(rights: Iterable[Right], name: str = ROLE_NAME, subject: dict | None = None) -> list[dict]:
    """A Role (and, with `subject`, a RoleBinding) in each namespace the rights name; rights without a
    namespace are left out (they go to the ClusterRole: `cluster_role(granted=...)`)."""
    by_ns: dict[str, list[Right]] = {}
    for r in rights:
        if r.namespace:
            by_ns.setdefault(r.namespace, []).append(r)
    labels = {"app.kubernetes.io/name": "registry-conformance"}
    out = []
    for ns, granted in sorted(by_ns.items()):
        out.append({"apiVersion": f"{RBAC}/v1", "kind": "Role",
                    "metadata": {"name": name, "namespace": ns, "labels": labels}, "rules": rules(granted)})
        if subject is not None:
            out.append({"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
                        "metadata": {"name": name, "namespace": ns, "labels": labels},
                        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
                        "subjects": [_subject(subject)]})
    return out


def least_privilege(run_namespace: str, destructive: bool = True, name: str = ROLE_NAME,
                    subject: dict | None = None) -> list[dict]:
    """The RBAC of a --run-namespace run: a ClusterRole with only the rights that name no namespace
    (cluster-scoped objects, and the few cluster-wide reads: namespaces, image streams), and a Role in
    each namespace the run touches for the rest."""
    wanted = needed(destructive, run_namespace)
    return (cluster_role(destructive, name, subject, granted=[r for r in wanted if not r.namespace])
            + namespaced_roles(wanted, name, subject))


def describe(rights: Iterable[Right]) -> str:
    return "\n".join(f"{r!s:70} {r.why}" for r in rights)
