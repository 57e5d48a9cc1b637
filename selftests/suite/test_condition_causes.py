"""Condition waits fail when the cluster says why their target will not come (issue 16 item 6 a, b):
a Degraded condition naming a cause, node-ca on no node; each only once it persisted for its grace,
and only where the wait's target excludes it."""
from __future__ import annotations

from utilities.condition_causes import ConditionJudge, daemonset_on_no_node

NORMAL = {"Available": ("True", None), "Progressing": ("False", None), "Degraded": ("False", None)}


def obj(*conds):
    return {"status": {"conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conds]}}


def judge(expected=None, node_ca=None, degraded=30.0, scheduling=120.0):
    return ConditionJudge("ClusterOperator image-registry", expected or NORMAL, degraded_grace=degraded,
                          scheduling_grace=scheduling, node_ca=node_ca)


CERTS = obj(("Available", "True", "Ready", "Available: The registry is ready"),
            ("Progressing", "False", "Ready", ""),
            ("Degraded", "True", "ImageRegistryCertificatesControllerError",
             "ImageRegistryCertificatesControllerDegraded: image-registry-certificates: failed to get trusted CA "
             "\"registry-conformance-s3-ca\": configmap \"registry-conformance-s3-ca\" not found"))


def test_degraded_naming_a_cause_fails_once_it_persisted_for_the_grace():
    j = judge()
    assert j.failure(CERTS, 100.0) is None
    assert j.failure(CERTS, 129.0) is None
    assert "ImageRegistryCertificatesControllerError" in j.describe_pending()
    assert "(for 29 s of its 30 s grace)" in j.describe_pending()
    cause = j.failure(CERTS, 130.0)
    assert cause is not None
    for needle in ("ClusterOperator image-registry Degraded=True/ImageRegistryCertificatesControllerError",
                   'failed to get trusted CA "registry-conformance-s3-ca"', "for 30 s", "grace 30 s"):
        assert needle in cause, cause


def test_a_cause_that_clears_starts_the_clock_again():
    j = judge()
    healthy = obj(("Available", "True", "Ready", ""), ("Progressing", "False", "Ready", ""),
                  ("Degraded", "False", "AsExpected", ""))
    j.failure(CERTS, 100.0)
    j.failure(healthy, 120.0)
    assert j.failure(CERTS, 140.0) is None
    assert j.failure(CERTS, 170.0) is not None


def test_degraded_that_only_restates_a_slow_rollout_is_no_cause():
    j = judge()
    slow = obj(("Available", "False", "NoReplicasAvailable", ""), ("Progressing", "True", "DeploymentNotCompleted", ""),
               ("Degraded", "True", "ProgressDeadlineExceeded::Unavailable", "Degraded: The deployment does not have "
                                                                           "available replicas"))
    assert j.failure(slow, 0.0) is None
    assert j.failure(slow, 10_000.0) is None


def test_a_wait_for_degraded_true_does_not_fail_because_degraded_is_true():
    want = {"Available": ("False", "StorageNotConfigured"), "Degraded": ("True", "StorageNotConfigured")}
    j = judge(want)
    coming = obj(("Available", "True", "Removed", ""), ("Degraded", "True", "StorageNotConfigured",
                                                        "Degraded: Error: storage backend not configured"))
    assert j.failure(coming, 0.0) is None
    assert j.failure(coming, 10_000.0) is None


def test_a_wait_for_degraded_true_fails_on_degraded_with_another_reason():
    j = judge({"Degraded": ("True", "StorageNotConfigured")})
    other = obj(("Degraded", "True", "RouteDegraded", "route default-route not admitted"))
    j.failure(other, 0.0)
    cause = j.failure(other, 30.0)
    assert cause and "Degraded=True/RouteDegraded" in cause, cause


def test_degraded_the_target_does_not_name_is_left_to_the_timeout():
    j = judge({"Progressing": ("False", None)})
    busy = obj(("Progressing", "True", "Error", "Unable to apply resources"),
               ("Degraded", "True", "RouteDegraded", "route default-route not admitted"))
    j.failure(busy, 0.0)
    assert j.failure(busy, 10_000.0) is None


def test_a_controller_degraded_condition_the_target_names():
    j = judge({"ImageRegistryCertificatesControllerDegraded": ("False", None)}, degraded=5.0)
    bad = obj(("ImageRegistryCertificatesControllerDegraded", "True", "Error", "image-registry-certificates: x"))
    j.failure(bad, 0.0)
    assert "ImageRegistryCertificatesControllerDegraded=True/Error" in (j.failure(bad, 5.0) or "")


NODE_CA_DOWN = obj(("Available", "False", "NodeCADaemonNoAvailableReplicas::Removed",
                    "Available: The registry is removed\nNodeCADaemonAvailable: The daemon set node-ca does not "
                    "have available replicas"),
                   ("Progressing", "False", "Removed", ""), ("Degraded", "False", "Removed", ""))


def test_node_ca_on_no_node_fails_after_the_scheduling_grace():
    reads = []

    def node_ca():
        reads.append(1)
        return "DaemonSet openshift-image-registry/node-ca: status.desiredNumberScheduled 0 while the cluster has 6 node(s)"
    j = judge({"Available": ("True", "Removed"), "Degraded": ("False", None)}, node_ca=node_ca, scheduling=5.0)
    assert j.failure(NODE_CA_DOWN, 0.0) is None
    cause = j.failure(NODE_CA_DOWN, 5.0)
    assert cause and "node-ca: status.desiredNumberScheduled 0" in cause and "NodeCADaemonNoAvailableReplicas" in cause
    assert "for 5 s, grace 5 s" in cause
    assert reads


def test_node_ca_is_not_read_when_the_condition_does_not_name_it():
    def node_ca():
        raise AssertionError("read although no condition names node-ca")
    j = judge({"Available": ("True", None)}, node_ca=node_ca)
    assert j.failure(obj(("Available", "False", "NoReplicasAvailable", "")), 0.0) is None


def test_node_ca_that_runs_is_no_cause():
    j = judge({"Available": ("True", "Removed")}, node_ca=lambda: None, scheduling=0.0)
    assert j.failure(NODE_CA_DOWN, 0.0) is None


def daemonset(desired, generation=1, observed=1, available=0):
    return {"metadata": {"name": "node-ca", "namespace": "openshift-image-registry", "generation": generation},
            "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "tolerations": [{"operator": "Exists"}]}}},
            "status": {"observedGeneration": observed, "desiredNumberScheduled": desired,
                       "numberAvailable": available}}


def test_daemonset_that_fits_no_node_while_nodes_exist():
    text = daemonset_on_no_node(daemonset(0), 6, [])
    assert text and "DaemonSet openshift-image-registry/node-ca: status.desiredNumberScheduled 0" in text
    assert "6 node(s)" in text and "kubernetes.io/os" in text
    assert daemonset_on_no_node(daemonset(0), 0, []) is None          # no node at all: nothing to fit
    assert daemonset_on_no_node(daemonset(0, generation=2), 6, []) is None   # not yet observed
    assert daemonset_on_no_node(daemonset(6, available=6), 6, []) is None


def test_daemonset_whose_pods_are_unschedulable():
    pod = {"metadata": {"name": "node-ca-abcde"}, "spec": {},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/6 nodes are available: 6 Insufficient cpu."}]}}
    text = daemonset_on_no_node(daemonset(6), 6, [pod])
    assert text and "1 of 6 pod(s) unschedulable" in text and "Insufficient cpu" in text
