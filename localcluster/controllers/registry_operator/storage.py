"""Storage drivers (operator-facts.md §3). Decisions are pure functions; the drivers' few API calls
go through a `StorageContext` so an S3 driver can plug in later (see `DRIVERS`)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import consts as C
from .conditions import FALSE, TRUE, UNKNOWN, set_condition
from .errors import STORAGE_NOT_CONFIGURED, PermanentError, SyncError, storage_not_configured


# --- driver selection -----------------------------------------------------------------------------

def configured_types(storage: dict) -> list[tuple[str, str]]:
    """[(member, DriverName)] of the non-nil storage members, in NewDriver's order (no OSS driver)."""
    storage = storage or {}
    return [(k, n) for k, n in C.STORAGE_TYPES if storage.get(k) is not None]


def select_storage_type(storage: dict, accept_several: bool = False) -> str:
    """The one configured member, or raise (not configured: permanent; several: transient).
    `accept_several` (a fault knob) takes the first instead, as a broken operator would."""
    found = configured_types(storage)
    if not found:
        raise storage_not_configured()
    if len(found) > 1 and not accept_several:
        names = " ".join(n for _, n in found)
        raise SyncError(f"exactly one storage type should be configured at the same time, "
                        f"got {len(found)}: [{names}]")
    return found[0][0]


# --- PVC decisions --------------------------------------------------------------------------------

def default_pvc() -> dict:
    """The claim the operator creates when `pvc.claim` is empty: RWX 100Gi, default StorageClass."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": C.DEFAULT_PVC, "namespace": C.NAMESPACE,
                     "annotations": {C.OWNER_ANNOTATION: "true"}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}},
    }


def owned_by_operator(pvc: dict) -> bool:
    return C.OWNER_ANNOTATION in ((pvc.get("metadata") or {}).get("annotations") or {})


PVC_NOT_OWNED = "could not create default PVC, it already exists and is not owned by the operator"


def pvc_not_found(name: str) -> str:
    return f'persistentvolumeclaims "{name}" not found'


def check_pvc(pvc: dict, claim: str, replicas: int, rollout_strategy: str) -> Optional[str]:
    """checkPVC: the error message for an unusable claim, or None. Reads spec.accessModes."""
    modes = (pvc.get("spec") or {}).get("accessModes") or []
    if "ReadWriteMany" in modes:
        return None
    if "ReadWriteOnce" in modes:
        if replicas > 1:
            return "cannot use ReadWriteOnce access mode with more than one replica of the image registry"
        if rollout_strategy != "Recreate":
            return f"cannot use ReadWriteOnce access mode with {rollout_strategy} rollout strategy"
        return None
    return f"PVC {claim} does not contain the necessary access modes: ReadWriteMany or ReadWriteOnce"


# --- drivers --------------------------------------------------------------------------------------

@dataclass
class StorageContext:
    """What a driver may use. `get_pvc(name)` -> dict|None, `create_pvc(body)`, `delete_pvc(name)` are
    coroutines; `skip_pvc_checks` and `accept_several_storage_types` are fault knobs."""
    get_pvc: Callable[[str], Any]
    create_pvc: Callable[[dict], Any]
    delete_pvc: Callable[[str], Any]
    skip_pvc_checks: bool = False
    accept_several_storage_types: bool = False     # fault knob operator.acceptSeveralStorageTypes
    extra: dict = field(default_factory=dict)   # for later drivers (S3: secrets, configmaps, clients)


def _conds(cr: dict) -> list:
    return cr.setdefault("status", {}).setdefault("conditions", [])


class Driver:
    """One storage type. Methods mutate the Config dict `cr` (spec, status) like the real drivers."""

    key = ""           # the spec.storage member
    name = ""          # NewDriver's name

    def config(self, cr: dict) -> dict:
        return cr["spec"]["storage"].get(self.key) or {}

    def storage_changed(self, cr: dict) -> bool:
        # reflect.DeepEqual on the Go structs: an omitempty zero value equals an absent field.
        status_storage = (cr.get("status") or {}).get("storage") or {}
        return go_storage_member(self.key, cr["spec"]["storage"].get(self.key)) != \
            go_storage_member(self.key, status_storage.get(self.key))

    async def storage_exists(self, cr: dict, ctx: StorageContext) -> bool:
        raise NotImplementedError

    async def create_storage(self, cr: dict, ctx: StorageContext) -> None:
        raise NotImplementedError

    async def remove_storage(self, cr: dict, ctx: StorageContext) -> None:
        """Called with the Config whose status.storage names the storage to remove."""

    def volumes(self, cr: dict) -> tuple[list, list, list]:
        """(volumes, volumeMounts, env) for the registry pod."""
        raise NotImplementedError

    async def secret_data(self, cr: dict, ctx: StorageContext) -> dict:
        """Base64 data of secret `image-registry-private-configuration` (S3: key `credentials`)."""
        return {}

    async def ca_bundle(self, cr: dict, ctx: StorageContext) -> Optional[str]:
        """PEM for `storage-ca-bundle.pem` in `image-registry-certificates` (S3: trustedCA)."""
        return None

    def mark_changed(self, cr: dict) -> None:
        pass


FILESYSTEM_ENV = [
    {"name": "REGISTRY_STORAGE", "value": "filesystem"},
    {"name": "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "value": "/registry"},
]


class EmptyDirDriver(Driver):
    key, name = "emptyDir", "EmptyDir"

    async def storage_exists(self, cr, ctx):
        return True

    def mark_changed(self, cr):
        set_condition(_conds(cr), "StorageExists", UNKNOWN, "EmptyDir Configuration Changed",
                      "EmptyDir storage is in an unknown state")

    async def create_storage(self, cr, ctx):
        storage = cr["spec"]["storage"]
        if not storage.get("managementState"):
            storage["managementState"] = "Managed"
        set_condition(_conds(cr), "StorageExists", TRUE, "Creation Successful",
                      "EmptyDir storage successfully created")

    def volumes(self, cr):
        return ([{"name": "registry-storage", "emptyDir": {}}],
                [{"name": "registry-storage", "mountPath": "/registry"}],
                copy.deepcopy(FILESYSTEM_ENV))


class PVCDriver(Driver):
    key, name = "pvc", "PVC"

    def claim(self, cr) -> str:
        return self.config(cr).get("claim") or ""

    def mark_changed(self, cr):
        set_condition(_conds(cr), "StorageExists", UNKNOWN, "PVC Configuration Changed",
                      "PVC storage is in an old state")

    async def storage_exists(self, cr, ctx):
        claim = self.claim(cr)
        if not claim:
            return False
        if await ctx.get_pvc(claim) is None:
            return False
        set_condition(_conds(cr), "StorageExists", TRUE, "PVC Exists", "")
        return True

    async def create_storage(self, cr, ctx):
        storage = cr["spec"]["storage"]
        conf = dict(self.config(cr))
        conds = _conds(cr)
        if not conf.get("claim"):
            conf["claim"] = C.DEFAULT_PVC
            if not storage.get("managementState"):
                storage["managementState"] = "Managed"
            existing = await ctx.get_pvc(C.DEFAULT_PVC)
            if existing is None:
                try:
                    await ctx.create_pvc(default_pvc())
                except Exception as e:  # noqa: BLE001 - the API error text is the message
                    set_condition(conds, "StorageExists", FALSE, "Creation Failed", str(e))
                    raise SyncError(str(e)) from e
                set_condition(conds, "StorageExists", TRUE, "PVC Created", "")
            elif not owned_by_operator(existing):
                set_condition(conds, "StorageExists", FALSE, "PVC Already Exists", PVC_NOT_OWNED)
                raise SyncError(PVC_NOT_OWNED)
            else:
                set_condition(conds, "StorageExists", TRUE, "PVC Exists", "")
        else:
            if not storage.get("managementState"):
                storage["managementState"] = "Unmanaged"
            set_condition(conds, "StorageExists", TRUE, "PVC Exists", "")
        claim = conf["claim"]
        pvc = await ctx.get_pvc(claim)
        if pvc is None:
            err = pvc_not_found(claim)
        elif ctx.skip_pvc_checks:
            err = None
        else:
            err = check_pvc(pvc, claim, int(cr["spec"].get("replicas") or 0),
                            cr["spec"].get("rolloutStrategy") or "")
        if err:
            set_condition(conds, "StorageExists", FALSE, "PVC Issues Found", err)
            raise SyncError(err)
        # Write the claim back into spec (status follows in apply()).
        storage["pvc"] = conf

    async def remove_storage(self, cr, ctx):
        claim = (((cr.get("status") or {}).get("storage") or {}).get("pvc") or {}).get("claim") or ""
        if claim and cr["spec"].get("storage", {}).get("managementState") == "Managed":
            await ctx.delete_pvc(claim)

    def volumes(self, cr):
        return ([{"name": "registry-storage", "persistentVolumeClaim": {"claimName": self.claim(cr)}}],
                [{"name": "registry-storage", "mountPath": "/registry"}],
                copy.deepcopy(FILESYSTEM_ENV))


class UnsupportedDriver(Driver):
    """A storage type the local cluster cannot provide (yet): a transient error, as a cloud API
    failure would be."""

    def __init__(self, key: str, name: str):
        self.key, self.name = key, name

    def _err(self):
        return SyncError(f"storage type {self.name} is not supported by the local cluster")

    async def storage_exists(self, cr, ctx):
        return False

    async def create_storage(self, cr, ctx):
        raise self._err()

    def volumes(self, cr):
        raise self._err()


# The hook for later drivers: DRIVERS["s3"] = S3Driver (a Driver subclass) makes `s3` work.
DRIVERS: dict[str, type] = {"emptyDir": EmptyDirDriver, "pvc": PVCDriver}


def new_driver(storage: dict, accept_several: bool = False) -> Driver:
    key = select_storage_type(storage, accept_several)
    cls = DRIVERS.get(key)
    if cls is None:
        return UnsupportedDriver(key, dict(C.STORAGE_TYPES)[key])
    return cls()


def driver_for_status(cr: dict) -> Optional[Driver]:
    """The driver of the applied storage (status.storage), for RemoveStorage; None if none."""
    try:
        return new_driver((cr.get("status") or {}).get("storage") or {})
    except SyncError:
        return None


async def sync_storage(cr: dict, ctx: StorageContext, platform_storage: Callable[[], dict]) -> Driver:
    """syncStorage + the storage part of Apply(); mutates cr; raises SyncError/PermanentError."""
    spec = cr["spec"]
    spec.setdefault("storage", {})
    try:
        try:
            driver = new_driver(spec["storage"], ctx.accept_several_storage_types)
        except PermanentError:
            spec["storage"] = platform_storage()
            driver = new_driver(spec["storage"])   # still not configured on vSphere: raises again
        run_create = driver.storage_changed(cr)
        if run_create:
            driver.mark_changed(cr)
        else:
            run_create = not await driver.storage_exists(cr, ctx)
        if run_create:
            await driver.create_storage(cr, ctx)
    except PermanentError:
        raise
    except SyncError as e:
        raise SyncError(f"unable to sync storage configuration: {e}") from e
    storage = spec["storage"]
    status = cr.setdefault("status", {})
    if not storage.get("managementState"):
        storage["managementState"] = "Managed" if status.get("storageManaged") else "Unmanaged"
    status["storageManaged"] = storage["managementState"] == "Managed"
    # Written from the Go struct (ImageRegistryConfigStorage): omitempty zero values vanish
    # (`encrypt: false`), fields without omitempty appear with their zero value (operator-facts §12.2).
    status["storage"] = {driver.key: go_storage_member(driver.key, storage.get(driver.key)),
                         "managementState": storage["managementState"]}
    return driver


# --- status.storage as the Go types serialize it (openshift/api imageregistry/v1/types.go) --------------
# Per storage member: fields tagged omitempty (dropped when zero) and fields without omitempty (always
# written, with their zero value when unset).
_OMITEMPTY = {
    "s3": ("bucket", "region", "regionEndpoint", "chunkSizeMiB", "encrypt", "keyID", "cloudFront"),
    "gcs": ("bucket", "region", "projectID", "keyID"),
    "swift": ("authURL", "authVersion", "container", "domain", "domainID", "tenant", "tenantID", "regionName"),
    "pvc": ("claim",),
}
_ALWAYS = {
    "s3": {"virtualHostedStyle": False, "trustedCA": {"name": ""}},
}


def go_storage_member(key: str, value: Optional[dict]) -> Optional[dict]:
    """One spec.storage member (`s3`, `pvc`, ...) round-tripped through its Go struct."""
    if value is None:
        return None
    out = copy.deepcopy(value)
    for name in _OMITEMPTY.get(key, ()):
        if name in out and out[name] in (False, 0, "", None, {}):
            del out[name]
    for name, zero in _ALWAYS.get(key, {}).items():
        if name not in out or out[name] is None:
            out[name] = copy.deepcopy(zero)
        elif isinstance(zero, dict) and isinstance(out[name], dict):
            out[name] = {**copy.deepcopy(zero), **out[name]}
    return out


__all__ = ["STORAGE_NOT_CONFIGURED", "PVC_NOT_OWNED", "Driver", "EmptyDirDriver", "PVCDriver", "DRIVERS",
           "StorageContext", "check_pvc", "configured_types", "default_pvc", "driver_for_status",
           "go_storage_member", "new_driver", "owned_by_operator", "pvc_not_found", "select_storage_type", "sync_storage"]


# S3 (Ceph RGW / NooBaa / any S3 endpoint): registered last, it subclasses Driver.
# (When s3.py is imported first it registers itself at its end.)
try:
    from .s3 import S3Driver  # noqa: E402
except ImportError:   # partially initialized s3 module: it registers itself
    pass
else:
    DRIVERS["s3"] = S3Driver
