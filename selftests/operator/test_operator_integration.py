"""Integration tests: the operator against a real API server (HTTPS, in a thread with its own event
loop), seeded with an Infrastructure (platform VSphere) and the namespace `openshift-image-registry`.
No other controllers run: the tests check the operator's outputs and play the Deployment controller
by writing `status` themselves where needed."""
import asyncio
import json
import threading
import time

import pytest

from localcluster import settings as S
from localcluster.apiserver import APIServer, default_users
from localcluster.client import ApiError, KubeClient, path
from localcluster.controllers.operator import ImageRegistryOperator
from localcluster.pki import CertificateAuthority
from selftests.support import wait_until

NS = "openshift-image-registry"
CONFIG = path("imageregistry.operator.openshift.io/v1", "configs", None, "cluster")
CO = path("config.openshift.io/v1", "clusteroperators", None, "image-registry")
DEPLOY = path("apps/v1", "deployments", NS, "image-registry")
PVC_COLL = path("v1", "persistentvolumeclaims", NS)
FAULTS = path("v1", "configmaps", S.FAULTS_NAMESPACE, S.FAULTS_CONFIGMAP)


class CountingClient(KubeClient):
    """The real client, counting the writes the operator sends (a no-op write leaves the
    resourceVersion alone, so only counting shows a write loop)."""

    writes = 0

    async def create(self, p, body):
        self.writes += 1
        return await super().create(p, body)

    async def replace(self, p, body):
        self.writes += 1
        return await super().replace(p, body)

    async def patch(self, p, body, patch_type="merge"):
        self.writes += 1
        return await super().patch(p, body, patch_type)


class Cluster:
    """The API server and the operator in a background event loop; `call(coro)` runs a coroutine there."""

    def __init__(self, tmp_path):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.settings = S.Settings(state_dir=tmp_path, degraded_grace_seconds=1.0, resync_seconds=30.0)
        self.call(self._start(), timeout=30)

    def call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        ca = CertificateAuthority.create("test-apiserver-ca")
        cert, key = ca.issue("kube-apiserver", ip_addresses=["127.0.0.1"])
        users = default_users()
        self.api = APIServer(self.settings, cert, key, users)
        await self.api.start()
        token = users[0].token
        self.client = KubeClient(self.api.url, token, ca.cert_pem)
        self.op_client = CountingClient(self.api.url, token, ca.cert_pem)
        c = self.client
        for ns in (NS, S.FAULTS_NAMESPACE):
            await c.create(path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": ns}})
        await c.create(path("config.openshift.io/v1", "infrastructures"), {
            "apiVersion": "config.openshift.io/v1", "kind": "Infrastructure", "metadata": {"name": "cluster"},
            "spec": {"platformSpec": {"type": "VSphere"}}})
        await c.patch(path("config.openshift.io/v1", "infrastructures", None, "cluster", "status"),
                      {"status": {"platform": "VSphere", "platformStatus": {"type": "VSphere"},
                                  "infrastructureTopology": "HighlyAvailable",
                                  "infrastructureName": S.INFRA_NAME}})
        await c.create(path("config.openshift.io/v1", "images"), {
            "apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"}, "spec": {}})
        await c.create(path("v1", "configmaps", S.FAULTS_NAMESPACE), {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": S.FAULTS_CONFIGMAP, "namespace": S.FAULTS_NAMESPACE}, "data": {}})
        self.operator = ImageRegistryOperator(self.op_client, self.settings)
        self.task = asyncio.get_running_loop().create_task(self.operator.run())

    async def _stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.op_client.close()
        await self.client.close()
        await self.api.stop()

    def stop(self):
        try:
            self.call(self._stop(), timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    # --- conveniences -----------------------------------------------------------------------------
    def get(self, p):
        try:
            return self.call(self.client.get(p))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def patch(self, p, body):
        return self.call(self.client.patch(p, body))

    def wait(self, fn, timeout=10.0, what="condition"):
        return wait_until(fn, timeout=timeout, what=what)

    def assert_quiet(self, watched=(CONFIG, CO)):
        """No hot loop: nothing is rewritten over 1.5 s, nor by a sync that has nothing to change."""
        time.sleep(0.3)
        rvs = [self.get(p)["metadata"]["resourceVersion"] for p in watched]
        writes = self.op_client.writes
        time.sleep(1.5)
        assert [self.get(p)["metadata"]["resourceVersion"] for p in watched] == rvs
        assert self.op_client.writes == writes
        syncs = self.operator.sync_count
        self.patch(FAULTS, {"data": {"unrelated.key": str(time.time())}})   # wakes the operator up
        self.wait(lambda: self.operator.sync_count > syncs, what="a sync")
        time.sleep(0.3)
        assert self.op_client.writes == writes, "a sync with nothing to change wrote something"

    def conditions(self, p=CONFIG):
        obj = self.get(p) or {}
        return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
                for c in (obj.get("status") or {}).get("conditions") or []}

    def wait_condition(self, type_, expected, p=CONFIG, timeout=10.0):
        """expected: a tuple prefix of (status, reason, message)."""
        return self.wait(lambda: self.conditions(p).get(type_, ())[:len(expected)] == tuple(expected),
                         timeout, f"{type_} == {expected} (have {self.conditions(p).get(type_)})")


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def _manage(cluster, storage, **spec):
    cluster.wait(lambda: cluster.get(CONFIG), what="bootstrap")
    cluster.patch(CONFIG, {"spec": dict(spec, managementState="Managed", storage=storage)})


def _complete_deployment(cluster, ready=None):
    """Play the Deployment controller: a finished rollout."""
    d = cluster.get(DEPLOY)
    n = d["spec"]["replicas"] if ready is None else ready
    cluster.patch(path("apps/v1", "deployments", NS, "image-registry", "status"), {"status": {
        "observedGeneration": d["metadata"]["generation"], "replicas": n, "updatedReplicas": n,
        "readyReplicas": n, "availableReplicas": n,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                       {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                        "message": 'ReplicaSet "image-registry-x" has successfully progressed.'}]}})


def _node_ca_ready(cluster):
    """Play the DaemonSet controller: node-ca runs on every node."""
    ds = cluster.wait(lambda: cluster.get(path("apps/v1", "daemonsets", NS, "node-ca")), what="node-ca")
    cluster.patch(path("apps/v1", "daemonsets", NS, "node-ca", "status"), {"status": {
        "observedGeneration": ds["metadata"]["generation"], "desiredNumberScheduled": 6,
        "currentNumberScheduled": 6, "updatedNumberScheduled": 6, "numberReady": 6, "numberAvailable": 6,
        "numberUnavailable": 0}})


def test_bootstrap_vsphere(cluster):
    cfg = cluster.wait(lambda: cluster.get(CONFIG), what="bootstrap")
    cluster.wait_condition("NodeCADaemonAvailable", ("False", "NoAvailableReplicas"))
    assert cluster.conditions(CO)["Available"][:2] == ("False", "NodeCADaemonNoAvailableReplicas::Removed")
    _node_ca_ready(cluster)
    cluster.wait_condition("NodeCADaemonAvailable", ("True", "AsExpected"))
    assert cfg["metadata"]["finalizers"] == ["imageregistry.operator.openshift.io/finalizer"]
    spec = cfg["spec"]
    assert (spec["managementState"], spec["replicas"], spec["rolloutStrategy"], spec["storage"]) == \
        ("Removed", 1, "RollingUpdate", {})
    assert spec["logLevel"] == "Normal" and spec["operatorLogLevel"] == "Normal"
    cluster.wait_condition("Available", ("True", "Removed"))
    c = cluster.conditions()
    assert c["Progressing"][:2] == ("False", "Removed") and c["Degraded"][:2] == ("False", "Removed")
    assert c["Removed"][:2] == ("True", "Removed")
    cluster.wait_condition("Available", ("True", "Removed"), p=CO)
    co = cluster.get(CO)
    co_c = cluster.conditions(CO)
    assert co_c["Available"][2].startswith("Available: The registry is removed\nNodeCADaemonAvailable: ")
    assert co_c["Progressing"][:2] == ("False", "Removed") and co_c["Degraded"][0] == "False"
    assert {"group": "", "resource": "namespaces", "name": NS} in co["status"]["relatedObjects"]
    assert co["status"]["versions"] == [{"name": "operator", "version": S.OPENSHIFT_VERSION}]
    assert cluster.get(path("apps/v1", "daemonsets", NS, "node-ca")) is not None
    assert cluster.get(DEPLOY) is None
    # No hot loop: nothing is written while nothing changes.
    cluster.assert_quiet()


def test_managed_without_storage(cluster):
    _manage(cluster, {})
    cluster.wait_condition("Available", ("False", "StorageNotConfigured", "Error: storage backend not configured"))
    c = cluster.conditions()
    assert c["Progressing"] == ("False", "Error", "Unable to apply resources: storage backend not configured")
    assert c["Degraded"] == ("True", "StorageNotConfigured", "Error: storage backend not configured")
    cluster.wait_condition("Degraded", ("True", "StorageNotConfigured", "Degraded: Error: storage backend not configured"), p=CO)
    assert cluster.get(DEPLOY) is None
    assert cluster.get(CONFIG)["status"]["observedGeneration"] == cluster.get(CONFIG)["metadata"]["generation"]


def test_empty_dir_deployment(cluster):
    _manage(cluster, {"emptyDir": {}})
    dep = cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    # The Deployment is written before the Config's spec (httpSecret) in the same sync.
    cfg = cluster.wait(lambda: (lambda c: c if c["spec"].get("httpSecret") else None)(cluster.get(CONFIG)),
                       what="httpSecret written back")
    assert len(cfg["spec"]["httpSecret"]) == 128
    pod = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["registry-storage"]["emptyDir"] == {}
    assert vols["registry-tls"]["secret"]["secretName"] == "image-registry-tls"
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["REGISTRY_STORAGE"] == "filesystem" and env["REGISTRY_HTTP_SECRET"] == cfg["spec"]["httpSecret"]
    for p in (path("v1", "services", NS, "image-registry"), path("v1", "serviceaccounts", NS, "registry"),
              path("v1", "secrets", NS, "image-registry-private-configuration"),
              path("v1", "configmaps", NS, "image-registry-certificates"),
              path("policy/v1", "poddisruptionbudgets", NS, "image-registry")):
        assert cluster.get(p) is not None, p
    cluster.wait(lambda: cluster.get(CONFIG)["status"].get("storage") == {"emptyDir": {}, "managementState": "Managed"})
    cluster.wait(lambda: (cluster.get(path("config.openshift.io/v1", "images", None, "cluster")).get("status") or {})
                 .get("internalRegistryHostname") == "image-registry.openshift-image-registry.svc:5000")
    cluster.wait_condition("Progressing", ("True", "DeploymentNotCompleted"))
    _complete_deployment(cluster)
    cluster.wait_condition("Available", ("True", "Ready", "The registry is ready"))
    cluster.wait_condition("Progressing", ("False", "Ready", "The registry is ready"))
    assert cluster.get(CONFIG)["status"]["readyReplicas"] == 1
    # No hot loop while healthy: neither the Config nor the ClusterOperator nor the Deployment is rewritten.
    _node_ca_ready(cluster)
    cluster.wait_condition("Available", ("True", "Ready"), p=CO)
    cluster.assert_quiet((CONFIG, CO, DEPLOY))
    assert cluster.get(CO)["status"]["versions"] == [{"name": "operator", "version": S.OPENSHIFT_VERSION}]
    # A manual edit of the Deployment is reverted.
    dep = cluster.get(DEPLOY)
    dep["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "FOO", "value": "bar"})
    cluster.call(cluster.client.replace(DEPLOY, dep))
    cluster.wait(lambda: "FOO" not in {e["name"] for e in
                                        cluster.get(DEPLOY)["spec"]["template"]["spec"]["containers"][0]["env"]},
                 what="FOO reverted")


def test_pvc_default_claim(cluster):
    _manage(cluster, {"pvc": {}})
    pvc = cluster.wait(lambda: cluster.get(path("v1", "persistentvolumeclaims", NS, "image-registry-storage")),
                       what="default PVC")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert not pvc["spec"].get("storageClassName")
    assert pvc["metadata"]["annotations"]["imageregistry.openshift.io"] == "true"
    cluster.wait(lambda: cluster.get(CONFIG)["spec"]["storage"].get("pvc") == {"claim": "image-registry-storage"})
    cfg = cluster.wait(lambda: (cluster.get(CONFIG)["status"].get("storage") or {}).get("pvc") and cluster.get(CONFIG))
    assert cfg["status"]["storage"] == {"pvc": {"claim": "image-registry-storage"}, "managementState": "Managed"}
    assert cfg["spec"]["storage"]["managementState"] == "Managed" and cfg["status"]["storageManaged"] is True
    # "PVC Created" on the sync that created it; a later sync that finds spec and status differing
    # (a status write that met a conflict) checks the named claim and says "PVC Exists".
    assert cluster.conditions()["StorageExists"][:2] in (("True", "PVC Created"), ("True", "PVC Exists"))
    dep = cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["registry-storage"]["persistentVolumeClaim"] == {"claimName": "image-registry-storage"}
    # Pods that never become available (nothing runs them here): Degraded after the grace period (1 s).
    cluster.wait_condition("Available", ("False", "NoReplicasAvailable"))
    assert cluster.conditions()["Degraded"][0] == "False"
    cluster.wait_condition("Degraded", ("True", "Unavailable", "The deployment does not have available replicas"),
                           timeout=5)


def _user_pvc(cluster, name, modes):
    cluster.call(cluster.client.create(PVC_COLL, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": "10Gi"}}}}))


def test_rwo_two_replicas_rejected_and_fault_knob(cluster):
    _user_pvc(cluster, "mine", ["ReadWriteOnce"])
    _manage(cluster, {"pvc": {"claim": "mine"}}, replicas=2, rolloutStrategy="Recreate")
    msg = "cannot use ReadWriteOnce access mode with more than one replica of the image registry"
    cluster.wait_condition("Progressing", ("True", "Error",
                                           f"Unable to apply resources: unable to sync storage configuration: {msg}"))
    assert cluster.conditions()["StorageExists"] == ("False", "PVC Issues Found", msg)
    assert cluster.get(DEPLOY) is None
    cluster.wait_condition("Progressing", ("True",), p=CO)
    assert cluster.conditions(CO)["Progressing"][2].startswith(
        f"Progressing: Unable to apply resources: unable to sync storage configuration: {msg}\n")
    # The fault knob: an operator that wrongly accepts RWO with two replicas.
    cluster.patch(FAULTS, {"data": {"operator.skipPVCChecks": "true"}})
    dep = cluster.wait(lambda: cluster.get(DEPLOY), what="deployment despite RWO")
    assert dep["spec"]["replicas"] == 2


def test_removed_deletes_objects_and_managed_pvc(cluster):
    _manage(cluster, {"pvc": {}}, defaultRoute=True)
    cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    # RemoveStorage finds the claim in status.storage: wait until the operator recorded it there.
    cluster.wait(lambda: ((cluster.get(CONFIG).get("status") or {}).get("storage") or {}).get("pvc"),
                 what="status.storage.pvc")
    route = path("route.openshift.io/v1", "routes", NS, "default-route")
    assert cluster.wait(lambda: cluster.get(route), what="default route")["spec"]["tls"]["termination"] == "reencrypt"
    cluster.patch(CONFIG, {"spec": {"defaultRoute": False}})
    cluster.wait(lambda: cluster.get(route) is None, what="route deleted")
    cluster.patch(CONFIG, {"spec": {"managementState": "Removed"}})
    cluster.wait(lambda: cluster.get(DEPLOY) is None, what="deployment deleted")
    pvc_p = path("v1", "persistentvolumeclaims", NS, "image-registry-storage")
    cluster.wait(lambda: cluster.get(pvc_p) is None or cluster.get(pvc_p)["metadata"].get("deletionTimestamp"),
                 what="PVC deleted")
    for p in (path("v1", "services", NS, "image-registry"), path("v1", "serviceaccounts", NS, "registry"),
              path("v1", "secrets", NS, "image-registry-private-configuration"),
              path("policy/v1", "poddisruptionbudgets", NS, "image-registry")):
        cluster.wait(lambda: cluster.get(p) is None, what=f"{p} deleted")
    cluster.wait_condition("Available", ("True", "Removed", "The registry is removed"))
    cluster.wait_condition("Progressing", ("False", "Removed", "All registry resources are removed"))
    assert cluster.get(CONFIG)["status"]["storage"] == {}
    image = cluster.get(path("config.openshift.io/v1", "images", None, "cluster"))
    assert image["status"]["internalRegistryHostname"] == "" and image["status"]["externalRegistryHostnames"] == []


def test_unmanaged_storage_kept_on_removed(cluster):
    _user_pvc(cluster, "mine", ["ReadWriteMany"])
    _manage(cluster, {"pvc": {"claim": "mine"}})
    cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    cluster.wait(lambda: cluster.get(CONFIG)["spec"]["storage"].get("managementState") == "Unmanaged")
    cluster.patch(CONFIG, {"spec": {"managementState": "Removed"}})
    cluster.wait_condition("Available", ("True", "Removed"))
    assert cluster.get(path("v1", "persistentvolumeclaims", NS, "mine")) is not None


def test_negative_replicas_and_mutate_spec_fault(cluster):
    _manage(cluster, {"emptyDir": {}}, replicas=-1)
    cluster.wait_condition("Degraded", ("True", "VerificationFailed",
                                        "Error: unable to complete resource: replicas must be greater than or equal to 0"))
    cluster.patch(FAULTS, {"data": {"operator.mutateSpec": json.dumps({"replicas": 3, "logLevel": "Debug"})}})
    cluster.wait(lambda: cluster.get(CONFIG)["spec"]["replicas"] == 3, what="spec mutated by the fault")
    dep = cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    assert cluster.get(CONFIG)["spec"]["logLevel"] == "Debug"
    cluster.wait(lambda: cluster.get(DEPLOY)["spec"]["replicas"] == 3)
    assert dep is not None


def test_delete_config_finalizes_and_bootstraps_again(cluster):
    _manage(cluster, {"pvc": {}})
    cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    # RemoveStorage finds the claim in status.storage: wait until the operator recorded it there.
    cluster.wait(lambda: ((cluster.get(CONFIG).get("status") or {}).get("storage") or {}).get("pvc"),
                 what="status.storage.pvc")
    uid = cluster.get(CONFIG)["metadata"]["uid"]
    cluster.call(cluster.client.delete(CONFIG))
    cluster.wait(lambda: cluster.get(DEPLOY) is None, what="deployment removed by the finalizer")
    new = cluster.wait(lambda: (c := cluster.get(CONFIG)) and c["metadata"]["uid"] != uid and c, what="re-bootstrap")
    assert new["spec"]["managementState"] == "Removed" and new["spec"]["storage"] == {}
    pvc = cluster.get(path("v1", "persistentvolumeclaims", NS, "image-registry-storage"))
    assert pvc is None or pvc["metadata"].get("deletionTimestamp")


def test_unmanaged_touches_nothing(cluster):
    _manage(cluster, {"emptyDir": {}})
    cluster.wait(lambda: cluster.get(DEPLOY), what="deployment")
    cluster.patch(CONFIG, {"spec": {"managementState": "Unmanaged"}})
    cluster.wait_condition("Available", ("True", "Unmanaged"))
    cluster.patch(CONFIG, {"spec": {"replicas": 4}})
    time.sleep(0.5)
    assert cluster.get(DEPLOY)["spec"]["replicas"] == 1


def test_missing_trusted_ca_degrades_the_certificates_controller(cluster):
    """operator-facts.md §5.2: a trustedCA config map that does not exist makes
    ImageRegistryCertificatesControllerDegraded True at once, and the ClusterOperator Degraded with
    reason ImageRegistryCertificatesControllerError."""
    _manage(cluster, {"s3": {"bucket": "b", "region": "us-east-1", "regionEndpoint": "https://s3.example.test",
                             "trustedCA": {"name": "no-such-ca"}}})
    cond = cluster.wait(lambda: (c := cluster.conditions().get("ImageRegistryCertificatesControllerDegraded"))
                        and c[0] == "True" and c, what="certificates controller degraded")
    assert cond[1:] == ("Error", 'image-registry-certificates: failed to get trusted CA "no-such-ca": '
                                 'configmap "no-such-ca" not found')
    co = cluster.wait(lambda: (c := cluster.conditions(CO).get("Degraded")) and c[0] == "True" and c,
                      what="ClusterOperator Degraded")
    assert "ImageRegistryCertificatesControllerError" in co[1]
    # With the config map in place the condition clears.
    cluster.call(cluster.client.create(path("v1", "configmaps", "openshift-config"), {
        "metadata": {"name": "no-such-ca", "namespace": "openshift-config"}, "data": {"ca-bundle.crt": "x"}}))
    cluster.patch(CONFIG, {"spec": {"logLevel": "Debug"}})     # a change, so the operator syncs again
    cluster.wait(lambda: cluster.conditions()["ImageRegistryCertificatesControllerDegraded"][:2]
                 == ("False", "AsExpected"), what="certificates controller no longer degraded")
