"""Fixtures for the workload controllers' selftests.

A real APIServer and the real controllers (scheduler, ReplicaSet, Deployment, DaemonSet, provisioner,
service CA) run in a background thread's event loop. No kubelet runs: `FakeKubelet` (test-only) marks
scheduled pods Running and Ready, unless they carry the label `selftest/hold: "true"`, and finishes
deletions (`gracePeriodSeconds=0`) after `delete_delay` seconds, as the real kubelet does once the
containers stopped.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from localcluster.client import ApiError, Informer, KubeClient, path
from localcluster.pki import CertificateAuthority
from localcluster.settings import FAULTS_CONFIGMAP, FAULTS_NAMESPACE, Settings
from selftests.support import LoopThread, wait_until

MASTER_TAINT = {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}
HOLD = "selftest/hold"


class FakeKubelet:
    """Test-only stand-in for the kubelet: readiness and the end of graceful deletion."""

    def __init__(self, client: KubeClient, delete_delay: float = 0.2):
        self.client = client
        self.delete_delay = delete_delay
        self.informer = Informer(client, path("v1", "pods"), self._on_pod)
        self._busy: set = set()

    def _on_pod(self, type_, pod):
        if type_ == "DELETED":
            return
        m = pod["metadata"]
        key = (m.get("namespace"), m.get("name"), m.get("uid"), bool(m.get("deletionTimestamp")))
        if key in self._busy:
            return
        if m.get("deletionTimestamp"):
            self._busy.add(key)
            asyncio.ensure_future(self._finish_delete(pod, key))
        elif pod.get("spec", {}).get("nodeName") and (m.get("labels") or {}).get(HOLD) != "true":
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in pod.get("status", {}).get("conditions") or [])
            if not ready:
                self._busy.add(key)
                asyncio.ensure_future(self._make_ready(pod, key))

    async def _make_ready(self, pod, key):
        m = pod["metadata"]
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conds = [{"type": c, "status": "True", "lastTransitionTime": t}
                 for c in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        try:
            await self.client.patch(path("v1", "pods", m["namespace"], m["name"], "status"),
                                    {"status": {"phase": "Running", "conditions": conds,
                                                "hostIP": "127.0.0.1", "podIP": "127.0.0.1"}})
        except ApiError:
            pass
        finally:
            self._busy.discard(key)

    async def _finish_delete(self, pod, key):
        m = pod["metadata"]
        await asyncio.sleep(self.delete_delay)
        try:
            await self.client.delete(path("v1", "pods", m["namespace"], m["name"]), grace_period_seconds=0)
        except ApiError:
            pass


def node(name: str, master: bool) -> dict:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    spec = {}
    if master:
        labels["node-role.kubernetes.io/master"] = ""
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [dict(MASTER_TAINT)]
    else:
        labels["node-role.kubernetes.io/worker"] = ""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec}


def storage_class(name: str, provisioner: str, default: bool = False) -> dict:
    meta = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
            "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}


class Env:
    """What a test uses: sync wrappers around the admin client, run in the cluster's loop."""

    def __init__(self, lt: LoopThread, client: KubeClient, settings: Settings, kubelet: FakeKubelet, service_ca):
        self.lt = lt
        self.client = client
        self.settings = settings
        self.kubelet = kubelet
        self.service_ca = service_ca

    def get(self, p):
        return self.lt.run(self.client.get(p))

    def list(self, p, label_selector=None):
        return self.lt.run(self.client.list(p, label_selector=label_selector))["items"]

    def create(self, p, body):
        return self.lt.run(self.client.create(p, body))

    def patch(self, p, body):
        return self.lt.run(self.client.patch(p, body))

    def delete(self, p, **kw):
        return self.lt.run(self.client.delete(p, **kw))

    def namespace(self) -> str:
        ns = f"wl-{uuid.uuid4().hex[:8]}"
        self.create(path("v1", "namespaces"), {"metadata": {"name": ns}})
        return ns

    def wait(self, fn, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
        return wait_until(fn, timeout=timeout, interval=interval, what=what)

    def events(self, ns, reason=None):
        evs = self.list(path("v1", "events", ns))
        return [e for e in evs if reason is None or e.get("reason") == reason]

    def wait_event(self, ns, reason, contains="", timeout=10.0):
        return self.wait(lambda: [e for e in self.events(ns, reason) if contains in e.get("message", "")],
                         timeout, what=f"event {reason} {contains!r}")

    def set_fault(self, key: str, value: str | None):
        p = path("v1", "configmaps", FAULTS_NAMESPACE, FAULTS_CONFIGMAP)
        try:
            self.patch(p, {"data": {key: value}})
        except ApiError as e:
            if e.status != 404:
                raise
            self.create(path("v1", "configmaps", FAULTS_NAMESPACE),
                        {"metadata": {"name": FAULTS_CONFIGMAP}, "data": {key: value} if value else {}})
        time.sleep(0.2)   # let the controllers' informers see it


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    from localcluster.apiserver import APIServer, default_users
    from localcluster.controllers.deployment import (
        DaemonSetController, DeploymentController, ReplicaSetController)
    from localcluster.controllers.provisioner import Provisioner
    from localcluster.controllers.scheduler import Scheduler
    from localcluster.controllers.servingcert import ServiceCA

    lt = LoopThread()
    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), provision_delay=0.05, resync_seconds=30.0)
    api_ca = CertificateAuthority.create("selftest-workloads-apiserver-ca")
    cert, key = api_ca.issue("kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()
    admin = next(u for u in users if u.name == "kube:admin")
    server = APIServer(settings, cert, key, users, host="127.0.0.1", port=0)
    lt.run(server.start())
    clients = []

    async def mk_client():
        c = KubeClient(server.url, admin.token, api_ca.cert_pem)
        clients.append(c)
        return c

    client = lt.run(mk_client())

    async def seed():
        for ns in (FAULTS_NAMESPACE,):
            await client.create(path("v1", "namespaces"), {"metadata": {"name": ns}})
        for i in range(3):
            await client.create(path("v1", "nodes"), node(f"worker-{i}", False))
        for i in range(3):
            await client.create(path("v1", "nodes"), node(f"master-{i}", True))
        for sc in (storage_class("thin-csi", "csi.vsphere.vmware.com", default=True),
                   storage_class("thin", "kubernetes.io/vsphere-volume"),
                   storage_class("ocs-storagecluster-cephfs", "openshift-storage.cephfs.csi.ceph.com"),
                   storage_class("ocs-storagecluster-ceph-rbd", "openshift-storage.rbd.csi.ceph.com"),
                   storage_class("nfs-client", "example.com/nfs")):
            await client.create(path("storage.k8s.io/v1", "storageclasses"), sc)

    lt.run(seed())
    service_ca = CertificateAuthority.create("openshift-service-serving-signer@selftest")
    controllers = [
        Scheduler(lt.run(mk_client()), settings),
        ReplicaSetController(lt.run(mk_client()), settings),
        DeploymentController(lt.run(mk_client()), settings),
        DaemonSetController(lt.run(mk_client()), settings),
        Provisioner(lt.run(mk_client()), settings),
        ServiceCA(lt.run(mk_client()), settings, ca=service_ca),
    ]
    kubelet = FakeKubelet(lt.run(mk_client()))

    async def start():
        return [asyncio.ensure_future(c.run()) for c in controllers] + [asyncio.ensure_future(kubelet.informer.run())]

    tasks = lt.run(start())
    e = Env(lt, client, settings, kubelet, service_ca)
    e.controllers = controllers
    e.tasks = tasks
    # All informers synced: every controller is at work.
    e.wait(lambda: all(i.synced.is_set() for c in controllers for i in c.informers), what="informers synced")
    yield e

    async def stop():
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()
        await server.stop()

    lt.run(stop())
    lt.close()
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()


@pytest.fixture
def ns(env):
    name = env.namespace()
    yield name
    try:
        env.delete(path("v1", "namespaces", name))
    except ApiError:
        pass


@pytest.fixture
def faults(env):
    """Set fault knobs for one test; all cleared afterwards."""
    keys = []

    def set_(key, value="true"):
        keys.append(key)
        env.set_fault(key, value)

    yield set_
    for k in keys:
        env.set_fault(k, None)


def deployment(name: str, replicas: int = 1, strategy: dict | None = None, labels: dict | None = None,
               pod_spec: dict | None = None, progress_deadline: int | None = None, hold: bool = False) -> dict:
    labels = labels or {"app": name}
    pod_labels = dict(labels)
    if hold:
        pod_labels[HOLD] = "true"
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": pod_labels},
                     "spec": pod_spec or {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}],
                                          "terminationGracePeriodSeconds": 5}},
    }
    if strategy:
        spec["strategy"] = strategy
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
