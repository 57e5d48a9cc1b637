"""Every pre-upgrade check made to pass, warn and fail through the real path: objects written as a
must-gather, served read-only by `python -m localcluster serve --must-gather DIR`, read by the
gatherer over HTTPS with the official client, judged. Also: writes are answered 405, files a partial
must-gather lacks are named, and reading makes no write request."""
from __future__ import annotations

import copy
import datetime
import json
import ssl
import urllib.request

import pytest
from kubernetes.client.exceptions import ApiException

from selftests.preupgrade import mustgather as mgw
from selftests.preupgrade import objects as o
from utilities.preupgrade.gather import CHECKS, run_check
from utilities.preupgrade.sources import unresolved

CFG = f"{mgw.CSR}/imageregistry.operator.openshift.io/configs/cluster.yaml"
CO = f"{mgw.CSR}/config.openshift.io/clusteroperators/image-registry.yaml"
NSR = mgw.NSR


def _set_cfg(mg, fn):
    cfg = copy.deepcopy(mg[CFG])
    fn(cfg)
    mg[CFG] = cfg


def warn_pvc():
    mg = mgw.healthy_pvc()

    def cfg(c):
        c["spec"]["replicas"] = 1
        c["spec"]["storage"]["managementState"] = "Managed"
        c["spec"]["proxy"] = {"https": "http://proxy.example:3128"}
        c["spec"]["unsupportedConfigOverrides"] = {"deployment": {"runtimeClassName": "x"}}
        c["metadata"]["generation"] = 4
    _set_cfg(mg, cfg)
    mg[CO] = o.clusteroperator(progressing=("True", "NodeCADaemonUnavailable::Ready"), version="4.17.9",
                               messages={"Progressing": "NodeCADaemonProgressing: The daemon set node-ca is "
                                                        "deploying node pods"})
    mg[f"{NSR}/core/persistentvolumeclaims.yaml"] = [o.pvc("registry-storage-pvc", size="50Gi",
                                                           cls="ocs-storagecluster-cephfs")]
    mg[f"{mgw.CSR}/core/persistentvolumes/pvc-1.yaml"] = o.pv(nfs={"server": "nfs.example", "path": "/registry"})
    mg[f"{NSR}/core/pods.yaml"] = [o.pod("image-registry-5d9-a", "worker-0"), o.pod("image-registry-5d9-b", "worker-0"),
                                   o.pod("image-registry-7f1-c", "worker-1", ready=False, waiting="ContainerCreating")]
    mg[f"{NSR}/core/events.yaml"] = [o.event("FailedMount", "Pod", "image-registry-7f1-c",
                                             'MountVolume.SetUp failed for volume "registry-storage"', count=3)]
    mg[f"{mgw.CSR}/imageregistry.operator.openshift.io/imagepruners/cluster.yaml"]["spec"]["suspend"] = True
    mg[f"{mgw.CSR}/config.openshift.io/images/cluster.yaml"] = {"metadata": {"name": "cluster"}, "status": {}}
    mg[f"{mgw.CSR}/config.openshift.io/images/cluster.yaml"]["status"]["externalRegistryHostnames"] = []
    mg[f"{NSR}/apps/daemonsets.yaml"] = [{"metadata": {"name": "node-ca"}, "status": {
        "desiredNumberScheduled": 6, "numberAvailable": 5, "updatedNumberScheduled": 6}}]
    return mg


def warn_unmanaged_emptydir():
    mg = mgw.healthy_pvc()

    def cfg(c):
        c["spec"].update(managementState="Unmanaged", replicas=1, storage={"emptyDir": {}}, defaultRoute=False)
        c["status"]["storage"] = {"emptyDir": {}}
    _set_cfg(mg, cfg)
    return mg


def warn_s3():
    mg = mgw.healthy_s3()
    _set_cfg(mg, lambda c: c["spec"]["storage"]["s3"].update(regionEndpoint=f"http://{mgw.RGW_HOST}"))
    mg["namespaces/openshift-config/core/configmaps.yaml"] = [
        o.configmap("image-registry-s3-bundle", {"ca-bundle.crt": o.cert_pem(300) + o.cert_pem(12, "old-ca")})]
    return mg


def fail_pvc():
    mg = mgw.healthy_pvc()
    stuck = ("Unable to apply resources: unable to sync storage configuration: cannot use ReadWriteOnce access mode "
             "with more than one replica of the image registry")
    _set_cfg(mg, lambda c: c["status"].update(conditions=[
        o.cond("Available", "True", "Ready", "The registry is ready"), o.cond("Progressing", "True", "Error", stuck),
        o.cond("Degraded", "False")]))
    mg[CO] = o.clusteroperator(degraded=("True", "Unavailable"), available=("False", "NoReplicasAvailable"),
                               messages={"Degraded": "Degraded: The deployment does not have available replicas"})
    mg[f"{NSR}/core/persistentvolumeclaims.yaml"] = [o.pvc("registry-storage-pvc", modes=("ReadWriteOnce",),
                                                           phase="Pending", cls="ocs-storagecluster-cephfs")]
    mg[f"{NSR}/core/pods.yaml"] = [o.pod("image-registry-5d9-a", "worker-0", ready=False, waiting="ContainerCreating")]
    mg[f"{NSR}/apps/deployments.yaml"] = [o.deployment(0)]
    mg[f"{NSR}/route.openshift.io/routes.yaml"] = []
    mg[f"{NSR}/apps/daemonsets.yaml"] = [{"metadata": {"name": "node-ca"}, "status": {
        "desiredNumberScheduled": 6, "numberAvailable": 0, "updatedNumberScheduled": 6}}]
    return mg


def fail_force():
    mg = mgw.healthy_pvc()
    _set_cfg(mg, lambda c: c["spec"].update(managementState="Force", replicas=-1,
                                            storage={"emptyDir": {}, "pvc": {"claim": ""}}))
    return mg


def fail_s3():
    mg = mgw.healthy_s3()
    mg[f"{NSR}/core/secrets.yaml"] = [o.secret({"REGISTRY_STORAGE_S3_ACCESSKEY": "20 bytes long"})]
    mg["namespaces/openshift-config/core/configmaps.yaml"] = [
        o.configmap("image-registry-s3-bundle", {"ca-bundle.crt": o.cert_pem(-3)})]
    mg["namespaces/openshift-storage/route.openshift.io/routes.yaml"] = [
        o.route("s3", mgw.RGW_HOST, admitted=False, namespace="openshift-storage")]
    return mg


def fail_drain():
    """What blocks or breaks an upgrade's node drains (issue 17): node-ca on no node, one replica on a
    ReadWriteOnce claim with RollingUpdate under a budget that allows no eviction, the operator Degraded."""
    mg = mgw.healthy_pvc()

    def cfg(c):
        c["spec"].update(replicas=1, rolloutStrategy="RollingUpdate")
        c["status"]["readyReplicas"] = 1
    _set_cfg(mg, cfg)
    mg[CO] = o.clusteroperator(available=("False", "NodeCADaemonNoAvailableReplicas::Ready"),
                               degraded=("True", "NodeCADaemonControllerError"),
                               messages={"Available": "NodeCADaemonAvailable: The daemon set node-ca does not have "
                                                      "available replicas"})
    mg[f"{NSR}/core/persistentvolumeclaims.yaml"] = [o.pvc("registry-storage-pvc", modes=("ReadWriteOnce",),
                                                           cls="ocs-storagecluster-cephfs")]
    mg[f"{NSR}/core/pods.yaml"] = [o.pod("image-registry-5d9-a", "worker-0")]
    mg[f"{NSR}/apps/deployments.yaml"] = [o.deployment(1)]
    mg[f"{NSR}/apps/daemonsets.yaml"] = [o.node_ca_daemonset(0)]
    mg[f"{NSR}/policy/poddisruptionbudgets.yaml"] = [o.pdb(1, status={
        "observedGeneration": 1, "currentHealthy": 1, "desiredHealthy": 1, "disruptionsAllowed": 0, "expectedPods": 1})]
    return mg


def fail_node_ca_without_nodes():
    """node-ca on no node, in a must-gather without the nodes: 0/0 still fails."""
    mg = mgw.healthy_pvc()
    mg[f"{NSR}/apps/daemonsets.yaml"] = [o.node_ca_daemonset(0)]
    for k in [k for k in mg if "/core/nodes/" in k]:
        del mg[k]
    return mg


def warn_node_ca_short():
    mg = mgw.healthy_pvc()
    mg[f"{NSR}/apps/daemonsets.yaml"] = [o.node_ca_daemonset(3)]
    mg[f"{NSR}/core/pods.yaml"] = mg[f"{NSR}/core/pods.yaml"] + [o.node_ca_pod(f"worker-{i}") for i in range(3)]
    return mg


def partial_pvc():
    mg = mgw.healthy_pvc()
    for k in [k for k in mg if "/storageclasses/" in k or "/persistentvolumes/" in k or "/proxies/" in k]:
        del mg[k]
    return mg


def partial_s3():
    mg = mgw.healthy_s3()
    del mg[f"{NSR}/core/secrets.yaml"]
    del mg["namespaces/openshift-config/core/configmaps.yaml"]
    return mg


HEALTHY_PVC = {c: "pass" for c in CHECKS} | {c: "skip" for c in ("s3-credentials", "s3-trusted-ca", "s3-endpoint")}
HEALTHY_S3 = {c: "pass" for c in CHECKS} | {c: "skip" for c in ("claim", "claim-access-mode", "claim-nfs")}
SCENARIOS = {
    "healthy-pvc": (mgw.healthy_pvc, HEALTHY_PVC),
    "healthy-s3": (mgw.healthy_s3, HEALTHY_S3),
    "warn-pvc": (warn_pvc, {c: "warn" for c in (
        "clusteroperator", "config-conditions", "claim", "claim-access-mode", "claim-nfs", "storage-management",
        "replicas-ready", "replicas-spread", "events", "pruner", "routes", "node-ca", "operator-version", "proxy",
        "overrides")}),
    "warn-unmanaged-emptydir": (warn_unmanaged_emptydir, {"management-state": "warn", "storage": "warn"}),
    "warn-s3": (warn_s3, {"s3-trusted-ca": "warn", "s3-endpoint": "warn", "s3-credentials": "pass"}),
    "fail-pvc": (fail_pvc, {c: "fail" for c in (
        "clusteroperator", "config-conditions", "claim", "claim-access-mode", "replicas-ready", "routes", "node-ca")}),
    "fail-force": (fail_force, {"management-state": "fail", "storage": "fail", "overrides": "fail"}),
    "fail-s3": (fail_s3, {"s3-credentials": "fail", "s3-trusted-ca": "fail", "s3-endpoint": "fail"}),
    "fail-drain": (fail_drain, {"node-ca": "fail", "pdb": "fail", "claim-access-mode": "fail",
                                "clusteroperator": "fail", "must-gather-age": "pass"}),
    "fail-node-ca-without-nodes": (fail_node_ca_without_nodes, {"node-ca": "fail", "pdb": "pass"}),
    "warn-node-ca-short": (warn_node_ca_short, {"node-ca": "warn"}),
    "partial-pvc": (partial_pvc, {"claim-nfs": "skip", "proxy": "skip", "claim": "pass"}),
    "partial-s3": (partial_s3, {"s3-credentials": "skip", "s3-trusted-ca": "skip", "s3-endpoint": "pass"}),
}
# What a partial must-gather's skips must name.
NAMED = {
    ("fail-drain", "node-ca"): ["no node", "0/0", "6 Linux node(s)"],
    ("fail-drain", "pdb"): ["PDB image-registry (minAvailable 1)", "0 disruption(s) allowed"],
    ("fail-drain", "claim-access-mode"): ["RollingUpdate", "Multi-Attach"],
    ("fail-drain", "clusteroperator"): ["Degraded=True"],
    ("fail-node-ca-without-nodes", "node-ca"): ["0/0"],
    ("warn-node-ca-short", "node-ca"): ["3 of the 6 Linux nodes", "master-0"],
    ("healthy-pvc", "must-gather-age"): ["its timestamp file", "2.0 h ago"],
    ("partial-pvc", "claim-nfs"): ["cluster-scoped-resources/core/persistentvolumes/pvc-1.yaml",
                                   "cluster-scoped-resources/storage.k8s.io/storageclasses/ocs-storagecluster-cephfs.yaml"],
    ("partial-pvc", "proxy"): ["cluster-scoped-resources/config.openshift.io/proxies/cluster.yaml"],
    ("partial-s3", "s3-credentials"): ["namespaces/openshift-image-registry/core/secrets.yaml"],
    ("partial-s3", "s3-trusted-ca"): ["namespaces/openshift-config/core/configmaps.yaml"],
}


def _requests(lc):
    kc = lc.kubeconfig.read_text()
    import yaml
    import base64
    k = yaml.safe_load(kc)
    ctx = ssl.create_default_context(cadata=base64.b64decode(k["clusters"][0]["cluster"]["certificate-authority-data"]).decode())
    req = urllib.request.Request(lc.info["api_url"] + "/localcluster/requests",
                                 headers={"Authorization": "Bearer " + k["users"][0]["user"]["token"]})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        return json.load(r)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_checks_on_a_served_must_gather(tmp_path, scenario):
    build, expected = SCENARIOS[scenario]
    root = mgw.write(tmp_path / "mg", build())
    with mgw.served(root, tmp_path / "lc") as (view, lc):
        got = {name: run_check(view, name) for name in CHECKS}
        counts = _requests(lc)
    wrong = {c: (got[c].verdict, got[c].reason) for c, want in expected.items() if got[c].verdict != want}
    assert not wrong, f"{scenario}: expected {expected}, wrong: {wrong}"
    for (sc, check), files in NAMED.items():
        if sc == scenario:
            for f in files:
                assert f in got[check].reason, (check, got[check].reason)
    writes = {v: n for v, n in counts["client"].items() if v not in ("get", "list", "watch")}
    assert not writes, f"the review made write requests: {writes}"
    nowhere = {c: (v.source, unresolved(v.source)) for c, v in got.items() if unresolved(v.source)}
    assert not nowhere, f"sources that are not a section of a document of the repository: {nowhere}"


def test_a_must_gather_without_timestamp_is_dated_by_its_newest_object(tmp_path):
    root = mgw.write(tmp_path / "mg", mgw.healthy_pvc(), timestamp=None)
    with mgw.served(root, tmp_path / "lc", age=datetime.timedelta(days=3)) as (view, _):
        v = run_check(view, "must-gather-age")
    assert v.verdict == "warn", v
    for needle in (f"taken {o.NOW:%Y-%m-%d %H:%M}Z", "newest time in its objects", "3 days ago", "older than 24 h"):
        assert needle in v.reason, (needle, v.reason)


def test_writes_are_answered_405_and_nothing_changes(tmp_path):
    root = mgw.write(tmp_path / "mg", mgw.healthy_pvc())
    with mgw.served(root, tmp_path / "lc") as (view, lc):
        api = view.cluster.custom
        with pytest.raises(ApiException) as e:
            api.patch_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster",
                                            {"spec": {"replicas": 5}})
        assert e.value.status == 405
        body = json.loads(e.value.body)
        assert (body["kind"], body["reason"]) == ("Status", "MethodNotAllowed")
        with pytest.raises(ApiException) as e:
            view.cluster.core.delete_namespaced_pod("image-registry-5d9-a", "openshift-image-registry")
        assert e.value.status == 405
        cfg = api.get_cluster_custom_object("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
        assert cfg["spec"]["replicas"] == 2
        assert len(view.list("v1", "pods", "openshift-image-registry")) == 2


def test_a_directory_that_is_not_a_must_gather_is_refused(tmp_path):
    from localcluster.mustgather import MustGatherError, image_dirs
    (tmp_path / "empty").mkdir()
    with pytest.raises(MustGatherError, match="not a must-gather"):
        image_dirs(tmp_path / "empty")
    with pytest.raises(MustGatherError, match="does not exist"):
        image_dirs(tmp_path / "nowhere")


def test_a_user_who_may_not_read_gets_cannot_tell(tmp_path):
    from utilities.kube import load_cluster
    from utilities.preupgrade.gather import ClusterView
    root = mgw.write(tmp_path / "mg", mgw.healthy_pvc())
    with mgw.served(root, tmp_path / "lc") as (_, lc):
        c = load_cluster(lc.kubeconfig, "nobody")
        v = run_check(ClusterView(c, offline=True), "storage")
        c.api_client.close()
    assert v.verdict == "skip" and "cannot tell" in v.reason and "cluster-admin" in v.reason, v
