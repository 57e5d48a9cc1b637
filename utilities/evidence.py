"""Evidence of the registry's state when a check fails: the objects and logs a person would look at.

`collect(cluster)` returns {name: text}: the Config and the ClusterOperator (YAML), the registry
Deployment, pods and PVCs in openshift-image-registry, the namespace's events (newest last) and the
tail of each registry pod's log; every text passes through `utilities/redact.py`. Each part is read on
its own: one that cannot be read says why instead of hiding the others.
"""
from __future__ import annotations

import yaml

from utilities import kube, redact
from utilities.kube import CLUSTEROPERATOR_GVR, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE, REGISTRY_POD_SELECTOR

LOG_LINES = 200
EVENTS = 60


def _yaml(obj) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=160)


def _strip(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    return obj


def _events_text(events: list[dict]) -> str:
    def when(e):
        return e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""
    rows = []
    for e in sorted(events, key=when)[-EVENTS:]:
        inv = e.get("involvedObject") or {}
        rows.append(f"{when(e)}  {e.get('type', '')}  {inv.get('kind')}/{inv.get('name')}  {e.get('reason')}: "
                    f"{e.get('message', '')}" + (f" (x{e['count']})" if (e.get("count") or 1) > 1 else ""))
    return "\n".join(rows) or "no events"


def collect(cluster, namespace: str = REGISTRY_NAMESPACE) -> dict[str, str]:
    plain = cluster.api_client.sanitize_for_serialization
    out: dict[str, str] = {}

    def part(name, fn):
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - evidence must never hide the failure it documents
            out[name] = f"could not read: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    part("Config cluster.yaml", lambda: _yaml(_strip(cluster.registry_config() or {"absent": True})))
    part("ClusterOperator image-registry.yaml",
         lambda: _yaml(_strip(cluster.get_cluster_object(CLUSTEROPERATOR_GVR, "image-registry") or {"absent": True})))

    def deployment():
        dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, namespace)
        return _yaml(_strip(plain(dep))) if dep is not None else "the Deployment image-registry does not exist"
    part("Deployment image-registry.yaml", deployment)

    pods: list[dict] = []

    def pods_text():
        items = plain(kube.call(cluster.core.list_namespaced_pod, namespace,
                                label_selector=REGISTRY_POD_SELECTOR)).get("items", [])
        pods.extend(items)
        return _yaml([_strip(p) for p in items]) if items else "no registry pods"
    part("registry pods.yaml", pods_text)
    part("PVCs.yaml", lambda: _yaml([_strip(p) for p in plain(kube.call(
        cluster.core.list_namespaced_persistent_volume_claim, namespace)).get("items", [])]) or "no PVCs")
    part("events.txt", lambda: _events_text(plain(kube.call(cluster.core.list_namespaced_event, namespace))
                                            .get("items", [])))
    for p in pods[:4]:
        name = p["metadata"]["name"]
        part(f"log {name}.txt", lambda name=name: kube.call(cluster.core.read_namespaced_pod_log, name, namespace,
                                                            tail_lines=LOG_LINES) or "(empty log)")
    return {k: redact.redact(v) for k, v in out.items()}
