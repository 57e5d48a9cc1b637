"""Registries the run must not touch, checked before its first change (issue 7, items 5 and 6).

- **In use** (`registry_in_use`): the Config is Managed with storage, or image streams in user
  namespaces hold images pushed to the internal registry. The run switches the storage from backend to
  backend and ends by removing the registry: images pushed meanwhile are lost, pulls fail. Refused
  unless `--allow-registry-outage`.
- **Unmanaged** (`unmanaged`, operator-facts.md §12.6): the operator ignores the Config, so nothing the
  run sets takes effect, and putting back an Unmanaged original leaves the Deployment as the last test
  left it. Refused always: nothing can be certified there.

Both raise `preflight.PreflightError` (one line: what was found, what to do) with their own exit status.
"""
from __future__ import annotations

from utilities import kube
from utilities.kube import Cluster
from kubernetes.client.exceptions import ApiException

from utilities.labels import SUITE_LABEL, SUITE_LABEL_VALUE
from utilities.preflight import PreflightError

EXIT_IN_USE = 14
EXIT_UNMANAGED = 15

IMAGESTREAM_GVR = ("image.openshift.io", "v1", "imagestreams")
INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"
SYSTEM_NAMESPACE_PREFIXES = ("openshift-", "kube-")
SYSTEM_NAMESPACES = {"openshift", "default", "kube-system", "kube-public", "kube-node-lease"}
SHOWN = 5


def _configured_storage(spec: dict) -> dict:
    return {k: v for k, v in (spec.get("storage") or {}).items() if k != "managementState"}


def _suite_namespaces(cluster: Cluster) -> set[str]:
    sel = f"{SUITE_LABEL}={SUITE_LABEL_VALUE}"
    return {n.metadata.name for n in kube.call(cluster.core.list_namespace, label_selector=sel).items}


def images_in_user_namespaces(cluster: Cluster, ours=()) -> list[tuple[str, int]]:
    """[("ns/stream", tags holding internal-registry images)] for image streams outside the system
    namespaces and the suite's own (labelled, or `ours`: the --run-namespace ones); streams that only
    import from elsewhere do not count."""
    try:
        lst = kube.call(cluster.custom.list_cluster_custom_object, *IMAGESTREAM_GVR)
    except ApiException as e:
        if e.status == 404:      # no image API (not OpenShift): nothing to lose
            return []
        raise
    ours = _suite_namespaces(cluster) | set(ours)
    out = []
    for s in lst.get("items") or []:
        meta = s.get("metadata") or {}
        ns = meta.get("namespace") or ""
        if ns in SYSTEM_NAMESPACES or ns.startswith(SYSTEM_NAMESPACE_PREFIXES) or ns in ours:
            continue
        status = s.get("status") or {}
        repo = status.get("dockerImageRepository") or f"{INTERNAL_REGISTRY}/{ns}/{meta.get('name')}"
        held = 0
        for tag in status.get("tags") or []:
            if any(str(i.get("dockerImageReference") or "").startswith((repo, INTERNAL_REGISTRY))
                   for i in tag.get("items") or []):
                held += 1
        if held:
            out.append((f"{ns}/{meta.get('name')}", held))
    return sorted(out)


def registry_in_use(cluster: Cluster, config: dict | None = None, ours=()) -> str | None:
    """What shows the registry in service (None: nothing)."""
    config = config if config is not None else cluster.registry_config() or {}
    spec = config.get("spec") or {}
    found = []
    storage = _configured_storage(spec)
    if spec.get("managementState") == "Managed" and storage:
        kind = next(iter(storage))
        detail = storage[kind] if isinstance(storage[kind], dict) else {}
        what = ", ".join(f"{k} {v}" for k, v in detail.items() if v not in ("", None, {}))
        found.append(f"the Config is Managed with storage {kind}" + (f" ({what})" if what else ""))
    streams = images_in_user_namespaces(cluster, ours)
    if streams:
        shown = ", ".join(f"{n} ({t} tag{'s' if t != 1 else ''})" for n, t in streams[:SHOWN])
        more = f" and {len(streams) - SHOWN} more" if len(streams) > SHOWN else ""
        found.append(f"{len(streams)} image stream(s) in user namespaces hold images pushed to it: {shown}{more}")
    if not found:
        return None
    return "; ".join(found)


def check_not_in_use(cluster: Cluster, allow_outage: bool, config: dict | None = None, ours=()) -> str | None:
    """Raise PreflightError(EXIT_IN_USE) when the registry is in use and the outage is not allowed;
    returns what was found (for the report) when it is allowed."""
    found = registry_in_use(cluster, config, ours)
    if found and not allow_outage:
        raise PreflightError(EXIT_IN_USE, (
            f"the image registry is in use: {found}. The run switches its storage and removes it at the end "
            "(images pushed meanwhile are lost, pulls fail): run it on a cluster whose registry is not in "
            "service, or pass --allow-registry-outage to take this one out of service"))
    return found


def unmanaged(config: dict | None) -> str | None:
    spec = (config or {}).get("spec") or {}
    if spec.get("managementState") == "Unmanaged":
        return ("the image registry Config is Unmanaged: the operator ignores it, so nothing the run sets would "
                "take effect and the registry could not be put back as it was (operator-facts.md §12.6); set "
                "spec.managementState to Managed or Removed first, or run on another cluster")
    return None


def check_not_unmanaged(config: dict | None) -> None:
    reason = unmanaged(config)
    if reason:
        raise PreflightError(EXIT_UNMANAGED, reason)
