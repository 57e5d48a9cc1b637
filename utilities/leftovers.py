"""What earlier runs of the suite left on the cluster (objects carrying the suite's label), and the
sweep that removes them.

Found by label (`utilities.labels`), across the kinds the suite creates. Objects inside a leftover
namespace are not listed separately (deleting the namespace deletes them); objects already being
deleted are not leftovers. The cluster lock (a Lease) is never a leftover: `unlock` handles it.
"""
from __future__ import annotations

import dataclasses
import logging

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from utilities import kube, rights
from utilities.kube import Cluster
from utilities.labels import RUN_LABEL, SUITE_LABEL, SUITE_LABEL_VALUE, _label_value

log = logging.getLogger(__name__)

# Labels of objects made before utilities/labels.py existed (the first test namespaces).
LEGACY_SELECTORS = ("app.kubernetes.io/part-of=registry-conformance",)
LEGACY_RUN_LABELS = ("registry-conformance/run-id",)


@dataclasses.dataclass(frozen=True)
class Leftover:
    kind: str
    api_version: str
    namespace: str | None
    name: str
    run_id: str

    def __str__(self):
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} (run {self.run_id or '?'})"


OBC = {"group": "objectbucket.io", "version": "v1alpha1", "plural": "objectbucketclaims"}


def _listers(cluster: Cluster):
    """Every namespace (a run that makes its own test namespaces, with cluster-wide rights)."""
    core = cluster.core
    storage = k8s.StorageV1Api(cluster.api_client)
    yield "v1", "Namespace", core.list_namespace, {}
    yield "v1", "PersistentVolumeClaim", core.list_persistent_volume_claim_for_all_namespaces, {}
    yield "v1", "Secret", core.list_secret_for_all_namespaces, {}
    yield "v1", "ConfigMap", core.list_config_map_for_all_namespaces, {}
    yield "v1", "Service", core.list_service_for_all_namespaces, {}
    yield "v1", "Pod", core.list_pod_for_all_namespaces, {}
    yield "v1", "PersistentVolume", core.list_persistent_volume, {}
    yield "storage.k8s.io/v1", "StorageClass", storage.list_storage_class, {}
    yield "objectbucket.io/v1alpha1", "ObjectBucketClaim", cluster.custom.list_cluster_custom_object, OBC


def _scoped_listers(cluster: Cluster, run_namespace: str):
    """With --run-namespace: each namespaced kind only where the run makes objects of it
    (rights.LEFTOVER_NAMESPACES, the run's ServiceAccounts in its two namespaces, its RoleBindings),
    which is where its rights let it list them (no cluster-wide list of secrets)."""
    core = cluster.core
    rbac = k8s.RbacAuthorizationV1Api(cluster.api_client)
    storage = k8s.StorageV1Api(cluster.api_client)
    yield "v1", "Namespace", core.list_namespace, {}
    yield "v1", "PersistentVolume", core.list_persistent_volume, {}
    yield "storage.k8s.io/v1", "StorageClass", storage.list_storage_class, {}
    namespaced = {"persistentvolumeclaims": ("v1", "PersistentVolumeClaim", core.list_namespaced_persistent_volume_claim),
                  "secrets": ("v1", "Secret", core.list_namespaced_secret),
                  "configmaps": ("v1", "ConfigMap", core.list_namespaced_config_map),
                  "services": ("v1", "Service", core.list_namespaced_service),
                  "pods": ("v1", "Pod", core.list_namespaced_pod)}
    for resource, namespaces in rights.LEFTOVER_NAMESPACES.items():
        for ns in namespaces:
            if resource == "objectbucketclaims":
                yield ("objectbucket.io/v1alpha1", "ObjectBucketClaim", cluster.custom.list_namespaced_custom_object,
                       dict(OBC, namespace=ns))
            else:
                api_version, kind, fn = namespaced[resource]
                yield api_version, kind, fn, {"namespace": ns}
    for ns in (run_namespace, rights.outsider_namespace(run_namespace)):
        yield "v1", "ServiceAccount", core.list_namespaced_service_account, {"namespace": ns}
    yield f"{rights.RBAC}/v1", "RoleBinding", rbac.list_namespaced_role_binding, {"namespace": run_namespace}


def _items(cluster, result) -> list[dict]:
    if isinstance(result, dict):
        return result.get("items") or []
    return [cluster.api_client.sanitize_for_serialization(i) for i in result.items]


def find_leftovers(cluster: Cluster, *, run_id: str | None = None, exclude_run: str | None = None,
                   run_namespace: str | None = None) -> list[Leftover]:
    """Objects labelled by the suite: of the run `run_id` only, or of every run but `exclude_run`; in
    every namespace, or with `run_namespace` (--run-namespace) where such a run makes them."""
    selectors = [f"{SUITE_LABEL}={SUITE_LABEL_VALUE}"]
    if run_id:
        selectors = [f"{selectors[0]},{RUN_LABEL}={_label_value(run_id)}"]
        selectors += [f"{s},{lbl}={_label_value(run_id)}" for s in LEGACY_SELECTORS for lbl in LEGACY_RUN_LABELS]
    else:
        selectors += list(LEGACY_SELECTORS)
    excluded = _label_value(exclude_run) if exclude_run else None
    found: dict[tuple, Leftover] = {}
    listers = _scoped_listers(cluster, run_namespace) if run_namespace else _listers(cluster)
    for api_version, kind, fn, kwargs in listers:
        for sel in selectors:
            try:
                result = kube.call(fn, label_selector=sel, **kwargs)
            except ApiException as e:
                if e.status in (404, 403):      # API or namespace absent (no ODF), or not ours to see
                    break
                raise
            for item in _items(cluster, result):
                meta = item.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    continue
                labels = meta.get("labels") or {}
                rid = labels.get(RUN_LABEL) or next((labels[k] for k in LEGACY_RUN_LABELS if k in labels), "")
                if excluded and rid == excluded:
                    continue
                key = (kind, meta.get("namespace"), meta.get("name"))
                found[key] = Leftover(kind, api_version, meta.get("namespace"), meta.get("name"), rid)
    namespaces = {lo.name for lo in found.values() if lo.kind == "Namespace"}
    return sorted((lo for lo in found.values() if lo.namespace not in namespaces),
                  key=lambda lo: (lo.kind != "Namespace", lo.kind, lo.namespace or "", lo.name))


def delete_leftovers(cluster: Cluster, leftovers: list[Leftover]) -> list[str]:
    """Delete them (namespaced objects first, namespaces last); returns what was deleted."""
    from utilities.snapshot import delete_object
    done = []
    for lo in sorted(leftovers, key=lambda lo: lo.kind == "Namespace"):
        if delete_object(cluster, lo.api_version, lo.kind, lo.namespace, lo.name):
            done.append(str(lo))
    return done


def summary(leftovers: list[Leftover], limit: int = 5) -> str:
    shown = ", ".join(str(lo) for lo in leftovers[:limit])
    more = f" and {len(leftovers) - limit} more" if len(leftovers) > limit else ""
    return f"{len(leftovers)} leftover object(s) of earlier runs: {shown}{more}"
