"""Write a must-gather directory (the layout `oc adm must-gather` writes) from objects, and serve it
with `python -m localcluster serve --must-gather DIR`: the local cluster configured so."""
from __future__ import annotations

import contextlib
import copy
import datetime
from pathlib import Path

import yaml

from selftests.preupgrade import objects as o
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess
from utilities.preupgrade.gather import ClusterView, must_gather_time

CSR = "cluster-scoped-resources"
NSR = "namespaces/openshift-image-registry"
RGW_HOST = "s3-openshift-storage.apps.vsphere-local.example.test"
ROUTE_HOST = "default-route-openshift-image-registry.apps.vsphere-local.example.test"
NODES = ("master-0", "master-1", "master-2", "worker-0", "worker-1", "worker-2")


def healthy_pvc() -> dict:
    """A healthy registry on a RWX CephFS claim, 2 replicas, exposed: every check passes (or does not
    apply)."""
    cfg = o.config({"pvc": {"claim": "registry-storage-pvc"}, "managementState": "Unmanaged"}, replicas=2,
                   defaultRoute=True)
    return {
        f"{CSR}/imageregistry.operator.openshift.io/configs/cluster.yaml": cfg,
        f"{CSR}/imageregistry.operator.openshift.io/imagepruners/cluster.yaml": {
            "metadata": {"name": "cluster"}, "spec": {"suspend": False, "schedule": ""},
            "status": {"conditions": [o.cond("Available", "True", "AsExpected", "Pruner CronJob has been created"),
                                      o.cond("Failed", "False", "Complete", "Pruner completed successfully")]}},
        f"{CSR}/config.openshift.io/clusteroperators/image-registry.yaml": o.clusteroperator(),
        f"{CSR}/config.openshift.io/clusterversions/version.yaml": {
            "metadata": {"name": "version"},
            "status": {"desired": {"version": "4.18.12"}, "history": [{"state": "Completed", "version": "4.18.12"}],
                       "conditions": [o.cond("Available", "True"), o.cond("Progressing", "False"),
                                      o.cond("Failing", "False")]}},
        f"{CSR}/config.openshift.io/infrastructures/cluster.yaml": {
            "metadata": {"name": "cluster"},
            "status": {"infrastructureName": "vsphere-local-x7k2p", "platform": "VSphere",
                       "platformStatus": {"type": "VSphere"}}},
        f"{CSR}/config.openshift.io/proxies/cluster.yaml": {"metadata": {"name": "cluster"}, "spec": {}, "status": {}},
        f"{CSR}/config.openshift.io/images/cluster.yaml": {
            "metadata": {"name": "cluster"}, "status": {"externalRegistryHostnames": [ROUTE_HOST]}},
        f"{CSR}/storage.k8s.io/storageclasses/ocs-storagecluster-cephfs.yaml": o.storage_class(
            "ocs-storagecluster-cephfs", "openshift-storage.cephfs.csi.ceph.com"),
        f"{CSR}/core/persistentvolumes/pvc-1.yaml": o.pv(csi={"driver": "openshift-storage.cephfs.csi.ceph.com"}),
        f"{NSR}/openshift-image-registry.yaml": {"metadata": {"name": "openshift-image-registry"}},
        f"{NSR}/core/persistentvolumeclaims.yaml": [o.pvc("registry-storage-pvc", cls="ocs-storagecluster-cephfs")],
        f"{NSR}/core/pods.yaml": [o.pod("image-registry-5d9-a", "worker-0"), o.pod("image-registry-5d9-b", "worker-1")],
        f"{NSR}/core/events.yaml": [],
        f"{NSR}/core/secrets.yaml": [],
        f"{NSR}/core/configmaps.yaml": [],
        f"{NSR}/apps/deployments.yaml": [o.deployment(2)],
        f"{NSR}/apps/daemonsets.yaml": [o.node_ca_daemonset(6)],
        # The operator's budget for 2 replicas, as the disruption controller reports it (the AWS and
        # Azure must-gathers of ../shared/realdata hold the same).
        f"{NSR}/policy/poddisruptionbudgets.yaml": [o.pdb(1, status={
            "observedGeneration": 1, "currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1,
            "expectedPods": 2})],
        **{f"{CSR}/core/nodes/{n}.yaml": o.node(n, taints=n.startswith("master")) for n in NODES},
        f"{NSR}/route.openshift.io/routes.yaml": [o.route("default-route", ROUTE_HOST)],
        f"{NSR}/batch/cronjobs.yaml": [{"metadata": {"name": "image-pruner"}, "spec": {"suspend": False}}],
        f"{NSR}/batch/jobs.yaml": [],
        "namespaces/openshift-config/core/configmaps.yaml": [],
        "namespaces/openshift-storage/route.openshift.io/routes.yaml": [
            o.route("s3", RGW_HOST, namespace="openshift-storage")],
    }


def healthy_s3() -> dict:
    """The ODF RGW procedure: user bucket, keys in the user secret (as must-gather writes them: "N bytes
    long"), the route host as regionEndpoint, the ingress CA as trustedCA."""
    mg = healthy_pvc()
    cfg = o.config(o.s3(regionEndpoint=f"https://{RGW_HOST}", trustedCA={"name": "image-registry-s3-bundle"}),
                   replicas=2, defaultRoute=True)
    mg[f"{CSR}/imageregistry.operator.openshift.io/configs/cluster.yaml"] = cfg
    mg[f"{NSR}/core/secrets.yaml"] = [dict(o.secret({"REGISTRY_STORAGE_S3_ACCESSKEY": "20 bytes long",
                                                     "REGISTRY_STORAGE_S3_SECRETKEY": "40 bytes long"}),
                                           type="Opaque")]
    mg["namespaces/openshift-config/core/configmaps.yaml"] = [
        o.configmap("image-registry-s3-bundle", {"ca-bundle.crt": o.cert_pem(300, "ingress-operator@1")})]
    return mg


def write(root: Path, objects: dict, image_dir: str = "quay-io-openshift-release-dev-ocp-v4-0-art-dev-sha256-0",
          timestamp: datetime.datetime | None = o.NOW) -> Path:
    """Write `objects` ({relative path: object or list of objects}) as a must-gather under root, with
    a `timestamp` file of `timestamp` (None: none)."""
    base = Path(root) / image_dir
    for rel, obj in objects.items():
        if obj is None:
            continue
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {"apiVersion": "v1", "kind": "List", "items": copy.deepcopy(obj)} if isinstance(obj, list) else obj
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
    if timestamp is not None:
        (base / "timestamp").write_text(f"{timestamp - datetime.timedelta(minutes=2):%Y-%m-%d %H:%M:%S}.016988581 "
                                        f"+0000 UTC m=+0.380233555\n{timestamp:%Y-%m-%d %H:%M:%S}.000000001 +0000 "
                                        f"UTC m=+99.614184111\n")
    return Path(root)


@contextlib.contextmanager
def served(root: Path, workdir: Path, age: datetime.timedelta = datetime.timedelta(hours=2)):
    """`localcluster serve --must-gather root`; yields (ClusterView, LocalClusterProcess). The view
    measures the must-gather's age as if it were `age` old now."""
    lc = LocalClusterProcess(workdir, ["--must-gather", str(root)], start_timeout=60)
    lc.start()
    try:
        c = load_cluster(lc.kubeconfig)
        captured, basis = must_gather_time(lc.info.get("must_gather"))
        yield ClusterView(c, now=captured, offline=True, captured=(captured, basis),
                          clock=lambda: (captured or o.NOW) + age), lc
        c.api_client.close()
    finally:
        lc.stop()
