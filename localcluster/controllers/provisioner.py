"""Provisioner: PersistentVolumeClaim -> PersistentVolume `pvc-<uid>`, bound, per StorageClass rules.

Plays both the PV controller (binding, FailedBinding, ExternalProvisioning, reclaim) and the volume
plugins / external provisioners a vSphere (and ODF) cluster has:

| provisioner                              | access modes it can provision                        |
|------------------------------------------|------------------------------------------------------|
| `csi.vsphere.vmware.com` (`thin-csi`)    | RWO; RWX/ROX only with `settings.vsan_file_services` |
| `kubernetes.io/vsphere-volume` (`thin`)  | RWO                                                  |
| `openshift-storage.cephfs.csi.ceph.com`  | RWO, RWX, ROX                                        |
| `openshift-storage.rbd.csi.ceph.com`     | RWO (filesystem)                                     |

A PV's data is a directory, `<state_dir>/volumes/<pv>`, named in the PV annotation
`localcluster.openshift.io/host-path`; the kubelet mounts it. Reclaim policy Delete removes both
when the bound claim goes away. `volumeBindingMode: WaitForFirstConsumer` is provisioned like
Immediate (the scheduler here has no volume-topology step).

Fault knob `provisioner.fail` = "true": every claim not yet bound fails with ProvisioningFailed.
"""
from __future__ import annotations

import asyncio
import hashlib
import shutil
import uuid
from pathlib import Path

from localcluster.client import ApiError, path
from localcluster.controllers.deployment import Controller, is_terminating, timestamp

HOST_PATH = "localcluster.openshift.io/host-path"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"

VSPHERE_CSI = "csi.vsphere.vmware.com"
VSPHERE_INTREE = "kubernetes.io/vsphere-volume"
CEPHFS = "openshift-storage.cephfs.csi.ceph.com"
RBD = "openshift-storage.rbd.csi.ceph.com"
KNOWN = (VSPHERE_CSI, VSPHERE_INTREE, CEPHFS, RBD)

PV_CONTROLLER = "persistentvolume-controller"
RETRY_SECONDS = 10.0


def _external_component(provisioner: str) -> str:
    """How an external-provisioner sidecar names itself: <driver>_<pod>_<uuid>."""
    pod = {
        VSPHERE_CSI: "vmware-vsphere-csi-driver-controller-6d9c6b7f4-x2kfp",
        CEPHFS: "csi-cephfsplugin-provisioner-7b8f9c6d5-9lqzm",
        RBD: "csi-rbdplugin-provisioner-5c8d7b6f49-t4wnh",
    }.get(provisioner, "provisioner")
    suffix = uuid.UUID(hashlib.md5(provisioner.encode()).hexdigest())
    return f"{provisioner}_{pod}_{suffix}"


def decide(provisioner: str, class_name: str, access_modes: list[str], vsan_file_services: bool):
    """(ok, failure message) for a claim's access modes on a provisioner."""
    modes = set(access_modes or ["ReadWriteOnce"])
    if provisioner == VSPHERE_CSI:
        if modes & {"ReadWriteMany", "ReadOnlyMany"} and not vsan_file_services:
            return False, (f'failed to provision volume with StorageClass "{class_name}": rpc error: '
                           "code = FailedPrecondition desc = no datastores found to create file volume, "
                           "vsan file service may be disabled")
        return True, None
    if provisioner == VSPHERE_INTREE:
        bad = sorted(modes - {"ReadWriteOnce"})
        if bad:
            return False, (f'Failed to provision volume with StorageClass "{class_name}": invalid AccessModes '
                           f"[{' '.join(sorted(modes))}]: only AccessModes [ReadWriteOnce] are supported")
        return True, None
    if provisioner == CEPHFS:
        return True, None
    if provisioner == RBD:
        if modes & {"ReadWriteMany", "ReadOnlyMany"}:
            return False, (f'failed to provision volume with StorageClass "{class_name}": rpc error: '
                           "code = InvalidArgument desc = multi node access modes are only supported on "
                           "rbd `block` type volumes")
        return True, None
    return False, None


class Provisioner(Controller):
    component = PV_CONTROLLER

    def __init__(self, client, settings, **extra):
        super().__init__(client, settings, **extra)
        self.pvcs = self.informer(path("v1", "persistentvolumeclaims"), self._on_pvc)
        self.pvs = self.informer(path("v1", "persistentvolumes"), self._on_pv)
        self.classes = self.informer(path("storage.k8s.io/v1", "storageclasses"), self._on_class)
        self._seen: dict[tuple, float] = {}
        self._failures: dict[str, int] = {}    # claim uid -> injected failures so far (provisioner.failTimes)

    # -- triggers
    def _on_pvc(self, type_, obj):
        m = obj["metadata"]
        key = ("pvc", m.get("namespace"), m.get("name"))
        if type_ == "DELETED":
            self._seen.pop(key, None)
            vol = obj.get("spec", {}).get("volumeName")
            if vol:
                self.queue.add(("pv", None, vol))
            return
        self._enqueue_pvc(key)

    def _enqueue_pvc(self, key):
        loop = asyncio.get_running_loop()
        first = self._seen.setdefault(key, loop.time())
        left = first + self.settings.provision_delay - loop.time()
        self.queue.add_after(key, left) if left > 0 else self.queue.add(key)

    def _on_pv(self, type_, obj):
        if type_ != "DELETED":
            self.queue.add(("pv", None, obj["metadata"]["name"]))

    def _on_class(self, _type, _obj):
        for pvc in self.pvcs.items():
            if pvc.get("status", {}).get("phase") in (None, "", "Pending"):
                self._enqueue_pvc(("pvc", pvc["metadata"].get("namespace"), pvc["metadata"].get("name")))

    def on_faults_changed(self):
        self._on_class(None, None)

    def enqueue_all(self):
        for pvc in self.pvcs.items():
            self._enqueue_pvc(("pvc", pvc["metadata"].get("namespace"), pvc["metadata"].get("name")))
        for pv in self.pvs.items():
            self.queue.add(("pv", None, pv["metadata"]["name"]))

    def _number(self, key: str) -> float:
        try:
            return max(0.0, float(self.faults.get(key).strip() or 0))
        except ValueError:
            return 0.0

    def _class(self, name: str) -> dict | None:
        for sc in self.classes.items():
            if sc["metadata"]["name"] == name:
                return sc
        return None

    def _default_class(self) -> dict | None:
        defaults = [sc for sc in self.classes.items()
                    if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
        # Several defaults: Kubernetes picks the newest.
        defaults.sort(key=lambda sc: sc["metadata"].get("creationTimestamp") or "")
        return defaults[-1] if defaults else None

    async def sync(self, key):
        if key[0] == "pv":
            await self._sync_pv(key[2])
        else:
            await self._sync_pvc(key[1], key[2])

    # -- claims
    async def _sync_pvc(self, ns, name):
        pvc = self.pvcs.get(ns, name)
        if pvc is None or is_terminating(pvc):
            return
        if pvc.get("spec", {}).get("volumeName") or pvc.get("status", {}).get("phase") == "Bound":
            return
        spec = pvc.get("spec") or {}
        if "storageClassName" in spec and spec["storageClassName"] is not None:
            class_name = spec["storageClassName"]
            sc = self._class(class_name) if class_name else None
            if class_name and sc is None:
                await self.event(pvc, "Warning", "ProvisioningFailed",
                                 f'storageclass.storage.k8s.io "{class_name}" not found')
                self.queue.add_after(("pvc", ns, name), RETRY_SECONDS)
                return
        else:
            sc = self._default_class()
            class_name = sc["metadata"]["name"] if sc else ""
        if sc is None:
            await self.event(pvc, "Normal", "FailedBinding",
                             "no persistent volumes available for this claim and no storage class is set")
            return
        provisioner = sc.get("provisioner", "")
        external = provisioner != VSPHERE_INTREE
        component = _external_component(provisioner) if external else PV_CONTROLLER
        await self._annotate_claim(pvc, provisioner, class_name if spec.get("storageClassName") is None else None)
        if provisioner not in KNOWN:
            await self.event(pvc, "Normal", "ExternalProvisioning",
                             f"Waiting for a volume to be created either by the external provisioner "
                             f"'{provisioner}' or manually by the system administrator. If volume creation "
                             f"is delayed, please verify that the provisioner is running and correctly "
                             f"registered.")
            return
        if external:
            await self._event_as(pvc, "Normal", "Provisioning",
                                 f'External provisioner is provisioning volume for claim "{ns}/{name}"', component)
        fail_times = self._number("provisioner.failTimes")
        uid = pvc["metadata"].get("uid") or ""
        if fail_times and self._failures.get(uid, 0) < fail_times:
            # Fault knob: the CSI driver fails the first N attempts of each claim, then provisions it
            # (ceph-csi while the Ceph cluster heals; vSphere CSI on a busy vCenter).
            self._failures[uid] = self._failures.get(uid, 0) + 1
            ok, message = False, (f'failed to provision volume with StorageClass "{class_name}": rpc error: '
                                  "code = Aborted desc = an operation with the given Volume ID "
                                  f"pvc-{uid} already exists (injected: localcluster provisioner.failTimes, "
                                  f"attempt {self._failures[uid]} of {int(fail_times)})")
        elif self.faults.enabled("provisioner.fail"):
            ok, message = False, (f'failed to provision volume with StorageClass "{class_name}": rpc error: '
                                  "code = Internal desc = failed to create volume: injected fault "
                                  "(localcluster provisioner.fail)")
        else:
            ok, message = decide(provisioner, class_name, spec.get("accessModes") or [],
                                 self.settings.vsan_file_services)
        if not ok:
            await self._event_as(pvc, "Warning", "ProvisioningFailed", message, component)
            self.queue.add_after(("pvc", ns, name), self._number("provisioner.retrySeconds") or RETRY_SECONDS)
            return
        await self._provision(pvc, sc, component)

    async def _annotate_claim(self, pvc, provisioner, default_class_name):
        ann = pvc["metadata"].get("annotations") or {}
        want = {"volume.beta.kubernetes.io/storage-provisioner": provisioner,
                "volume.kubernetes.io/storage-provisioner": provisioner}
        patch: dict = {}
        if any(ann.get(k) != v for k, v in want.items()):
            patch["metadata"] = {"annotations": want}
        if default_class_name:
            # The DefaultStorageClass admission plugin fills spec.storageClassName on creation.
            patch["spec"] = {"storageClassName": default_class_name}
        if patch:
            m = pvc["metadata"]
            try:
                await self.client.patch(path("v1", "persistentvolumeclaims", m["namespace"], m["name"]), patch)
            except ApiError as e:
                if e.status != 422:
                    raise
                if "metadata" in patch:
                    await self.client.patch(
                        path("v1", "persistentvolumeclaims", m["namespace"], m["name"]),
                        {"metadata": patch["metadata"]})

    async def _event_as(self, obj, type_, reason, message, component):
        from localcluster.controllers.events import record
        await record(self.client, obj, type_, reason, message, component)

    async def _provision(self, pvc, sc, component):
        m = pvc["metadata"]
        ns, name, uid = m["namespace"], m["name"], m["uid"]
        pv_name = f"pvc-{uid}"
        spec = pvc.get("spec") or {}
        modes = spec.get("accessModes") or ["ReadWriteOnce"]
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        provisioner = sc.get("provisioner")
        host_dir = Path(self.settings.state_dir) / "volumes" / pv_name
        host_dir.mkdir(parents=True, exist_ok=True)
        annotations = {HOST_PATH: str(host_dir), PROVISIONED_BY: provisioner}
        # Fault provisioner.undersizedVolume (issue 9): the volume is 1Gi ReadWriteOnce whatever was
        # asked, while the claim's status still reports the request (a provider that lies).
        undersized = self.faults.enabled("provisioner.undersizedVolume")
        pv_spec = {
            "capacity": {"storage": "1Gi" if undersized else size},
            "accessModes": ["ReadWriteOnce"] if undersized else list(modes),
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name,
                         "uid": uid, "resourceVersion": m.get("resourceVersion")},
            "storageClassName": sc["metadata"]["name"],
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "volumeMode": spec.get("volumeMode") or "Filesystem",
        }
        if provisioner == VSPHERE_INTREE:
            pv_spec["vsphereVolume"] = {"volumePath": f"[vsanDatastore] kubevols/{pv_name}.vmdk",
                                        "fsType": "ext4"}
        else:
            fs = (sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype", "ext4")
            pv_spec["csi"] = {"driver": provisioner, "volumeHandle": _volume_handle(provisioner, uid, modes),
                              "fsType": fs,
                              "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity":
                                                   component.split("_", 1)[-1]}}
        body = {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "annotations": annotations}, "spec": pv_spec}
        try:
            await self.client.create(path("v1", "persistentvolumes"), body)
        except ApiError as e:
            if e.status != 409:
                raise
        await self.client.patch(path("v1", "persistentvolumes", None, pv_name, "status"),
                                {"status": {"phase": "Bound"}})
        await self.client.patch(path("v1", "persistentvolumeclaims", ns, name), {
            "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                         "pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"volumeName": pv_name}})
        await self.client.patch(path("v1", "persistentvolumeclaims", ns, name, "status"), {
            "status": {"phase": "Bound", "accessModes": list(modes), "capacity": {"storage": size}}})
        msg = f"Successfully provisioned volume {pv_name}"
        if provisioner == VSPHERE_INTREE:
            msg += f" using {provisioner}"
        await self._event_as(pvc, "Normal", "ProvisioningSucceeded", msg, component)

    # -- volumes
    async def _sync_pv(self, pv_name):
        pv = self.pvs.get(None, pv_name)
        if pv is None or is_terminating(pv):
            return
        ref = pv.get("spec", {}).get("claimRef")
        if not ref:
            return
        pvc = self.pvcs.get(ref.get("namespace"), ref.get("name"))
        if pvc is not None and pvc["metadata"].get("uid") == ref.get("uid"):
            return
        # The cache says the claim is gone: make sure.
        try:
            live = await self.client.get(path("v1", "persistentvolumeclaims", ref["namespace"], ref["name"]))
            if live["metadata"].get("uid") == ref.get("uid"):
                return
        except ApiError as e:
            if e.status != 404:
                raise
        policy = pv.get("spec", {}).get("persistentVolumeReclaimPolicy", "Delete")
        if policy == "Delete" and (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY):
            host = (pv["metadata"].get("annotations") or {}).get(HOST_PATH)
            try:
                await self.client.delete(path("v1", "persistentvolumes", None, pv_name))
            except ApiError as e:
                if e.status != 404:
                    raise
            if host and Path(host).resolve().is_relative_to((Path(self.settings.state_dir) / "volumes").resolve()):
                await asyncio.to_thread(shutil.rmtree, host, True)
        elif pv.get("status", {}).get("phase") != "Released":
            await self.client.patch(path("v1", "persistentvolumes", None, pv_name, "status"),
                                    {"status": {"phase": "Released", "lastPhaseTransitionTime": timestamp()}})


def _volume_handle(provisioner: str, uid: str, modes: list[str]) -> str:
    if provisioner == VSPHERE_CSI:
        if set(modes) & {"ReadWriteMany", "ReadOnlyMany"}:
            return f"file:{uuid.uuid5(uuid.NAMESPACE_URL, uid)}"
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, uid))
    return f"0001-0011-openshift-storage-0000000000000001-{uuid.uuid5(uuid.NAMESPACE_OID, uid)}"
