"""Provisioner and service CA against the real API server."""
from __future__ import annotations

import base64
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from localcluster.client import ApiError, path

VSAN_MSG = ('failed to provision volume with StorageClass "thin-csi": rpc error: code = FailedPrecondition '
            'desc = no datastores found to create file volume, vsan file service may be disabled')


def pvc(name, modes=("ReadWriteOnce",), sc=..., size="2Gi"):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if sc is not ...:
        spec["storageClassName"] = sc
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def bound(env, ns, name):
    def check():
        c = env.get(path("v1", "persistentvolumeclaims", ns, name))
        return c if c.get("status", {}).get("phase") == "Bound" else None
    return env.wait(check, 8, what=f"claim {name} Bound")


def stays_pending(env, ns, name):
    c = env.get(path("v1", "persistentvolumeclaims", ns, name))
    assert c.get("status", {}).get("phase", "Pending") == "Pending" and not c["spec"].get("volumeName")


@pytest.mark.parametrize("sc, modes, provisioner", [
    ("thin-csi", ["ReadWriteOnce"], "csi.vsphere.vmware.com"),
    (..., ["ReadWriteMany"], "csi.vsphere.vmware.com"),             # default class, vSAN file services on
    ("thin", ["ReadWriteOnce"], "kubernetes.io/vsphere-volume"),
    ("ocs-storagecluster-cephfs", ["ReadWriteMany"], "openshift-storage.cephfs.csi.ceph.com"),
    ("ocs-storagecluster-ceph-rbd", ["ReadWriteOnce"], "openshift-storage.rbd.csi.ceph.com"),
])
def test_provisions_and_binds(env, ns, sc, modes, provisioner):
    env.create(path("v1", "persistentvolumeclaims", ns), pvc("claim", modes, sc))
    c = bound(env, ns, "claim")
    uid = c["metadata"]["uid"]
    assert c["spec"]["volumeName"] == f"pvc-{uid}"
    assert c["status"]["accessModes"] == modes and c["status"]["capacity"] == {"storage": "2Gi"}
    pv = env.get(path("v1", "persistentvolumes", None, f"pvc-{uid}"))
    assert pv["status"]["phase"] == "Bound"
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "2Gi"} and spec["accessModes"] == modes
    assert (spec["claimRef"]["namespace"], spec["claimRef"]["name"], spec["claimRef"]["uid"]) == (ns, "claim", uid)
    assert spec["storageClassName"] == ("thin-csi" if sc is ... else sc)
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    if provisioner == "kubernetes.io/vsphere-volume":
        assert "vsphereVolume" in spec
    else:
        assert spec["csi"]["driver"] == provisioner and spec["csi"]["volumeHandle"]
    ann = pv["metadata"]["annotations"]
    assert ann["pv.kubernetes.io/provisioned-by"] == provisioner
    host = ann["localcluster.openshift.io/host-path"]
    assert host == str(env.settings.state_dir / "volumes" / f"pvc-{uid}") and os.path.isdir(host)
    env.wait_event(ns, "ProvisioningSucceeded", f"Successfully provisioned volume pvc-{uid}")
    # Reclaim policy Delete: the claim goes, the volume and its directory go.
    env.delete(path("v1", "persistentvolumeclaims", ns, "claim"))

    def gone():
        try:
            env.get(path("v1", "persistentvolumes", None, f"pvc-{uid}"))
            return False
        except ApiError as e:
            return e.status == 404
    env.wait(gone, 8, what="PV deleted")
    env.wait(lambda: not os.path.exists(host), 5, what="volume directory removed")


@pytest.mark.parametrize("sc, modes, message", [
    ("thin", ["ReadWriteMany"], 'Failed to provision volume with StorageClass "thin": invalid AccessModes '
                                '[ReadWriteMany]: only AccessModes [ReadWriteOnce] are supported'),
    ("ocs-storagecluster-ceph-rbd", ["ReadWriteMany"], "multi node access modes are only supported on rbd"),
])
def test_refused_access_modes(env, ns, sc, modes, message):
    env.create(path("v1", "persistentvolumeclaims", ns), pvc("claim", modes, sc))
    ev = env.wait_event(ns, "ProvisioningFailed", message)[0]
    assert ev["type"] == "Warning"
    stays_pending(env, ns, "claim")


def test_vsan_file_services_off_rwx_stays_pending(env, ns):
    env.settings.vsan_file_services = False
    try:
        env.create(path("v1", "persistentvolumeclaims", ns), pvc("image-registry-storage", ["ReadWriteMany"]))
        ev = env.wait_event(ns, "ProvisioningFailed", VSAN_MSG)[0]
        assert ev["type"] == "Warning" and ev["message"] == VSAN_MSG
        assert ev["source"]["component"].startswith("csi.vsphere.vmware.com_")
        stays_pending(env, ns, "image-registry-storage")
        # RWO still works without vSAN file services.
        env.create(path("v1", "persistentvolumeclaims", ns), pvc("rwo", ["ReadWriteOnce"]))
        bound(env, ns, "rwo")
    finally:
        env.settings.vsan_file_services = True


def test_unknown_provisioner_and_no_class(env, ns):
    env.create(path("v1", "persistentvolumeclaims", ns), pvc("nfs", sc="nfs-client"))
    env.wait_event(ns, "ExternalProvisioning", "Waiting for a volume to be created either by the external "
                                               "provisioner 'example.com/nfs' or manually by the system administrator")
    env.create(path("v1", "persistentvolumeclaims", ns), pvc("none", sc=""))
    env.wait_event(ns, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
    stays_pending(env, ns, "nfs")
    stays_pending(env, ns, "none")


def test_fault_provisioner_fail(env, ns, faults):
    faults("provisioner.fail")
    env.create(path("v1", "persistentvolumeclaims", ns), pvc("claim", sc="thin-csi"))
    ev = env.wait_event(ns, "ProvisioningFailed", 'failed to provision volume with StorageClass "thin-csi"')[0]
    assert ev["type"] == "Warning"
    stays_pending(env, ns, "claim")
    faults("provisioner.fail", "false")
    bound(env, ns, "claim")


# ---------------------------------------------------------------------------------------- service CA
def _service(name, annotation):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "annotations": {annotation: f"{name}-tls"}},
            "spec": {"selector": {"app": name}, "ports": [{"name": "5000-tcp", "port": 5000}]}}


def _secret(env, ns, name):
    def get():
        try:
            return env.get(path("v1", "secrets", ns, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
    return env.wait(get, 8, what=f"secret {name}")


@pytest.mark.parametrize("annotation", ["service.beta.openshift.io/serving-cert-secret-name",
                                        "service.alpha.openshift.io/serving-cert-secret-name"])
def test_serving_cert_secret(env, ns, annotation):
    svc = env.create(path("v1", "services", ns), _service("image-registry", annotation))
    secret = _secret(env, ns, "image-registry-tls")
    assert secret["type"] == "kubernetes.io/tls"
    ann = secret["metadata"]["annotations"]
    assert ann["service.beta.openshift.io/originating-service-name"] == "image-registry"
    assert ann["service.beta.openshift.io/originating-service-uid"] == svc["metadata"]["uid"]
    chain = x509.load_pem_x509_certificates(base64.b64decode(secret["data"]["tls.crt"]))
    leaf, ca = chain
    ca_pem = env.service_ca.cert_pem
    assert ca == x509.load_pem_x509_certificate(ca_pem)
    # The leaf is signed by the service CA.
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(
        [f"image-registry.{ns}.svc", f"image-registry.{ns}.svc.cluster.local"])
    key = serialization.load_pem_private_key(base64.b64decode(secret["data"]["tls.key"]), None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    # The CA configmap of the namespace.
    cm = env.wait(lambda: next((c for c in env.list(path("v1", "configmaps", ns))
                                if c["metadata"]["name"] == "openshift-service-ca.crt"), None))
    assert cm["data"]["service-ca.crt"] == ca_pem.decode()
    # A certificate not from the service CA is replaced.
    from localcluster.pki import CertificateAuthority
    foreign, _ = CertificateAuthority.create("foreign").issue("x", dns_names=["x"])
    env.patch(path("v1", "secrets", ns, "image-registry-tls"), {"data": {"tls.crt": base64.b64encode(foreign).decode()}})
    fixed = env.wait(lambda: (lambda s: s if x509.load_pem_x509_certificates(base64.b64decode(s["data"]["tls.crt"]))[0]
                              .issuer == ca.subject else None)(_secret(env, ns, "image-registry-tls")))
    secret = fixed
    # Deleted: issued again, a new certificate.
    env.delete(path("v1", "secrets", ns, "image-registry-tls"))
    again = env.wait(lambda: (lambda s: s if s and s["metadata"]["uid"] != secret["metadata"]["uid"] else None)(
        _secret(env, ns, "image-registry-tls")))
    leaf2 = x509.load_pem_x509_certificates(base64.b64decode(again["data"]["tls.crt"]))[0]
    assert leaf2.fingerprint(hashes.SHA256()) != leaf.fingerprint(hashes.SHA256())


def test_service_ca_configmap_restored(env, ns):
    p = path("v1", "configmaps", ns, "openshift-service-ca.crt")
    env.wait(lambda: _exists(env, p))
    env.patch(p, {"data": {"service-ca.crt": "tampered"}})
    env.wait(lambda: env.get(p)["data"]["service-ca.crt"] == env.service_ca.cert_pem.decode())
    env.delete(p)
    env.wait(lambda: _exists(env, p), what="configmap recreated")


def _exists(env, p):
    try:
        env.get(p)
        return True
    except ApiError as e:
        if e.status == 404:
            return False
        raise
