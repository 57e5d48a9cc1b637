"""Builders of the objects the pre-upgrade judges read, shaped as the API (and must-gather) gives them."""
from __future__ import annotations

import copy
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(type_, status, reason="", message=""):
    c = {"type": type_, "status": status, "lastTransitionTime": iso(NOW)}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def config(storage=None, state="Managed", replicas=1, strategy=None, conditions=None, **spec):
    s = {"managementState": state, "replicas": replicas, "storage": storage if storage is not None else {"emptyDir": {}},
         "logLevel": "Normal", "operatorLogLevel": "Normal"}
    if strategy:
        s["rolloutStrategy"] = strategy
    s.update(spec)
    return {"apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "Config",
            "metadata": {"name": "cluster", "generation": 3},
            "spec": s,
            "status": {"observedGeneration": 3, "readyReplicas": replicas,
                       "storage": copy.deepcopy(s["storage"]),
                       "conditions": conditions if conditions is not None else [
                           cond("Available", "True", "Ready", "The registry is ready"),
                           cond("Progressing", "False", "Ready", "The registry is ready"),
                           cond("Degraded", "False"),
                           cond("NodeCADaemonControllerDegraded", "False", "AsExpected")]}}


def clusteroperator(available=("True", "Ready"), progressing=("False", "Ready"), degraded=("False", "AsExpected"),
                    version="4.18.12", messages=None):
    messages = messages or {}
    conds = []
    for t, (st, rs) in (("Available", available), ("Progressing", progressing), ("Degraded", degraded)):
        conds.append(cond(t, st, rs, messages.get(t, "")))
    return {"metadata": {"name": "image-registry"},
            "status": {"conditions": conds, "versions": [{"name": "operator", "version": version}] if version else []}}


def pvc(name="image-registry-storage", modes=("ReadWriteMany",), size="100Gi", phase="Bound",
        cls="thin-csi", annotations=None, volume="pvc-1"):
    return {"metadata": {"name": name, "namespace": "openshift-image-registry", "annotations": annotations or {}},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}},
                     "storageClassName": cls, "volumeName": volume if phase == "Bound" else None},
            "status": {"phase": phase, **({"capacity": {"storage": size}} if phase == "Bound" else {})}}


def storage_class(name="thin-csi", provisioner="csi.vsphere.vmware.com"):
    return {"metadata": {"name": name}, "provisioner": provisioner}


def pv(name="pvc-1", **source):
    return {"metadata": {"name": name}, "spec": {"capacity": {"storage": "100Gi"}, **source}}


def pod(name, node, ready=True, registry=True, waiting=None):
    st = {"phase": "Running" if ready or not waiting else "Pending",
          "conditions": [cond("Ready", "True" if ready else "False", "" if ready else "ContainersNotReady")]}
    if waiting:
        st["containerStatuses"] = [{"name": "registry", "state": {"waiting": {"reason": waiting}}}]
    return {"metadata": {"name": name, "namespace": "openshift-image-registry",
                         "labels": {"docker-registry": "default"} if registry else {"app": "other"}},
            "spec": {"nodeName": node}, "status": st}


def deployment(ready=1):
    return {"metadata": {"name": "image-registry"}, "status": {"readyReplicas": ready}}


def event(reason, kind, name, message, when=NOW, count=1, type_="Warning"):
    return {"type": type_, "reason": reason, "message": message, "count": count, "lastTimestamp": iso(when),
            "involvedObject": {"kind": kind, "name": name, "namespace": "openshift-image-registry"},
            "metadata": {"name": f"{name}.1", "namespace": "openshift-image-registry"}}


def secret(data):
    return {"metadata": {"name": "image-registry-private-configuration-user"}, "data": data}


def cert_pem(days_left: float, cn="s3.apps.example.test") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - datetime.timedelta(days=365))
         .not_valid_after(NOW + datetime.timedelta(days=days_left))
         .sign(key, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.PEM).decode()


def configmap(name, data):
    return {"metadata": {"name": name, "namespace": "openshift-config"}, "data": data}


def route(name, host, admitted=True, namespace="openshift-image-registry"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"host": host},
            "status": {"ingress": [{"host": host, "conditions": [
                cond("Admitted", "True" if admitted else "False", "" if admitted else "HostAlreadyClaimed",
                     "" if admitted else "route host already claimed")]}]}}


def s3(**kw):
    base = {"bucket": "rgwbucket-1", "region": "us-east-1", "encrypt": False, "virtualHostedStyle": False}
    base.update(kw)
    return {"s3": base, "managementState": "Unmanaged"}


def node(name, os="linux", taints=False, unschedulable=False):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/os": os, "kubernetes.io/hostname": name}},
            "spec": {**({"taints": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]}
                        if taints else {}), **({"unschedulable": True} if unschedulable else {})},
            "status": {"conditions": [cond("Ready", "True", "KubeletReady")]}}


def node_ca_pod(node_name):
    return {"metadata": {"name": f"node-ca-{node_name}", "namespace": "openshift-image-registry",
                         "labels": {"name": "node-ca"}},
            "spec": {"nodeName": node_name}, "status": {"phase": "Running", "conditions": [cond("Ready", "True")]}}


def node_ca_daemonset(want, avail=None, updated=None):
    avail = want if avail is None else avail
    return {"metadata": {"name": "node-ca", "namespace": "openshift-image-registry"},
            "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "tolerations": [{"operator": "Exists"}]}}},
            "status": {"desiredNumberScheduled": want, "currentNumberScheduled": want, "numberAvailable": avail,
                       "numberReady": avail, "updatedNumberScheduled": want if updated is None else updated}}


def pdb(min_available=1, name="image-registry", selector=None, status=None, **spec):
    """A PodDisruptionBudget as the operator writes it (CIRO pkg/resource/poddisruptionbudget.go)."""
    s = {"selector": selector or {"matchLabels": {"docker-registry": "default"}}, **spec}
    if min_available is not None:
        s["minAvailable"] = min_available
    out = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": name, "namespace": "openshift-image-registry", "generation": 1}, "spec": s}
    if status is not None:
        out["status"] = status
    return out
