"""The pre-upgrade judges on objects: every check made to pass, warn and fail (where it can)."""
from __future__ import annotations

import datetime

import pytest

from selftests.preupgrade import objects as o
from utilities.preupgrade import judges as j
from utilities.preupgrade.verdicts import FAIL, PASS, SKIP, WARN, failed, passed, warned, worst

H = datetime.timedelta(hours=1)


def v(verdict, *words):
    """Assert helper: the verdict and that each word is in the reason."""
    def check(result):
        assert result.verdict == verdict, result
        for w in words:
            assert w in result.reason, (w, result.reason)
        return result
    return check


def test_worst_keeps_the_worst_findings():
    assert worst([passed("a"), warned("b"), failed("c"), failed("d")]).reason == "c; d"
    assert worst([], "fine").verdict == PASS
    assert worst([passed("note")], "fine").reason == "fine; note"


@pytest.mark.parametrize("reason,expected", [
    ("NodeCADaemonUnavailable::Ready", [("NodeCADaemon", "Unavailable"), ("registry", "Ready")]),
    ("ImagePrunerJobFailed::Ready", [("ImagePruner", "JobFailed"), ("registry", "Ready")]),
    ("ImageRegistryCertificatesControllerError", [("ImageRegistryCertificatesController", "Error")]),
    ("Removed", [("registry", "Removed")]),
])
def test_reason_unions_are_split_by_component(reason, expected):
    assert j.split_reason(reason) == expected


def test_clusteroperator():
    v(PASS, "Available=True")(j.clusteroperator(o.clusteroperator()))
    v(WARN, "NodeCADaemon: Unavailable", "registry: Ready")(j.clusteroperator(o.clusteroperator(
        progressing=("True", "NodeCADaemonUnavailable::Ready"))))
    v(FAIL, "ImagePruner: JobFailed")(j.clusteroperator(o.clusteroperator(
        degraded=("True", "ImagePrunerJobFailed"), messages={"Degraded": "ImagePrunerDegraded: Job has failed"})))
    v(FAIL, "does not exist")(j.clusteroperator(None))


def test_config_conditions():
    v(PASS)(j.config_conditions(o.config()))
    stuck = "Unable to apply resources: unable to sync storage configuration: cannot use ReadWriteOnce access " \
            "mode with RollingUpdate rollout strategy"
    v(FAIL, stuck)(j.config_conditions(o.config(conditions=[
        o.cond("Available", "True", "Ready"), o.cond("Progressing", "True", "Error", stuck)])))
    v(FAIL, "ImageRegistryCertificatesControllerDegraded=True")(j.config_conditions(o.config(conditions=[
        o.cond("Available", "True", "Ready"), o.cond("ImageRegistryCertificatesControllerDegraded", "True", "Error",
                                                      "image-registry-certificates: configmap not found")])))
    cfg = o.config()
    cfg["metadata"]["generation"] = 4
    v(WARN, "generation 4")(j.config_conditions(cfg))
    v(WARN, "Progressing=True")(j.config_conditions(o.config(conditions=[
        o.cond("Available", "True", "MinimumAvailability"), o.cond("Progressing", "True", "DeploymentNotCompleted")])))


def test_management_state():
    v(PASS)(j.management_state(o.config()))
    v(WARN, "bootstrap default on vSphere", "pushes, builds and image streams")(
        j.management_state(o.config(state="Removed"), "VSphere"))
    v(WARN, "will not upgrade")(j.management_state(o.config(state="Unmanaged")))
    v(FAIL, "Force")(j.management_state(o.config(state="Force")))


def test_storage():
    v(PASS, "pvc")(j.storage(o.config({"pvc": {"claim": "x"}})))
    v(WARN, "lost")(j.storage(o.config({"emptyDir": {}})))
    v(FAIL, "--production")(j.storage(o.config({"emptyDir": {}}), production=True))
    v(FAIL, "emptyDir with 2 replicas")(j.storage(o.config({"emptyDir": {}}, replicas=2)))
    v(FAIL, "storage backend not configured")(j.storage(o.config({})))
    v(FAIL, "2 storage types", "emptyDir, pvc")(j.storage(o.config({"emptyDir": {}, "pvc": {"claim": ""}})))
    v(PASS, "Removed")(j.storage(o.config({}, state="Removed")))
    cfg = o.config({"pvc": {"claim": "x"}})
    cfg["status"]["storage"] = {"emptyDir": {}}
    v(WARN, "still runs emptyDir")(j.storage(cfg))


def test_claim():
    cfg = o.config({"pvc": {"claim": ""}})
    v(PASS, "Bound", "100Gi")(j.claim(cfg, o.pvc(), o.storage_class()))
    v(WARN, "10Gi", "100Gi")(j.claim(cfg, o.pvc(size="10Gi"), o.storage_class()))
    v(WARN, "does not exist")(j.claim(cfg, o.pvc(), None))
    v(FAIL, "Pending")(j.claim(cfg, o.pvc(phase="Pending"), o.storage_class()))
    v(FAIL, "not found")(j.claim(cfg, None))
    v(PASS, "not checked")(j.claim(cfg, o.pvc(), None, class_missing_file="cluster-scoped-resources/x"))
    v(SKIP)(j.claim(o.config(), None))


def test_claim_access_mode():
    rwo = o.pvc(modes=("ReadWriteOnce",))
    v(PASS, "Recreate")(j.claim_access(o.config({"pvc": {"claim": "c"}}, strategy="Recreate"), rwo))
    v(FAIL, "more than one replica")(j.claim_access(o.config({"pvc": {"claim": "c"}}, replicas=2,
                                                             strategy="Recreate"), rwo))
    v(FAIL, "Multi-Attach", "RollingUpdate")(j.claim_access(o.config({"pvc": {"claim": "c"}}), rwo))
    v(WARN, "not highly available")(j.claim_access(o.config({"pvc": {"claim": "c"}}), o.pvc()))
    v(PASS)(j.claim_access(o.config({"pvc": {"claim": "c"}}, replicas=2), o.pvc()))
    v(FAIL, "necessary access modes")(j.claim_access(o.config({"pvc": {"claim": "c"}}),
                                                     o.pvc(modes=("ReadOnlyMany",))))


def test_claim_nfs():
    cfg = o.config({"pvc": {"claim": "c"}})
    v(PASS, "csi.vsphere.vmware.com")(j.claim_nfs(cfg, o.pvc(), o.pv(csi={"driver": "csi.vsphere.vmware.com"}),
                                                 o.storage_class()))
    v(WARN, "nfs.example:/exports/registry", "RHEL NFS")(j.claim_nfs(
        cfg, o.pvc(), o.pv(nfs={"server": "nfs.example", "path": "/exports/registry"}), None))
    v(WARN, "nfs.csi.k8s.io")(j.claim_nfs(cfg, o.pvc(), o.pv(csi={"driver": "nfs.csi.k8s.io"}), None))
    v(WARN, "nfs-subdir")(j.claim_nfs(cfg, o.pvc(), None,
                                      o.storage_class("managed-nfs", "k8s-sigs.io/nfs-subdir-external-provisioner")))
    v(SKIP, "persistentvolumes")(j.claim_nfs(cfg, o.pvc(), None, None,
                                             ["cluster-scoped-resources/core/persistentvolumes/pvc-1.yaml"]))


def test_storage_management():
    user = o.config({"pvc": {"claim": "registry-pvc"}, "managementState": "Managed"})
    v(WARN, "deletes the claim")(j.storage_management(user, o.pvc("registry-pvc")))
    v(PASS, "operator's own")(j.storage_management(user, o.pvc("registry-pvc", annotations={
        "imageregistry.openshift.io": "true"})))
    v(PASS, "Unmanaged")(j.storage_management(o.config({"pvc": {"claim": "x"}, "managementState": "Unmanaged"})))
    bucket = o.config({"s3": {"bucket": "my-bucket"}, "managementState": "Managed"})
    v(WARN, "empties and deletes")(j.storage_management(bucket, None, "infra-x7k2p"))
    v(PASS)(j.storage_management(o.config({"s3": {"bucket": "infra-x7k2p-image-registry-us-east-1-abc"},
                                           "managementState": "Managed"}), None, "infra-x7k2p"))


def test_s3_credentials():
    cfg = o.config(o.s3())
    both = {"REGISTRY_STORAGE_S3_ACCESSKEY": "QUtJQQ==", "REGISTRY_STORAGE_S3_SECRETKEY": "c2VjcmV0"}
    v(PASS, "both keys")(j.s3_credentials(cfg, o.secret(both)))
    v(PASS, "cannot be told")(j.s3_credentials(cfg, o.secret({"REGISTRY_STORAGE_S3_ACCESSKEY": "20 bytes long",
                                                             "REGISTRY_STORAGE_S3_SECRETKEY": "40 bytes long"})))
    v(FAIL, "REGISTRY_STORAGE_S3_SECRETKEY")(j.s3_credentials(cfg, o.secret(
        {"REGISTRY_STORAGE_S3_ACCESSKEY": "QUtJQQ=="})))
    v(FAIL, "neither")(j.s3_credentials(cfg, None, None))
    v(PASS, "minted")(j.s3_credentials(cfg, None, {"metadata": {"name": "installer-cloud-credentials"}}))
    r = j.s3_credentials(cfg, o.secret({"REGISTRY_STORAGE_S3_ACCESSKEY": "QUtJQQ==", "REGISTRY_STORAGE_S3_SECRETKEY": ""}))
    v(FAIL, "empty")(r)
    assert "c2VjcmV0" not in str(j.s3_credentials(cfg, o.secret(both)))


def test_s3_trusted_ca():
    cfg = o.config(o.s3(trustedCA={"name": "s3-ca"}))
    v(PASS, "1 certificate")(j.s3_trusted_ca(cfg, o.configmap("s3-ca", {"ca-bundle.crt": o.cert_pem(400)}), o.NOW))
    v(WARN, "in 10 days")(j.s3_trusted_ca(cfg, o.configmap("s3-ca", {"ca-bundle.crt": o.cert_pem(400) + o.cert_pem(10)}),
                                          o.NOW))
    v(FAIL, "expired")(j.s3_trusted_ca(cfg, o.configmap("s3-ca", {"ca-bundle.crt": o.cert_pem(-1)}), o.NOW))
    v(FAIL, "does not exist")(j.s3_trusted_ca(cfg, None, o.NOW))
    v(FAIL, "ca-bundle.crt")(j.s3_trusted_ca(cfg, o.configmap("s3-ca", {"ca.crt": "x"}), o.NOW))
    v(FAIL, "does not parse")(j.s3_trusted_ca(cfg, o.configmap("s3-ca", {
        "ca-bundle.crt": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"}), o.NOW))


def test_s3_endpoint():
    host = "s3-openshift-storage.apps.example.test"
    cfg = o.config(o.s3(regionEndpoint=f"https://{host}"))
    v(PASS, "route openshift-storage/s3")(j.s3_endpoint(cfg, [o.route("s3", host, namespace="openshift-storage")]))
    v(FAIL, "not admitted")(j.s3_endpoint(cfg, [o.route("s3", host, admitted=False, namespace="openshift-storage")]))
    v(FAIL, "does not resolve")(j.s3_endpoint(cfg, [], resolves=lambda h: False))
    v(PASS, "resolves")(j.s3_endpoint(cfg, [], resolves=lambda h: True))
    v(SKIP, "offline")(j.s3_endpoint(cfg, [], offline=True))
    v(WARN, "plain HTTP")(j.s3_endpoint(o.config(o.s3(regionEndpoint=f"http://{host}")),
                                        [o.route("s3", host, namespace="openshift-storage")]))
    v(FAIL, "scheme")(j.s3_endpoint(o.config(o.s3(regionEndpoint=host)), []))


def test_replicas_ready():
    cfg = o.config(replicas=2)
    pods = [o.pod("image-registry-a", "worker-0"), o.pod("image-registry-b", "worker-1")]
    v(PASS, "ready pods 2/2")(j.replicas_ready(cfg, o.deployment(2), pods))
    v(WARN, "fewer")(j.replicas_ready(cfg, o.deployment(1), pods[:1] + [o.pod("image-registry-b", "worker-1", False)]))
    v(FAIL, "no registry pod is ready", "ContainerCreating")(j.replicas_ready(
        cfg, o.deployment(0), [o.pod("image-registry-a", "worker-0", False, waiting="ContainerCreating")]))
    v(FAIL, "does not exist")(j.replicas_ready(cfg, None, []))
    v(WARN, "more registry pods")(j.replicas_ready(o.config(replicas=1), o.deployment(1), pods))


def test_replicas_spread():
    cfg = o.config(replicas=2)
    v(PASS, "2 nodes")(j.replicas_spread(cfg, [o.pod("a", "worker-0"), o.pod("b", "worker-1")]))
    v(WARN, "node worker-0")(j.replicas_spread(cfg, [o.pod("a", "worker-0"), o.pod("b", "worker-0")]))


def test_events():
    pods = [o.pod("image-registry-a", "worker-0", ready=False)]
    evs = [o.event("FailedAttachVolume", "Pod", "image-registry-a",
                   'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) image-registry-b', count=4),
           o.event("FailedAttachVolume", "Pod", "image-registry-a", "older", o.NOW - 0.5 * H, count=2)]
    v(WARN, "FailedAttachVolume x6", "Multi-Attach")(j.events(evs, pods, [], o.NOW))
    v(PASS, "earlier warning")(j.events(evs, [o.pod("image-registry-a", "worker-0")], [], o.NOW))
    v(PASS, "no unresolved")(j.events([o.event("FailedMount", "Pod", "image-registry-a", "x", o.NOW - 3 * H)],
                                      pods, [], o.NOW))
    v(WARN, "ProvisioningFailed")(j.events([o.event("ProvisioningFailed", "PersistentVolumeClaim", "c", "failed")],
                                           [], [o.pvc("c", phase="Pending")], o.NOW))


def test_pruner():
    pr = {"spec": {"suspend": False, "schedule": ""}, "status": {"conditions": [o.cond("Failed", "False", "Complete")]}}
    v(PASS)(j.pruner(pr))
    v(WARN, "suspended")(j.pruner({"spec": {"suspend": True}}))
    v(WARN, "last job failed")(j.pruner({"spec": {}, "status": {"conditions": [o.cond("Failed", "True", "Failed")]}}))
    v(WARN, "image-pruner-1")(j.pruner(pr, None, [{"metadata": {"name": "image-pruner-1"},
                                                   "status": {"failed": 1, "startTime": o.iso(o.NOW)}}]))


def test_routes():
    cfg = o.config(defaultRoute=True)
    host = "default-route-openshift-image-registry.apps.example.test"
    v(PASS, host)(j.routes(cfg, [o.route("default-route", host)]))
    v(FAIL, "does not exist")(j.routes(cfg, []))
    v(FAIL, "not admitted")(j.routes(cfg, [o.route("default-route", host, admitted=False)]))
    v(WARN, "externalRegistryHostnames")(j.routes(cfg, [o.route("default-route", host)],
                                                  {"status": {"externalRegistryHostnames": []}}))
    v(PASS, "not exposed")(j.routes(o.config(), []))


def test_node_ca():
    ds = lambda want, avail: {"status": {"desiredNumberScheduled": want, "numberAvailable": avail,  # noqa: E731
                                         "updatedNumberScheduled": want}}
    v(PASS)(j.node_ca(ds(6, 6)))
    v(WARN, "5/6")(j.node_ca(ds(6, 5)))
    v(FAIL, "0/6")(j.node_ca(ds(6, 0)))
    # Scheduled on no node: 0/0 looks complete and is the worst case (issue 17).
    v(FAIL, "no node", "0/0")(j.node_ca(ds(0, 0)))
    nodes = [o.node(f"worker-{i}") for i in range(3)] + [o.node("master-0", taints=True), o.node("win-0", os="windows")]
    v(FAIL, "4 Linux node(s)", "worker-0")(j.node_ca(ds(0, 0), nodes))
    # Fewer than the Linux nodes (tainted and cordoned ones count: node-ca tolerates every taint).
    pods = [o.node_ca_pod(f"worker-{i}") for i in range(3)]
    v(WARN, "3 of the 4 Linux nodes", "master-0")(j.node_ca(ds(3, 3), nodes, pods))
    v(PASS, "4/4 available of 4 Linux node(s)")(j.node_ca(ds(4, 4), nodes, pods + [o.node_ca_pod("master-0")]))
    v(PASS, "nodes not checked", "core/nodes")(j.node_ca(ds(6, 6), None, None, "cluster-scoped-resources/core/nodes/"))


def test_pdb():
    managed = lambda n: o.config(replicas=n)  # noqa: E731
    two = [o.pod("image-registry-a", "worker-0"), o.pod("image-registry-b", "worker-1")]
    one = two[:1]
    # The operator's own budgets: minAvailable 1 for 2 replicas, 0 for one: a drain can proceed.
    v(PASS, "1 disruption(s) allowed")(j.pdb(managed(2), [o.pdb(1)], two))
    v(PASS, "1 disruption(s) allowed")(j.pdb(managed(1), [o.pdb(0)], one))
    # 1 replica, minAvailable 1: the drain of its node hangs.
    v(FAIL, "minAvailable 1", "0 disruption(s) allowed", "Cannot evict")(j.pdb(managed(1), [o.pdb(1)], one))
    # 2 replicas, one not ready: the ready one cannot be evicted.
    sick = [two[0], o.pod("image-registry-b", "worker-1", ready=False, waiting="CrashLoopBackOff")]
    v(FAIL, "1 healthy of 2", "0 disruption(s)")(j.pdb(managed(2), [o.pdb(1)], sick))
    # No ready pod under minAvailable 1: the not-ready ones cannot be evicted (IfHealthyBudget) ...
    down = [o.pod("image-registry-a", "worker-0", ready=False, waiting="ContainerCreating")]
    v(FAIL, "not-ready", "IfHealthyBudget")(j.pdb(managed(1), [o.pdb(1)], down))
    # ... unless the budget says AlwaysAllow (CIRO master).
    v(PASS)(j.pdb(managed(1), [o.pdb(1, unhealthyPodEvictionPolicy="AlwaysAllow")], down))
    # maxUnavailable 0 and 100% blocks whatever the replicas; a user's extra PDB counts too.
    v(FAIL, "maxUnavailable 0")(j.pdb(managed(2), [o.pdb(1), o.pdb(None, name="mine", maxUnavailable=0)], two))
    v(FAIL, "minAvailable 100%")(j.pdb(managed(2), [o.pdb("100%", name="mine")], two))
    v(PASS)(j.pdb(managed(2), [o.pdb("50%", name="mine")], two))
    # A PDB selecting other pods does not matter; none over 2 replicas warns.
    v(WARN, "no PodDisruptionBudget")(j.pdb(managed(2), [o.pdb(1, selector={"matchLabels": {"app": "x"}})], two))
    # The disruption controller's status wins when it observed the generation (as in real must-gathers).
    stale = o.pdb(1, status={"observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 1,
                             "disruptionsAllowed": 0, "expectedPods": 1})
    v(FAIL, "0 disruption(s)")(j.pdb(managed(2), [stale], two))
    assert j.pdb(o.config(state="Removed"), [], []).verdict == SKIP
    # Unmanaged: the pods still run and the budget still binds the drain (the operator no longer fixes it).
    v(FAIL, "0 disruption(s)")(j.pdb(o.config(state="Unmanaged"), [o.pdb(1)], one))


def test_must_gather_age():
    taken = o.NOW - 3 * H
    v(PASS, "3.0 h ago", "timestamp file")(j.must_gather_age(taken, "its timestamp file", o.NOW, 24))
    v(WARN, "older than 24 h", "oc adm must-gather")(j.must_gather_age(o.NOW - 30 * H, "x", o.NOW, 24))
    v(WARN, "1826 days ago")(j.must_gather_age(o.NOW - datetime.timedelta(days=1826), "x", o.NOW, 24))
    v(PASS)(j.must_gather_age(o.NOW - 30 * H, "x", o.NOW, 48))
    v(WARN, "cannot be told")(j.must_gather_age(None, "", o.NOW, 24))
    assert j.must_gather_age(None, "", o.NOW, 24, offline=False).verdict == SKIP


def test_operator_version():
    cv = {"status": {"desired": {"version": "4.18.12"}, "history": [{"state": "Completed", "version": "4.18.12"}],
                     "conditions": []}}
    v(PASS)(j.operator_version(o.clusteroperator(version="4.18.12"), cv))
    v(WARN, "4.17.3")(j.operator_version(o.clusteroperator(version="4.17.3"), cv))
    cv2 = {"status": {"desired": {"version": "4.19.1"}, "history": [{"state": "Partial"}],
                      "conditions": [o.cond("Progressing", "True", "", "Working towards 4.19.1")]}}
    v(WARN, "already in progress")(j.operator_version(o.clusteroperator(version="4.18.12"), cv2))


def test_proxy():
    v(PASS, "no proxy")(j.proxy(o.config(), {"status": {}}))
    cp = {"status": {"httpsProxy": "http://proxy:3128", "noProxy": ".cluster.local,.svc"}}
    v(WARN, "not in noProxy")(j.proxy(o.config(o.s3(regionEndpoint="https://s3.apps.example.test")), cp))
    v(PASS, "proxy")(j.proxy(o.config(o.s3(regionEndpoint="https://s3.openshift-storage.svc")), cp))
    v(WARN, "own proxy settings")(j.proxy(o.config(proxy={"https": "http://other:3128"}), cp))


def test_overrides():
    v(PASS)(j.overrides(o.config()))
    v(WARN, "unsupportedConfigOverrides")(j.overrides(o.config(unsupportedConfigOverrides={"deployment": {}})))
    v(FAIL, "-1")(j.overrides(o.config(replicas=-1)))


def test_quantities():
    assert j.quantity_bytes("100Gi") == 100 * 1024 ** 3
    assert j.quantity_bytes("107374182400") == 100 * 1024 ** 3
    assert j.quantity_bytes("1G") == 1e9
    assert j.quantity_bytes("bad") is None
