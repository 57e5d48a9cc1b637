"""The configuration steps of the procedure, as context managers that undo what they changed.

Used by the fixtures (fixtures/registry.py) and usable as is from a notebook:

    with managed(cluster, timeout=300), storage(cluster, EMPTYDIR, timeout=300), default_route(cluster) as host:
        ...
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
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
def storage(cluster: Cluster, backend: Backend, timeout: float, fields: dict | None = None) -> Iterator[dict]:
    """Configure `backend` (spec.storage and its extra fields, or `fields` when given: S3 needs the
    bucket and endpoint of the set-up) and wait for the rollout."""
    since = time.time() - 1
    with spec_fields(cluster, **(fields if fields is not None else backend.spec_fields())):
        waits.wait_for_rollout(cluster, timeout, judge=waits.StorageRolloutJudge(since))
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


SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
_REDIRECT_TRUST: dict[bytes, str] = {}


def redirect_trust_file(cluster: Cluster) -> str:
    """The CAs a storage redirect (307 to the S3 endpoint, facts §12.3) is checked against, as a PEM
    file: the S3 `trustedCA` the Config gives the registry (configmap openshift-config/<name>,
    ca-bundle.crt), the ingress CA (ODF routes), and the system roots (a public S3 endpoint)."""
    parts = []
    s3 = (((cluster.registry_config() or {}).get("spec") or {}).get("storage") or {}).get("s3") or {}
    name = (s3.get("trustedCA") or {}).get("name")
    if name:
        cm = kube.get_or_none(cluster.core.read_namespaced_config_map, name, "openshift-config")
        pem = ((cm.data or {}) if cm is not None else {}).get("ca-bundle.crt")
        if pem:
            parts.append(pem.encode())
    parts.append(cluster.router_ca_pem())
    for path in SYSTEM_CA_BUNDLES:
        try:
            with open(path, "rb") as f:
                parts.append(f.read())
            break
        except OSError:
            continue
    bundle = b"\n".join(p.rstrip(b"\n") + b"\n" for p in parts)
    if bundle not in _REDIRECT_TRUST:      # one file per distinct bundle, not one per client
        _REDIRECT_TRUST[bundle] = write_temp_pem(bundle, prefix="redirect-ca-")
    return _REDIRECT_TRUST[bundle]


def redirect_connect_to(cluster: Cluster) -> Callable[[str], str | None]:
    """For a redirect's host: None when DNS resolves it, else where route hosts are reached."""
    import socket

    def connect_to(host: str) -> str | None:
        try:
            socket.getaddrinfo(host, 443)
            return None
        except socket.gaierror:
            return cluster.ingress_for(host)
    return connect_to


def registry_client(cluster: Cluster, host: str) -> RegistryClient:
    """A client for the route `host`, trusting the router CA read from the cluster, with the user's token;
    storage redirects followed trusting `redirect_trust_file`, route hosts mapped as `host` is."""
    return RegistryClient(host, ca_file=cluster.router_ca_file, token=cluster.token,
                          connect_to=cluster.ingress_for(host), redirect_verify=redirect_trust_file(cluster),
                          connect_to_for=redirect_connect_to(cluster))


def registry_pod_uids(cluster: Cluster, include_terminating: bool = False) -> set[str]:
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE,
                     label_selector=kube.REGISTRY_POD_SELECTOR)
    return {p.metadata.uid for p in pods.items if include_terminating or not p.metadata.deletion_timestamp}


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
    # Replacements may wait for the old pods to go (required anti-affinity, a RWO volume): judge the
    # rollout only once they are gone, so that transient wait is not taken for a failure.
    def old_left():
        left = registry_pod_uids(cluster, include_terminating=True) & old
        return left or None
    waits.wait_until_gone(old_left, "the deleted registry pods to terminate", timeout)
    waits.wait_for_pods_replaced(cluster, old, timeout)


def spec_diff(expected, actual, path: str = "spec", labels=("expected", "found")) -> list[str]:
    """Field-by-field differences: ["spec.x: expected 1, found 2", ...] (`labels` renames the two sides)."""
    a, b = labels
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for k in sorted(set(expected) | set(actual), key=str):
            if k not in actual:
                out.append(f"{path}.{k}: {a} {expected[k]!r}, missing")
            elif k not in expected:
                out.append(f"{path}.{k}: not {a}, {b} {actual[k]!r}")
            else:
                out += spec_diff(expected[k], actual[k], f"{path}.{k}", labels)
        return out
    return [] if expected == actual else [f"{path}: {a} {expected!r}, {b} {actual!r}"]


# ---------------------------------------------------------------------------------------------
# Storage set-ups (issue 3): each step alone, labelled as the suite's, undone at exit.
# ---------------------------------------------------------------------------------------------
OBC_GVR = ("objectbucket.io", "v1alpha1", "objectbucketclaims")
STORAGECLASS_DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
USER_S3_SECRET = "image-registry-private-configuration-user"
SERVICE_HOST = f"image-registry.{REGISTRY_NAMESPACE}.svc"
REGISTRY_PORT = 5000


class SetupConflict(AssertionError):
    """An object the set-up must create already exists and is not the suite's."""


def _plain(cluster: Cluster, obj) -> dict:
    return cluster.api_client.sanitize_for_serialization(obj)


def storage_classes(cluster: Cluster) -> list[dict]:
    from kubernetes import client as k8s
    api = k8s.StorageV1Api(cluster.api_client)
    return _plain(cluster, kube.call(api.list_storage_class)).get("items", [])


def default_storage_class(cluster: Cluster) -> str | None:
    for sc in storage_classes(cluster):
        if ((sc["metadata"].get("annotations") or {}).get(STORAGECLASS_DEFAULT_ANNOTATION) == "true"):
            return sc["metadata"]["name"]
    return None


def route_host(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The admitted host of a route (or its spec.host); None when the route does not exist."""
    route = kube.get_or_none(cluster.custom.get_namespaced_custom_object, *kube.ROUTE_GVR[:2], namespace,
                             kube.ROUTE_GVR[2], name)
    if route is None:
        return None
    for ing in (route.get("status") or {}).get("ingress") or []:
        if ing.get("host"):
            return ing["host"]
    return (route.get("spec") or {}).get("host") or None


def default_ingress_certificate(cluster: Cluster) -> tuple[str, bytes]:
    """(secret name, tls.crt) of the default ingress certificate, as the NooBaa procedure finds it:
    the default IngressController's `spec.defaultCertificate.name // "router-certs-default"` in
    openshift-ingress (the leaf and its CA chain)."""
    ic = kube.get_or_none(cluster.custom.get_namespaced_custom_object, "operator.openshift.io", "v1",
                          "openshift-ingress-operator", "ingresscontrollers", "default") or {}
    name = ((ic.get("spec") or {}).get("defaultCertificate") or {}).get("name") or "router-certs-default"
    secret = kube.get_or_none(cluster.core.read_namespaced_secret, name, "openshift-ingress")
    if secret is None or not (secret.data or {}).get("tls.crt"):
        raise LookupError(f"the default ingress certificate secret openshift-ingress/{name} (key tls.crt) "
                          "was not found")
    import base64
    return name, base64.b64decode(secret.data["tls.crt"])


def missing_prerequisites(cluster: Cluster, backend: Backend) -> str | None:
    """What the cluster lacks for `backend` (None: nothing): its storage class / OBC class, the S3 route,
    the ingress certificate, a default storage class for a claim without a class."""
    from utilities.backends import ODF_NAMESPACE
    names = {sc["metadata"]["name"] for sc in storage_classes(cluster)}
    odf = " (is OpenShift Data Foundation installed?)" if backend.needs_odf else ""
    if backend.storage_class and backend.storage_class not in names:
        what = "ObjectBucketClaim class" if backend.obc else "StorageClass"
        return f"{backend.id}: {what} {backend.storage_class} not found on the cluster{odf}"
    if backend.pvc and not backend.storage_class and default_storage_class(cluster) is None:
        return f"{backend.id}: the cluster has no default StorageClass for the claim"
    if backend.s3_route and route_host(cluster, ODF_NAMESPACE, backend.s3_route) is None:
        return f"{backend.id}: route {ODF_NAMESPACE}/{backend.s3_route} (the S3 endpoint) not found{odf}"
    if backend.s3:
        try:
            default_ingress_certificate(cluster)
        except LookupError as e:
            return f"{backend.id}: {e}"
    return None


@contextlib.contextmanager
def claim(cluster: Cluster, name: str, *, access_mode: str, size: str, labels: dict,
          storage_class: str | None = None, namespace: str = REGISTRY_NAMESPACE,
          timeout: float = 120.0) -> Iterator[dict]:
    """A PersistentVolumeClaim the procedure creates (no class: the cluster default); deleted at exit."""
    if kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, name, namespace) is not None:
        raise SetupConflict(f"PVC {namespace}/{name} already exists and is not the suite's: refusing to touch it")
    body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}}
    if storage_class:
        body["spec"]["storageClassName"] = storage_class
    obj = kube.call(cluster.core.create_namespaced_persistent_volume_claim, namespace, body)
    try:
        yield _plain(cluster, obj)
    finally:
        delete_and_wait(cluster, "pvc", name, namespace, timeout)


def delete_and_wait(cluster: Cluster, kind: str, name: str, namespace: str, timeout: float) -> None:
    """Delete a pvc / obc / secret / configmap and wait until it is gone (finalizers done)."""
    read, delete = {
        "pvc": (lambda: kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, name, namespace),
                lambda: cluster.core.delete_namespaced_persistent_volume_claim(name, namespace)),
        "obc": (lambda: kube.get_or_none(cluster.custom.get_namespaced_custom_object, *OBC_GVR[:2], namespace,
                                         OBC_GVR[2], name),
                lambda: cluster.custom.delete_namespaced_custom_object(*OBC_GVR[:2], namespace, OBC_GVR[2], name)),
        "secret": (lambda: kube.get_or_none(cluster.core.read_namespaced_secret, name, namespace),
                   lambda: cluster.core.delete_namespaced_secret(name, namespace)),
        "configmap": (lambda: kube.get_or_none(cluster.core.read_namespaced_config_map, name, namespace),
                      lambda: cluster.core.delete_namespaced_config_map(name, namespace)),
    }[kind]
    try:
        kube.call(delete)
    except ApiException as e:
        if e.status != 404:
            raise
    waits.wait_until_gone(read, f"{kind} {namespace}/{name} to be deleted", timeout)


@dataclasses.dataclass
class BucketClaim:
    name: str
    namespace: str
    bucket: str
    access_key: str
    secret_key: str
    obj: dict


@contextlib.contextmanager
def object_bucket_claim(cluster: Cluster, name: str, *, storage_class: str, labels: dict,
                        namespace: str | None = None, timeout: float = 120.0) -> Iterator[BucketClaim]:
    """An ObjectBucketClaim (generateBucketName: name) Bound, with the bucket name from the claim and the
    keys from its secret; deleted at exit (its bucket goes with it)."""
    import base64

    from utilities.backends import ODF_NAMESPACE
    namespace = namespace or ODF_NAMESPACE
    if kube.get_or_none(cluster.custom.get_namespaced_custom_object, *OBC_GVR[:2], namespace, OBC_GVR[2],
                        name) is not None:
        raise SetupConflict(f"ObjectBucketClaim {namespace}/{name} already exists and is not the suite's")
    body = {"apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucketClaim",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            # ODF appends "-<uuid>" (37 characters) to generateBucketName; bucket names end at 63.
            "spec": {"storageClassName": storage_class, "generateBucketName": name[:26].rstrip("-.")}}
    kube.call(cluster.custom.create_namespaced_custom_object, *OBC_GVR[:2], namespace, OBC_GVR[2], body)
    try:
        obc = waits.wait_for_obc_bound(cluster, namespace, name, timeout)
        secret = kube.call(cluster.core.read_namespaced_secret, name, namespace)
        data = secret.data or {}
        yield BucketClaim(name, namespace, obc["spec"]["bucketName"],
                          base64.b64decode(data["AWS_ACCESS_KEY_ID"]).decode(),
                          base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode(), obc)
    finally:
        delete_and_wait(cluster, "obc", name, namespace, timeout)


@contextlib.contextmanager
def _temporary(cluster: Cluster, kind: str, namespace: str, name: str, data: dict, labels: dict,
               timeout: float = 60.0) -> Iterator[dict]:
    """A secret/configmap with `data` for the block: created labelled and deleted at exit, or, when one
    exists already, its data replaced and put back exactly at exit."""
    import base64
    if kind == "secret":
        read, create, replace = (cluster.core.read_namespaced_secret, cluster.core.create_namespaced_secret,
                                 cluster.core.replace_namespaced_secret)
        payload = {"data": {k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode()
                            for k, v in data.items()}, "type": "Opaque"}
        api_kind = "Secret"
    else:
        read, create, replace = (cluster.core.read_namespaced_config_map,
                                 cluster.core.create_namespaced_config_map, cluster.core.replace_namespaced_config_map)
        payload = {"data": dict(data)}
        api_kind = "ConfigMap"
    existing = kube.get_or_none(read, name, namespace)
    if existing is None:
        body = {"apiVersion": "v1", "kind": api_kind,
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)}, **payload}
        created = kube.call(create, namespace, body)
        try:
            yield _plain(cluster, created)
        finally:
            delete_and_wait(cluster, kind, name, namespace, timeout)
        return
    saved = _plain(cluster, existing)
    body = copy.deepcopy(saved)
    body.pop("binaryData", None)
    body.pop("stringData", None)
    body.update(payload)
    try:
        yield _plain(cluster, kube.call(replace, name, namespace, body))
    finally:
        current = _plain(cluster, kube.call(read, name, namespace))
        restore = copy.deepcopy(saved)
        restore["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.call(replace, name, namespace, restore)


def s3_credentials(cluster: Cluster, access_key: str, secret_key: str, labels: dict):
    """Secret openshift-image-registry/image-registry-private-configuration-user with the S3 keys."""
    return _temporary(cluster, "secret", REGISTRY_NAMESPACE, USER_S3_SECRET,
                      {"REGISTRY_STORAGE_S3_ACCESSKEY": access_key, "REGISTRY_STORAGE_S3_SECRETKEY": secret_key},
                      labels)


def trusted_ca(cluster: Cluster, name: str, pem: bytes | str, labels: dict):
    """ConfigMap openshift-config/<name> with key ca-bundle.crt (the S3 trustedCA)."""
    return _temporary(cluster, "configmap", "openshift-config", name,
                      {"ca-bundle.crt": pem.decode() if isinstance(pem, bytes) else pem}, labels)


@contextlib.contextmanager
def operator_claim_cleanup(cluster: Cluster, name: str, timeout: float) -> Iterator[None]:
    """For `claim: ""`: the claim the operator creates is left behind once storage is unset (its
    managementState goes with the spec); delete it at exit when it did not exist before."""
    existed = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, name,
                               REGISTRY_NAMESPACE) is not None
    try:
        yield
    finally:
        if not existed:
            delete_and_wait(cluster, "pvc", name, REGISTRY_NAMESPACE, timeout)


@dataclasses.dataclass
class BackendSetup:
    backend: Backend
    config: dict                       # the Config once rolled out
    fields: dict                       # the spec fields the set-up asked for
    claim: dict | None = None          # the claim the set-up created (user-created claims)
    bucket: BucketClaim | None = None  # S3: the ObjectBucketClaim
    s3_host: str | None = None         # S3: the route host used as regionEndpoint
    ca_pem: bytes | None = None        # S3: the trustedCA bundle given to the registry

    @property
    def asked_storage(self) -> dict:
        return self.fields["storage"]


@contextlib.contextmanager
def configure_backend(cluster: Cluster, backend: Backend, timeout: float, labels: dict) -> Iterator[BackendSetup]:
    """The whole procedure for `backend`: its prerequisites (claim; OBC, credentials, CA bundle), then
    Managed + the spec fields, rolled out. Everything is undone at exit, in reverse order."""
    from utilities.backends import ODF_NAMESPACE, S3_CA_CONFIGMAP
    with contextlib.ExitStack() as stack:
        setup = BackendSetup(backend, {}, {})
        if backend.operator_creates_claim:
            stack.enter_context(operator_claim_cleanup(cluster, backend.claim_name, timeout))
        if backend.user_creates_claim:
            setup.claim = stack.enter_context(claim(
                cluster, backend.claim_name, access_mode=backend.access_mode, size=backend.claim_size,
                storage_class=backend.storage_class, labels=labels, timeout=timeout))
        storage_args = {}
        if backend.s3:
            setup.bucket = stack.enter_context(object_bucket_claim(
                cluster, backend.obc_name, storage_class=backend.storage_class, labels=labels, timeout=timeout))
            stack.enter_context(s3_credentials(cluster, setup.bucket.access_key, setup.bucket.secret_key, labels))
            _, setup.ca_pem = default_ingress_certificate(cluster)
            stack.enter_context(trusted_ca(cluster, S3_CA_CONFIGMAP, setup.ca_pem, labels))
            setup.s3_host = route_host(cluster, ODF_NAMESPACE, backend.s3_route)
            storage_args = {"bucket": setup.bucket.bucket, "endpoint": f"https://{setup.s3_host}",
                            "trusted_ca": S3_CA_CONFIGMAP}
        setup.fields = backend.spec_fields(**storage_args)
        stack.enter_context(managed(cluster, timeout))
        setup.config = stack.enter_context(storage(cluster, backend, timeout, fields=setup.fields))
        yield setup


# ---------------------------------------------------------------------------------------------
# Each replica on its own (port-forward), trusting the service CA
# ---------------------------------------------------------------------------------------------
def service_ca_file(cluster: Cluster, namespace: str = REGISTRY_NAMESPACE) -> str:
    """The service CA as OpenShift publishes it in every namespace (configmap openshift-service-ca.crt),
    written to a temporary file."""
    import os
    import tempfile
    cm = kube.call(cluster.core.read_namespaced_config_map, "openshift-service-ca.crt", namespace)
    fd, p = tempfile.mkstemp(prefix="service-ca-", suffix=".pem")
    with os.fdopen(fd, "w") as f:
        f.write((cm.data or {})["service-ca.crt"])
    return p


def ready_registry_pods(cluster: Cluster) -> list:
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=kube.REGISTRY_POD_SELECTOR)
    return sorted((p for p in pods.items if not p.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))),
        key=lambda p: p.metadata.name)


@contextlib.contextmanager
def replica_client(cluster: Cluster, pod: str, ca_file: str) -> Iterator[RegistryClient]:
    """A registry client for one pod, through a port-forward to its port 5000, checking its TLS
    certificate against the service CA for image-registry.openshift-image-registry.svc."""
    from utilities.portforward import open_local_port
    with open_local_port(cluster.core, REGISTRY_NAMESPACE, pod, REGISTRY_PORT) as local:
        client = RegistryClient(f"{SERVICE_HOST}:{REGISTRY_PORT}", ca_file=ca_file, token=cluster.token,
                                connect_to=f"{local.host}:{local.port}",
                                redirect_verify=redirect_trust_file(cluster),
                                connect_to_for=redirect_connect_to(cluster))
        try:
            yield client
        except Exception as e:
            if local.errors:
                raise AssertionError(f"{e}; port-forward to {pod}: {'; '.join(local.errors)}") from e
            raise
        finally:
            client.close()


def write_temp_pem(pem: bytes | str, prefix: str = "ca-") -> str:
    """Write a PEM bundle to a temporary file (for `verify=`); returns its path."""
    import os
    import tempfile
    fd, p = tempfile.mkstemp(prefix=prefix, suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(pem.encode() if isinstance(pem, str) else pem)
    return p
