"""The configuration steps of the procedure, as context managers that undo what they changed.

Used by the fixtures (fixtures/registry.py) and usable as is from a notebook:

    with managed(cluster, timeout=300), storage(cluster, EMPTYDIR, timeout=300), default_route(cluster) as host:
        ...
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import time
from typing import Callable, Iterator

from kubernetes.client.exceptions import ApiException

from utilities import kube, waits
from utilities.backends import EMPTYDIR, Backend, share_objects
from utilities.kube import CONFIG_GVR, CONFIG_NAME, REGISTRY_NAMESPACE, Cluster
from utilities.registry_client import RegistryClient

_ABSENT = object()
# emptyDir as a stop between two backends that cannot coexist (one replica, RollingUpdate).
EMPTYDIR_TRANSIT = EMPTYDIR


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


def registry_client(cluster: Cluster, host: str, token: str | None = _ABSENT) -> RegistryClient:
    """A client for the route `host`, trusting the router CA read from the cluster, with the run's
    ServiceAccount token (utilities/registry_access.py; `token=None`: anonymous); storage redirects
    followed trusting `redirect_trust_file`, route hosts mapped as `host` is."""
    from utilities.registry_access import registry_token
    return RegistryClient(host, ca_file=cluster.router_ca_file,
                          token=registry_token(cluster) if token is _ABSENT else token,
                          connect_to=cluster.ingress_for(host), connect_reason=cluster.ingress_reason(host),
                          redirect_verify=redirect_trust_file(cluster),
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


def claim_taken(cluster: Cluster, backend: Backend, ours=()) -> str | None:
    """A claim of the name the backend's procedure makes exists already and is not the suite's (a
    registry that was Managed with a claim, as single-node clusters often are): the set-up would meet
    someone else's claim, so the backend cannot run here as the procedure says."""
    if not backend.claim_name or not (backend.user_creates_claim or backend.operator_creates_claim):
        return None
    pvc = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, backend.claim_name,
                           REGISTRY_NAMESPACE)
    if pvc is None:
        return None
    from utilities.labels import SUITE_LABEL, SUITE_LABEL_VALUE
    from utilities.backends import OPERATOR_PVC_ANNOTATION
    if (pvc.metadata.labels or {}).get(SUITE_LABEL) == SUITE_LABEL_VALUE or pvc.metadata.uid in set(ours):
        return None
    if backend.operator_creates_claim and (pvc.metadata.annotations or {}).get(OPERATOR_PVC_ANNOTATION) == "true":
        return None     # the operator's own claim: it uses it again, as it would for the procedure
    who = "the operator's" if (pvc.metadata.annotations or {}).get(OPERATOR_PVC_ANNOTATION) == "true" else "a user's"
    return (f"{backend.id}: PVC {REGISTRY_NAMESPACE}/{backend.claim_name} exists already ({who}, e.g. the "
            f"registry's original storage), and {backend.id}'s procedure "
            + ("creates it" if backend.user_creates_claim else "has the operator create it")
            + "; the check does not apply on this cluster")


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
        delete_and_wait(cluster, "pvc", name, namespace, timeout, uid=_uid(obj))


def _uid(obj) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return (obj.get("metadata") or {}).get("uid")
    return getattr(getattr(obj, "metadata", None), "uid", None)


def delete_and_wait(cluster: Cluster, kind: str, name: str, namespace: str, timeout: float,
                    uid: str | None = None) -> None:
    """Delete a pvc / obc / secret / configmap and wait until it is gone (finalizers done). With `uid`,
    only that object: a later one of the same name (the operator's own claim) is left alone."""
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
    if uid is not None:
        current = read()
        if current is None or _uid(current) != uid:
            return          # gone already, or another object of the same name now: not ours
        plain_read = read

        def read():     # noqa: F811 - gone once no object of that uid is left
            obj = plain_read()
            return obj if obj is not None and _uid(obj) == uid else None
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
    access_key: str = dataclasses.field(repr=False)     # never in a repr: pytest prints fixtures' reprs
    secret_key: str = dataclasses.field(repr=False)
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
    created = kube.call(cluster.custom.create_namespaced_custom_object, *OBC_GVR[:2], namespace, OBC_GVR[2], body)
    try:
        obc = waits.wait_for_obc_bound(cluster, namespace, name, timeout)
        secret = kube.call(cluster.core.read_namespaced_secret, name, namespace)
        data = secret.data or {}
        yield BucketClaim(name, namespace, obc["spec"]["bucketName"],
                          base64.b64decode(data["AWS_ACCESS_KEY_ID"]).decode(),
                          base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode(), obc)
    finally:
        delete_and_wait(cluster, "obc", name, namespace, timeout, uid=_uid(created))


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
            delete_and_wait(cluster, kind, name, namespace, timeout, uid=_uid(created))
        return
    def ours(current: dict) -> dict:
        body = copy.deepcopy(current)
        body.pop("binaryData", None)
        body.pop("stringData", None)
        body.update(payload)
        return body

    plain = functools.partial(_plain, cluster)
    # Both writes re-read on a 409 (another writer in between): what is saved is the object as it was
    # right before our write, and the restore is based on the latest resourceVersion.
    saved, written = kube.replace_latest(read, replace, name, namespace, ours, plain)
    try:
        yield written
    finally:
        def theirs(current: dict) -> dict:
            restore = copy.deepcopy(saved)
            restore["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            return restore
        kube.replace_latest(read, replace, name, namespace, theirs, plain)


def s3_credentials(cluster: Cluster, access_key: str, secret_key: str, labels: dict):
    """Secret openshift-image-registry/image-registry-private-configuration-user with the S3 keys."""
    return _temporary(cluster, "secret", REGISTRY_NAMESPACE, USER_S3_SECRET,
                      {"REGISTRY_STORAGE_S3_ACCESSKEY": access_key, "REGISTRY_STORAGE_S3_SECRETKEY": secret_key},
                      labels)


def trusted_ca(cluster: Cluster, name: str, pem: bytes | str, labels: dict):
    """ConfigMap openshift-config/<name> with key ca-bundle.crt (the S3 trustedCA)."""
    return _temporary(cluster, "configmap", "openshift-config", name,
                      {"ca-bundle.crt": pem.decode() if isinstance(pem, bytes) else pem}, labels)


class OperatorClaim:
    """The claim the operator creates for `claim: ""`, by uid once it is seen."""

    def __init__(self, cluster: Cluster, name: str):
        self.cluster, self.name = cluster, name
        self.before = _uid(self.read())
        self.uid: str | None = None

    def read(self):
        return kube.get_or_none(self.cluster.core.read_namespaced_persistent_volume_claim, self.name,
                                REGISTRY_NAMESPACE)

    def observe(self) -> None:
        uid = _uid(self.read())
        if uid and uid != self.before:
            self.uid = uid


@contextlib.contextmanager
def operator_claim_cleanup(cluster: Cluster, name: str, timeout: float) -> Iterator[OperatorClaim]:
    """For `claim: ""`: the claim the operator creates is left behind once storage is unset (its
    managementState goes with the spec); delete it at exit, by uid: only the one the operator made for
    this set-up (seen with `.observe()`, or at exit), never one that existed before or came later."""
    oc = OperatorClaim(cluster, name)
    try:
        yield oc
    finally:
        if oc.uid is None:
            oc.observe()
        if oc.uid is not None:
            delete_and_wait(cluster, "pvc", name, REGISTRY_NAMESPACE, timeout, uid=oc.uid)


@dataclasses.dataclass
class BackendSetup:
    backend: Backend
    config: dict                       # the Config once rolled out
    fields: dict                       # the spec fields the set-up asked for
    claim: dict | None = None          # the claim the set-up created (user-created claims)
    bucket: BucketClaim | None = None  # S3: the ObjectBucketClaim
    s3_host: str | None = None         # S3: the route host used as regionEndpoint
    s3_endpoint: str | None = None     # S3: the regionEndpoint, with the route's scheme
    ca_pem: bytes | None = None        # S3: the trustedCA bundle given to the registry
    previous: Backend | None = None    # the backend configured before this one (None: the first)
    inherited: dict = dataclasses.field(default_factory=dict)   # original spec fields it did not set
    notes: list = dataclasses.field(default_factory=list)      # what this cluster cannot show
    operator_claim: "OperatorClaim | None" = None
    storage_problems: list = dataclasses.field(default_factory=list)  # after the switch (see storage_problems)

    @property
    def asked_storage(self) -> dict:
        return self.fields["storage"]


def prepare_backend(cluster: Cluster, backend: Backend, stack: contextlib.ExitStack, timeout: float,
                    labels: dict) -> BackendSetup:
    """The prerequisites of `backend` (claim; OBC, credentials, CA bundle), entered on `stack`; the spec
    fields to write are in `.fields`. Nothing of the Config is changed."""
    from utilities.backends import ODF_NAMESPACE, S3_CA_CONFIGMAP
    setup = BackendSetup(backend, {}, {})
    if backend.operator_creates_claim:
        setup.operator_claim = stack.enter_context(operator_claim_cleanup(cluster, backend.claim_name, timeout))
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
        # The scheme from the route's spec.tls: ODF 4.12's RGW route is plain HTTP (facts §12.9).
        from utilities.routes import route_url
        s3_route = kube.get_or_none(cluster.custom.get_namespaced_custom_object, *kube.ROUTE_GVR[:2],
                                    ODF_NAMESPACE, kube.ROUTE_GVR[2], backend.s3_route)
        setup.s3_endpoint = route_url(s3_route)
        storage_args = {"bucket": setup.bucket.bucket, "endpoint": setup.s3_endpoint,
                        "trusted_ca": S3_CA_CONFIGMAP}
    setup.fields = backend.spec_fields(**storage_args)
    return setup


@contextlib.contextmanager
def configure_backend(cluster: Cluster, backend: Backend, timeout: float, labels: dict) -> Iterator[BackendSetup]:
    """The whole procedure for `backend` alone (a notebook, a selftest): its prerequisites, then Managed
    + the spec fields, rolled out; everything undone at exit, in reverse order. The suite itself goes
    through `RegistrySession`, which switches from backend to backend while Managed."""
    with contextlib.ExitStack() as stack:
        setup = prepare_backend(cluster, backend, stack, timeout, labels)
        stack.enter_context(managed(cluster, timeout))
        setup.config = stack.enter_context(storage(cluster, backend, timeout, fields=setup.fields))
        yield setup


# --- what the Deployment stores images on ----------------------------------------------------------
STORAGE_VOLUME = "registry-storage"
# Original spec fields that shape the registry pods and that no backend's procedure sets.
PLACEMENT_FIELDS = ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints", "resources")


def registry_deployment(cluster: Cluster) -> dict | None:
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, kube.REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    return None if dep is None else _plain(cluster, dep)


def _claims_of(pod_spec: dict) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in pod_spec.get("volumes") or []
            if v.get("persistentVolumeClaim")}


def storage_problems(cluster: Cluster, setup: BackendSetup) -> list[str]:
    """How the Deployment and its pods differ from storing images only on `setup`'s storage: the
    storage volume of the pod template, no other claim (the previous backend's), the REGISTRY_STORAGE
    driver, and no registry pod left mounting another claim. Empty: it really moved."""
    b = setup.backend
    dep = registry_deployment(cluster)
    if dep is None:
        return ["no registry Deployment"]
    pod_spec = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    vols = {v["name"]: v for v in pod_spec.get("volumes") or []}
    storage_vol = vols.get(STORAGE_VOLUME)
    env = {e.get("name"): e.get("value") for c in pod_spec.get("containers") or [] for e in c.get("env") or []}
    problems = []
    want_claims = {b.claim_name} if b.pvc else set()
    claims = _claims_of(pod_spec)
    if claims != want_claims:
        problems.append(f"Deployment claims {sorted(claims)}, expected {sorted(want_claims)}")
    if b.kind == "emptyDir" and not (storage_vol and "emptyDir" in storage_vol):
        problems.append(f"Deployment volume {STORAGE_VOLUME} is {storage_vol}, expected an emptyDir")
    if b.s3 and storage_vol is not None:
        problems.append(f"Deployment still has volume {STORAGE_VOLUME} {storage_vol} with S3 storage")
    driver = env.get("REGISTRY_STORAGE")
    want_driver = "s3" if b.s3 else "filesystem"
    if driver is not None and driver != want_driver:
        problems.append(f"REGISTRY_STORAGE={driver}, expected {want_driver}")
    if b.s3 and setup.bucket is not None and env.get("REGISTRY_STORAGE_S3_BUCKET") not in (None, setup.bucket.bucket):
        problems.append(f"REGISTRY_STORAGE_S3_BUCKET={env.get('REGISTRY_STORAGE_S3_BUCKET')}, "
                        f"expected {setup.bucket.bucket}")
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=kube.REGISTRY_POD_SELECTOR)
    for pod in pods.items:
        pod_claims = _claims_of(_plain(cluster, pod).get("spec") or {})
        if pod_claims - want_claims:
            problems.append(f"pod {pod.metadata.name} still mounts claim(s) {sorted(pod_claims - want_claims)}")
    return problems


def schedulable_nodes(cluster: Cluster, node_selector: dict | None = None, tolerations=()) -> list[str]:
    """Ready nodes registry pods can land on: schedulable, no NoSchedule/NoExecute taint they do not
    tolerate, matching `node_selector` (plus kubernetes.io/os=linux, as the operator adds)."""
    selector = dict(node_selector or {})
    selector.setdefault("kubernetes.io/os", "linux")
    tolerated = {(t.get("key"), t.get("effect")) for t in tolerations or ()}
    out = []
    for n in kube.call(cluster.core.list_node).items:
        if n.spec.unschedulable:
            continue
        if not any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or [])):
            continue
        labels = n.metadata.labels or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if any(t.effect in ("NoSchedule", "NoExecute") and (t.key, t.effect) not in tolerated
               and (t.key, None) not in tolerated for t in n.spec.taints or []):
            continue
        out.append(n.metadata.name)
    return sorted(out)


class EnvironmentLacks(Exception):
    """The cluster cannot run this backend for a reason of its environment, not of the operator."""


VSPHERE_CSI = "csi.vsphere.vmware.com"
VSPHERE_INTREE = "kubernetes.io/vsphere-volume"
_NO_FILE_VOLUMES = ("file volume", "vsan file service", "file service", "filevolume", "file share")


def rwx_missing_before(cluster: Cluster, backend: Backend) -> str | None:
    """Where the class shows it: a ReadWriteMany claim on a class that provides none (in-tree vSphere
    volumes are ReadWriteOnce only)."""
    if backend.access_mode != "ReadWriteMany" or not backend.pvc:
        return None
    name = backend.storage_class or default_storage_class(cluster)
    sc = next((c for c in storage_classes(cluster) if c["metadata"]["name"] == name), None)
    if sc and sc.get("provisioner") == VSPHERE_INTREE:
        return (f"{backend.id}: an environment without ReadWriteMany volumes: StorageClass {name} "
                f"({VSPHERE_INTREE}) provides ReadWriteOnce only; the check does not apply")
    return None


def rwx_missing_after(cluster: Cluster, backend: Backend, error: str) -> str | None:
    """After a failed rollout: the claim's ProvisioningFailed says the vSphere CSI driver cannot make
    file volumes (thin-csi without vSAN File Services, operator-facts.md §12.11)."""
    if backend.access_mode != "ReadWriteMany" or not backend.pvc:
        return None
    name = backend.storage_class or default_storage_class(cluster)
    sc = next((c for c in storage_classes(cluster) if c["metadata"]["name"] == name), None)
    if not sc or sc.get("provisioner") != VSPHERE_CSI:
        return None
    texts = []
    try:
        evs = kube.call(cluster.core.list_namespaced_event, REGISTRY_NAMESPACE,
                        field_selector=f"involvedObject.name={backend.claim_name}")
        texts += [e.message or "" for e in evs.items if e.reason == "ProvisioningFailed"]
    except ApiException:
        pass
    texts.append(error)
    line = next((t for t in texts if any(k in t.lower() for k in _NO_FILE_VOLUMES)), None)
    if line is None:
        return None
    return (f"{backend.id}: an environment without ReadWriteMany volumes: StorageClass {name} cannot "
            f"provision the operator's ReadWriteMany claim (vSphere CSI without vSAN File Services, "
            f"operator-facts.md §12.11): {line.strip()[:300]}; the check does not apply")


class RegistrySession:
    """The registry through the whole run: Managed once, the storage switched from backend to backend
    while Managed, the route once, Removed once at the end (docs/design.md "The run structure").

    `use(backend)` makes `backend` the registry's storage (its prerequisites first, then one spec write,
    the rollout, the check that the Deployment moved, then the previous backend's objects are deleted);
    `route()` turns defaultRoute on once; `remove()` sets Removed; `close(restore)` calls `restore()` (the
    original spec put back) and then deletes what the backends created."""

    def __init__(self, cluster: Cluster, timeout: float, labels: dict, original_spec: dict):
        self.cluster, self.timeout, self.labels = cluster, timeout, labels
        self.original = copy.deepcopy(original_spec or {})
        self.state = "original"          # original | managed | removed
        self.current: BackendSetup | None = None
        self._stacks: dict[int, contextlib.ExitStack] = {}
        self._retired: list[BackendSetup] = []
        self.route_host: str | None = None
        self.switches: list[str] = []    # what the session wrote, in order (for the report)

    # --- helpers ---------------------------------------------------------------------------------
    def _release(self, setup: BackendSetup) -> None:
        stack = self._stacks.pop(id(setup), None)
        if stack is not None:
            stack.close()

    def _write(self, fields: dict, what: str) -> None:
        def mutate(spec):
            spec["managementState"] = "Managed"
            for k, v in fields.items():
                spec[k] = copy.deepcopy(v)
        replace_spec(self.cluster, mutate)
        self.state = "managed"
        self.switches.append(what)

    def _rolled_out(self, since: float) -> None:
        waits.wait_for_rollout(self.cluster, self.timeout, judge=waits.StorageRolloutJudge(since))

    def _old_pods_gone(self, setup: BackendSetup) -> bool:
        """Wait (bounded) until no registry pod mounts another claim; False when some still do (the
        check `storage_problems` then says which)."""
        want = {setup.backend.claim_name} if setup.backend.pvc else set()

        def left():
            pods = kube.call(self.cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE,
                             label_selector=kube.REGISTRY_POD_SELECTOR)
            old = [p.metadata.name for p in pods.items
                   if _claims_of(_plain(self.cluster, p).get("spec") or {}) - want]
            return old or None
        try:
            waits.wait_until_gone(left, "the registry pods of the previous storage to terminate",
                                  min(self.timeout, 60.0))
            return True
        except AssertionError:
            return False

    def _adapt(self, backend: Backend) -> tuple[Backend, list[str], dict]:
        inherited = {k: copy.deepcopy(self.original[k]) for k in PLACEMENT_FIELDS
                     if self.original.get(k) not in (None, {}, [])}
        notes = []
        if backend.replicas >= 2 and "affinity" not in inherited:
            nodes = schedulable_nodes(self.cluster, inherited.get("nodeSelector"), inherited.get("tolerations"))
            if len(nodes) < backend.replicas:
                n = max(len(nodes), 1)
                notes.append(f"{'single-node' if n == 1 else f'{n}-node'} cluster ({', '.join(nodes) or 'no node'}): "
                             f"{backend.id}'s {backend.replicas} replicas need {backend.replicas} nodes (the "
                             f"operator's required anti-affinity on kubernetes.io/hostname); ran {n} replica(s), "
                             "so the spread over nodes and a second replica are not shown")
                backend = dataclasses.replace(backend, replicas=n)
        return backend, notes, inherited

    def owned_uids(self) -> set[str]:
        """uids of the claims the session's backends made (their own, or the operator's for them)."""
        out = set()
        for s in self._retired + ([self.current] if self.current is not None else []):
            if s.claim:
                out.add(_uid(s.claim))
            if s.operator_claim is not None:
                s.operator_claim.observe()
                out.add(s.operator_claim.uid)
        return {u for u in out if u}

    def missing(self, backend: Backend) -> str | None:
        """What the cluster lacks for `backend` (its classes, routes, certificate), or a claim of its
        name that is someone else's."""
        return (missing_prerequisites(self.cluster, backend)
                or claim_taken(self.cluster, backend, self.owned_uids()))

    # --- the steps -------------------------------------------------------------------------------
    def use(self, backend: Backend) -> BackendSetup:
        cur = self.current
        if cur is not None and self.state == "managed" and cur.backend.id == backend.id:
            return cur
        lacking = rwx_missing_before(self.cluster, backend)
        if lacking:
            raise EnvironmentLacks(lacking)
        backend, notes, inherited = self._adapt(backend)
        if self.state == "removed":
            # The Removed spec still names the retired backends' objects; the operator reads no storage
            # while Removed (CIRO pkg/resource/caconfig.go storageDriver), so the ones this backend would
            # make again under the same name can go before the new spec is written.
            self._release_retired(lambda s: share_objects(s.backend, backend))
        if cur is not None and self.state == "managed" and share_objects(cur.backend, backend):
            # The two cannot coexist (one claim name, one credentials secret): through emptyDir first.
            transit = EMPTYDIR_TRANSIT.spec_fields()
            since = time.time() - 1
            self._write(transit, f"emptyDir (between {cur.backend.id} and {backend.id})")
            self._rolled_out(since)
            self._old_pods_gone(BackendSetup(EMPTYDIR_TRANSIT, {}, transit))
            self._release(cur)
            cur = None
        stack = contextlib.ExitStack()
        try:
            setup = prepare_backend(self.cluster, backend, stack, self.timeout, self.labels)
        except BaseException:
            stack.close()
            raise
        setup.previous = self.current.backend if self.current is not None else None
        setup.notes, setup.inherited = notes, inherited
        self._stacks[id(setup)] = stack
        if cur is not None:
            self._retired.append(cur)
        self.current = setup
        since = time.time() - 1
        self._write(setup.fields, backend.id)
        try:
            self._rolled_out(since)
        except AssertionError as e:
            lacking = rwx_missing_after(self.cluster, backend, str(e))
            if lacking:
                raise EnvironmentLacks(lacking) from None
            raise
        if setup.operator_claim is not None:
            setup.operator_claim.observe()
        self._old_pods_gone(setup)
        setup.storage_problems = storage_problems(self.cluster, setup)
        self._rolled_out(since)         # still complete (a replica that dropped out meanwhile is back)
        setup.config = self.cluster.registry_config()
        if not setup.storage_problems:
            self._release_retired(lambda _: True)       # nothing mounts or names them any more
        # else: the previous backend's objects stay until the end of the run (after the restore)
        return setup

    def route(self) -> str:
        """defaultRoute: true (once for the run); the admitted host of route default-route."""
        if self.route_host is None or not (self.cluster.registry_config() or {}).get("spec", {}).get("defaultRoute"):
            replace_spec(self.cluster, lambda spec: spec.__setitem__("defaultRoute", True))
            self.switches.append("defaultRoute")
        route = waits.wait_for_route_admitted(self.cluster, "default-route", REGISTRY_NAMESPACE, self.timeout)
        self.route_host = [i for i in route["status"]["ingress"] if i.get("host")][0]["host"]
        return self.route_host

    def remove(self) -> dict:
        """managementState: Removed (the storage spec stays); the registry removed. The backends'
        objects stay while the Config still names them (its storage spec, a trustedCA config map): they
        are deleted once the original spec is back (`close`) or another backend's storage replaced it."""
        obj = self.cluster.registry_config() or {}
        if (obj.get("spec") or {}).get("managementState") != "Removed":
            replace_spec(self.cluster, lambda spec: spec.__setitem__("managementState", "Removed"))
            self.switches.append("Removed")
        obj = wait_removed(self.cluster, self.timeout)
        self.state = "removed"
        if self.current is not None:
            self._retired.append(self.current)
            self.current = None
        return obj

    def _release_retired(self, which: Callable[[BackendSetup], bool]) -> None:
        keep = []
        for s in self._retired:
            if which(s):
                self._release(s)
            else:
                keep.append(s)
        self._retired = keep

    def _release_all(self) -> None:
        setups = self._retired + ([self.current] if self.current is not None else [])
        self._retired, self.current = [], None
        errors = []
        for s in reversed(setups):
            try:
                self._release(s)
            except Exception as e:  # noqa: BLE001 - release the others too, then say
                errors.append(f"{s.backend.id}: {e}")
        if errors:
            raise AssertionError("could not delete what the backends created: " + "; ".join(errors))

    def close(self, restore: Callable[[], object] | None = None) -> None:
        """At the end of the run: the original spec back (`restore`), then the backends' objects."""
        try:
            if restore is not None and self.state != "original":
                restore()
        finally:
            self._release_all()


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
        from utilities.registry_access import registry_token
        client = RegistryClient(f"{SERVICE_HOST}:{REGISTRY_PORT}", ca_file=ca_file, token=registry_token(cluster),
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
