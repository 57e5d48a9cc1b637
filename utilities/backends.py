"""Storage backends as data: what each setup applies and what it can do.

Checks are tests parametrized over BACKENDS (as the Kubernetes e2e storage framework crosses test
patterns with drivers); a check that needs a capability a backend lacks skips with the reason.
Later issues add block (RWO + Recreate), CephFS, Ceph RGW and NooBaa here.
"""
from __future__ import annotations

import dataclasses

DEFAULT_CLAIM = "image-registry-storage"
OPERATOR_PVC_ANNOTATION = "imageregistry.openshift.io"


@dataclasses.dataclass(frozen=True)
class Backend:
    id: str
    description: str
    storage: dict                              # spec.storage, set as a whole
    persistent: bool                           # images survive a registry restart
    extra_spec: dict = dataclasses.field(default_factory=dict)   # e.g. rolloutStrategy, replicas
    replicas: int = 1
    max_replicas: int | None = None            # None: no limit
    pvc: bool = False                          # storage is a PersistentVolumeClaim
    access_mode: str | None = None             # the claim's access mode
    claim_name: str | None = None              # the claim the registry ends up using
    claim_size: str | None = None
    operator_creates_claim: bool = False       # claim left empty: the operator creates it
    docs: str = ""

    def missing(self, **needs) -> str | None:
        """The reason this backend cannot run a check needing `needs` (None: it can).

        needs: pvc=True, persistent=True/False, operator_creates_claim=True, replicas=N."""
        for cap, want in needs.items():
            if cap == "replicas":
                if self.max_replicas is not None and want > self.max_replicas:
                    return f"{self.id}: at most {self.max_replicas} replica(s)"
                continue
            have = getattr(self, cap)
            if have != want:
                return f"{self.id}: {cap} is {have}, the check needs {want}"
        return None

    def spec_fields(self) -> dict:
        return {"storage": self.storage, "replicas": self.replicas, **self.extra_spec}


EMPTYDIR = Backend(
    id="emptydir",
    description="emptyDir (non-production: images are lost when the registry restarts)",
    storage={"emptyDir": {}},
    persistent=False,
    max_replicas=1,
    docs="modules/installation-registry-storage-non-production.adoc",
)

DEFAULT_PVC = Backend(
    id="default-pvc",
    description="PVC with the claim left empty: the operator creates image-registry-storage (RWX, 100Gi)",
    storage={"pvc": {"claim": ""}},
    persistent=True,
    pvc=True,
    access_mode="ReadWriteMany",
    claim_name=DEFAULT_CLAIM,
    claim_size="100Gi",
    operator_creates_claim=True,
    docs="modules/registry-configuring-storage-vsphere.adoc",
)

BACKENDS: tuple[Backend, ...] = (EMPTYDIR, DEFAULT_PVC)
BY_ID = {b.id: b for b in BACKENDS}
