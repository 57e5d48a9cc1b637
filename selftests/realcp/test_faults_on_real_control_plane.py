"""Faults with real mechanisms (issue 8, item 5): the fault cases of selftests/suite/test_suite_against_faults.py
on the real control plane, where kube-scheduler and kube-controller-manager play their part. The
knobs become what a real cluster would do (localcluster/realcp/faults.py: cordoned nodes, a pod quota)
or act on the project's own node-side components (the kubelet, the provisioner, the registry pods);
the same test must fail, and its message must name the same cause, on both control planes.

Skips where the real control plane cannot run (../shared/bin, etcd, root).
"""
from __future__ import annotations

import pytest

from localcluster.realcp import binaries
from selftests.suite.test_suite_against_faults import CASES, assert_caught, set_faults
from selftests.support import run_suite
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess

WHY = binaries.missing_reason()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=str(WHY)), pytest.mark.timeout(900)]

# The cases whose knob has a counterpart on the real control plane (operator.* is the emulation's own).
REAL_CASES = [c for c in CASES if c.id in ("scheduler.unschedulable", "deployment.stallRollout",
                                           "kubelet.neverReady", "provisioner.fail", "registry.dropImages")]


# Where the real mechanism is another, the message names its cause: the pod quota refuses the ReplicaSet's
# creates (FailedCreate), so the rollout fails naming it rather than timing out at updatedReplicas=0.
REAL_EXPECT = {"deployment.stallRollout": ("registry rollout cannot succeed", "FailedCreate", "exceeded quota")}


@pytest.mark.parametrize("case", REAL_CASES, ids=[c.id for c in REAL_CASES])
def test_suite_reports_the_cause_on_the_real_control_plane(case, tmp_path):
    with LocalClusterProcess(tmp_path / "cluster", ["--control-plane=real", *case.serve_args],
                             start_timeout=300) as lc:
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        set_faults(cluster, case.faults)
        run = run_suite(lc, case.select, tmp_path, case.id, rollout_timeout=max(case.rollout_timeout, 60),
                        timeout=700)
        cluster.api_client.close()
    assert_caught(run, case.id, case.failing_test, REAL_EXPECT.get(case.id, case.expect))
