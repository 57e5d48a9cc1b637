"""Fixtures for the API server selftests: the real APIServer in a background thread's event loop, a
kubeconfig with the three users, and official `kubernetes` clients for them."""
from __future__ import annotations

import base64
import uuid

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from localcluster.pki import CertificateAuthority
from localcluster.settings import Settings


class Cluster:
    def __init__(self, server, ca, users, kubeconfig, loop):
        self.server = server
        self.url = server.url
        self.ca_pem = ca.cert_pem
        self.tokens = {u.name: u.token for u in users}
        self.kubeconfig = str(kubeconfig)
        self.loop = loop

    def api_client(self, context="admin") -> k8s.ApiClient:
        return k8s_config.new_client_from_config(config_file=self.kubeconfig, context=context)


def write_kubeconfig(path, url, ca_pem, users):
    ctx_names = {"kube:admin": "admin", "nobody": "nobody", "puller": "puller"}
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "admin",
        "clusters": [{"name": "local", "cluster": {
            "server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": u.name, "user": {"token": u.token}} for u in users],
        "contexts": [{"name": ctx_names.get(u.name, u.name), "context": {"cluster": "local", "user": u.name}}
                     for u in users],
    }
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="session")
def cluster(loop_thread, tmp_path_factory):
    from localcluster.apiserver import APIServer, default_users

    d = tmp_path_factory.mktemp("apiserver")
    ca = CertificateAuthority.create("selftest-apiserver-ca")
    cert, key = ca.issue("kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()
    server = APIServer(Settings(state_dir=d), cert, key, users, history_size=200)

    async def start():
        await server.start()
    loop_thread.run(start())
    kubeconfig = d / "kubeconfig"
    write_kubeconfig(kubeconfig, server.url, ca.cert_pem, users)
    yield Cluster(server, ca, users, kubeconfig, loop_thread)
    loop_thread.run(server.stop())


@pytest.fixture(scope="session")
def admin(cluster):
    c = cluster.api_client("admin")
    yield c
    c.close()


@pytest.fixture(scope="session")
def nobody(cluster):
    c = cluster.api_client("nobody")
    yield c
    c.close()


@pytest.fixture(scope="session")
def puller(cluster):
    c = cluster.api_client("puller")
    yield c
    c.close()


@pytest.fixture(scope="session")
def core(admin):
    return k8s.CoreV1Api(admin)


@pytest.fixture(scope="session")
def apps(admin):
    return k8s.AppsV1Api(admin)


@pytest.fixture(scope="session")
def custom(admin):
    return k8s.CustomObjectsApi(admin)


@pytest.fixture(scope="session")
def dyn(admin, tmp_path_factory):
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.discovery import EagerDiscoverer
    cache = tmp_path_factory.mktemp("dyn") / "discovery.json"
    return DynamicClient(admin, cache_file=str(cache), discoverer=EagerDiscoverer)


@pytest.fixture
def ns(core):
    """A fresh namespace (deleted at the end, not waited for)."""
    name = "t-" + uuid.uuid4().hex[:8]
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except k8s.ApiException:
        pass
