"""Support for the kubelet, registry pod and router selftests: a real APIServer in a background event loop,
the Kubelet and the Router as its clients. Shared by selftests/kubelet and selftests/router (conftests import it)."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from localcluster.pki import CertificateAuthority
from localcluster.settings import Settings
from selftests.support import LoopThread, wait_until


class Api:
    def __init__(self, server, ca: CertificateAuthority, users, settings):
        self.server = server
        self.url = server.url
        self.ca_pem = ca.cert_pem
        self.tokens = {u.name: u.token for u in users}
        self.settings = settings


def registry_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-x", "docker-registry"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def registry_pids_under(state_dir: Path) -> list[int]:
    """docker-registry processes whose config lives under state_dir (other engineers run their own)."""
    pids = []
    for pid in registry_pids():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(state_dir).encode() in part for part in cmd):
            pids.append(pid)
    return pids


@pytest.fixture(scope="session")
def api(loop_thread, tmp_path_factory):
    from localcluster.apiserver import APIServer
    from localcluster.apiserver.auth import default_users

    settings = Settings(state_dir=tmp_path_factory.mktemp("state"), probe_interval=0.1, pod_start_delay=0.01)
    ca = CertificateAuthority.create("selftest-apiserver-ca")
    cert, key = ca.issue("kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()

    async def start():
        s = APIServer(settings, cert, key, users, host="127.0.0.1", port=0)
        await s.start()
        return s

    server = loop_thread.run(start())
    yield Api(server, ca, users, settings)
    loop_thread.run(server.stop())


def b64(data: bytes | str) -> str:
    import base64
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


class Cluster:
    """Kubelet + Router against the API server; sync helpers for the tests (run in the loop thread)."""

    def __init__(self, api: Api, loop_thread: LoopThread):
        from localcluster.client import KubeClient
        self.api = api
        self.lt = loop_thread
        self.settings = api.settings
        self.client = KubeClient(api.url, api.tokens["kube:admin"], api.ca_pem)
        self.service_ca = CertificateAuthority.create("selftest-service-ca")
        self.ingress_ca = CertificateAuthority.create("selftest-ingress-ca")
        self.kubelet = None
        self.router = None
        self._tasks = []

    # -------------------------------------------------------------- api helpers
    def call(self, method: str, *args, **kw):
        return self.lt.run(getattr(self.client, method)(*args, **kw))

    def get(self, *p):
        from localcluster.client import ApiError, path
        try:
            return self.call("get", path(*p))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def apply(self, obj: dict) -> dict:
        from localcluster.client import ApiError, path
        av, kind = obj["apiVersion"], obj["kind"]
        plural = PLURALS[kind]
        ns = obj["metadata"].get("namespace")
        try:
            return self.call("create", path(av, plural, ns), obj)
        except ApiError as e:
            if e.status != 409:
                raise
            cur = self.call("get", path(av, plural, ns, obj["metadata"]["name"]))
            obj = dict(obj, metadata=dict(obj["metadata"], resourceVersion=cur["metadata"]["resourceVersion"]))
            return self.call("replace", path(av, plural, ns, obj["metadata"]["name"]), obj)

    def events(self, namespace: str, name: str) -> list[dict]:
        from localcluster.client import path
        evs = self.call("list", path("v1", "events", namespace))["items"]
        return [e for e in evs if e["involvedObject"].get("name") == name]

    def wait(self, fn, timeout: float = 10, interval: float = 0.05, what: str = "condition"):
        return wait_until(fn, timeout=timeout, interval=interval, what=what)

    def namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.apply({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "openshift-service-ca.crt", "namespace": name},
                    "data": {"service-ca.crt": self.service_ca.cert_pem.decode()}})

    def serving_secret(self, namespace: str, service: str, secret: str) -> None:
        dns = f"{service}.{namespace}.svc"
        crt, key = self.service_ca.issue(dns, dns_names=[dns, dns + ".cluster.local"])
        self.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": secret, "namespace": namespace},
                    "data": {"tls.crt": b64(crt), "tls.key": b64(key)}})

    def bound_pvc(self, namespace: str, claim: str, modes=("ReadWriteOnce",)) -> str:
        """A PV (host directory under state_dir) and a PVC bound to it; returns the PV name."""
        from localcluster.client import path
        pv = f"pv-{namespace}-{claim}"
        host = self.settings.state_dir / "pvs" / pv
        self.apply({"apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": pv, "annotations": {"localcluster.openshift.io/host-path": str(host)}},
                    "spec": {"accessModes": list(modes), "capacity": {"storage": "100Gi"},
                             "claimRef": {"namespace": namespace, "name": claim},
                             "persistentVolumeReclaimPolicy": "Delete"}})
        self.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": namespace},
                    "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": "100Gi"}},
                             "volumeName": pv}})
        self.call("patch", path("v1", "persistentvolumeclaims", namespace, claim, "status"),
                  {"status": {"phase": "Bound", "accessModes": list(modes), "capacity": {"storage": "100Gi"}}})
        self.call("patch", path("v1", "persistentvolumes", None, pv, "status"), {"status": {"phase": "Bound"}})
        return pv

    def pod(self, namespace: str, name: str) -> dict | None:
        return self.get("v1", "pods", namespace, name)

    def ready(self, namespace: str, name: str) -> bool:
        p = self.pod(namespace, name) or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))

    def delete_pod(self, namespace: str, name: str, grace=None) -> None:
        from localcluster.client import path
        self.call("delete", path("v1", "pods", namespace, name), grace_period_seconds=grace)

    # -------------------------------------------------------------- components
    def start(self, router: bool = True) -> "Cluster":
        from localcluster.controllers.kubelet import Kubelet
        from localcluster.registrypod import TokenSigner
        from localcluster.router import Router
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "openshift-ingress"}})
        from localcluster.settings import APPS_DOMAIN
        crt, key = self.ingress_ca.issue(f"*.{APPS_DOMAIN}", dns_names=[f"*.{APPS_DOMAIN}"])
        self.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": "router-certs-default", "namespace": "openshift-ingress"},
                    "data": {"tls.crt": b64(crt + self.ingress_ca.cert_pem), "tls.key": b64(key)}})
        self.kubelet = Kubelet(self.client, self.settings, token_signer=TokenSigner.create())
        self.api.server.kubelet = self.kubelet      # pods/exec
        self._tasks.append(self.lt.spawn(self.kubelet.run()))
        if router:
            self.router = Router(self.client, self.settings)
            self._tasks.append(self.lt.spawn(self.router.run()))
            self.wait(lambda: self.router.address, what="router address")
        return self

    def stop(self) -> None:
        async def cancel():
            for t in self._tasks:
                t.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=10)
            for t in self._tasks:
                if t.done() and not t.cancelled() and t.exception():
                    raise t.exception()
        tasks, self._tasks = self._tasks, []
        if tasks:
            self._tasks = tasks
            try:
                self.lt.run(cancel())
            finally:
                self._tasks = []

    def close(self) -> None:
        self.stop()
        self.lt.run(self.client.close())


PLURALS = {
    "Namespace": "namespaces", "Pod": "pods", "Service": "services", "Endpoints": "endpoints",
    "ConfigMap": "configmaps", "Secret": "secrets", "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes", "Route": "routes",
}


def registry_pod(namespace: str, name: str, node: str, claim: str | None = "registry-storage",
                 labels=None) -> dict:
    """A pod like the operator's image-registry pod (volumes, env, probes)."""
    from localcluster.settings import REGISTRY_IMAGE
    volumes = [{"name": "registry-tls", "projected": {"sources": [{"secret": {"name": "image-registry-tls"}}]}}]
    mounts = [{"name": "registry-tls", "mountPath": "/etc/secrets"}]
    if claim:
        volumes.append({"name": "registry-storage", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "registry-storage", "mountPath": "/registry"})
    probe = {"httpGet": {"path": "/healthz", "port": 5000, "scheme": "HTTPS"}, "timeoutSeconds": 5}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"docker-registry": "default"}},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 55,
            "volumes": volumes,
            "containers": [{
                "name": "registry", "image": REGISTRY_IMAGE,
                "ports": [{"containerPort": 5000, "protocol": "TCP"}],
                "env": [
                    {"name": "REGISTRY_STORAGE", "value": "filesystem"},
                    {"name": "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "value": "/registry"},
                    {"name": "REGISTRY_HTTP_ADDR", "value": ":5000"},
                    {"name": "REGISTRY_HTTP_NET", "value": "tcp"},
                    {"name": "REGISTRY_HTTP_SECRET", "value": "s3cr3t"},
                    {"name": "REGISTRY_STORAGE_DELETE_ENABLED", "value": "true"},
                    {"name": "REGISTRY_OPENSHIFT_SERVER_ADDR",
                     "value": "image-registry.openshift-image-registry.svc:5000"},
                    {"name": "REGISTRY_HTTP_TLS_CERTIFICATE", "value": "/etc/secrets/tls.crt"},
                    {"name": "REGISTRY_HTTP_TLS_KEY", "value": "/etc/secrets/tls.key"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "volumeMounts": mounts,
                "readinessProbe": probe, "livenessProbe": probe,
            }],
        },
    }


def pause_pod(namespace: str, name: str, node: str, volumes=(), labels=None) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": name}},
        "spec": {"nodeName": node, "volumes": list(volumes),
                 "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9",
                                 "volumeMounts": [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"}
                                                  for v in volumes]}]},
    }


@pytest.fixture(scope="module")
def cluster(api, loop_thread):
    c = Cluster(api, loop_thread).start()
    yield c
    c.close()


def registry_pid_of(cluster: Cluster, namespace: str, name: str) -> int | None:
    """The pid of the docker-registry process of a pod (its config lives under pods/<uid>/)."""
    uid = cluster.pod(namespace, name)["metadata"]["uid"]
    pids = registry_pids_under(cluster.settings.state_dir / "pods" / uid)
    return pids[0] if pids else None
