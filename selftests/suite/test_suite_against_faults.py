"""The suite against a misbehaving local cluster: the right test fails, and its message names the cause.

Each case starts the local cluster (`python -m localcluster serve`), sets fault knobs in the configmap
`localcluster-system/localcluster-faults` (or a serve flag), runs `pytest tests/...` in a subprocess
against it with --kubeconfig --allow-destructive, and reads the JUnit XML.
Needs the integrated local cluster (localcluster/cluster.py and __main__.py).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from utilities import kube
from utilities.kube import load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess

FAULTS_NS, FAULTS_CM = "localcluster-system", "localcluster-faults"
BACKENDS = "tests/test_storage_backends.py"


@dataclasses.dataclass
class Case:
    id: str
    faults: dict
    select: list[str]
    failing_test: str            # JUnit testcase name that must fail (failure or error)
    expect: list[str]            # substrings its message must contain (all of them)
    serve_args: list[str] = dataclasses.field(default_factory=list)
    rollout_timeout: int = 30
    after_snapshot: bool = False  # set the faults only once the suite has snapshotted the Config


CASES = [
    Case("registry.dropImages", {"registry.dropImages": "true"}, [BACKENDS, "-k", "emptydir and push_and_pull"],
         "test_push_and_pull_through_the_route[emptydir]", ["MANIFEST_UNKNOWN"]),
    Case("registry.corruptBlobs", {"registry.corruptBlobs": "true"}, [BACKENDS, "-k", "emptydir and push_and_pull"],
         "test_push_and_pull_through_the_route[emptydir]", ["DigestMismatch", "hash to"]),
    Case("deployment.stallRollout", {"deployment.stallRollout": "true"}, [BACKENDS, "-k", "emptydir and rollout"],
         "test_rollout_completes[emptydir]", ["registry rollout", "updatedReplicas=0"]),
    Case("kubelet.neverReady", {"kubelet.neverReady": "true"}, [BACKENDS, "-k", "emptydir and rollout"],
         "test_rollout_completes[emptydir]", ["registry rollout cannot succeed", "but not Ready", "ContainersNotReady",
                                              "Readiness probe failed"]),
    Case("scheduler.unschedulable", {"scheduler.unschedulable": "true"}, [BACKENDS, "-k", "emptydir and rollout"],
         "test_rollout_completes[emptydir]", ["registry rollout cannot succeed", "FailedScheduling"]),
    Case("provisioner.fail", {"provisioner.fail": "true"}, [BACKENDS, "-k", "default-pvc and rollout"],
         "test_rollout_completes[default-pvc]", ["registry rollout cannot succeed", "ProvisioningFailed",
                                                 "image-registry-storage"]),
    # Without vSAN File Services default-pvc is an environment without ReadWriteMany: it skips with the
    # claim's ProvisioningFailed as the reason (issue 7, selftests/runstructure/test_environment.py).
    Case("operator.mutateSpec", {"operator.mutateSpec": json.dumps({"logLevel": "Debug"})},
         [BACKENDS, "-k", "emptydir and push_and_pull"], "*",
         ["configuration left changed", "spec.logLevel: expected 'Normal', found 'Debug'"], after_snapshot=True),
]


def set_faults(cluster, faults: dict) -> None:
    body = {"data": faults}
    try:
        kube.call(cluster.core.patch_namespaced_config_map, FAULTS_CM, FAULTS_NS, body)
    except kube.ApiException as e:
        if e.status != 404:
            raise
        kube.call(cluster.core.create_namespaced_config_map, FAULTS_NS,
                  {"metadata": {"name": FAULTS_CM, "namespace": FAULTS_NS}, "data": faults})


def junit_outcomes(path: Path) -> dict[str, list[str]]:
    """testcase name -> messages and texts of its failures/errors (empty list: it passed or skipped)."""
    out: dict[str, list[str]] = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        msgs = out.setdefault(tc.get("name"), [])
        for bad in list(tc.findall("failure")) + list(tc.findall("error")):
            msgs.append((bad.get("message") or "") + "\n" + (bad.text or ""))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_suite_reports_the_cause(case: Case, tmp_path):
    lc = LocalClusterProcess(tmp_path / "cluster", case.serve_args)
    lc.start()
    try:
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        if case.faults and not case.after_snapshot:
            set_faults(cluster, case.faults)
        junit = tmp_path / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *case.select, f"--kubeconfig={lc.kubeconfig}",
               "--allow-destructive", "--ingress-address", lc.info["ingress_address"],
               "--rollout-timeout", str(case.rollout_timeout), "--grace=all=3", f"--reports-dir={tmp_path / 'reports'}",
               "--run-id", case.id, f"--junitxml={junit}", "-p", "no:cacheprovider", "-q"]
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if case.after_snapshot:
            snapshot = tmp_path / "reports" / case.id / "config-snapshot.json"
            deadline = time.monotonic() + 60
            while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            set_faults(cluster, case.faults)
        try:
            output = proc.communicate(timeout=600)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
            pytest.fail(f"the suite did not finish within 600 s:\n{output[-3000:]}")
        cluster.api_client.close()
    finally:
        lc.stop()
    assert proc.returncode != 0, f"the suite passed although {case.id} was injected:\n{output[-3000:]}"
    outcomes = junit_outcomes(junit)
    if case.failing_test == "*":
        messages = [m for ms in outcomes.values() for m in ms]
    else:
        assert case.failing_test in outcomes, f"{case.failing_test} did not run: {sorted(outcomes)}\n{output[-2000:]}"
        messages = outcomes[case.failing_test]
    assert messages, f"{case.failing_test} did not fail:\n{output[-3000:]}"
    text = "\n".join(messages)
    missing = [e for e in case.expect if e not in text]
    assert not missing, f"the failure does not name {missing}:\n{text[:4000]}"
