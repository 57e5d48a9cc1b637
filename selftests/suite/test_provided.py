"""utilities/provided.py: the volume judge on a claim as the procedure makes it (100Gi RWX, a class)."""
from __future__ import annotations

import copy

from utilities import provided

PVC = {"metadata": {"namespace": "openshift-image-registry", "name": "registry-storage-pvc", "uid": "u-1"},
       "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "100Gi"}},
                "storageClassName": "ocs-storagecluster-cephfs", "volumeName": "pvc-u-1"},
       "status": {"phase": "Bound", "accessModes": ["ReadWriteMany"], "capacity": {"storage": "100Gi"}}}
PV = {"metadata": {"name": "pvc-u-1"},
      "spec": {"capacity": {"storage": "107374182400"}, "accessModes": ["ReadWriteMany"],
               "storageClassName": "ocs-storagecluster-cephfs",
               "claimRef": {"namespace": "openshift-image-registry", "name": "registry-storage-pvc", "uid": "u-1"}},
      "status": {"phase": "Bound"}}


def test_a_matching_volume_passes():
    assert provided.volume_problems(PVC, PV) == []
    assert provided.quantity_bytes("1.5Ti") == int(1.5 * 2 ** 40) and provided.quantity_bytes("100G") == 10 ** 11


def test_each_difference_is_named():
    pv = copy.deepcopy(PV)
    pv["spec"].update(capacity={"storage": "1Gi"}, accessModes=["ReadWriteOnce"], storageClassName="thin-csi")
    pv["spec"]["claimRef"]["uid"] = "someone-else"
    pv["status"]["phase"] = "Released"
    text = "\n".join(provided.volume_problems(PVC, pv))
    for words in ("spec.capacity.storage 1Gi is less than the claim's request spec.resources.requests.storage 100Gi",
                  "but the claim reports status.capacity.storage 100Gi",
                  "lack the claim's spec.accessModes ['ReadWriteMany']", "spec.storageClassName 'thin-csi'",
                  "spec.claimRef", "status.phase Released"):
        assert words in text, text
