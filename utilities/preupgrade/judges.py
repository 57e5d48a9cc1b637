"""The pre-upgrade review's judges (issue 10): plain functions from cluster objects (dicts, as the API
or a must-gather gives them) to a `Verdict`. Nothing here talks to a cluster: `gather.py` fetches
the objects, `tests/test_preupgrade.py` runs one judge per check.

Every verdict cites its facts as sections of `docs/operator-facts.md` (`sources.facts`), a document
of this repository, which names the upstream files, branches and docs modules they come from.
"""
from __future__ import annotations

import datetime
import re

from utilities.preupgrade.sources import facts
from utilities.preupgrade.verdicts import (Verdict, failed, not_applicable, passed, skipped,
                                           warned, worst)

GI = 1024 ** 3
MIN_CLAIM_BYTES = 100 * GI
CERT_WARN_DAYS = 30
EVENT_WINDOW_SECONDS = 3600
WATCHED_EVENT_REASONS = ("FailedMount", "FailedAttachVolume", "ProvisioningFailed", "BackOff", "FailedScheduling")
STORAGE_TYPES = ("emptyDir", "s3", "swift", "gcs", "ibmcos", "pvc", "azure", "oss")
# The operator's driver order (docs/operator-facts.md#storage-types); `oss` has no driver in CIRO.
DRIVER_TYPES = ("emptyDir", "s3", "swift", "gcs", "ibmcos", "pvc", "azure")
DEFAULT_CLAIM = "image-registry-storage"
OPERATOR_ANNOTATION = "imageregistry.openshift.io"
# Condition-type prefixes of the operator's components (docs/operator-facts.md#clusteroperator): the reason union
# of the ClusterOperator names them, e.g. `NodeCADaemonUnavailable::Ready`.
COMPONENTS = ("ImageRegistryCertificatesController", "ImageConfigController", "NodeCADaemonController",
              "AzureStackCloudController", "AzurePathFixController", "AzurePathFix", "NodeCADaemon",
              "ImagePruner", "ImageRegistryConfigObserver", "Storage")
NFS_DOCS = ("docs (registry-configuring-storage-vsphere): \"Testing shows issues with using the NFS server on "
            "RHEL as storage backend for core services. This includes the OpenShift Container Registry and "
            "Quay... using RHEL NFS to back PVs used by core services is not recommended.\"")


# ------------------------------------------------------------------------------------------ helpers
def conditions(obj: dict | None) -> dict[str, dict]:
    return {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []
            if isinstance(c, dict)}


def _cond_text(c: dict) -> str:
    return f"{c.get('type')}={c.get('status')}" + (f"/{c['reason']}" if c.get("reason") else "") + (
        f" \"{c['message'].strip()}\"" if (c.get("message") or "").strip() else "")


def _spec(obj) -> dict:
    return (obj or {}).get("spec") or {}


def _status(obj) -> dict:
    return (obj or {}).get("status") or {}


def storage_types(storage: dict | None) -> list[str]:
    return [t for t in STORAGE_TYPES if (storage or {}).get(t) is not None]


def claim_name(config: dict) -> str | None:
    """The claim the registry uses: `spec.storage.pvc.claim`, empty meaning `image-registry-storage`
    (docs/operator-facts.md#claims); None when the storage is not a claim."""
    pvc = (_spec(config).get("storage") or {}).get("pvc")
    if pvc is None:
        return None
    return (pvc or {}).get("claim") or DEFAULT_CLAIM


def replicas(config: dict) -> int:
    try:
        return int(_spec(config).get("replicas", 1))
    except (TypeError, ValueError):
        return 1


def rollout_strategy(config: dict) -> str:
    return _spec(config).get("rolloutStrategy") or "RollingUpdate"


_UNITS = {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4, "P": 1000 ** 5,
          "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5, "m": 0.001}


def quantity_bytes(q) -> float | None:
    """A Kubernetes quantity ("100Gi", "107374182400", "1e3") in bytes; None when it does not parse."""
    if q is None:
        return None
    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([kMGTP]i?|m)?\s*", str(q))
    if not m or m.group(2) == "ki":
        return None
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def parse_time(t) -> datetime.datetime | None:
    if not t:
        return None
    try:
        s = str(t).replace("Z", "+00:00")
        if "." in s:   # microseconds: Python wants at most 6 digits
            head, _, rest = s.partition(".")
            digits = re.match(r"\d*", rest).group(0)
            s = head + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
        d = datetime.datetime.fromisoformat(s)
        return d if d.tzinfo else d.replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def pod_ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return conditions(pod).get("Ready", {}).get("status") == "True" and _status(pod).get("phase") == "Running"


def _gib(b: float) -> str:
    return f"{b / GI:g}Gi"


# ------------------------------------------------------------------------------------------ conditions
def split_reason(reason: str | None, message: str | None = "") -> list[tuple[str, str]]:
    """The ClusterOperator's reason union split by component: [(component, reason)]; the main
    controller is `registry` (docs/operator-facts.md#clusteroperator). `NodeCADaemonUnavailable::Ready` ->
    [("NodeCADaemon", "Unavailable"), ("registry", "Ready")]."""
    out = []
    for part in [p for p in (reason or "").split("::") if p]:
        for comp in COMPONENTS:
            if part.startswith(comp) and len(part) > len(comp):
                out.append((comp, part[len(comp):]))
                break
        else:
            out.append(("registry", part))
    return out


def _message_lines(message: str | None) -> list[str]:
    return [ln.strip() for ln in (message or "").splitlines() if ln.strip()]


def clusteroperator(co: dict | None) -> Verdict:
    """ClusterOperator image-registry: Available, Progressing, Degraded, each component named."""
    src = facts("clusteroperator")
    if co is None:
        return failed("ClusterOperator image-registry does not exist: the image registry operator is not "
                      "installed or the capability is disabled", src)
    conds = conditions(co)
    normal = {"Available": "True", "Progressing": "False", "Degraded": "False"}
    findings, summary = [], []
    for t, ok in normal.items():
        c = conds.get(t)
        if c is None:
            findings.append(warned(f"{t} is not reported", src))
            continue
        parts = split_reason(c.get("reason"), c.get("message"))
        named = ", ".join(f"{comp}: {r}" for comp, r in parts) or "no reason"
        summary.append(f"{t}={c.get('status')} ({named})")
        if c.get("status") == ok:
            continue
        lines = "; ".join(_message_lines(c.get("message"))) or "no message"
        if t == "Progressing":
            findings.append(warned(f"Progressing=True ({named}): {lines}: a rollout is under way or stuck; "
                                   f"wait for Progressing=False before upgrading", src))
        else:
            findings.append(failed(f"{t}={c.get('status')} ({named}): {lines}", src))
    return worst(findings, "ClusterOperator image-registry " + "; ".join(summary), src)


def config_conditions(config: dict | None) -> Verdict:
    """The Config's own conditions: Available, Progressing (a stuck `Unable to apply resources`),
    Degraded, and every other controller's *Degraded."""
    src = facts("config-conditions")
    if config is None:
        return failed("Config cluster does not exist (configs.imageregistry.operator.openshift.io/cluster): "
                      "the operator bootstraps it; check the operator's pod", facts("bootstrap"))
    conds = conditions(config)
    findings = []
    prog = conds.get("Progressing") or {}
    msg = (prog.get("message") or "").strip()
    if "Unable to apply resources" in msg:
        findings.append(failed(f"the operator cannot apply the configuration: Progressing={prog.get('status')}/"
                               f"{prog.get('reason')} \"{msg}\"; fix the spec it names", src))
    elif prog.get("status") == "True":
        findings.append(warned(f"{_cond_text(prog)}: wait for the rollout to finish before upgrading", src))
    avail = conds.get("Available")
    if avail is not None and avail.get("status") != "True":
        findings.append(failed(_cond_text(avail), src))
    for t, c in sorted(conds.items()):
        if t and t.endswith("Degraded") and c.get("status") == "True":
            findings.append(failed(_cond_text(c), src))
    gen = (config.get("metadata") or {}).get("generation")
    seen = _status(config).get("observedGeneration")
    if gen is not None and seen is not None and int(seen) < int(gen):
        findings.append(warned(f"the operator has not yet observed the latest spec (generation {gen}, observed "
                               f"{seen})", facts("config-status")))
    return worst(findings, "Config: " + "; ".join(_cond_text(conds[t]) for t in ("Available", "Progressing",
                                                                                   "Degraded") if t in conds), src)


def management_state(config: dict, platform: str | None = None) -> Verdict:
    state = _spec(config).get("managementState") or ""
    if state == "Managed":
        return passed("managementState Managed: the operator manages and upgrades the registry")
    if state == "Removed":
        default = " (the bootstrap default on vSphere)" if (platform or "").lower() == "vsphere" else ""
        return warned(f"managementState Removed{default}: there is no registry, so pushes, builds and image "
                      f"streams that use it fail; set Managed with storage if the cluster needs one",
                      facts("bootstrap", "management-states"))
    if state == "Unmanaged":
        return warned("managementState Unmanaged: the operator ignores the Config and will not upgrade the "
                      "registry; set Managed before the upgrade", facts("management-states"))
    return failed(f"managementState {state or '(empty)'}: the operator acts only on Managed, Removed and "
                  f"Unmanaged and applies nothing", facts("config-spec"))


def storage(config: dict, production: bool = False) -> Verdict:
    spec = _spec(config)
    state = spec.get("managementState")
    types = storage_types(spec.get("storage"))
    drivers = [t for t in types if t in DRIVER_TYPES]
    src = facts("storage-types")
    if state == "Removed":
        return passed(f"no registry (Removed): storage {', '.join(types) or 'none'} is not in use")
    if len(drivers) > 1:
        return failed(f"{len(drivers)} storage types configured ({', '.join(drivers)}): the operator refuses "
                      f"(\"exactly one storage type should be configured at the same time\"); null the old "
                      f"member", src)
    if not drivers:
        extra = " (oss has no driver in the operator)" if "oss" in types else ""
        return failed(f"no storage configured{extra} while {state}: \"storage backend not configured\", "
                      f"the registry cannot run; configure a claim or object storage", facts("storage-types", "bootstrap"))
    findings = []
    t = drivers[0]
    applied = storage_types((_status(config).get("storage") or {}))
    if state == "Managed" and applied and t not in applied:
        findings.append(warned(f"spec asks for {t} but the operator still runs {', '.join(applied)} "
                               f"(status.storage): the change is not applied yet", facts("config-status", "storage-types")))
    if t == "emptyDir":
        why = ("emptyDir storage: every image is lost when a registry pod restarts, and an upgrade restarts "
               "the pods (API: \"not suitable for production use\"; docs: \"all images are lost if you "
               "restart the registry\"); move to a claim or object storage")
        src2 = facts("emptydir")
        findings.append(failed(why + " (--production)", src2) if production else warned(why, src2))
        if replicas(config) > 1:
            findings.append(failed(f"emptyDir with {replicas(config)} replicas: each pod has its own empty "
                                   f"storage, pulls through the service fail (blob unknown)", facts("emptydir")))
    return worst(findings, f"storage {t}" + _storage_detail(t, (spec.get("storage") or {}).get(t) or {}), src)


def _storage_detail(t: str, member: dict) -> str:
    keys = {"s3": ("bucket", "region", "regionEndpoint"), "pvc": ("claim",), "azure": ("accountName", "container"),
            "gcs": ("bucket", "region"), "swift": ("container",), "ibmcos": ("bucket", "location")}.get(t, ())
    parts = [f"{k} {member[k]}" for k in keys if member.get(k)]
    return f" ({', '.join(parts)})" if parts else ""


def claim(config: dict, pvc: dict | None, storage_class: dict | None = None,
          class_missing_file: str | None = None) -> Verdict:
    name = claim_name(config)
    if name is None:
        return not_applicable("storage is not a claim")
    src = facts("claims")
    if pvc is None:
        return failed(f"claim openshift-image-registry/{name} does not exist: \"persistentvolumeclaims "
                      f"\\\"{name}\\\" not found\"; create it or set claim \"\" for the operator's", src)
    findings = []
    phase = _status(pvc).get("phase")
    if phase != "Bound":
        findings.append(failed(f"claim {name} is {phase or 'not bound'}: the registry pod cannot start", src))
    size = quantity_bytes((_status(pvc).get("capacity") or {}).get("storage")) or quantity_bytes(
        ((_spec(pvc).get("resources") or {}).get("requests") or {}).get("storage"))
    if size is not None and size < MIN_CLAIM_BYTES:
        findings.append(warned(f"claim {name} holds {_gib(size)}, less than the 100Gi the docs require "
                               f"(\"Must have '100Gi' capacity\"); expand it before the images fill it", src))
    cls = _spec(pvc).get("storageClassName")
    if cls and class_missing_file:
        findings.append(passed(f"class {cls} not checked ({class_missing_file} is missing)"))
    elif cls and storage_class is None:
        findings.append(warned(f"claim {name} names StorageClass {cls}, which does not exist: a re-created "
                               f"claim could not be provisioned", src))
    ok = (f"claim {name} Bound, {_gib(size) if size else '? bytes'}, class "
          f"{cls or '(cluster default)'}, {', '.join(_spec(pvc).get('accessModes') or [])}")
    return worst(findings, ok, src)


def claim_access(config: dict, pvc: dict | None) -> Verdict:
    name = claim_name(config)
    if name is None:
        return not_applicable("storage is not a claim")
    if pvc is None:
        return not_applicable(f"claim {name} does not exist (see the claim check)")
    modes = _spec(pvc).get("accessModes") or []
    n, strategy = replicas(config), rollout_strategy(config)
    src = facts("claims", "drains-during-an-upgrade")
    if "ReadWriteMany" in modes:
        if n == 1:
            return warned("ReadWriteMany claim with 1 replica: not highly available (a node drain stops the "
                          "registry); 2 replicas are supported on RWX", facts("block-storage-on-vsphere"))
        return passed(f"ReadWriteMany claim, {n} replicas, {strategy}")
    if "ReadWriteOnce" in modes:
        if n > 1:
            return failed(f"ReadWriteOnce claim with {n} replicas: \"cannot use ReadWriteOnce access mode with "
                          f"more than one replica of the image registry\"; the second pod cannot attach the "
                          f"volume (Multi-Attach); set replicas 1", src)
        if strategy != "Recreate":
            return failed(f"ReadWriteOnce claim with {strategy}: the upgrade's rollout starts the new pod before "
                          f"the old one stops and it cannot attach the volume (Multi-Attach), the rollout hangs; "
                          f"set rolloutStrategy Recreate", src)
        return passed("ReadWriteOnce claim, 1 replica, Recreate (as the docs' block storage procedure)")
    return failed(f"claim {name} has access modes {modes}: \"does not contain the necessary access modes: "
                  f"ReadWriteMany or ReadWriteOnce\"", src)


def _is_nfs_name(s: str | None) -> bool:
    return bool(s) and "nfs" in s.lower()


def claim_nfs(config: dict, pvc: dict | None, pv: dict | None, storage_class: dict | None,
              missing: list[str] = ()) -> Verdict:
    name = claim_name(config)
    if name is None:
        return not_applicable("storage is not a claim")
    if pvc is None:
        return not_applicable(f"claim {name} does not exist (see the claim check)")
    src = facts("nfs")
    pvspec = _spec(pv)
    if pvspec.get("nfs"):
        nfs = pvspec["nfs"]
        return warned(f"volume {pv['metadata']['name']} is an NFS export ({nfs.get('server')}:{nfs.get('path')}): "
                      + NFS_DOCS, src)
    driver = (pvspec.get("csi") or {}).get("driver")
    if _is_nfs_name(driver):
        return warned(f"volume {pv['metadata']['name']} is served by the NFS CSI driver {driver}: " + NFS_DOCS, src)
    prov = (storage_class or {}).get("provisioner")
    if _is_nfs_name(prov):
        return warned(f"class {storage_class['metadata']['name']} is provisioned by {prov} (NFS): " + NFS_DOCS, src)
    if pv is None and storage_class is None and missing:
        return skipped(f"cannot tell what serves claim {name}: {' and '.join(missing)} missing")
    what = driver or (next((k for k in pvspec if k not in ("capacity", "accessModes", "claimRef",
                                                             "persistentVolumeReclaimPolicy", "storageClassName",
                                                             "volumeMode", "nodeAffinity", "mountOptions")), None)
                      if pv else None) or prov or "unknown"
    return passed(f"claim {name} is not on NFS (served by {what})")


def storage_management(config: dict, pvc: dict | None = None, infrastructure_name: str | None = None) -> Verdict:
    spec = _spec(config)
    st = spec.get("storage") or {}
    ms = st.get("managementState") or ((_status(config).get("storage") or {}).get("managementState"))
    src = facts("storage-management-state")
    if ms != "Managed":
        return passed(f"storage managementState {ms or '(not set yet)'}: Removed keeps the storage")
    name = claim_name(config)
    if name is not None:
        if pvc is None:
            return not_applicable(f"claim {name} does not exist (see the claim check)")
        ann = ((pvc.get("metadata") or {}).get("annotations") or {}).get(OPERATOR_ANNOTATION)
        if ann != "true":
            return warned(f"storage managementState Managed on claim {name}, which the operator did not create "
                          f"(no {OPERATOR_ANNOTATION} annotation): switching the registry to Removed deletes "
                          f"the claim and every image in it; set storage managementState Unmanaged", src)
        return passed(f"claim {name} is the operator's own (Managed): Removed deletes it, as designed")
    for kind, field in (("s3", "bucket"), ("gcs", "bucket"), ("ibmcos", "bucket"), ("azure", "container"),
                        ("swift", "container")):
        if st.get(kind) is not None:
            bucket = (st.get(kind) or {}).get(field) or ""
            generated = bool(infrastructure_name) and bucket.startswith(f"{infrastructure_name}-image-registry")
            if bucket and not generated:
                return warned(f"storage managementState Managed on {kind} {field} {bucket}, whose name is not the "
                              f"operator's (<infrastructureName>-image-registry-...): Removed empties and deletes "
                              f"it; set storage managementState Unmanaged if it is yours", src)
            return passed(f"{kind} {field} {bucket or '(to be created)'} is the operator's own (Managed)")
    return passed("storage managementState Managed: nothing to delete on Removed (emptyDir)")


def _secret_value_lengths(secret: dict, key: str):
    """(present, length, elided): must-gather writes Secret values as "N bytes long"."""
    import base64
    for field in ("data", "stringData"):
        data = secret.get(field) or {}
        if key in data:
            raw = data[key] or ""
            m = re.fullmatch(r"(\d+) bytes long", str(raw))
            if not m:
                try:
                    dec = base64.b64decode(str(raw), validate=True).decode("ascii", "ignore")
                    m = re.fullmatch(r"(\d+) bytes long", dec)
                    if not m:
                        return True, len(dec), False
                except Exception:  # noqa: BLE001
                    return True, len(str(raw)), False
            return True, int(m.group(1)), True
    return False, 0, False


S3_KEYS = ("REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY")


def s3_credentials(config: dict, user_secret: dict | None, cloud_secret: dict | None = None,
                   platform: str | None = None) -> Verdict:
    if (_spec(config).get("storage") or {}).get("s3") is None:
        return not_applicable("storage is not S3")
    src = facts("s3-credentials")
    if user_secret is None:
        if cloud_secret is not None:
            return passed("no image-registry-private-configuration-user: the operator uses the cluster's "
                          "minted credentials (installer-cloud-credentials)", src)
        return failed("neither image-registry-private-configuration-user nor installer-cloud-credentials exists "
                      "in openshift-image-registry: the operator has no S3 credentials; create the user secret "
                      f"with {' and '.join(S3_KEYS)}", src)
    missing, empty, elided = [], [], False
    for k in S3_KEYS:
        present, length, was_elided = _secret_value_lengths(user_secret, k)
        elided = elided or was_elided
        if not present:
            missing.append(k)
        elif length == 0:
            empty.append(k)
    if missing:
        return failed(f"image-registry-private-configuration-user lacks {', '.join(missing)}: \"does not contain "
                      f"required key\"", src)
    if empty:
        return failed(f"image-registry-private-configuration-user has empty {', '.join(empty)}", src)
    note = " (values elided by must-gather: whether the keys are right cannot be told)" if elided else ""
    return passed(f"image-registry-private-configuration-user has both keys{note}", src)


def _certs(pem: str):
    from cryptography import x509
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem or "", re.S)
    out = []
    for b in blocks:
        out.append(x509.load_pem_x509_certificate(b.encode()))
    return blocks, out


def s3_trusted_ca(config: dict, configmap: dict | None, now: datetime.datetime,
                  warn_days: int = CERT_WARN_DAYS) -> Verdict:
    s3 = (_spec(config).get("storage") or {}).get("s3")
    if s3 is None:
        return not_applicable("storage is not S3")
    name = ((s3 or {}).get("trustedCA") or {}).get("name")
    src = facts("s3-trusted-ca")
    if not name:
        return passed("no trustedCA: the operator and the registry trust the system CAs", src)
    if configmap is None:
        return failed(f"trustedCA config map openshift-config/{name} does not exist: \"failed to get trusted CA\", "
                      f"the certificates controller is Degraded; create it with key ca-bundle.crt", src)
    bundle = (configmap.get("data") or {}).get("ca-bundle.crt")
    if not bundle:
        return failed(f"trustedCA config map {name} has no ca-bundle.crt: \"does not contain required key "
                      f"\\\"ca-bundle.crt\\\"\"", src)
    try:
        blocks, certs = _certs(bundle)
    except Exception as e:  # noqa: BLE001
        return failed(f"ca-bundle.crt of {name} does not parse: {e}", src)
    if not certs:
        return failed(f"ca-bundle.crt of {name} holds no PEM certificate", src)
    findings = []
    for c in certs:
        subject = c.subject.rfc4514_string() or "(no subject)"
        end = c.not_valid_after_utc
        left = (end - now).total_seconds() / 86400
        if left < 0:
            findings.append(failed(f"certificate {subject} in {name} expired on {end:%Y-%m-%d}: the S3 endpoint "
                                   f"is no longer trusted", src))
        elif left < warn_days:
            findings.append(warned(f"certificate {subject} in {name} expires on {end:%Y-%m-%d}, in {left:.0f} "
                                   f"days (< {warn_days}): renew it and update the config map", src))
    return worst(findings, f"trustedCA {name}: {len(certs)} certificate(s), none expiring within {warn_days} days "
                           f"of {now:%Y-%m-%d}", src)


def s3_endpoint(config: dict, routes: list[dict], resolves=None, offline: bool = False) -> Verdict:
    """regionEndpoint: a route host of the cluster, or a name that resolves (`resolves(host)`)."""
    s3 = (_spec(config).get("storage") or {}).get("s3")
    if s3 is None:
        return not_applicable("storage is not S3")
    ep = (s3 or {}).get("regionEndpoint")
    src = facts("s3-endpoint")
    if not ep:
        return passed("no regionEndpoint: the AWS endpoint of the region", src)
    m = re.match(r"^(https?)://([^/:]+)", ep)
    if not m:
        return failed(f"regionEndpoint {ep!r} is not a URL with a scheme (\"should be a valid URL with scheme\")", src)
    scheme, host = m.group(1), m.group(2)
    findings = []
    if scheme == "http":
        findings.append(warned(f"regionEndpoint {ep} is plain HTTP: S3 keys and images travel unencrypted", src))
    hosts = {}
    for r in routes or []:
        for h in [_spec(r).get("host")] + [i.get("host") for i in _status(r).get("ingress") or []]:
            if h:
                hosts[h] = r
    if host in hosts:
        r = hosts[host]
        admitted = any(c.get("type") == "Admitted" and c.get("status") == "True"
                       for i in _status(r).get("ingress") or [] for c in i.get("conditions") or [])
        if not admitted:
            findings.append(failed(f"regionEndpoint host {host} is route {r['metadata'].get('namespace')}/"
                                   f"{r['metadata']['name']}, not admitted by a router", src))
        return worst(findings, f"regionEndpoint {ep} is route {r['metadata'].get('namespace')}/{r['metadata']['name']}",
                     src)
    if host.endswith(".svc") or ".svc." in host:
        return worst(findings, f"regionEndpoint {ep} is a cluster service name", src)
    if offline or resolves is None:
        findings.append(skipped(f"regionEndpoint host {host} is not a route in the must-gather; whether it "
                                f"resolves cannot be told offline", src))
        return worst(findings)
    if not resolves(host):
        findings.append(failed(f"regionEndpoint host {host} is not a route of the cluster and does not resolve", src))
    return worst(findings, f"regionEndpoint {ep} resolves", src)


def registry_pods(pods: list[dict]) -> list[dict]:
    return [p for p in pods or [] if ((p.get("metadata") or {}).get("labels") or {}).get("docker-registry") == "default"
            and _status(p).get("phase") not in ("Succeeded", "Failed")]


def replicas_ready(config: dict, deployment: dict | None, pods: list[dict]) -> Verdict:
    spec = _spec(config)
    if spec.get("managementState") != "Managed":
        return not_applicable(f"managementState {spec.get('managementState')}: no replicas to count")
    want = replicas(config)
    src = facts("config-status", "replicas-and-rollout")
    if deployment is None:
        return failed("Deployment openshift-image-registry/image-registry does not exist while Managed", src)
    mine = registry_pods(pods)
    ready = [p for p in mine if pod_ready(p)]
    dep_ready = _status(deployment).get("readyReplicas") or 0
    status_ready = _status(config).get("readyReplicas")
    detail = (f"spec.replicas {want}, ready pods {len(ready)}/{len(mine)}, Deployment readyReplicas {dep_ready}"
              + (f", Config status.readyReplicas {status_ready}" if status_ready is not None else ""))
    if want > 0 and not ready:
        not_ready = "; ".join(f"{p['metadata']['name']}: {_pod_problem(p)}" for p in mine) or "no pods"
        return failed(f"no registry pod is ready ({detail}): {not_ready}", src)
    if len(ready) < want:
        return warned(f"fewer ready registry pods than asked ({detail}): a node drain during the upgrade can "
                      f"take the registry down; find why the others are not ready (events check)", src)
    if len(mine) > want:
        return warned(f"more registry pods than asked ({detail}): a rollout is under way or stuck; let it "
                      f"finish before upgrading", src)
    return passed(detail, src)


def _pod_problem(pod: dict) -> str:
    st = _status(pod)
    for cs in st.get("containerStatuses") or []:
        w = (cs.get("state") or {}).get("waiting")
        if w:
            return f"{w.get('reason')} {w.get('message') or ''}".strip()
    for c in st.get("conditions") or []:
        if c.get("status") != "True" and (c.get("reason") or c.get("message")):
            return f"{c.get('type')}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip()
    return st.get("phase") or "unknown"


def replicas_spread(config: dict, pods: list[dict]) -> Verdict:
    if _spec(config).get("managementState") != "Managed":
        return not_applicable("no registry pods (not Managed)")
    ready = [p for p in registry_pods(pods) if pod_ready(p)]
    by_node: dict[str, list[str]] = {}
    for p in ready:
        by_node.setdefault(_spec(p).get("nodeName") or "?", []).append(p["metadata"]["name"])
    src = facts("replicas-and-rollout")
    crowded = {n: ps for n, ps in by_node.items() if len(ps) > 1}
    if crowded:
        return warned("; ".join(f"{len(ps)} registry pods on node {n} ({', '.join(sorted(ps))})"
                                for n, ps in sorted(crowded.items()))
                      + ": draining that node during the upgrade takes them all down; restore the default "
                      "topology spread (no nodeSelector) or add schedulable workers, then delete one pod", src)
    if len(ready) <= 1:
        return passed(f"{len(ready)} ready registry pod: nothing to spread", src)
    return passed(f"{len(ready)} ready registry pods on {len(by_node)} nodes", src)


def _event_time(ev: dict) -> datetime.datetime | None:
    return (parse_time((ev.get("series") or {}).get("lastObservedTime")) or parse_time(ev.get("lastTimestamp"))
            or parse_time(ev.get("eventTime")) or parse_time((ev.get("metadata") or {}).get("creationTimestamp")))


def _event_count(ev: dict) -> int:
    return int((ev.get("series") or {}).get("count") or ev.get("count") or 1)


def events(events_: list[dict], pods: list[dict], pvcs: list[dict], now: datetime.datetime,
           window_seconds: float = EVENT_WINDOW_SECONDS) -> Verdict:
    """Recent Warning events of the namespace (FailedMount, FailedAttachVolume, ProvisioningFailed,
    BackOff, FailedScheduling) on objects that are still unhealthy; those on pods now ready (or gone)
    and claims now bound are history."""
    src = facts("events")
    pods_by = {p["metadata"]["name"]: p for p in pods or []}
    pvcs_by = {p["metadata"]["name"]: p for p in pvcs or []}
    live, history = {}, {}
    for ev in events_ or []:
        if ev.get("type") != "Warning" or ev.get("reason") not in WATCHED_EVENT_REASONS:
            continue
        t = _event_time(ev)
        if t is None or (now - t).total_seconds() > window_seconds:
            continue
        obj = ev.get("involvedObject") or {}
        kind, name = obj.get("kind"), obj.get("name")
        resolved = False
        if kind == "Pod":
            p = pods_by.get(name)
            resolved = p is None or pod_ready(p)
        elif kind == "PersistentVolumeClaim":
            c = pvcs_by.get(name)
            resolved = c is None or _status(c).get("phase") == "Bound"
        bucket = history if resolved else live
        key = (ev.get("reason"), kind, name)
        prev = bucket.get(key)
        if prev is None or t >= prev[0]:
            bucket[key] = (t, (prev[1] if prev else 0) + _event_count(ev), (ev.get("message") or "").strip())
        else:
            bucket[key] = (prev[0], prev[1] + _event_count(ev), prev[2])
    window = f"{window_seconds / 3600:g}h before {now:%Y-%m-%d %H:%M}Z"
    if live:
        parts = [f"{r} x{n} on {k} {nm} (latest {t:%H:%M:%S}Z: \"{m.splitlines()[0] if m else ''}\")"
                 for (r, k, nm), (t, n, m) in sorted(live.items(), key=lambda kv: kv[1][0], reverse=True)]
        return warned(f"Warning events in openshift-image-registry in the {window}: " + "; ".join(parts)
                      + "; fix their cause (oc -n openshift-image-registry describe the objects) before upgrading",
                      src)
    note = (f"; {sum(v[1] for v in history.values())} earlier warning(s) "
            f"({', '.join(sorted({k[0] for k in history}))}) on objects now healthy or gone") if history else ""
    return passed(f"no unresolved Warning events in the {window}{note}", src)


def pruner(pruner_: dict | None, cronjob: dict | None = None, jobs: list[dict] | None = None) -> Verdict:
    src = facts("image-pruner")
    if pruner_ is None:
        return warned("ImagePruner cluster does not exist: images are never pruned and the registry storage "
                      "grows", src)
    findings = []
    if _spec(pruner_).get("suspend"):
        findings.append(warned("the image pruner is suspended (spec.suspend): unreferenced images are not "
                               "pruned and storage grows; set imagepruners/cluster spec.suspend false", src))
    failed_c = conditions(pruner_).get("Failed") or {}
    if failed_c.get("status") == "True":
        findings.append(warned(f"the image pruner's last job failed: {_cond_text(failed_c)} (the ClusterOperator "
                               f"turns Degraded/ImagePrunerJobFailed); read the job's log", src))
    if cronjob is not None and _spec(cronjob).get("suspend") and not _spec(pruner_).get("suspend"):
        findings.append(warned(f"CronJob {cronjob['metadata']['name']} is suspended", src))
    done = [j for j in jobs or [] if (j.get("metadata") or {}).get("name", "").startswith("image-pruner")]
    done.sort(key=lambda j: _status(j).get("startTime") or "", reverse=True)
    if done and (conditions(done[0]).get("Failed", {}).get("status") == "True" or (
            _status(done[0]).get("failed") and not _status(done[0]).get("succeeded"))):
        findings.append(warned(f"the latest pruner job {done[0]['metadata']['name']} failed", src))
    return worst(findings, f"image pruner active (schedule {_spec(pruner_).get('schedule') or 'default'}), last "
                           f"job {failed_c.get('reason') or 'not run yet'}", src)


def _admitted(route: dict) -> tuple[bool, str]:
    for i in _status(route).get("ingress") or []:
        for c in i.get("conditions") or []:
            if c.get("type") == "Admitted":
                return c.get("status") == "True", (c.get("message") or c.get("reason") or "")
    return False, "no router has admitted it"


def routes(config: dict, routes_: list[dict], image_config: dict | None = None) -> Verdict:
    spec = _spec(config)
    src = facts("routes")
    if spec.get("managementState") != "Managed":
        return not_applicable("not Managed: the operator keeps no route")
    wanted = (["default-route"] if spec.get("defaultRoute") else []) + [r.get("name") for r in spec.get("routes") or []]
    by_name = {r["metadata"]["name"]: r for r in routes_ or []}
    if not wanted:
        return passed("the registry is not exposed (no defaultRoute, no routes)", src)
    findings, hosts = [], []
    for n in wanted:
        r = by_name.get(n)
        if r is None:
            findings.append(failed(f"route {n} is asked for but does not exist", src))
            continue
        ok, why = _admitted(r)
        host = _spec(r).get("host") or next((i.get("host") for i in _status(r).get("ingress") or []), "")
        hosts.append(host)
        if not ok:
            findings.append(failed(f"route {n} ({host}) is not admitted: {why}", src))
    ext = (_status(image_config).get("externalRegistryHostnames") or []) if image_config else None
    if ext is not None:
        for h in hosts:
            if h and h not in ext:
                findings.append(warned(f"route host {h} is not in images.config.openshift.io/cluster "
                                       f"status.externalRegistryHostnames ({ext}): the image config controller has "
                                       f"not caught up", src))
    return worst(findings, f"route(s) {', '.join(wanted)} admitted ({', '.join(h for h in hosts if h)})", src)


NODE_CA_SELECTOR = {"kubernetes.io/os": "linux"}     # the operator's node-ca nodeSelector (all taints tolerated)


def node_ca_nodes(nodes: list[dict]) -> list[str]:
    """The nodes node-ca should run on: the operator's DaemonSet selects `kubernetes.io/os: linux` and
    tolerates every taint (docs/operator-facts.md#node-ca), so every Linux node, cordoned or tainted."""
    return sorted(n["metadata"]["name"] for n in nodes or []
                  if all(((n.get("metadata") or {}).get("labels") or {}).get(k) == val
                         for k, val in NODE_CA_SELECTOR.items()))


def node_ca(daemonset: dict | None, nodes: list[dict] | None = None, pods: list[dict] | None = None,
            nodes_missing: str | None = None) -> Verdict:
    """node-ca on every node it should run on. `nodes`: None when they could not be read (`nodes_missing`
    says why: a must-gather without them, a user who may not list them); `pods`: the namespace's pods, to name the nodes
    without a node-ca pod."""
    src = facts("node-ca")
    if daemonset is None:
        return warned("DaemonSet openshift-image-registry/node-ca does not exist: nodes do not get the registry's "
                      "CA (image pulls by the internal hostname fail on new nodes)", src)
    st = _status(daemonset)
    want, avail = int(st.get("desiredNumberScheduled") or 0), int(st.get("numberAvailable") or 0)
    updated = int(st.get("updatedNumberScheduled", want) or 0)
    should = node_ca_nodes(nodes) if nodes is not None else None
    on = (f" of {len(should)} Linux node(s)" if should is not None else
          f" (nodes not checked: {nodes_missing})" if nodes_missing else "")
    if want == 0:
        where = (f"while the cluster has {len(should)} Linux node(s) ({', '.join(should[:5])}"
                 f"{', ...' if len(should) > 5 else ''})" if should else
                 "and no Linux node was found" if should is not None else "")
        return failed(f"node-ca is scheduled on no node (0/0 available) {where}".rstrip() + ": no node gets or "
                      "renews the registry's CA, so nodes added or replaced during the upgrade cannot pull from "
                      "the internal registry; look at the DaemonSet's nodeSelector and the nodes' labels "
                      "(oc -n openshift-image-registry describe ds node-ca)", src)
    if not avail:
        return failed(f"node-ca has no available pod (0/{want}{on})", src)
    findings = []
    if should is not None and want < len(should):
        covered = {_spec(p).get("nodeName") for p in pods or []
                   if ((p.get("metadata") or {}).get("labels") or {}).get("name") == "node-ca"}
        lacking = [n for n in should if n not in covered] if pods else []
        findings.append(warned(f"node-ca is scheduled on {want} of the {len(should)} Linux nodes it should run on"
                               + (f" (none on {', '.join(lacking[:8])}{', ...' if len(lacking) > 8 else ''})"
                                  if lacking else "")
                               + ": those nodes do not get the registry's CA; look at the DaemonSet's nodeSelector "
                               "and tolerations against the operator's (linux, every taint)", src))
    if avail < want or updated < want:
        findings.append(warned(f"node-ca: {avail}/{want} available, {updated}/{want} updated{on}: some nodes do not "
                               f"get the registry's CA; look at the node-ca pods of the missing nodes", src))
    return worst(findings, f"node-ca: {avail}/{want} available{on}", src)


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against labels; an empty selector selects all."""
    sel = selector or {}
    if any(labels.get(k) != val for k, val in (sel.get("matchLabels") or {}).items()):
        return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        ok = {"In": lambda: labels.get(k) in vals, "NotIn": lambda: labels.get(k) not in vals,
              "Exists": lambda: k in labels, "DoesNotExist": lambda: k not in labels}.get(op, lambda: False)()
        if not ok:
            return False
    return True


def _scaled(value, total: int) -> int | None:
    """An IntOrString of a PDB against `total` pods; a percentage rounds up, as the disruption controller."""
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        try:
            return -(-int(value[:-1]) * total // 100)
        except ValueError:
            return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def pdb_budget(pdb: dict, pods: list[dict], replicas_: int) -> dict:
    """What a PDB allows for the registry pods it selects: expected, healthy, desired healthy, allowed
    disruptions. The PDB's status when the disruption controller has observed its generation; else
    computed from the pods as that controller does (the local cluster runs none)."""
    st = _status(pdb)
    gen = (pdb.get("metadata") or {}).get("generation")
    if "disruptionsAllowed" in st and (gen is None or st.get("observedGeneration") == gen):
        return {"expected": int(st.get("expectedPods") or 0), "healthy": int(st.get("currentHealthy") or 0),
                "desired": int(st.get("desiredHealthy") or 0), "allowed": int(st.get("disruptionsAllowed") or 0),
                "from": "status"}
    selected = [p for p in pods if selects(_spec(pdb).get("selector"), (p.get("metadata") or {}).get("labels") or {})]
    healthy = sum(1 for p in selected if pod_ready(p))
    spec = _spec(pdb)
    if spec.get("maxUnavailable") is not None:
        expected = max(replicas_, len(selected)) if selected else 0
        desired = max(0, expected - (_scaled(spec["maxUnavailable"], expected) or 0))
    else:
        ma = spec.get("minAvailable")
        expected = (max(replicas_, len(selected)) if isinstance(ma, str) else len(selected)) if selected else 0
        desired = _scaled(ma, expected) or 0
    return {"expected": expected, "healthy": healthy, "desired": desired, "allowed": max(0, healthy - desired),
            "from": "pods"}


def pdb(config: dict, pdbs: list[dict], pods: list[dict]) -> Verdict:
    """The PodDisruptionBudgets over the registry pods: would one block a node drain of the upgrade?

    The operator keeps PDB `image-registry` (minAvailable 1 with 2+ replicas, 0 with one); a drain
    evicts through the eviction API, which refuses while the budget allows no disruption, and the
    machine-config operator's drain then retries until the node's update stalls
    (docs/operator-facts.md#pod-disruption-budget, #drains-during-an-upgrade)."""
    src = facts("pod-disruption-budget", "drains-during-an-upgrade")
    state = _spec(config).get("managementState")
    mine = registry_pods(pods)
    if state != "Managed" and not mine:
        return not_applicable(f"no registry pods ({state})")
    labels = ((mine[0].get("metadata") or {}).get("labels") if mine else None) or {"docker-registry": "default"}
    over = [b for b in pdbs or [] if selects(_spec(b).get("selector"), labels)]
    n = replicas(config)
    if not over:
        if n > 1:
            return warned(f"no PodDisruptionBudget covers the registry pods ({n} replicas): a drain may evict them "
                          f"all at once; the operator keeps PDB image-registry (minAvailable 1), see why it is gone",
                          src)
        return passed("no PodDisruptionBudget covers the registry pod (1 replica: the operator's would allow "
                      "evicting it)", src)
    findings, ok = [], []
    for b in over:
        name = b["metadata"]["name"]
        spec = _spec(b)
        rule = (f"maxUnavailable {spec['maxUnavailable']}" if spec.get("maxUnavailable") is not None
                else f"minAvailable {spec.get('minAvailable')}")
        bud = pdb_budget(b, mine, n)
        what = (f"PDB {name} ({rule}): {bud['healthy']} healthy of {bud['expected']} expected, {bud['desired']} "
                f"must stay, {bud['allowed']} disruption(s) allowed")
        unhealthy = bud["expected"] - bud["healthy"]
        always = spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
        if bud["healthy"] and not bud["allowed"]:
            findings.append(failed(f"{what}: draining a node that runs a registry pod is refused (\"Cannot evict pod "
                                   f"as it would violate the pod's disruption budget\"), so the upgrade's node drain "
                                   f"hangs; " + ("with 1 replica use minAvailable 0 (the operator's own value) "
                                                 if n <= 1 else "let every replica become ready first ")
                                   + "or run the registry with more replicas than the budget keeps", src))
        elif unhealthy > 0 and bud["healthy"] < bud["desired"] and not always:
            findings.append(failed(f"{what}: the {unhealthy} not-ready registry pod(s) cannot be evicted either "
                                   f"while the budget is not met (unhealthyPodEvictionPolicy "
                                   f"{spec.get('unhealthyPodEvictionPolicy') or 'IfHealthyBudget'}), so a drain of "
                                   f"their node hangs; fix the pods (replicas-ready, events) before upgrading", src))
        else:
            ok.append(what)
        if state == "Managed" and name == "image-registry" and spec.get("maxUnavailable") is None and str(
                spec.get("minAvailable")) != str(0 if n <= 1 else 1):
            findings.append(passed(f"PDB image-registry has minAvailable {spec.get('minAvailable')}, not the "
                                   f"operator's {0 if n <= 1 else 1} for {n} replica(s): the operator rewrites it "
                                   f"on its next sync"))
    return worst(findings, "; ".join(ok), src)


def must_gather_age(captured: datetime.datetime | None, basis: str, now: datetime.datetime,
                    max_age_hours: float, offline: bool = True) -> Verdict:
    """How old the must-gather is, and a warning when it is older than `max_age_hours`: a review of an
    old state says little about the cluster that is about to be upgraded."""
    src = facts("must-gather")
    if not offline:
        return not_applicable("a live cluster is reviewed as it is now")
    if captured is None:
        return warned("the must-gather's age cannot be told (no timestamp file, no time in its objects): make sure "
                      "it was taken just before the upgrade", src)
    age = (now - captured).total_seconds() / 3600
    when = f"taken {captured:%Y-%m-%d %H:%M}Z ({basis})"
    if age < 0:
        return passed(f"{when}, {-age:.1f} h in the future of this machine's clock: check the clocks", src)
    told = f"{age / 24:.0f} days" if age >= 48 else f"{age:.1f} h"
    if age > max_age_hours:
        return warned(f"{when}, {told} ago, older than {max_age_hours:g} h (--must-gather-max-age): the cluster may "
                      f"have changed since; take a new one (oc adm must-gather) before the upgrade", src)
    return passed(f"{when}, {told} ago", src)


def operator_version(co: dict | None, cluster_version: dict | None) -> Verdict:
    src = facts("cluster-version")
    if co is None or cluster_version is None:
        return not_applicable("no ClusterOperator or ClusterVersion to compare")
    ver = next((v.get("version") for v in _status(co).get("versions") or [] if v.get("name") == "operator"), None)
    cv = _status(cluster_version)
    desired = (cv.get("desired") or {}).get("version")
    hist = (cv.get("history") or [{}])[0]
    findings = []
    cvc = conditions(cluster_version)
    if cvc.get("Progressing", {}).get("status") == "True":
        findings.append(warned(f"an upgrade is already in progress: {cvc['Progressing'].get('message') or desired}",
                               facts("cluster-version")))
    if cvc.get("Upgradeable", {}).get("status") == "False":
        findings.append(warned(f"ClusterVersion Upgradeable=False: {(cvc['Upgradeable'].get('message') or '').strip()}"
                               .rstrip(": "), facts("cluster-version")))
    if cvc.get("Failing", {}).get("status") == "True":
        findings.append(warned(f"ClusterVersion Failing: {cvc['Failing'].get('message') or ''}".strip(),
                               facts("cluster-version")))
    if ver is None:
        findings.append(warned(f"the ClusterOperator reports no operator version (cluster {desired}): the registry "
                               f"has not finished rolling out", src))
    elif desired and ver != desired:
        findings.append(warned(f"the ClusterOperator reports {ver}, the cluster is at {desired} "
                               f"({hist.get('state')}): the registry did not finish the last upgrade; wait for it "
                               f"(or find what holds its rollout) before the next one", src))
    return worst(findings, f"operator {ver} = cluster {desired} ({hist.get('state') or 'no history'})", src)


def _no_proxy_covers(no_proxy: str, host: str) -> bool:
    for entry in [e.strip() for e in (no_proxy or "").split(",") if e.strip()]:
        if entry == "*" or host == entry.lstrip(".") or host.endswith("." + entry.lstrip(".")) or (
                entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def proxy(config: dict, cluster_proxy: dict | None) -> Verdict:
    src = facts("proxy")
    own = _spec(config).get("proxy") or {}
    cp = _status(cluster_proxy) if cluster_proxy else {}
    http = own.get("http") or cp.get("httpProxy")
    https = own.get("https") or cp.get("httpsProxy")
    no_proxy = own.get("noProxy") if own.get("noProxy") is not None else cp.get("noProxy", "")
    findings = []
    if any(own.get(k) for k in ("http", "https", "noProxy")):
        differs = (own.get("http") or cp.get("httpProxy"), own.get("https") or cp.get("httpsProxy")) != (
            cp.get("httpProxy"), cp.get("httpsProxy"))
        findings.append(warned(f"the registry has its own proxy settings (spec.proxy {own}) that override the "
                               f"cluster proxy{' and differ from it' if differs else ''}: they do not follow "
                               f"changes of proxies.config.openshift.io/cluster", src))
    ep = ((_spec(config).get("storage") or {}).get("s3") or {}).get("regionEndpoint") or ""
    m = re.match(r"^https?://([^/:]+)", ep)
    if m and (http or https) and not _no_proxy_covers(no_proxy, m.group(1)):
        findings.append(warned(f"storage endpoint {m.group(1)} is not in noProxy ({no_proxy or 'empty'}): the "
                               f"registry sends its S3 traffic through the proxy {https or http}", src))
    return worst(findings, f"proxy: {'http ' + http if http else ''}{' https ' + https if https else ''}".strip()
                 if (http or https) else "no proxy in effect for the registry", src)


def overrides(config: dict) -> Verdict:
    spec = _spec(config)
    findings = []
    if spec.get("unsupportedConfigOverrides"):
        findings.append(warned(f"spec.unsupportedConfigOverrides is set ({spec['unsupportedConfigOverrides']}): "
                               f"unsupported, may not survive the upgrade", facts("config-spec")))
    if spec.get("readOnly"):
        findings.append(warned("spec.readOnly: the registry refuses pushes (builds fail)", facts("config-spec")))
    if replicas(config) < 0:
        findings.append(failed(f"spec.replicas {replicas(config)}: \"replicas must be greater than or equal to 0\"",
                               facts("replicas-and-rollout")))
    elif replicas(config) == 0 and spec.get("managementState") == "Managed":
        findings.append(warned("spec.replicas 0: no registry pod runs", facts("replicas-and-rollout")))
    return worst(findings, "no unsupported overrides, not read-only", facts("config-spec"))
