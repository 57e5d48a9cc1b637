"""The suite against a misbehaving local cluster: the right test fails, and its message names the cause.

Each case starts the local cluster (`python -m localcluster serve`), sets fault knobs in the configmap
`localcluster-system/localcluster-faults` (or a serve flag), runs `pytest tests/...` in a subprocess
against it with --kubeconfig --allow-destructive, and reads the JUnit XML.
Needs the integrated local cluster (localcluster/cluster.py and __main__.py).
"""
from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from selftests.support import SuiteRun, run_suite
from utilities import kube
from utilities.junit import pytest_id
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess

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
        msgs = out.setdefault(pytest_id(tc), [])
        for bad in list(tc.findall("failure")) + list(tc.findall("error")):
            msgs.append((bad.get("message") or "") + "\n" + (bad.text or ""))
    return out


def assert_caught(run: SuiteRun, case_id: str, failing_test: str, expect: Sequence[str]) -> None:
    """The run with `case_id` injected failed, `failing_test` ("*": any test) failed in it, and its
    messages name every one of `expect`."""
    assert run.returncode != 0, f"the suite passed although {case_id} was injected:\n{run.output[-3000:]}"
    outcomes = junit_outcomes(run.junit)
    if failing_test == "*":
        messages = [m for ms in outcomes.values() for m in ms]
    else:
        assert failing_test in outcomes, f"{failing_test} did not run: {sorted(outcomes)}\n{run.output[-2000:]}"
        messages = outcomes[failing_test]
    assert messages, f"{failing_test} did not fail:\n{run.output[-3000:]}"
    text = "\n".join(messages)
    missing = [e for e in expect if e not in text]
    assert not missing, f"the failure does not name {missing}:\n{text[:4000]}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_suite_reports_the_cause(case: Case, tmp_path):
    lc = LocalClusterProcess(tmp_path / "cluster", case.serve_args)
    lc.start()
    try:
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        if case.faults and not case.after_snapshot:
            set_faults(cluster, case.faults)
        run = run_suite(lc, case.select, tmp_path, case.id, rollout_timeout=case.rollout_timeout,
                        after_snapshot=(lambda: set_faults(cluster, case.faults)) if case.after_snapshot else None)
        cluster.api_client.close()
    finally:
        lc.stop()
    assert_caught(run, case.id, case.failing_test, case.expect)
