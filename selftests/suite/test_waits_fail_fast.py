"""A wait whose target the cluster says it will not reach fails within its grace, naming the cause, not
at the rollout timeout (issue 16 item 6). Measured before: node-ca scheduled on no node kept every
ClusterOperator wait to its own timeout, 566 s for a run with --rollout-timeout 300 whose cause was
visible after 63 s.

The fault: `daemonset.fitNoNode` (localcluster/README.md) puts node-ca on no node; the ClusterOperator
then says Available=False/NodeCADaemonNoAvailableReplicas. test_back_to_removed_deletes_the_deployment
makes the registry Managed with emptyDir, removes it (neither needs node-ca) and waits for the
ClusterOperator to be Available=True/Removed: the wait that must fail fast.
"""
from __future__ import annotations

from selftests.faults.runner import junit_failures, set_knobs
from selftests.support import run_suite, served_cluster

ROLLOUT_TIMEOUT = 300
GRACE = 5
WITHIN = 90        # the grace, the test's own emptyDir rollout and removal, and slack for a loaded machine
TEST = "test_back_to_removed_deletes_the_deployment"


def test_node_ca_on_no_node_fails_the_clusteroperator_wait_within_its_grace(tmp_path):
    with served_cluster(tmp_path / "cluster") as (lc, cluster):
        set_knobs(cluster, {"daemonset.fitNoNode": "openshift-image-registry/node-ca"})
        run = run_suite(lc, ["tests/test_management_state.py", "-k", "back_to_removed"], tmp_path, "node-ca",
                        rollout_timeout=ROLLOUT_TIMEOUT, grace=f"all={GRACE}", timeout=WITHIN + 60,
                        fail_on_timeout=False)
    failures = junit_failures(run.junit)
    assert [f.test for f in failures] == [TEST], f"expected {TEST} alone to fail:\n{run.output[-3000:]}"
    failure = failures[0]
    for needle in ("ClusterOperator image-registry Available=True/Removed", "will not be reached",
                   "DaemonSet openshift-image-registry/node-ca: status.desiredNumberScheduled 0",
                   "NodeCADaemonNoAvailableReplicas", f"grace {GRACE} s"):
        assert needle in failure.message, f"{needle!r} not in:\n{failure.message[:3000]}"
    assert failure.seconds < WITHIN, (f"{TEST} took {failure.seconds:.0f} s, expected within {WITHIN} s "
                                      f"(grace {GRACE} s, rollout timeout {ROLLOUT_TIMEOUT} s)")
