"""The storage backends and their checks against a broken local cluster: the right test fails, and its
message names the cause (issue 3).

To stay fast, ONE local cluster (ODF on) serves several cases in a row: each case sets its fault knobs
before the run, runs `pytest tests/...` in a subprocess with
`--backend` and `-k` picking the one check, reads the JUnit XML, and clears the knobs; the suite's own
teardown puts the cluster back between cases. A second cluster runs with `--no-odf`: the ODF backends
named there skip, and the run exits 16.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from selftests.suite.test_suite_against_faults import assert_caught, set_faults
from selftests.support import SuiteRun, run_suite, served_cluster_in
from utilities import kube
from utilities.junit import pytest_id
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess

BACKENDS = "tests/test_storage_backends.py"
REFUSALS = "tests/test_storage_refusals.py"


@dataclasses.dataclass
class Case:
    id: str
    faults: dict
    args: list[str]
    failing_test: str                 # JUnit testcase name that must fail (failure or error)
    expect: list[str]                 # substrings its message must contain (all of them)


ODF_CASES = [
    Case("router.untrustedS3Cert", {"router.untrustedS3Cert": "true"}, [BACKENDS, "--backend", "ceph-rgw", "-k", "rollout"],
         "test_rollout_completes[ceph-rgw]",
         ["registry rollout cannot succeed", "unable to sync storage configuration", "x509"]),
    Case("obc.wrongKeys", {"obc.wrongKeys": "true"}, [BACKENDS, "--backend", "noobaa", "-k", "rollout"],
         "test_rollout_completes[noobaa]", ["registry rollout cannot succeed", "SignatureDoesNotMatch"]),
    Case("s3.dropWrites", {"s3.dropWrites": "true"}, [BACKENDS, "--backend", "ceph-rgw", "-k", "bucket"],
         "test_blobs_are_in_the_bucket[ceph-rgw]", ["missing from bucket", "docker/registry/v2/blobs/sha256/"]),
    Case("registry.emptyReplica", {"registry.emptyReplica": "true"},
         [BACKENDS, "--backend", "cephfs", "-k", "every_replica"],
         "test_every_replica_serves_the_image[cephfs]", ["does not serve", "MANIFEST_UNKNOWN"]),
    Case("operator.skipPVCChecks", {"operator.skipPVCChecks": "true"}, [REFUSALS, "-k", "two_replicas"],
         "test_rwo_with_two_replicas_is_refused",
         ["did not report", "cannot use ReadWriteOnce access mode with more than one replica",
          "StorageExists=True/PVC Exists"]),
    Case("operator.skipPVCChecks-recreate", {"operator.skipPVCChecks": "true"}, [REFUSALS, "-k", "without_recreate"],
         "test_rwo_without_recreate_is_refused",
         ["did not report", "cannot use ReadWriteOnce access mode with RollingUpdate rollout strategy"]),
    Case("scheduler.ignoreSpread", {"scheduler.ignoreSpread": "true"},
         [BACKENDS, "--backend", "cephfs", "-k", "spread"],
         "test_replicas_spread_over_nodes[cephfs]", ["2 replicas are not spread over 2 nodes"]),
    Case("operator.acceptSeveralStorageTypes", {"operator.acceptSeveralStorageTypes": "true"},
         [REFUSALS, "-k", "two_storage_types"], "test_two_storage_types_are_refused",
         ["exactly one storage type should be configured at the same time"]),
    # Issue 7: storage changed on a running registry, the Deployment keeps the previous claim.
    Case("operator.staleStorageVolume", {"operator.staleStorageVolume": "true"},
         [BACKENDS, "--backend", "default-pvc", "--backend", "emptydir", "-k", "moved"],
         "test_deployment_moved_to_the_new_storage[emptydir]",
         ["switched from default-pvc", "Deployment claims ['image-registry-storage'], expected []",
          "still mounts claim(s) ['image-registry-storage']"]),
    Case("provisioner.fail", {"provisioner.fail": "true"}, [BACKENDS, "--backend", "block", "-k", "claim"],
         "test_claim[block]", ["registry rollout cannot succeed", "ProvisioningFailed", "image-registry-storage"]),
]


def junit_skips(path: Path) -> dict[str, str]:
    return {pytest_id(tc): (tc.find("skipped").get("message") or "")
            for tc in ET.parse(path).getroot().iter("testcase") if tc.find("skipped") is not None}


def run_backends(lc: LocalClusterProcess, tmp: Path, run_id: str, args: list[str]) -> SuiteRun:
    return run_suite(lc, args, tmp, run_id, rollout_timeout=40, timeout=300)


@pytest.fixture(scope="module")
def odf_cluster(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "backends-odf") as served:
        yield served


@pytest.mark.parametrize("case", ODF_CASES, ids=[c.id for c in ODF_CASES])
def test_backend_check_names_the_cause(case: Case, odf_cluster):
    lc, cluster, tmp = odf_cluster
    set_faults(cluster, case.faults)
    try:
        run = run_backends(lc, tmp, case.id, case.args)
    finally:
        set_faults(cluster, {k: None for k in case.faults})
    assert_caught(run, case.id, case.failing_test, case.expect)
    # Nothing the suite created is left behind.
    assert not kube.call(cluster.custom.list_namespaced_custom_object, "objectbucket.io", "v1alpha1",
                         "openshift-storage", "objectbucketclaims")["items"], "ObjectBucketClaims left behind"
    pvcs = kube.call(cluster.core.list_namespaced_persistent_volume_claim, "openshift-image-registry").items
    assert not pvcs, f"PVCs left behind: {[p.metadata.name for p in pvcs]}"


def test_without_odf_the_odf_backends_skip_with_the_reason_and_fail_the_run(tmp_path):
    lc = LocalClusterProcess(tmp_path / "cluster", ["--no-odf"])
    lc.start()
    try:
        run = run_backends(lc, tmp_path, "no-odf", [BACKENDS, "--backend", "cephfs", "--backend",
                                                    "ceph-rgw", "--backend", "noobaa", "-k", "rollout"])
    finally:
        lc.stop()
    output = run.output
    # Named with --backend, a backend that cannot run fails the run (issue 16), each named in one line.
    assert run.returncode == 16, f"exit {run.returncode}, expected 16:\n{output[-3000:]}"
    assert "\ncephfs: StorageClass ocs-storagecluster-cephfs not found on the cluster" in output, output[-3000:]
    skips = junit_skips(run.junit)
    want = {"test_rollout_completes[cephfs]": "StorageClass ocs-storagecluster-cephfs not found",
            "test_rollout_completes[ceph-rgw]": "ObjectBucketClaim class ocs-storagecluster-ceph-rgw not found",
            "test_rollout_completes[noobaa]": "ObjectBucketClaim class openshift-storage.noobaa.io not found"}
    for name, reason in want.items():
        assert name in skips, f"{name} did not skip: {sorted(skips)}\n{output[-2000:]}"
        assert reason in skips[name] and "OpenShift Data Foundation" in skips[name], skips[name]


def test_unknown_backend_is_a_usage_error_listing_the_valid_ones():
    proc = subprocess.run([sys.executable, "-m", "pytest", BACKENDS, "--backend", "nosuch", "--collect-only",
                           "-q", "-p", "no:cacheprovider"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "unknown backend 'nosuch'" in out
    for name in ("emptydir", "default-pvc", "block", "cephfs", "ceph-rgw", "noobaa"):
        assert name in out, out


def test_storage_class_override_points_the_backend_elsewhere():
    proc = subprocess.run([sys.executable, "-m", "pytest", BACKENDS, "--backend", "block", "--storage-class",
                           "block=nosuch-class", "--storage-class", "default-pvc=x", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "default-pvc" in out and "cannot be pointed at another class" in out, out
    from utilities.backends import select
    (block,) = select(["block"], ["block=my-class"])
    assert block.storage_class == "my-class" and block.id == "block"
