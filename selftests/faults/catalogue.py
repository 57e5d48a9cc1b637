"""The fault catalogue (issue 9): for each check of the suite, a fault of the local cluster that the check
alone must catch, as data. Append here when you add a check or a knob (knobs: localcluster/README.md).

Each `Fault` says which knobs to set in the configmap `localcluster-system/localcluster-faults` (or which
`serve` flags to start the local cluster with), which `pytest tests/...` arguments select the check, the
JUnit name of the test that must fail (`"*"`: any) and the words its failure must contain (the cause).

- `make detection` (selftests/faults/detection.py) runs every entry and prints: fault, the test that
  caught it, seconds to failure, the message; and the faults caught by no test.
- selftests/faults/test_catalogue.py runs the entries with `selftest=True` in `make test` (the older
  entries have their own selftests in selftests/suite/).
"""
from __future__ import annotations

import dataclasses
import json

BACKENDS = "tests/test_storage_backends.py"
REFUSALS = "tests/test_storage_refusals.py"
DECLARED = "tests/test_declared_vs_provided.py"
DOWN = "tests/test_conditions_while_down.py"
TRUST = "tests/test_trust.py"
REMOVED = "tests/test_removed_leaves_nothing.py"
MANAGEMENT = "tests/test_management_state.py"


@dataclasses.dataclass(frozen=True)
class Fault:
    id: str
    knobs: dict                       # data of the faults configmap while the check runs
    args: tuple                       # pytest arguments selecting the check
    caught_by: str                    # JUnit testcase name that must fail ("*": any test)
    cause: tuple                      # substrings its failure must contain (all)
    promise: str                      # what the broken component breaks, in the procedure's words
    serve_args: tuple = ()            # flags of `python -m localcluster serve`
    after_snapshot: bool = False      # set the knobs only once the run has saved the Config
    rollout_timeout: int = 40
    selftest: bool = False            # run by selftests/faults/test_catalogue.py (make test)


CATALOGUE: list[Fault] = [
    # --- issue 1..4 faults (selftests/suite/test_suite_against_faults.py, test_backends_against_faults.py)
    Fault("registry.dropImages", {"registry.dropImages": "true"}, (BACKENDS, "--backend", "emptydir", "-k", "push_and_pull"),
          "test_push_and_pull_through_the_route[emptydir]", ("MANIFEST_UNKNOWN",),
          "a pushed image can be pulled back"),
    Fault("registry.corruptBlobs", {"registry.corruptBlobs": "true"},
          (BACKENDS, "--backend", "emptydir", "-k", "push_and_pull"),
          "test_push_and_pull_through_the_route[emptydir]", ("DigestMismatch", "hash to"),
          "the registry serves the bytes pushed"),
    Fault("deployment.stallRollout", {"deployment.stallRollout": "true"},
          (BACKENDS, "--backend", "emptydir", "-k", "rollout"), "test_rollout_completes[emptydir]",
          ("registry rollout", "updatedReplicas=0"), "the registry rolls out", rollout_timeout=30),
    Fault("kubelet.neverReady", {"kubelet.neverReady": "true"}, (BACKENDS, "--backend", "emptydir", "-k", "rollout"),
          "test_rollout_completes[emptydir]", ("registry rollout", "ready=False"),
          "the registry pods become ready", rollout_timeout=30),
    Fault("scheduler.unschedulable", {"scheduler.unschedulable": "true"},
          (BACKENDS, "--backend", "emptydir", "-k", "rollout"), "test_rollout_completes[emptydir]",
          ("registry rollout cannot succeed", "FailedScheduling"), "the registry pods are scheduled"),
    Fault("provisioner.fail", {"provisioner.fail": "true"}, (BACKENDS, "--backend", "default-pvc", "-k", "rollout"),
          "test_rollout_completes[default-pvc]",
          ("registry rollout cannot succeed", "ProvisioningFailed", "image-registry-storage"),
          "the operator's claim is provisioned"),
    Fault("no-vsan-file-services", {}, (BACKENDS, "--backend", "default-pvc", "-k", "rollout"),
          "test_rollout_completes[default-pvc]", ("ProvisioningFailed", "vsan file service may be disabled"),
          "RWX on vSphere needs vSAN file services", serve_args=("--no-vsan-file-services",)),
    Fault("operator.mutateSpec", {"operator.mutateSpec": json.dumps({"logLevel": "Debug"})},
          (BACKENDS, "--backend", "emptydir", "-k", "push_and_pull"), "*",
          ("configuration left changed", "spec.logLevel: expected 'Normal', found 'Debug'"),
          "the run leaves the Config as it found it", after_snapshot=True),
    Fault("router.untrustedS3Cert", {"router.untrustedS3Cert": "true"},
          (BACKENDS, "--backend", "ceph-rgw", "-k", "rollout"), "test_rollout_completes[ceph-rgw]",
          ("registry rollout cannot succeed", "unable to sync storage configuration", "x509"),
          "the S3 endpoint is served with the certificate given as trustedCA"),
    Fault("obc.wrongKeys", {"obc.wrongKeys": "true"}, (BACKENDS, "--backend", "noobaa", "-k", "rollout"),
          "test_rollout_completes[noobaa]", ("registry rollout cannot succeed", "SignatureDoesNotMatch"),
          "the bucket claim's keys open its bucket"),
    Fault("s3.dropWrites", {"s3.dropWrites": "true"}, (BACKENDS, "--backend", "ceph-rgw", "-k", "bucket"),
          "test_blobs_are_in_the_bucket[ceph-rgw]", ("missing from bucket", "docker/registry/v2/blobs/sha256/"),
          "the image is stored in the claimed bucket"),
    Fault("registry.emptyReplica", {"registry.emptyReplica": "true"},
          (BACKENDS, "--backend", "cephfs", "-k", "every_replica"), "test_every_replica_serves_the_image[cephfs]",
          ("does not serve", "MANIFEST_UNKNOWN"), "every replica serves every image"),
    Fault("operator.skipPVCChecks", {"operator.skipPVCChecks": "true"}, (REFUSALS, "-k", "two_replicas"),
          "test_rwo_with_two_replicas_is_refused",
          ("did not report", "cannot use ReadWriteOnce access mode with more than one replica"),
          "RWO with two replicas is refused"),
    Fault("operator.skipPVCChecks-recreate", {"operator.skipPVCChecks": "true"}, (REFUSALS, "-k", "without_recreate"),
          "test_rwo_without_recreate_is_refused",
          ("did not report", "cannot use ReadWriteOnce access mode with RollingUpdate rollout strategy"),
          "RWO with RollingUpdate is refused"),
    Fault("scheduler.ignoreSpread", {"scheduler.ignoreSpread": "true"},
          (BACKENDS, "--backend", "cephfs", "-k", "ready_replicas"), "test_ready_replicas_equal_spec_replicas[cephfs]",
          ("2 replicas are not spread over 2 nodes",), "two replicas run on two nodes"),
    Fault("operator.acceptSeveralStorageTypes", {"operator.acceptSeveralStorageTypes": "true"},
          (REFUSALS, "-k", "two_storage_types"), "test_two_storage_types_are_refused",
          ("exactly one storage type should be configured at the same time",), "one storage type at a time"),
    Fault("provisioner.fail-block", {"provisioner.fail": "true"}, (BACKENDS, "--backend", "block", "-k", "claim"),
          "test_claim[block]", ("registry rollout cannot succeed", "ProvisioningFailed", "image-registry-storage"),
          "the user's block claim is provisioned"),

    # --- issue 9: checks that cannot be fooled --------------------------------------------------------
    Fault("provisioner.undersizedVolume", {"provisioner.undersizedVolume": "true"},
          (DECLARED, "--backend", "block", "-k", "volume_behind"),
          "test_volume_behind_the_claim_is_what_the_claim_says[block]",
          ("spec.capacity.storage 1Gi is less than the claim's request", "100Gi"),
          "the volume behind the claim is the size the claim asked for", selftest=True),
    Fault("provisioner.undersizedVolume-rwx", {"provisioner.undersizedVolume": "true"},
          (DECLARED, "--backend", "default-pvc", "-k", "volume_behind"),
          "test_volume_behind_the_claim_is_what_the_claim_says[default-pvc]",
          ("lack the claim's spec.accessModes ['ReadWriteMany']",),
          "the volume behind a RWX claim is ReadWriteMany"),
    Fault("operator.pdbMinAvailable", {"operator.pdbMinAvailable": "1"},
          (DECLARED, "--backend", "emptydir", "-k", "disruption"), "test_pod_disruption_budget[emptydir]",
          ("spec.minAvailable 1, expected 0 for spec.replicas 1", "drain"),
          "a single-replica registry does not block node drains (PDB minAvailable 0)", selftest=True),
    Fault("registry.staleTags", {"registry.staleTags": "true"},
          (DECLARED, "--backend", "emptydir", "-k", "newest_push"), "test_tag_points_at_the_newest_push[emptydir]",
          ("(the FIRST push)", "a tag must point at the newest manifest"),
          "a tag pushed again points at the new manifest", selftest=True),
    Fault("operator.staleImageConfig", {"operator.staleImageConfig": "true"},
          (DECLARED, "--backend", "emptydir", "-k", "image_config"), "test_image_config_names_the_registry[emptydir]",
          ("status.internalRegistryHostname", "expected 'image-registry.openshift-image-registry.svc:5000'",
           "does not tell the control plane"),
          "the control plane is told the registry's internal and external host names", selftest=True),
    Fault("operator.keepUserEdits", {"operator.keepUserEdits": "true"},
          (DECLARED, "--backend", "emptydir", "-k", "manual_deployment_edit"),
          "test_manual_deployment_edit_is_reverted[emptydir]",
          ("REGISTRY_CONFORMANCE_MANUAL_EDIT", "is still there", "reverts manual edits"),
          "the operator puts the Deployment back to what the Config declares"),
    Fault("operator.leaveObjectsOnRemoved", {"operator.leaveObjectsOnRemoved": "true"}, (REMOVED,),
          "test_removed_leaves_nothing_behind", ("still there", "Service image-registry",
                                                 "PodDisruptionBudget image-registry", "Route default-route"),
          "Removed deletes the registry's objects and the control plane stops naming it", selftest=True),
    Fault("kubelet.ignoreAccessModes", {"kubelet.ignoreAccessModes": "true"},
          (BACKENDS, "--backend", "block", "-k", "rwo_claim"), "test_rwo_claim_is_held_to_one_node[block]",
          ("(ReadWriteOnce)", "it started", "not held to one node"),
          "a ReadWriteOnce claim is attached to one node only (why block storage runs one replica, Recreate)",
          selftest=True),
    Fault("kubelet.keepEmptyDir", {"kubelet.keepEmptyDir": "true"},
          (BACKENDS, "--backend", "emptydir", "-k", "after_registry_restart"),
          "test_images_after_registry_restart[emptydir]",
          ("still served after the registry pods were replaced", "emptyDir"),
          "emptyDir storage is lost with the pods (the docs' warning)", selftest=True),
    Fault("operator.availableWhileDown", {"operator.availableWhileDown": "true"},
          (DOWN, "--backend", "emptydir", "-k", "config"), "test_config_conditions_while_down[emptydir]",
          ("Available=True/Ready", "readyReplicas 0"),
          "the Config says Available=False while no registry pod is ready", selftest=True),
    Fault("operator.clusterOperatorAlwaysAvailable", {"operator.clusterOperatorAlwaysAvailable": "true"},
          (DOWN, "--backend", "emptydir", "-k", "clusteroperator"),
          "test_clusteroperator_conditions_while_down[emptydir]",
          ("ClusterOperator image-registry", "NoReplicasAvailable"),
          "the ClusterOperator says Available=False while no registry pod is ready", selftest=True),
    Fault("operator.s3BucketSuffix", {"obc.shadowBucket": "true", "operator.s3BucketSuffix": "-shadow"},
          (BACKENDS, "--backend", "ceph-rgw", "-k", "bucket"), "test_blobs_are_in_the_bucket[ceph-rgw]",
          # Caught by the rollout wait as soon as the operator has observed the spec (issue 9 item 2): the
          # Deployment's bucket is not the Config's; the bucket listing would say the same later.
          ("REGISTRY_STORAGE_S3_BUCKET", "-shadow", "Config spec.storage.s3.bucket"),
          "the registry writes to the bucket the Config names", selftest=True),
    Fault("registry.ignoreTrustedCA", {"registry.ignoreTrustedCA": "true"},
          (TRUST, "--backend", "ceph-rgw", "-k", "registry"), "test_registry_verifies_the_s3_endpoint[ceph-rgw]",
          ("does not verify the S3 endpoint", "trustedCA"),
          "the registry verifies the S3 endpoint with the trustedCA config map", selftest=True),
    Fault("operator.ignoreTrustedCA", {"operator.ignoreTrustedCA": "true"},
          (TRUST, "--backend", "ceph-rgw", "-k", "operator"), "test_operator_verifies_the_s3_endpoint[ceph-rgw]",
          ("did not report", "x509", "trustedCA"),
          "the operator verifies the S3 endpoint with the trustedCA config map", selftest=True),

    # --- issue 16: a wait fails when the cluster says why (selftests/suite/test_waits_fail_fast.py) ----
    Fault("daemonset.fitNoNode", {"daemonset.fitNoNode": "openshift-image-registry/node-ca"},
          (MANAGEMENT, "-k", "back_to_removed"), "test_back_to_removed_deletes_the_deployment",
          ("ClusterOperator image-registry", "DaemonSet openshift-image-registry/node-ca",
           "desiredNumberScheduled 0"),
          "node-ca runs on every node (the ClusterOperator is Available)"),
]

BY_ID = {f.id: f for f in CATALOGUE}
assert len(BY_ID) == len(CATALOGUE), "fault ids must be unique"
