"""The configuration steps of the procedure, as context managers that undo what they changed.

Used by the fixtures (fixtures/registry.py) and usable as is from a notebook:

    with managed(cluster, timeout=300), storage(cluster, EMPTYDIR, timeout=300), default_route(cluster) as host:
        ...
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Callable, Iterator

from kubernetes.client.exceptions import ApiException

from utilities import kube, waits
from utilities.backends import Backend
from utilities.kube import CONFIG_GVR, CONFIG_NAME, REGISTRY_NAMESPACE, Cluster
from utilities.registry_client import RegistryClient

_ABSENT = object()


def replace_spec(cluster: Cluster, mutate: Callable[[dict], None], attempts: int = 10) -> dict:
    """GET the Config, mutate a copy of its spec, PUT it back (retrying on write conflicts)."""
    for i in range(attempts):
        obj = cluster.registry_config()
        if obj is None:
            raise LookupError(f"configs.imageregistry.operator.openshift.io/{CONFIG_NAME} not found")
        spec = copy.deepcopy(obj.get("spec") or {})
        mutate(spec)
        if spec == obj.get("spec"):
            return obj
        body = {k: obj[k] for k in ("apiVersion", "kind", "metadata")}
        body["spec"] = spec
        try:
            return kube.call(cluster.custom.replace_cluster_custom_object, *CONFIG_GVR, CONFIG_NAME, body)
        except ApiException as e:
            if e.status != 409 or i == attempts - 1:
                raise
            time.sleep(0.05 * (i + 1))
    raise AssertionError("unreachable")


def put_spec(cluster: Cluster, spec: dict) -> dict:
    """Make the spec exactly `spec` (stale keys vanish)."""
    def mutate(current):
        current.clear()
        current.update(copy.deepcopy(spec))
    return replace_spec(cluster, mutate)


@contextlib.contextmanager
def spec_fields(cluster: Cluster, **fields) -> Iterator[dict]:
    """Set top-level spec fields; on exit put back their earlier values (or remove them)."""
    before = {}

    def apply(spec):
        before.clear()
        for k, v in fields.items():
            before[k] = copy.deepcopy(spec[k]) if k in spec else _ABSENT
            spec[k] = copy.deepcopy(v)
    obj = replace_spec(cluster, apply)
    try:
        yield obj
    finally:
        def restore(spec):
            for k, v in before.items():
                if v is _ABSENT:
                    spec.pop(k, None)
                else:
                    spec[k] = copy.deepcopy(v)
        replace_spec(cluster, restore)


def wait_removed(cluster: Cluster, timeout: float) -> dict:
    obj = waits.wait_for_conditions(cluster, {"Available": ("True", "Removed"), "Progressing": ("False", "Removed"),
                                              "Degraded": ("False", None)}, timeout)
    waits.wait_for_deployment_gone(cluster, timeout)
    return obj


def wait_settled(cluster: Cluster, timeout: float) -> dict:
    """Wait until the registry reached the state its spec asks for."""
    obj = waits.wait_for_config_synced(cluster, timeout)
    state = (obj.get("spec") or {}).get("managementState")
    if state == "Removed":
        return wait_removed(cluster, timeout)
    if state == "Managed" and (obj.get("spec") or {}).get("storage"):
        waits.wait_for_rollout(cluster, timeout)
    return cluster.registry_config()


@contextlib.contextmanager
def management_state(cluster: Cluster, state: str, timeout: float) -> Iterator[dict]:
    """managementState = `state` for the block; the registry settles into it; then put back."""
    with spec_fields(cluster, managementState=state):
        if state == "Removed":
            obj = wait_removed(cluster, timeout)
        else:
            obj = waits.wait_for_config_synced(cluster, timeout)
        yield obj
    wait_settled(cluster, timeout)


def managed(cluster: Cluster, timeout: float):
    return management_state(cluster, "Managed", timeout)


@contextlib.contextmanager
def storage(cluster: Cluster, backend: Backend, timeout: float) -> Iterator[dict]:
    """Configure `backend` (spec.storage and its extra fields) and wait for the rollout."""
    since = time.time() - 1
    with spec_fields(cluster, **backend.spec_fields()):
        waits.wait_for_rollout(cluster, timeout, since=since)
        yield cluster.registry_config()
    waits.wait_for_config_synced(cluster, timeout)


@contextlib.contextmanager
def default_route(cluster: Cluster, timeout: float) -> Iterator[str]:
    """defaultRoute: true; yields the admitted route host."""
    with spec_fields(cluster, defaultRoute=True):
        route = waits.wait_for_route_admitted(cluster, "default-route", REGISTRY_NAMESPACE, timeout)
        admitted = [i for i in route["status"]["ingress"] if i.get("host")]
        yield admitted[0]["host"]
    waits.wait_for_config_synced(cluster, timeout)


@contextlib.contextmanager
def temporary_namespace(cluster: Cluster, prefix: str, labels: dict) -> Iterator[str]:
    from kubernetes import client as k8s
    body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(generate_name=prefix, labels=labels))
    ns = kube.call(cluster.core.create_namespace, body).metadata.name
    try:
        yield ns
    finally:
        try:
            kube.call(cluster.core.delete_namespace, ns)
        except ApiException as e:
            if e.status != 404:
                raise


def registry_client(cluster: Cluster, host: str) -> RegistryClient:
    """A client for the route `host`, trusting the router CA read from the cluster, with the user's token."""
    return RegistryClient(host, ca_file=cluster.router_ca_file, token=cluster.token,
                          connect_to=cluster.ingress_for(host))


def registry_pod_uids(cluster: Cluster) -> set[str]:
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE,
                     label_selector=kube.REGISTRY_POD_SELECTOR)
    return {p.metadata.uid for p in pods.items if not p.metadata.deletion_timestamp}


def restart_registry_pods(cluster: Cluster, timeout: float) -> None:
    """Delete every registry pod and wait until replacements are rolled out."""
    old = registry_pod_uids(cluster)
    if not old:
        raise AssertionError("no registry pods to restart")
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=kube.REGISTRY_POD_SELECTOR)
    for pod in pods.items:
        if pod.metadata.uid in old:
            try:
                kube.call(cluster.core.delete_namespaced_pod, pod.metadata.name, REGISTRY_NAMESPACE)
            except ApiException as e:
                if e.status != 404:
                    raise
    waits.wait_for_pods_replaced(cluster, old, timeout)


def spec_diff(expected, actual, path: str = "spec") -> list[str]:
    """Field-by-field differences: ["spec.x: expected 1, found 2", ...]."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(expected) | set(actual), key=str):
            if k not in actual:
                out.append(f"{path}.{k}: expected {expected[k]!r}, missing")
            elif k not in expected:
                out.append(f"{path}.{k}: not expected, found {actual[k]!r}")
            else:
                out += spec_diff(expected[k], actual[k], f"{path}.{k}")
        return out
    return [] if expected == actual else [f"{path}: expected {expected!r}, found {actual!r}"]
