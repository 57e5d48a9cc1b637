"""Unit tests: driver selection, checkPVC and the PVC / emptyDir drivers (operator-facts.md §3).
The drivers' three API calls go to an in-memory claim table here; the integration tests use the real
API server."""
import asyncio
import copy

import pytest

from localcluster.controllers.registry_operator.errors import PermanentError, SyncError
from localcluster.controllers.registry_operator.storage import (
    PVC_NOT_OWNED, StorageContext, check_pvc, default_pvc, driver_for_status, new_driver,
    select_storage_type, sync_storage)


class Claims:
    """An in-memory claim table behind a StorageContext."""

    def __init__(self, *pvcs, fail_create=None):
        self.items = {p["metadata"]["name"]: copy.deepcopy(p) for p in pvcs}
        self.created, self.deleted = [], []
        self.fail_create = fail_create

    def ctx(self, skip=False):
        async def get(name):
            return copy.deepcopy(self.items.get(name))

        async def create(body):
            if self.fail_create:
                raise SyncError(self.fail_create)
            self.items[body["metadata"]["name"]] = copy.deepcopy(body)
            self.created.append(body)

        async def delete(name):
            self.items.pop(name, None)
            self.deleted.append(name)
        return StorageContext(get_pvc=get, create_pvc=create, delete_pvc=delete, skip_pvc_checks=skip)


def pvc(name, modes, annotated=False):
    meta = {"name": name, "namespace": "openshift-image-registry"}
    if annotated:
        meta["annotations"] = {"imageregistry.openshift.io": "true"}
    return {"metadata": meta, "spec": {"accessModes": list(modes)}}


def config(storage, replicas=1, strategy="RollingUpdate", status_storage=None):
    cr = {"spec": {"managementState": "Managed", "replicas": replicas, "rolloutStrategy": strategy,
                   "storage": copy.deepcopy(storage)},
          "status": {"conditions": []}}
    if status_storage is not None:
        cr["status"]["storage"] = copy.deepcopy(status_storage)
    return cr


def sync(cr, claims, skip=False, platform=lambda: {}):
    return asyncio.run(sync_storage(cr, claims.ctx(skip), platform))


def storage_exists(cr):
    c = [c for c in cr["status"]["conditions"] if c["type"] == "StorageExists"][0]
    return c["status"], c["reason"], c["message"]


# --- selection ----------------------------------------------------------------------------------------

def test_no_storage_is_permanent():
    with pytest.raises(PermanentError) as e:
        select_storage_type({})
    assert str(e.value) == "storage backend not configured" and e.value.reason == "StorageNotConfigured"
    # managementState and oss alone are not a storage type (there is no OSS driver)
    with pytest.raises(PermanentError):
        select_storage_type({"managementState": "Managed", "oss": {"bucket": "b"}})


def test_several_storage_types():
    with pytest.raises(SyncError) as e:
        select_storage_type({"s3": {}, "emptyDir": {}})
    assert not e.value.permanent
    assert str(e.value) == "exactly one storage type should be configured at the same time, got 2: [EmptyDir S3]"
    with pytest.raises(SyncError) as e:
        select_storage_type({"pvc": {}, "emptyDir": {}, "azure": {}})
    assert str(e.value).endswith("got 3: [EmptyDir PVC Azure]")


def test_single_types():
    assert select_storage_type({"pvc": {"claim": ""}}) == "pvc"
    assert select_storage_type({"emptyDir": {}, "managementState": "Managed"}) == "emptyDir"
    assert new_driver({"s3": {}}).name == "S3"      # the hook: no S3 driver yet


def test_sync_storage_errors_are_wrapped():
    cr = config({"emptyDir": {}, "s3": {}})
    with pytest.raises(SyncError) as e:
        sync(cr, Claims())
    assert str(e.value) == ("unable to sync storage configuration: exactly one storage type should be "
                            "configured at the same time, got 2: [EmptyDir S3]")
    cr = config({"pvc": {"claim": "mine"}}, replicas=2)
    with pytest.raises(SyncError) as e:
        sync(cr, Claims(pvc("mine", ["ReadWriteOnce"])))
    assert str(e.value) == ("unable to sync storage configuration: cannot use ReadWriteOnce access mode "
                            "with more than one replica of the image registry")


def test_not_configured_uses_platform_storage():
    cr = config({"managementState": "Managed"})
    with pytest.raises(PermanentError):
        sync(cr, Claims())
    assert cr["spec"]["storage"] == {}        # replaced by the (empty) vSphere platform storage
    cr = config({})
    sync(cr, Claims(), platform=lambda: {"emptyDir": {}})
    assert cr["spec"]["storage"] == {"emptyDir": {}, "managementState": "Managed"}


# --- checkPVC -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("modes,replicas,strategy,expected", [
    (["ReadWriteMany"], 5, "RollingUpdate", None),
    (["ReadWriteOnce", "ReadWriteMany"], 3, "", None),
    (["ReadWriteOnce"], 1, "Recreate", None),
    (["ReadWriteOnce"], 2, "Recreate",
     "cannot use ReadWriteOnce access mode with more than one replica of the image registry"),
    (["ReadWriteOnce"], 2, "RollingUpdate",
     "cannot use ReadWriteOnce access mode with more than one replica of the image registry"),
    (["ReadWriteOnce"], 1, "RollingUpdate", "cannot use ReadWriteOnce access mode with RollingUpdate rollout strategy"),
    (["ReadWriteOnce"], 1, "", "cannot use ReadWriteOnce access mode with  rollout strategy"),
    (["ReadOnlyMany"], 1, "Recreate",
     "PVC c does not contain the necessary access modes: ReadWriteMany or ReadWriteOnce"),
    (["ReadWriteOncePod"], 1, "Recreate",
     "PVC c does not contain the necessary access modes: ReadWriteMany or ReadWriteOnce"),
])
def test_check_pvc(modes, replicas, strategy, expected):
    assert check_pvc(pvc("c", modes), "c", replicas, strategy) == expected


# --- PVC driver -------------------------------------------------------------------------------------

def test_default_pvc_created_and_claim_written_back():
    claims = Claims()
    cr = config({"pvc": {}})
    driver = sync(cr, claims)
    assert driver.key == "pvc"
    assert claims.created == [default_pvc()]
    body = claims.created[0]
    assert body["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}}}
    assert "storageClassName" not in body["spec"]
    assert body["metadata"]["annotations"] == {"imageregistry.openshift.io": "true"}
    assert cr["spec"]["storage"] == {"pvc": {"claim": "image-registry-storage"}, "managementState": "Managed"}
    assert cr["status"]["storage"] == {"pvc": {"claim": "image-registry-storage"}, "managementState": "Managed"}
    assert cr["status"]["storageManaged"] is True
    assert storage_exists(cr) == ("True", "PVC Created", "")


def test_default_pvc_reused_when_annotated():
    claims = Claims(pvc("image-registry-storage", ["ReadWriteMany"], annotated=True))
    cr = config({"pvc": {"claim": ""}})
    sync(cr, claims)
    assert claims.created == []
    assert cr["spec"]["storage"]["pvc"] == {"claim": "image-registry-storage"}


def test_default_pvc_not_owned():
    claims = Claims(pvc("image-registry-storage", ["ReadWriteMany"]))
    cr = config({"pvc": {}})
    with pytest.raises(SyncError) as e:
        sync(cr, claims)
    assert str(e.value) == f"unable to sync storage configuration: {PVC_NOT_OWNED}"
    assert PVC_NOT_OWNED == "could not create default PVC, it already exists and is not owned by the operator"
    assert storage_exists(cr) == ("False", "PVC Already Exists", PVC_NOT_OWNED)
    assert cr["spec"]["storage"]["pvc"] == {}       # no write-back on error
    assert "storage" not in cr["status"] or cr["status"]["storage"] == {}


def test_default_pvc_creation_failed():
    cr = config({"pvc": {}})
    with pytest.raises(SyncError):
        sync(cr, Claims(fail_create="quota exceeded"))
    assert storage_exists(cr) == ("False", "Creation Failed", "quota exceeded")


def test_user_claim_unmanaged_and_missing():
    cr = config({"pvc": {"claim": "mine"}}, replicas=1, strategy="Recreate")
    with pytest.raises(SyncError) as e:
        sync(cr, Claims())
    assert str(e.value).endswith('persistentvolumeclaims "mine" not found')
    assert storage_exists(cr) == ("False", "PVC Issues Found", 'persistentvolumeclaims "mine" not found')
    cr = config({"pvc": {"claim": "mine"}}, replicas=1, strategy="Recreate")
    sync(cr, Claims(pvc("mine", ["ReadWriteOnce"])))
    assert cr["spec"]["storage"]["managementState"] == "Unmanaged"
    assert cr["status"]["storageManaged"] is False
    assert storage_exists(cr) == ("True", "PVC Exists", "")


def test_rwo_two_replicas_rejected_unless_checks_skipped():
    msg = "cannot use ReadWriteOnce access mode with more than one replica of the image registry"
    cr = config({"pvc": {"claim": "mine"}}, replicas=2, strategy="Recreate")
    with pytest.raises(SyncError):
        sync(cr, Claims(pvc("mine", ["ReadWriteOnce"])))
    assert storage_exists(cr) == ("False", "PVC Issues Found", msg)
    cr = config({"pvc": {"claim": "mine"}}, replicas=2, strategy="Recreate")
    sync(cr, Claims(pvc("mine", ["ReadWriteOnce"])), skip=True)    # fault knob operator.skipPVCChecks
    assert cr["status"]["storage"]["pvc"] == {"claim": "mine"}


def test_pvc_checks_run_only_on_change_or_missing_claim():
    claims = Claims(pvc("mine", ["ReadWriteOnce"]))
    cr = config({"pvc": {"claim": "mine"}}, replicas=1, strategy="Recreate")
    sync(cr, claims)
    # Later: replicas 2 with the storage unchanged and the claim present: not rejected.
    cr["spec"]["replicas"] = 2
    sync(cr, claims)
    assert storage_exists(cr) == ("True", "PVC Exists", "")
    # The claim disappears: the checks run again (not found).
    del claims.items["mine"]
    with pytest.raises(SyncError):
        sync(cr, claims)
    # The stanza changes: the checks run again.
    claims.items["other"] = pvc("other", ["ReadWriteOnce"])
    cr["spec"]["storage"]["pvc"] = {"claim": "other"}
    with pytest.raises(SyncError) as e:
        sync(cr, claims)
    assert "more than one replica" in str(e.value)


def test_storage_changed_condition():
    from localcluster.controllers.registry_operator.storage import PVCDriver, EmptyDirDriver
    cr = config({"pvc": {"claim": "x"}}, status_storage={"emptyDir": {}})
    assert PVCDriver().storage_changed(cr)
    PVCDriver().mark_changed(cr)
    assert storage_exists(cr) == ("Unknown", "PVC Configuration Changed", "PVC storage is in an old state")
    EmptyDirDriver().mark_changed(cr)
    assert storage_exists(cr) == ("Unknown", "EmptyDir Configuration Changed", "EmptyDir storage is in an unknown state")


def test_remove_storage_only_when_managed():
    claims = Claims(pvc("image-registry-storage", ["ReadWriteMany"], annotated=True))
    cr = config({"pvc": {"claim": "image-registry-storage"}, "managementState": "Unmanaged"},
                status_storage={"pvc": {"claim": "image-registry-storage"}, "managementState": "Unmanaged"})
    asyncio.run(driver_for_status(cr).remove_storage(cr, claims.ctx()))
    assert claims.deleted == []
    cr["spec"]["storage"]["managementState"] = "Managed"
    asyncio.run(driver_for_status(cr).remove_storage(cr, claims.ctx()))
    assert claims.deleted == ["image-registry-storage"]
    assert driver_for_status(config({}, status_storage={})) is None


# --- emptyDir -------------------------------------------------------------------------------------------

def test_empty_dir():
    cr = config({"emptyDir": {}}, replicas=3)       # no replica validation
    sync(cr, Claims())
    assert storage_exists(cr) == ("True", "Creation Successful", "EmptyDir storage successfully created")
    assert cr["status"]["storage"] == {"emptyDir": {}, "managementState": "Managed"}


def test_switch_storage_keeps_old_and_replaces_status():
    claims = Claims()
    cr = config({"pvc": {}})
    sync(cr, claims)
    cr["spec"]["storage"] = {"emptyDir": {}, "managementState": "Managed"}
    sync(cr, claims)
    assert cr["status"]["storage"] == {"emptyDir": {}, "managementState": "Managed"}
    assert claims.deleted == [] and "image-registry-storage" in claims.items
