"""Identities as a real cluster has them (issue 7 item 1): client certificates (the installer's
system:admin), ServiceAccounts with TokenRequest tokens, RBAC from RoleBindings, and kube's escalation
check when binding a role."""
from __future__ import annotations

import base64
import json

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from localcluster.pki import CertificateAuthority
from localcluster.settings import Settings

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def server(loop_thread, tmp_path_factory):
    from localcluster.apiserver import APIServer, default_users
    d = tmp_path_factory.mktemp("identities")
    ca = CertificateAuthority.create("selftest-apiserver-ca")
    client_ca = CertificateAuthority.create("selftest-client-ca")
    cert, key = ca.issue("kube-apiserver", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()
    srv = APIServer(Settings(state_dir=d), cert, key, users, client_ca_pem=client_ca.cert_pem)
    loop_thread.run(srv.start())
    srv.test_ca, srv.test_client_ca, srv.test_dir = ca, client_ca, d
    srv.test_tokens = {u.name: u.token for u in users}
    yield srv
    loop_thread.run(srv.stop())


def _kubeconfig(server, name, user: dict):
    path = server.test_dir / f"kubeconfig-{name.replace(':', '_')}"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "c", "cluster": {"server": server.url, "certificate-authority-data":
                                                base64.b64encode(server.test_ca.cert_pem).decode()}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name}}]}))
    return path


def _cert_client(server, cn, orgs=()):
    cert, key = server.test_client_ca.issue(cn, client=True, organizations=list(orgs))
    path = _kubeconfig(server, cn, {"client-certificate-data": base64.b64encode(cert).decode(),
                                    "client-key-data": base64.b64encode(key).decode()})
    return k8s_config.new_client_from_config(config_file=str(path))


def _token_client(server, name, token):
    return k8s_config.new_client_from_config(config_file=str(_kubeconfig(server, name, {"token": token})))


def _whoami(api):
    return k8s.CustomObjectsApi(api).get_cluster_custom_object("user.openshift.io", "v1", "users", "~")


def _ssar(api, **attrs):
    return k8s.AuthorizationV1Api(api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": attrs}}).status.allowed


def test_client_certificate_users(server):
    admin = _cert_client(server, "system:admin", ["system:masters"])
    me = _whoami(admin)
    assert me["metadata"]["name"] == "system:admin" and "system:masters" in me["groups"]
    k8s.CoreV1Api(admin).create_namespace({"metadata": {"name": "cert-ns"}})
    plain = _cert_client(server, "someone", ["some-group"])
    assert _whoami(plain)["groups"][:1] == ["some-group"]
    with pytest.raises(ApiException) as e:
        k8s.CoreV1Api(plain).list_namespace()
    assert e.value.status == 403
    # A certificate from another CA is no identity.
    other = CertificateAuthority.create("stranger")
    cert, key = other.issue("system:admin", client=True, organizations=["system:masters"])
    path = _kubeconfig(server, "stranger", {"client-certificate-data": base64.b64encode(cert).decode(),
                                            "client-key-data": base64.b64encode(key).decode()})
    stranger = k8s_config.new_client_from_config(config_file=str(path))
    with pytest.raises(Exception):      # the TLS handshake fails or the request is 401
        k8s.CoreV1Api(stranger).list_namespace()


def test_serviceaccount_token_and_rolebinding(server):
    admin = _token_client(server, "admin", server.test_tokens["kube:admin"])
    core = k8s.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": "sa-ns"}})
    core.create_namespaced_service_account("sa-ns", {"metadata": {"name": "pusher"}})
    tr = core.create_namespaced_service_account_token("pusher", "sa-ns", {"spec": {"expirationSeconds": 600}})
    token = tr.status.token
    assert tr.status.expiration_timestamp
    sa = _token_client(server, "sa", token)
    assert _whoami(sa)["metadata"]["name"] == "system:serviceaccount:sa-ns:pusher"
    assert "system:serviceaccounts:sa-ns" in _whoami(sa)["groups"]
    layers = dict(group="image.openshift.io", resource="imagestreams", subresource="layers", namespace="sa-ns",
                  name="app")
    assert not _ssar(sa, verb="update", **layers)
    k8s.RbacAuthorizationV1Api(admin).create_namespaced_role_binding("sa-ns", {
        "metadata": {"name": "builder"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                     "name": "system:image-builder"},
        "subjects": [{"kind": "ServiceAccount", "name": "pusher", "namespace": "sa-ns"}]})
    assert _ssar(sa, verb="update", **layers) and _ssar(sa, verb="get", **layers)
    assert not _ssar(sa, verb="update", **{**layers, "namespace": "default"}), "a RoleBinding is namespaced"
    assert not _ssar(sa, verb="list", resource="pods", namespace="sa-ns")
    # Too short a token is refused as kube refuses it.
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service_account_token("pusher", "sa-ns", {"spec": {"expirationSeconds": 60}})
    assert e.value.status == 422
    # The token is bound to the ServiceAccount: deleting it invalidates the token.
    core.delete_namespaced_service_account("pusher", "sa-ns")
    with pytest.raises(ApiException) as e:
        _whoami(sa)
    assert e.value.status == 401


def test_binding_a_role_needs_bind_or_its_rights(server):
    admin = _token_client(server, "admin", server.test_tokens["kube:admin"])
    core, rbac = k8s.CoreV1Api(admin), k8s.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": "esc-ns"}})
    core.create_namespaced_service_account("esc-ns", {"metadata": {"name": "binder"}})
    rbac.create_cluster_role({"metadata": {"name": "rolebinding-writer"}, "rules": [
        {"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["create", "get", "delete"]}]})
    rbac.create_namespaced_role_binding("esc-ns", {
        "metadata": {"name": "binder"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "rolebinding-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "binder", "namespace": "esc-ns"}]})
    token = core.create_namespaced_service_account_token("binder", "esc-ns", {"spec": {}}).status.token
    binder = k8s.RbacAuthorizationV1Api(_token_client(server, "binder", token))
    body = {"metadata": {"name": "builders"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                          "name": "system:image-builder"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "esc-ns"}]}
    with pytest.raises(ApiException) as e:
        binder.create_namespaced_role_binding("esc-ns", body)
    assert e.value.status == 403
    assert "attempting to grant RBAC permissions not currently held" in json.loads(e.value.body)["message"]
    # With `bind` on that ClusterRole the same binding is allowed.
    rbac.create_cluster_role({"metadata": {"name": "bind-image-builder"}, "rules": [
        {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"],
         "resourceNames": ["system:image-builder"]}]})
    rbac.create_namespaced_role_binding("esc-ns", {
        "metadata": {"name": "binder-bind"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                         "name": "bind-image-builder"},
        "subjects": [{"kind": "ServiceAccount", "name": "binder", "namespace": "esc-ns"}]})
    binder.create_namespaced_role_binding("esc-ns", body)
