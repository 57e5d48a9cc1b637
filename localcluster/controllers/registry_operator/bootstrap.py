"""Bootstrap of the Config `cluster` by platform (operator-facts.md §1.5, §2)."""
from __future__ import annotations

import copy
from typing import Optional

from . import consts as C

# 4.18 and later: platforms without persistent storage out of the box bootstrap as Removed.
REMOVED_PLATFORMS = ("BareMetal", "VSphere", "None", "Nutanix", "KubeVirt", "EquinixMetal",
                     "AlibabaCloud", "External")
OBJECT_PLATFORMS = {"AWS": {"s3": {}}, "Azure": {"azure": {}}, "GCP": {"gcs": {}},
                    "IBMCloud": {"ibmcos": {}}, "PowerVS": {"ibmcos": {}}}
PVC_PLATFORMS = {"OpenStack": "standard-csi", "Ovirt": "ovirt-csi-sc"}   # OpenStack without Swift


def platform_of(infrastructure: Optional[dict]) -> str:
    st = (infrastructure or {}).get("status") or {}
    return (st.get("platformStatus") or {}).get("type") or st.get("platform") or ""


def platform_storage(infrastructure: Optional[dict]) -> tuple[dict, int]:
    """(spec.storage, replicas) the platform gets by default (GetPlatformStorage)."""
    p = platform_of(infrastructure)
    if p in REMOVED_PLATFORMS:
        return {}, 1
    if p in OBJECT_PLATFORMS:
        return copy.deepcopy(OBJECT_PLATFORMS[p]), 2
    if p in PVC_PLATFORMS:
        return {"pvc": {"claim": C.DEFAULT_PVC}}, 1
    return {"emptyDir": {}}, 1     # Libvirt and any unknown platform


def bootstrap_config(infrastructure: Optional[dict]) -> tuple[dict, Optional[dict]]:
    """The Config to create when `cluster` does not exist, and the PVC bootstrap creates (or None)."""
    p = platform_of(infrastructure)
    storage, replicas = platform_storage(infrastructure)
    st = (infrastructure or {}).get("status") or {}
    if st.get("infrastructureTopology") == "SingleReplica":
        replicas = 1
    state = "Removed" if p in REMOVED_PLATFORMS else "Managed"
    strategy = "Recreate" if p in PVC_PLATFORMS else "RollingUpdate"
    config = {
        "apiVersion": C.CONFIG_API,
        "kind": "Config",
        "metadata": {"name": C.CONFIG_NAME, "finalizers": [C.FINALIZER]},
        "spec": {
            "logLevel": "Normal",
            "operatorLogLevel": "Normal",
            "managementState": state,
            "replicas": replicas,
            "rolloutStrategy": strategy,
            "storage": storage,
        },
    }
    pvc = None
    if p in PVC_PLATFORMS:
        pvc = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": C.DEFAULT_PVC, "namespace": C.NAMESPACE,
                         "annotations": {C.OWNER_ANNOTATION: "true"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}},
                     "storageClassName": PVC_PLATFORMS[p]},
        }
    return config, pvc
