"""The objects the operator wants (operator-facts.md §4), built from a Config: pure functions."""
from __future__ import annotations

import copy
import hashlib
import json
import secrets
from typing import Optional

from . import consts as C
from .errors import verification_failed

# --- completing / verifying the Config (complete.go) ----------------------------------------------


def verify_config(spec: dict) -> None:
    """Permanent VerificationFailed errors."""
    if int(spec.get("replicas") or 0) < 0:
        raise verification_failed("replicas must be greater than or equal to 0")
    names = [r.get("name") for r in spec.get("routes") or []]
    if len(set(names)) != len(names) or C.DEFAULT_ROUTE in names:
        raise verification_failed("duplication of names has been detected in the additional routes")


def new_http_secret() -> str:
    return secrets.token_hex(64)     # 64 random bytes, 128 hex characters


def apply_defaults(spec: dict) -> None:
    if not spec.get("httpSecret"):
        spec["httpSecret"] = new_http_secret()


def json_merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = json_merge_patch(result.get(k), v)
    return result


def checksum(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- the Deployment -------------------------------------------------------------------------------

def _meta(name: str, labels: Optional[dict] = None, annotations: Optional[dict] = None) -> dict:
    m = {"name": name, "namespace": C.NAMESPACE}
    if labels:
        m["labels"] = dict(labels)
    if annotations:
        m["annotations"] = dict(annotations)
    return m


def log_level(spec: dict) -> str:
    if spec.get("logLevel") in ("Debug", "Trace", "TraceAll"):
        return "debug"
    logging = int(spec.get("logging") or 0)
    if logging == 1:
        return "warn"
    if logging in (0, 2, 3):
        return "info"
    return "debug"


def registry_env(spec: dict, storage_env: list, proxy: Optional[dict] = None) -> list:
    env = [
        {"name": "REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "value": "inmemory"},
        {"name": "REGISTRY_STORAGE_DELETE_ENABLED", "value": "true"},
        *storage_env,
        {"name": "REGISTRY_HEALTH_STORAGEDRIVER_ENABLED", "value": "true"},
        {"name": "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL", "value": "10s"},
        {"name": "REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD", "value": "1"},
        {"name": "REGISTRY_HTTP_ADDR", "value": f":{C.PORT}"},
        {"name": "REGISTRY_HTTP_NET", "value": "tcp"},
        {"name": "REGISTRY_HTTP_SECRET", "value": spec.get("httpSecret") or ""},
        {"name": "REGISTRY_LOG_LEVEL", "value": log_level(spec)},
        {"name": "REGISTRY_OPENSHIFT_QUOTA_ENABLED", "value": "true"},
        {"name": "REGISTRY_OPENSHIFT_METRICS_ENABLED", "value": "true"},
        {"name": "REGISTRY_OPENSHIFT_SERVER_ADDR", "value": C.INTERNAL_HOSTNAME},
        {"name": "REGISTRY_HTTP_TLS_CERTIFICATE", "value": "/etc/secrets/tls.crt"},
        {"name": "REGISTRY_HTTP_TLS_KEY", "value": "/etc/secrets/tls.key"},
    ]
    if spec.get("readOnly"):
        env.append({"name": "REGISTRY_STORAGE_MAINTENANCE_READONLY", "value": "{enabled: true}"})
    if spec.get("disableRedirect"):
        env.append({"name": "REGISTRY_STORAGE_REDIRECT_DISABLE", "value": "true"})
    proxy = dict(proxy or {})
    for field, var in (("http", "HTTP_PROXY"), ("https", "HTTPS_PROXY"), ("noProxy", "NO_PROXY")):
        value = (spec.get("proxy") or {}).get(field) or proxy.get(field)
        if value:
            env.append({"name": var, "value": value})
    for kind in ("read", "write"):
        r = (spec.get("requests") or {}).get(kind) or {}
        for field in ("maxRunning", "maxInQueue", "maxWaitInQueue"):
            if r.get(field):
                env.append({"name": f"REGISTRY_OPENSHIFT_REQUESTS_{kind.upper()}_{field.upper()}",
                            "value": str(r[field])})
    return env


def rollout_strategy(spec: dict) -> dict:
    kind = spec.get("rolloutStrategy") or "RollingUpdate"
    if kind == "Recreate":
        return {"type": "Recreate"}
    replicas = int(spec.get("replicas") or 0)
    if replicas == 2:
        params = {"maxUnavailable": 1, "maxSurge": 1}
    else:
        params = {"maxUnavailable": replicas - 1, "maxSurge": "25%"}
    return {"type": "RollingUpdate", "rollingUpdate": params}


def default_topology_spread() -> list:
    return [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": dict(C.LABELS)}}
            for key in ("kubernetes.io/hostname", "node-role.kubernetes.io/worker")]


def default_affinity() -> dict:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": dict(C.LABELS)}}]}}


def deployment(spec: dict, storage_volumes: tuple, deps_checksum: str, proxy: Optional[dict] = None,
               progress_deadline_seconds: int = 60) -> dict:
    """Deployment `image-registry`. storage_volumes = (volumes, mounts, env) from the storage driver."""
    s_volumes, s_mounts, s_env = storage_volumes
    replicas = int(spec.get("replicas") or 0)
    volumes = list(s_volumes) + [
        {"name": "registry-tls", "secret": {"secretName": C.TLS_SECRET}},
        {"name": "ca-trust-extracted", "emptyDir": {}},
        {"name": "registry-certificates", "configMap": {"name": C.CERTS_CONFIGMAP}},
        # operator-facts.md §4.1; the real operator (4.16-main) has them too (issue 8, differential selftest).
        {"name": "trusted-ca", "configMap": {"name": "trusted-ca", "optional": True,
                                             "items": [{"key": "ca-bundle.crt", "path": "anchors/ca-bundle.crt"}]}},
        {"name": "installation-pull-secrets", "secret": {
            "secretName": "installation-pull-secrets", "optional": True,
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
        {"name": "bound-sa-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "openshift", "expirationSeconds": 3600, "path": "token"}}]}},
    ]
    mounts = list(s_mounts) + [
        {"name": "registry-tls", "mountPath": "/etc/secrets"},
        {"name": "ca-trust-extracted", "mountPath": "/etc/pki/ca-trust/extracted"},
        {"name": "registry-certificates", "mountPath": "/etc/pki/ca-trust/source/anchors"},
        {"name": "trusted-ca", "mountPath": "/usr/share/pki/ca-trust-source"},
        {"name": "installation-pull-secrets", "mountPath": "/var/lib/kubelet/"},
        {"name": "bound-sa-token", "mountPath": "/var/run/secrets/openshift/serviceaccount", "readOnly": True},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": C.PORT, "scheme": "HTTPS"}, "timeoutSeconds": 5}
    container = {
        "name": "registry",
        "image": C.REGISTRY_IMAGE,
        "command": ["/bin/sh", "-c",
                    "update-ca-trust extract && exec /usr/bin/dockerregistry"],
        "ports": [{"containerPort": C.PORT, "protocol": "TCP"}],
        "env": registry_env(spec, s_env, proxy),
        "resources": copy.deepcopy(spec.get("resources")) or
        {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "volumeMounts": mounts,
        "livenessProbe": dict(probe, initialDelaySeconds=5),
        "readinessProbe": dict(probe, initialDelaySeconds=15),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    node_selector = dict(spec.get("nodeSelector") or {})
    node_selector.setdefault("kubernetes.io/os", "linux")
    pod_spec = {
        "serviceAccountName": C.SERVICE_ACCOUNT,
        "priorityClassName": "system-cluster-critical",
        "terminationGracePeriodSeconds": 55,
        "nodeSelector": node_selector,
        "containers": [container],
        "volumes": volumes,
    }
    if spec.get("tolerations"):
        pod_spec["tolerations"] = copy.deepcopy(spec["tolerations"])
    if spec.get("affinity"):
        pod_spec["affinity"] = copy.deepcopy(spec["affinity"])
    elif replicas == 2:
        pod_spec["affinity"] = default_affinity()
    if spec.get("topologySpreadConstraints"):
        pod_spec["topologySpreadConstraints"] = copy.deepcopy(spec["topologySpreadConstraints"])
    elif spec.get("nodeSelector") is None:
        pod_spec["topologySpreadConstraints"] = default_topology_spread()
    template_annotations = {
        C.DEPS_CHECKSUM_ANNOTATION: deps_checksum,
        "target.workload.openshift.io/management": '{"effect": "PreferredDuringScheduling"}',
    }
    dep_spec = {
        "replicas": replicas,
        "selector": {"matchLabels": dict(C.LABELS)},
        "strategy": rollout_strategy(spec),
        # 60 on release-4.12 ... 4.21, 120 from release-4.22 (operator-facts §12.1): by settings.openshift
        "progressDeadlineSeconds": int(progress_deadline_seconds),
        "template": {"metadata": {"labels": dict(C.LABELS), "annotations": template_annotations},
                     "spec": pod_spec},
    }
    annotations = {C.VERSION_ANNOTATION: C.VERSION, C.CHECKSUM_ANNOTATION: checksum(dep_spec)}
    overrides = (spec.get("unsupportedConfigOverrides") or {}).get("deployment") or {}
    annotations.update(overrides.get("annotations") or {})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(C.DEPLOYMENT_NAME, C.LABELS, annotations), "spec": dep_spec}


# --- the other objects ----------------------------------------------------------------------------

def service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(C.SERVICE_NAME, C.LABELS, {C.SERVING_CERT_ANNOTATION: C.TLS_SECRET}),
            "spec": {"type": "ClusterIP", "selector": dict(C.LABELS),
                     "ports": [{"name": f"{C.PORT}-tcp", "port": C.PORT, "protocol": "TCP",
                                "targetPort": C.PORT}]}}


def pdb(spec: dict, min_available_fault: Optional[str] = None) -> dict:
    """`min_available_fault`: fault operator.pdbMinAvailable (issue 9), this minAvailable whatever the replicas."""
    want = 0 if int(spec.get("replicas") or 0) <= 1 else 1
    if min_available_fault is not None:
        want = int(min_available_fault) if min_available_fault.isdigit() else min_available_fault
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(C.PDB_NAME, C.LABELS),
            "spec": {"minAvailable": want,
                     "selector": {"matchLabels": dict(C.LABELS)}}}


def service_account() -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(C.SERVICE_ACCOUNT)}


def private_config_secret(data: Optional[dict] = None) -> dict:
    """Secret `image-registry-private-configuration` (storage credentials; empty for PVC/emptyDir)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _meta(C.PRIVATE_CONFIG_SECRET), "data": dict(data or {})}


def certificates_configmap(service_ca_pem: Optional[str], additional: Optional[dict] = None,
                           storage_ca: Optional[str] = None) -> dict:
    data = dict(additional or {})
    if service_ca_pem:
        for host in (f"{C.SERVICE_NAME}.{C.NAMESPACE}.svc", f"{C.SERVICE_NAME}.{C.NAMESPACE}.svc.cluster.local"):
            data[f"{host}..{C.PORT}"] = service_ca_pem
    if storage_ca:
        data["storage-ca-bundle.pem"] = storage_ca
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(C.CERTS_CONFIGMAP), "data": data}


def routes(spec: dict, secrets_by_name: Optional[dict] = None) -> list:
    """Route `default-route` (when defaultRoute) and the spec.routes, all annotated as operator-owned."""
    out = []
    ann = {C.OWNER_ANNOTATION: "true"}
    if spec.get("defaultRoute"):
        out.append({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                    "metadata": _meta(C.DEFAULT_ROUTE, None, ann),
                    "spec": {"to": {"kind": "Service", "name": C.SERVICE_NAME},
                             "tls": {"termination": "reencrypt"}}})
    for r in spec.get("routes") or []:
        rs = {"to": {"kind": "Service", "name": C.SERVICE_NAME}, "tls": {"termination": "reencrypt"}}
        if r.get("hostname"):
            rs["host"] = r["hostname"]
        sec = (secrets_by_name or {}).get(r.get("secretName") or "")
        if sec:
            import base64
            data = sec.get("data") or {}
            for src, dst in (("tls.crt", "certificate"), ("tls.key", "key"), ("tls.cacrt", "caCertificate")):
                if data.get(src):
                    rs["tls"][dst] = base64.b64decode(data[src]).decode()
        out.append({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                    "metadata": _meta(r["name"], None, ann), "spec": rs})
    return out


def node_ca_daemonset() -> dict:
    labels = {"name": C.NODE_CA}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": _meta(C.NODE_CA, labels),
            "spec": {"selector": {"matchLabels": dict(labels)},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {
                         "serviceAccountName": C.NODE_CA,
                         "priorityClassName": "system-cluster-critical",
                         "nodeSelector": {"kubernetes.io/os": "linux"},
                         "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": C.NODE_CA, "image": C.NODE_CA_IMAGE,
                                         "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}}}],
                     }}}}


def route_hosts(route_objs: list) -> list:
    """externalRegistryHostnames: the admitted hosts of the operator's routes (or their spec.host)."""
    hosts = []
    for r in route_objs:
        h = (r.get("spec") or {}).get("host")
        if not h:
            for ing in (r.get("status") or {}).get("ingress") or []:
                if ing.get("host"):
                    h = ing["host"]
                    break
        if h and h not in hosts:
            hosts.append(h)
    return hosts


# --- comparing with what exists -------------------------------------------------------------------

def is_subset(desired, existing) -> bool:
    """True when `existing` holds everything `desired` says. Lists must match in length and
    element by element, so added list items (an extra env variable, a port) count as a change,
    while fields the server defaults inside items do not."""
    if desired in ({}, []) and existing is None:
        return True      # an empty map or list the server dropped
    if isinstance(desired, dict):
        if not isinstance(existing, dict):
            return False
        return all(is_subset(v, existing.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(existing, list) or len(desired) != len(existing):
            return False
        return all(is_subset(d, e) for d, e in zip(desired, existing))
    if isinstance(desired, (int, float)) and not isinstance(desired, bool) and \
            isinstance(existing, (int, float)) and not isinstance(existing, bool):
        return desired == existing
    return desired == existing


OWNED_TOP_LEVEL = ("spec", "data", "type")


def needs_update(desired: dict, existing: dict) -> bool:
    dm, em = desired.get("metadata") or {}, existing.get("metadata") or {}
    for key in ("labels", "annotations"):
        if not is_subset(dm.get(key) or {}, em.get(key) or {}):
            return True
    return any(k in desired and not is_subset(desired[k], existing.get(k)) for k in OWNED_TOP_LEVEL)


# Fields the server (or the router) fills in that the operator does not own.
SERVER_FIELDS = (("spec", "clusterIP"), ("spec", "clusterIPs"), ("spec", "ipFamilies"),
                 ("spec", "ipFamilyPolicy"), ("spec", "internalTrafficPolicy"),
                 ("spec", "sessionAffinity"), ("spec", "host"), ("spec", "revisionHistoryLimit"))


def updated_object(desired: dict, existing: dict) -> dict:
    """The body of a PUT that makes `existing` what the operator wants (resourceVersion kept)."""
    out = copy.deepcopy(existing)
    meta = out.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        merged = dict(meta.get(key) or {})
        merged.update((desired.get("metadata") or {}).get(key) or {})
        if merged:
            meta[key] = merged
    for k in OWNED_TOP_LEVEL:
        if k in desired:
            out[k] = copy.deepcopy(desired[k])
    for top, key in SERVER_FIELDS:
        src = existing.get(top)
        if isinstance(src, dict) and key in src and isinstance(out.get(top), dict) and \
                key not in desired.get(top, {}):
            out[top][key] = copy.deepcopy(src[key])
    return out
