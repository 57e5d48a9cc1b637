"""The resources the API server serves: a data-driven table.

Each `ResourceType` says where the resource lives (group, version, plural), whether it is namespaced,
its subresources, short names, whether it accepts strategic merge patches (built-in kinds do, custom
resources do not) and what happens to `status` on create.
"""
from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple = ()
    short_names: tuple = ()
    # Built-in (compiled-in) kinds accept strategic merge patch; CRD-backed kinds answer 415.
    strategic: bool = True
    # What `status` becomes on create: "clear" (dropped), "keep", or a dict (e.g. {"phase": "Pending"}).
    create_status: object = "clear"
    verbs: tuple = ALL_VERBS
    singular: str = ""
    categories: tuple = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple:
        return (self.group, self.version, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`, `configs.imageregistry.operator.openshift.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """`Pod`, `Deployment.apps`, `Config.imageregistry.operator.openshift.io` (used in Invalid)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def _r(group, version, kind, plural, namespaced=True, subs=(), short=(), strategic=True,
       create_status="clear", verbs=ALL_VERBS, categories=()):
    return ResourceType(group, version, kind, plural, namespaced, tuple(subs), tuple(short), strategic,
                        create_status, tuple(verbs), "", tuple(categories))


_CRD = dict(strategic=False)

RESOURCES: list[ResourceType] = [
    # core v1
    _r("", "v1", "Namespace", "namespaces", False, ("status", "finalize"), ("ns",),
       create_status={"phase": "Active"}),
    _r("", "v1", "Pod", "pods", True, ("status", "portforward", "exec"), ("po",), create_status={"phase": "Pending"},
       categories=("all",)),
    _r("", "v1", "Service", "services", True, ("status",), ("svc",), categories=("all",)),
    _r("", "v1", "Endpoints", "endpoints", True, (), ("ep",)),
    _r("", "v1", "ConfigMap", "configmaps", True, (), ("cm",)),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("status",), ("pvc",),
       create_status={"phase": "Pending"}),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ("status",), ("pv",),
       create_status={"phase": "Pending"}),
    _r("", "v1", "Node", "nodes", False, ("status",), ("no",), create_status="keep"),
    _r("", "v1", "Event", "events", True, (), ("ev",)),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ("token",), ("sa",)),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", True, ("status", "scale"), ("deploy",),
       categories=("all",)),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ("status", "scale"), ("rs",), categories=("all",)),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ("status",), ("ds",), categories=("all",)),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, ("status", "scale"), ("sts",),
       categories=("all",)),
    # batch (the image pruner's CronJob and its Jobs; issue 10)
    _r("batch", "v1", "CronJob", "cronjobs", True, ("status",), ("cj",), categories=("all",)),
    _r("batch", "v1", "Job", "jobs", True, ("status",), categories=("all",)),
    # policy, storage, coordination, events
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("status",), ("pdb",)),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, (), ("sc",)),
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    _r("events.k8s.io", "v1", "Event", "events", True, (), ("ev",)),
    # OpenShift config (CRDs, cluster-scoped)
    _r("config.openshift.io", "v1", "Infrastructure", "infrastructures", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "ClusterVersion", "clusterversions", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "ClusterOperator", "clusteroperators", False, ("status",), ("co",),
       **_CRD),
    _r("config.openshift.io", "v1", "Ingress", "ingresses", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "Proxy", "proxies", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "Image", "images", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "APIServer", "apiservers", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "Network", "networks", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "DNS", "dnses", False, ("status",), **_CRD),
    _r("config.openshift.io", "v1", "FeatureGate", "featuregates", False, ("status",), **_CRD),
    _r("operator.openshift.io", "v1", "IngressController", "ingresscontrollers", True, ("status", "scale"),
       **_CRD),
    _r("imageregistry.operator.openshift.io", "v1", "Config", "configs", False, ("status",), **_CRD),
    _r("imageregistry.operator.openshift.io", "v1", "ImagePruner", "imagepruners", False, ("status",),
       **_CRD),
    # OpenShift aggregated APIs (served by openshift-apiserver: strategic merge works)
    _r("route.openshift.io", "v1", "Route", "routes", True, ("status",), categories=("all",)),
    _r("image.openshift.io", "v1", "ImageStream", "imagestreams", True, ("status",), ("is",)),
    _r("image.openshift.io", "v1", "Image", "images", False),
    _r("user.openshift.io", "v1", "User", "users", False),
    # ODF object buckets (CRDs)
    _r("objectbucket.io", "v1alpha1", "ObjectBucketClaim", "objectbucketclaims", True, ("status",), ("obc",),
       **_CRD),
    _r("objectbucket.io", "v1alpha1", "ObjectBucket", "objectbuckets", False, ("status",), ("ob",), **_CRD),
    # RBAC (roles and bindings; the API server authorizes with them, localcluster/apiserver/rbac.py)
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # authorization
    _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
       verbs=("create",)),
]

# Subresources that are not a plain status: the kind they answer with.
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "finalize": ("", "v1", "Namespace"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "exec": ("", "v1", "PodExecOptions"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
# Subresources that are connections (WebSocket upgrades), not stored state: the verbs discovery lists.
CONNECT_SUBRESOURCES = {"portforward": ("create", "get"), "exec": ("create", "get")}


class Registry:
    """Look-ups over the table."""

    def __init__(self, resources=None):
        self.resources = list(resources or RESOURCES)
        self.by_path = {(r.group, r.version, r.plural): r for r in self.resources}
        self.groups: dict[str, list[str]] = {}
        for r in self.resources:
            versions = self.groups.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)

    def get(self, group, version, plural):
        return self.by_path.get((group, version, plural))

    def find_kind(self, api_version: str, kind: str):
        group, _, version = api_version.rpartition("/")
        for r in self.resources:
            if r.group == group and r.version == version and r.kind == kind:
                return r
        return None

    def in_group_version(self, group, version):
        return [r for r in self.resources if r.group == group and r.version == version]
