"""Storage backends as declared capabilities: what each setup of the procedure applies and what it can do.

Checks are tests parametrized over the selected backends (as the Kubernetes e2e storage framework
crosses test patterns with drivers); a check that needs a capability a backend lacks skips with the
reason (`Backend.missing`), and a backend whose prerequisites are missing on the cluster (no ODF
storage class, no route) skips with what is missing (`registry_steps.missing_prerequisites`).

The six setups (operator-facts.md §3.3-§3.5, §5.6):
- `emptydir`: `storage: {emptyDir: {}}`, non-production.
- `default-pvc`: `pvc: {claim: ""}`, the operator creates `image-registry-storage` (RWX, 100Gi, default class).
- `block`: the vSphere block procedure: a user-created RWO 100Gi claim `image-registry-storage` on the
  default class, `rolloutStrategy: Recreate`, one replica.
- `cephfs`: a RWX 100Gi claim `registry-storage-pvc` on `ocs-storagecluster-cephfs`, two replicas,
  storage `Unmanaged`.
- `ceph-rgw` / `noobaa`: an ObjectBucketClaim on `ocs-storagecluster-ceph-rgw` / `openshift-storage.noobaa.io`,
  its keys in `image-registry-private-configuration-user`, the route host of
  `ocs-storagecluster-cephobjectstore` / `s3` as `regionEndpoint`, the default ingress certificate as a
  `trustedCA` config map in `openshift-config`, two replicas, `region: us-east-1`,
  `virtualHostedStyle: false`, `encrypt: false`, storage `Unmanaged`.
"""
from __future__ import annotations

import copy
import dataclasses

DEFAULT_CLAIM = "image-registry-storage"
OPERATOR_PVC_ANNOTATION = "imageregistry.openshift.io"
ODF_NAMESPACE = "openshift-storage"
S3_REGION = "us-east-1"
S3_CA_CONFIGMAP = "registry-conformance-s3-ca"     # in openshift-config, key ca-bundle.crt

EMPTY_DIR, PVC, S3 = "emptyDir", "pvc", "s3"      # volume kinds (the spec.storage member)


@dataclasses.dataclass(frozen=True)
class Backend:
    id: str
    description: str
    storage: dict                              # spec.storage template (S3: filled in at set-up)
    persistent: bool                           # images survive a registry restart
    kind: str = EMPTY_DIR                      # emptyDir | pvc | s3
    extra_spec: dict = dataclasses.field(default_factory=dict)   # e.g. rolloutStrategy
    replicas: int = 1
    max_replicas: int | None = None            # None: no limit
    strategy: str = "RollingUpdate"            # the Deployment strategy the operator must apply
    pvc: bool = False                          # storage is a PersistentVolumeClaim
    access_mode: str | None = None             # the claim's access mode
    claim_name: str | None = None              # the claim the registry ends up using
    claim_size: str | None = None
    operator_creates_claim: bool = False       # claim left empty: the operator creates it
    user_creates_claim: bool = False           # the procedure creates the claim (a suite fixture here)
    storage_class: str | None = None           # the claim's / the OBC's class (None: the cluster default)
    obc: bool = False                          # an ObjectBucketClaim provides the bucket
    obc_name: str | None = None
    s3_route: str | None = None                # route (in openshift-storage) of the S3 endpoint
    needs_odf: bool = False
    storage_management_state: str = "Managed"  # what spec/status.storage.managementState must end up as
    docs: str = ""

    # --- capabilities ------------------------------------------------------------------------
    @property
    def s3(self) -> bool:
        return self.kind == S3

    def missing(self, **needs) -> str | None:
        """The reason this backend cannot run a check needing `needs` (None: it can).

        needs: any boolean/str field (pvc=True, persistent=True, s3=True, operator_creates_claim=True)
        or replicas=N (the backend must allow N replicas)."""
        for cap, want in needs.items():
            if cap == "replicas":
                if self.max_replicas is not None and want > self.max_replicas:
                    return f"{self.id}: at most {self.max_replicas} replica(s)"
                if self.replicas < want:
                    return f"{self.id}: runs {self.replicas} replica(s), the check needs {want}"
                continue
            have = getattr(self, cap)
            if have != want:
                what = _CAPABILITY_WORDS.get(cap)
                if what and isinstance(want, bool):
                    return f"{self.id} {what[0] if want else what[1]}: the check does not apply"
                return f"{self.id}: {cap} is {have}, the check needs {want}"
        return None

    def with_storage_class(self, storage_class: str) -> "Backend":
        """The same backend on another storage class (claim) or OBC class (S3)."""
        if not (self.user_creates_claim or self.obc):
            raise ValueError(f"{self.id}: the operator picks the storage class (the cluster default); "
                             "it cannot be pointed at another class")
        return dataclasses.replace(self, storage_class=storage_class)

    # --- what the procedure writes -----------------------------------------------------------
    def storage_spec(self, *, bucket: str | None = None, endpoint: str | None = None,
                     trusted_ca: str | None = None) -> dict:
        """spec.storage for this backend; S3 needs the bucket, the regionEndpoint URL and the CA config map."""
        storage = copy.deepcopy(self.storage)
        if self.s3:
            if not (bucket and endpoint and trusted_ca):
                raise ValueError(f"{self.id}: bucket, endpoint and trusted_ca are needed")
            storage["s3"] = {"bucket": bucket, "region": S3_REGION, "regionEndpoint": endpoint,
                             "virtualHostedStyle": False, "encrypt": False, "trustedCA": {"name": trusted_ca}}
        return storage

    def spec_fields(self, **storage_args) -> dict:
        """The top-level spec fields the procedure sets: storage, replicas and rolloutStrategy always
        (a backend inherits nothing of them from the original Config or the backend before it)."""
        return {"storage": self.storage_spec(**storage_args), "replicas": self.replicas,
                "rolloutStrategy": self.strategy, **copy.deepcopy(self.extra_spec)}

    def object_names(self) -> set[tuple[str, str]]:
        """(kind, name) of the objects its set-up creates or takes over (claims, bucket claims, the S3
        credentials secret, the CA config map): two backends sharing one cannot both be set up at once."""
        out = set()
        if self.claim_name and (self.user_creates_claim or self.operator_creates_claim):
            out.add(("PersistentVolumeClaim", self.claim_name))
        if self.obc:
            out |= {("ObjectBucketClaim", self.obc_name), ("Secret", "image-registry-private-configuration-user"),
                    ("ConfigMap", S3_CA_CONFIGMAP)}
        return out

    def expected_status_storage(self, asked: dict) -> dict:
        """status.storage the operator must report for `asked` (spec.storage as set): the same member,
        the claim written back when left empty, the managementState it defaults."""
        out = copy.deepcopy(asked)
        if self.operator_creates_claim:
            out.setdefault("pvc", {})["claim"] = self.claim_name
        out.setdefault("managementState", self.storage_management_state)
        return without_zero_values(out)


def without_zero_values(value):
    """`value` with its zero scalars (false, 0, "", null) dropped, and the objects that held only those:
    the operator writes status.storage from Go structs, where an omitempty zero value is absent
    (`encrypt: false` never shows) and a field without omitempty shows its zero value
    (`trustedCA: {name: ""}`) (operator-facts §12.2). Compare status.storage with the spec through this on
    both sides. Objects that were empty to begin with (`emptyDir: {}`) are kept: they name the member."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, dict):
                inner = without_zero_values(v)
                if inner or not v:
                    out[k] = inner
            elif v not in (False, 0, "", None) or isinstance(v, list) and v:
                out[k] = without_zero_values(v)
        return out
    if isinstance(value, list):
        return [without_zero_values(v) for v in value]
    return value


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
    kind=PVC,
    pvc=True,
    access_mode="ReadWriteMany",
    claim_name=DEFAULT_CLAIM,
    claim_size="100Gi",
    operator_creates_claim=True,
    docs="modules/registry-configuring-storage-vsphere.adoc",
)

BLOCK = Backend(
    id="block",
    description="block storage: a user-created ReadWriteOnce 100Gi claim, rolloutStrategy Recreate, 1 replica",
    storage={"pvc": {"claim": DEFAULT_CLAIM}},
    persistent=True,
    kind=PVC,
    extra_spec={"rolloutStrategy": "Recreate"},
    max_replicas=1,
    strategy="Recreate",
    pvc=True,
    access_mode="ReadWriteOnce",
    claim_name=DEFAULT_CLAIM,
    claim_size="100Gi",
    user_creates_claim=True,
    storage_management_state="Unmanaged",      # a user claim: the operator defaults Unmanaged (§3.3)
    docs="modules/installation-registry-storage-block-recreate-rollout.adoc",
)

CEPHFS = Backend(
    id="cephfs",
    description="ODF CephFS: a ReadWriteMany 100Gi claim registry-storage-pvc, 2 replicas, storage Unmanaged",
    storage={"managementState": "Unmanaged", "pvc": {"claim": "registry-storage-pvc"}},
    persistent=True,
    kind=PVC,
    replicas=2,
    pvc=True,
    access_mode="ReadWriteMany",
    claim_name="registry-storage-pvc",
    claim_size="100Gi",
    user_creates_claim=True,
    storage_class="ocs-storagecluster-cephfs",
    needs_odf=True,
    storage_management_state="Unmanaged",
    docs="modules/registry-configuring-registry-storage-rhodf-cephfs.adoc",
)

CEPH_RGW = Backend(
    id="ceph-rgw",
    description="ODF Ceph RGW: an ObjectBucketClaim, S3 through the route with the router CA, 2 replicas",
    storage={"managementState": "Unmanaged"},
    persistent=True,
    kind=S3,
    replicas=2,
    storage_class="ocs-storagecluster-ceph-rgw",
    obc=True,
    obc_name="registry-conformance-rgw",
    s3_route="ocs-storagecluster-cephobjectstore",
    needs_odf=True,
    storage_management_state="Unmanaged",
    docs="modules/registry-configuring-registry-storage-rhodf-cephrgw.adoc",
)

NOOBAA = dataclasses.replace(
    CEPH_RGW,
    id="noobaa",
    description="ODF NooBaa (MCG): an ObjectBucketClaim, S3 through the s3 route with the default ingress "
                "certificate, 2 replicas",
    storage_class="openshift-storage.noobaa.io",
    obc_name="registry-conformance-noobaa",
    s3_route="s3",
    docs="modules/registry-configuring-registry-storage-rhodf-nooba.adoc",
)

BACKENDS: tuple[Backend, ...] = (EMPTYDIR, DEFAULT_PVC, BLOCK, CEPHFS, CEPH_RGW, NOOBAA)

# The order the run configures them in, one after the other while Managed: backends that share object
# names (default-pvc and block: the claim image-registry-storage; ceph-rgw and noobaa: the credentials
# secret and the CA config map) are never neighbours, so each switch needs no stop in between;
# emptyDir last (the quickest to remove).
SWITCH_ORDER = ("default-pvc", "ceph-rgw", "block", "noobaa", "cephfs", "emptydir")


def switch_order(chosen) -> tuple[Backend, ...]:
    """`chosen` in SWITCH_ORDER (unknown ids keep their place at the end)."""
    rank = {b: i for i, b in enumerate(SWITCH_ORDER)}
    return tuple(sorted(chosen, key=lambda b: rank.get(b.id, len(rank))))


def share_objects(a: Backend, b: Backend) -> bool:
    return bool(a.object_names() & b.object_names())
BY_ID = {b.id: b for b in BACKENDS}
ALIASES = {"pvc-default": "default-pvc", "rgw": "ceph-rgw"}


def lookup(name: str) -> Backend:
    """A backend by id (or alias); KeyError naming the valid ids."""
    key = ALIASES.get(name, name)
    if key not in BY_ID:
        raise KeyError(f"unknown backend {name!r}; valid: {', '.join(BY_ID)}")
    return BY_ID[key]


def select(names: list[str] | tuple = (), storage_classes: list[str] | tuple = ()) -> tuple[Backend, ...]:
    """The backends picked by `--backend` names (all when none) with `--storage-class BACKEND=CLASS`
    overrides; ValueError (with the valid names) on a bad name or a bad override."""
    try:
        chosen = [lookup(n) for n in names] if names else list(BACKENDS)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    chosen = list({b.id: b for b in chosen}.values())   # keep order, drop repeats
    overrides: dict[str, str] = {}
    for item in storage_classes:
        name, sep, cls = item.partition("=")
        if not sep or not name or not cls:
            raise ValueError(f"--storage-class {item!r}: expected BACKEND=CLASS")
        try:
            target = lookup(name)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        try:
            target.with_storage_class(cls)
        except ValueError as e:
            raise ValueError(f"--storage-class {item}: {e}") from None
        overrides[target.id] = cls
    out = []
    for b in chosen:
        out.append(b.with_storage_class(overrides[b.id]) if b.id in overrides else b)
    return tuple(out)


# How a missing capability reads in a skip reason: (when the check needs it, when it must be absent).
_CAPABILITY_WORDS = {
    "pvc": ("stores images on no PersistentVolumeClaim", "stores images on a PersistentVolumeClaim"),
    "s3": ("stores images in no S3 bucket", "stores images in an S3 bucket"),
    "persistent": ("loses its images when the registry restarts", "keeps its images across restarts"),
    "operator_creates_claim": ("uses a claim the operator does not create",
                               "uses a claim the operator creates"),
    "user_creates_claim": ("uses no claim of the user's", "uses a claim of the user's"),
    "needs_odf": ("does not use OpenShift Data Foundation", "uses OpenShift Data Foundation"),
}
