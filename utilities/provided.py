"""Declared versus provided (issue 9), as plain judges on API objects (dicts as the API serves them):
each returns the list of differences, every one saying what was expected, what was found, and where.
Used by tests/test_declared_vs_provided.py; held against real clusters by selftests/realdata."""
from __future__ import annotations

REGISTRY_LABELS = {"docker-registry": "default"}
_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50,
          "k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15}


def quantity_bytes(q) -> int:
    """A Kubernetes storage quantity ("100Gi", "107374182400", "1.5Ti") in bytes."""
    q = str(q).strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if q.endswith(unit):
            return int(float(q[:-len(unit)]) * _UNITS[unit])
    return int(float(q))


def pdb_problems(pdb: dict, replicas: int) -> list[str]:
    """PodDisruptionBudget image-registry: minAvailable 1 with two or more replicas, 0 with one
    (operator-facts.md §4.1), no maxUnavailable, selecting docker-registry: default."""
    meta, spec = pdb.get("metadata") or {}, pdb.get("spec") or {}
    where = f"PodDisruptionBudget {meta.get('namespace')}/{meta.get('name')}"
    want = 1 if replicas > 1 else 0
    got = spec.get("minAvailable")
    out = []
    if str(got) != str(want):
        why = ("with one replica, minAvailable 1 makes every node drain (an upgrade) wait forever"
               if replicas == 1 else f"with {replicas} replicas one must stay available during a drain")
        out.append(f"{where}: spec.minAvailable {got!r}, expected {want} for spec.replicas {replicas} ({why})")
    if spec.get("maxUnavailable") is not None:
        out.append(f"{where}: spec.maxUnavailable {spec['maxUnavailable']!r}, expected unset")
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if selector != REGISTRY_LABELS:
        out.append(f"{where}: spec.selector.matchLabels {selector}, expected {REGISTRY_LABELS}")
    return out


def volume_problems(pvc: dict, pv: dict) -> list[str]:
    """The PV bound to a claim against the claim: capacity at least the request and equal to what the claim
    reports, the claim's access modes, its class, claimRef naming the claim (and its uid), Bound."""
    cm, cspec, cstat = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    vm, vspec, vstat = pv.get("metadata") or {}, pv.get("spec") or {}, pv.get("status") or {}
    where = f"PV {vm.get('name')} (bound to PVC {cm.get('namespace')}/{cm.get('name')})"
    out = []
    requested = ((cspec.get("resources") or {}).get("requests") or {}).get("storage")
    reported = (cstat.get("capacity") or {}).get("storage")
    provided = (vspec.get("capacity") or {}).get("storage")
    if not provided:
        out.append(f"{where}: spec.capacity.storage is empty")
    else:
        if requested and quantity_bytes(provided) < quantity_bytes(requested):
            out.append(f"{where}: spec.capacity.storage {provided} is less than the claim's request "
                       f"spec.resources.requests.storage {requested}")
        if reported and quantity_bytes(provided) != quantity_bytes(reported):
            out.append(f"{where}: spec.capacity.storage {provided}, but the claim reports status.capacity.storage "
                       f"{reported}")
    asked, modes = set(cspec.get("accessModes") or []), set(vspec.get("accessModes") or [])
    if not asked <= modes:
        out.append(f"{where}: spec.accessModes {sorted(modes)} lack the claim's spec.accessModes {sorted(asked - modes)}")
    if cstat.get("accessModes") and set(cstat["accessModes"]) != modes:
        out.append(f"{where}: spec.accessModes {sorted(modes)}, but the claim reports status.accessModes "
                   f"{sorted(cstat['accessModes'])}")
    if cspec.get("storageClassName") and vspec.get("storageClassName") != cspec["storageClassName"]:
        out.append(f"{where}: spec.storageClassName {vspec.get('storageClassName')!r}, the claim's is "
                   f"{cspec['storageClassName']!r}")
    ref = vspec.get("claimRef") or {}
    if (ref.get("namespace"), ref.get("name")) != (cm.get("namespace"), cm.get("name")) or \
            (ref.get("uid") and ref.get("uid") != cm.get("uid")):
        out.append(f"{where}: spec.claimRef {(ref.get('namespace'), ref.get('name'), ref.get('uid'))}, expected "
                   f"{(cm.get('namespace'), cm.get('name'), cm.get('uid'))}")
    if vstat.get("phase") != "Bound":
        out.append(f"{where}: status.phase {vstat.get('phase')}, expected Bound")
    return out
