"""Fault knob `registry.emptyReplica`: the registry pod whose name sorts first among the READY registry pods
of its namespace serves nothing (404 MANIFEST_UNKNOWN / BLOB_UNKNOWN on every manifest and blob GET/HEAD),
the others serve as usual. Two real registry containers on shared storage, against a real APIServer."""
from __future__ import annotations

import os
import time

import pytest
import requests

from localcluster.pki import CertificateAuthority
from localcluster.registrypod import RegistryContainer, TokenSigner
from localcluster.settings import REGISTRY_IMAGE

from selftests.kubelet.kubelet_oci import Registry, RegistryError
from selftests.kubelet.kubelet_support import registry_pod, registry_pids_under

IP_A, IP_B = "127.1.250.21", "127.1.250.22"
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def pod_obj(name, ip, ready=True, namespace="openshift-image-registry", image=REGISTRY_IMAGE):
    return {"metadata": {"name": name, "namespace": namespace, "uid": name},
            "spec": {"containers": [{"name": "registry", "image": image}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class Replicas:
    def __init__(self, api, containers, ca_path, faults, pods):
        self.api, self.containers, self.ca_path, self.faults, self.pods = api, containers, ca_path, faults, pods

    def client(self, ip, user="kube:admin"):
        return Registry(f"https://{ip}:5000", self.api.tokens[user] if user else None, verify=self.ca_path)

    def get(self, ip, path, user="kube:admin", method="GET"):
        """A GET/HEAD with the API token as bearer (the front exchanges it), no retries."""
        h = dict(ACCEPT)
        if user:
            h["Authorization"] = f"Bearer {self.api.tokens[user]}"
        return requests.request(method, f"https://{ip}:5000{path}", headers=h, verify=self.ca_path, timeout=10)


@pytest.fixture(scope="module")
def replicas(api, loop_thread, tmp_path_factory):
    d = tmp_path_factory.mktemp("empty-replica")
    ca = CertificateAuthority.create("selftest-service-ca")
    (d / "ca.crt").write_bytes(ca.cert_pem)
    faults: dict = {}
    pods: list[dict] = []
    signer = TokenSigner.create()
    containers = []
    for ip in (IP_A, IP_B):
        crt, key = ca.issue("image-registry.openshift-image-registry.svc", ip_addresses=[ip])
        (d / f"{ip}.crt").write_bytes(crt)
        (d / f"{ip}.key").write_bytes(key)
        env = {
            "REGISTRY_HTTP_ADDR": ":5000", "REGISTRY_HTTP_SECRET": "shared-secret",
            "REGISTRY_HTTP_TLS_CERTIFICATE": str(d / f"{ip}.crt"), "REGISTRY_HTTP_TLS_KEY": str(d / f"{ip}.key"),
            "REGISTRY_STORAGE": "filesystem", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(d / "shared"),
        }
        rc = RegistryContainer(pod_ip=ip, env=env, workdir=d / ip, signer=signer, api_server=api.url,
                               api_ca_pem=api.ca_pem, faults=lambda: faults, pods=lambda: pods)
        loop_thread.run(rc.start())
        containers.append(rc)
    for ip in (IP_A, IP_B):
        for _ in range(200):
            try:
                if requests.get(f"https://{ip}:5000/healthz", verify=str(d / "ca.crt"), timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
    yield Replicas(api, containers, str(d / "ca.crt"), faults, pods)
    for rc in containers:
        loop_thread.run(rc.stop())
    assert registry_pids_under(d) == []


@pytest.fixture
def image(replicas):
    """An image pushed through replica B (storage is shared: both replicas have it)."""
    reg = replicas.client(IP_B)
    layer = os.urandom(2000)
    digest = reg.push_image("team-e/app", "v1", layer=layer)
    manifest = reg.pull_image("team-e/app", digest)["manifest"]
    yield digest, manifest["layers"][0]["digest"]
    replicas.faults.clear()
    replicas.pods.clear()


def _serves(replicas, ip, digest, blob):
    return [replicas.get(ip, "/v2/team-e/app/manifests/v1").status_code,
            replicas.get(ip, f"/v2/team-e/app/manifests/{digest}", method="HEAD").status_code,
            replicas.get(ip, f"/v2/team-e/app/blobs/{blob}").status_code,
            replicas.get(ip, f"/v2/team-e/app/blobs/{blob}", method="HEAD").status_code]


def test_without_the_knob_every_replica_serves(replicas, image):
    digest, blob = image
    replicas.pods[:] = [pod_obj("image-registry-a", IP_A), pod_obj("image-registry-b", IP_B)]
    assert _serves(replicas, IP_A, digest, blob) == [200] * 4
    replicas.faults["registry.emptyReplica"] = "false"
    assert _serves(replicas, IP_A, digest, blob) == [200] * 4


def test_first_ready_replica_serves_nothing(replicas, image):
    digest, blob = image
    replicas.pods[:] = [pod_obj("image-registry-b", IP_B), pod_obj("image-registry-a", IP_A)]
    replicas.faults["registry.emptyReplica"] = "true"
    assert _serves(replicas, IP_A, digest, blob) == [404] * 4
    assert _serves(replicas, IP_B, digest, blob) == [200] * 4
    r = replicas.get(IP_A, "/v2/team-e/app/manifests/v1")
    assert r.json() == {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                    "detail": {"Name": "team-e/app", "Tag": "v1"}}]}
    r = replicas.get(IP_A, f"/v2/team-e/app/manifests/{digest}")
    assert r.json()["errors"][0]["detail"] == {"Name": "team-e/app", "Revision": digest}
    r = replicas.get(IP_A, f"/v2/team-e/app/blobs/{blob}")
    assert r.json() == {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry",
                                    "detail": blob}]}
    # A client following the distribution spec (token flow) sees the same.
    with pytest.raises(RegistryError) as e:
        replicas.client(IP_A, "puller").pull_image("team-e/app", "v1")
    assert e.value.status == 404 and "MANIFEST_UNKNOWN" in e.value.text
    replicas.client(IP_B, "puller").pull_image("team-e/app", "v1")
    # Authentication still comes first; the API (/v2/, tags) and pushes still work on the empty replica.
    assert replicas.get(IP_A, "/v2/team-e/app/manifests/v1", user=None).status_code == 401
    assert replicas.get(IP_A, "/v2/team-e/app/manifests/v1", user="nobody").status_code == 401
    assert replicas.get(IP_A, "/v2/").status_code == 200
    assert replicas.get(IP_A, "/v2/team-e/app/tags/list").json()["tags"] == ["v1"]
    pushed = replicas.client(IP_A).push_image("team-e/other", "v1")
    replicas.client(IP_B).pull_image("team-e/other", pushed)
    # Removing the key: served again at once.
    del replicas.faults["registry.emptyReplica"]
    assert _serves(replicas, IP_A, digest, blob) == [200] * 4


def test_only_ready_registry_pods_of_the_namespace_count(replicas, image):
    digest, blob = image
    replicas.faults["registry.emptyReplica"] = "true"
    # A is not ready: B is the first READY registry pod, so B serves nothing and A serves.
    replicas.pods[:] = [pod_obj("image-registry-a", IP_A, ready=False), pod_obj("image-registry-b", IP_B)]
    assert _serves(replicas, IP_B, digest, blob) == [404] * 4
    assert _serves(replicas, IP_A, digest, blob) == [200] * 4
    # Pods of other namespaces, pods running other images and pods being deleted do not count.
    deleting = pod_obj("image-registry-0", "127.1.250.23")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    replicas.pods[:] = [pod_obj("image-registry-a", IP_A), pod_obj("image-registry-b", IP_B),
                        pod_obj("aaa", "127.1.250.24", namespace="elsewhere"),
                        pod_obj("aab", "127.1.250.25", image="registry.k8s.io/pause:3.9"), deleting]
    assert _serves(replicas, IP_A, digest, blob) == [404] * 4
    assert _serves(replicas, IP_B, digest, blob) == [200] * 4
    # Each namespace has its own first replica.
    replicas.pods[:] = [pod_obj("image-registry-a", IP_A, namespace="one"),
                        pod_obj("image-registry-b", IP_B, namespace="two")]
    assert _serves(replicas, IP_A, digest, blob) == [404] * 4
    assert _serves(replicas, IP_B, digest, blob) == [404] * 4


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")   # serving cert: no IP SAN
def test_with_the_kubelet(cluster):
    """End to end: the real Kubelet runs two registry pods; the first ready one serves nothing."""
    from localcluster.client import path
    from localcluster.settings import FAULTS_CONFIGMAP, FAULTS_NAMESPACE
    ns = "empty-replica"
    cluster.namespace(ns)
    cluster.namespace(FAULTS_NAMESPACE)
    cluster.serving_secret(ns, "image-registry", "image-registry-tls")
    cluster.bound_pvc(ns, "registry-storage", modes=("ReadWriteMany",))
    for name, node in (("image-registry-x", "worker-0"), ("image-registry-y", "worker-1")):
        cluster.apply(registry_pod(ns, name, node))
    for name in ("image-registry-x", "image-registry-y"):
        cluster.wait(lambda n=name: cluster.ready(ns, n), timeout=20, what=f"{name} ready")
    ips = {n: cluster.pod(ns, n)["status"]["podIP"] for n in ("image-registry-x", "image-registry-y")}
    token = cluster.api.tokens["kube:admin"]
    digest = Registry(f"https://{ips['image-registry-y']}:5000", token, verify=False).push_image("team-e/app", "v1")

    # The suite's way to reach each replica: a port-forward through the API server (official client).
    from kubernetes import client as k8s
    from utilities.portforward import open_local_port
    conf = k8s.Configuration(host=cluster.api.url)
    conf.ssl_ca_cert = str(cluster.settings.state_dir / "api-ca.crt")
    (cluster.settings.state_dir / "api-ca.crt").write_bytes(cluster.api.ca_pem)
    conf.api_key = {"authorization": f"Bearer {token}"}
    core = k8s.CoreV1Api(k8s.ApiClient(conf))

    def pull_each() -> dict:
        out = {}
        for name in ips:
            with open_local_port(core, ns, name, 5000) as (host, port):
                try:
                    Registry(f"https://{host}:{port}", token, verify=False).pull_image("team-e/app", digest)
                    out[name] = 200
                except RegistryError as e:
                    out[name] = e.status
        return out
    assert pull_each() == {"image-registry-x": 200, "image-registry-y": 200}

    runtimes = [c.runtime for w in cluster.kubelet.workers.values() for c in w.containers if c.runtime]
    if any(rc.pods is None for rc in runtimes):
        pytest.skip("the kubelet does not give registry containers pods=<its pod cache> yet "
                    "(localcluster/controllers/kubelet.py: RegistryContainer(..., pods=...))")
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE},
                   "data": {"registry.emptyReplica": "true"}})
    try:
        cluster.wait(lambda: pull_each() == {"image-registry-x": 404, "image-registry-y": 200},
                     what="x serves nothing, y serves")
    finally:
        cluster.call("delete", path("v1", "configmaps", FAULTS_NAMESPACE, FAULTS_CONFIGMAP))
    cluster.wait(lambda: pull_each() == {"image-registry-x": 200, "image-registry-y": 200}, what="x serves again")
    core.api_client.close()
    for name in ("image-registry-x", "image-registry-y"):
        cluster.delete_pod(ns, name, grace=0)
