"""Bearer-token authentication (401), per-user authorization (403), SelfSubjectAccessReview, users/~."""
from __future__ import annotations

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from .helpers import raw, status_of


def _ssar(api_client, **attrs):
    body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
        resource_attributes=k8s.V1ResourceAttributes(**attrs)))
    return k8s.AuthorizationV1Api(api_client).create_self_subject_access_review(body)


def _http(cluster):
    return urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_cert_data=cluster.ca_pem.decode())


def test_no_token_and_bad_token_401(cluster):
    http = _http(cluster)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        r = http.request("GET", cluster.url + "/api/v1/namespaces", headers=headers)
        assert r.status == 401
        assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    r = http.request("GET", cluster.url + "/version", headers={"Authorization": f"Bearer {cluster.tokens['nobody']}"})
    assert r.status == 200


def test_nobody_is_forbidden_everywhere(nobody, ns):
    core = k8s.CoreV1Api(nobody)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("x", ns)
    assert e.value.status == 403
    st = status_of(e.value)
    assert st["reason"] == "Forbidden"
    assert st["message"] == (f'pods "x" is forbidden: User "nobody" cannot get resource "pods" in API group "" '
                             f'in the namespace "{ns}"')
    with pytest.raises(ApiException) as e:
        core.list_namespace()
    assert status_of(e.value)["message"] == ('namespaces is forbidden: User "nobody" cannot list resource '
                                             '"namespaces" in API group "" at the cluster scope')
    with pytest.raises(ApiException) as e:
        k8s.CustomObjectsApi(nobody).get_cluster_custom_object("imageregistry.operator.openshift.io", "v1",
                                                               "configs", "cluster")
    assert status_of(e.value)["message"] == (
        'configs.imageregistry.operator.openshift.io "cluster" is forbidden: User "nobody" cannot get resource '
        '"configs" in API group "imageregistry.operator.openshift.io" at the cluster scope')
    # discovery, users/~ and reviews stay open to every authenticated user
    assert k8s.CoreV1Api(nobody).get_api_resources().resources
    assert raw(nobody, "GET", "/apis/user.openshift.io/v1/users/~")["metadata"]["name"] == "nobody"
    assert _ssar(nobody, verb="get", resource="pods", namespace=ns).status.allowed is False


def test_puller_reads_but_cannot_write(puller, core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "r"}})
    pc = k8s.CoreV1Api(puller)
    assert pc.read_namespaced_config_map("r", ns).metadata.name == "r"
    assert [i.metadata.name for i in pc.list_namespaced_config_map(ns).items] == ["r"]
    with pytest.raises(ApiException) as e:
        pc.create_namespaced_config_map(ns, {"metadata": {"name": "w"}})
    assert status_of(e.value)["message"] == (f'configmaps is forbidden: User "puller" cannot create resource '
                                             f'"configmaps" in API group "" in the namespace "{ns}"')
    with pytest.raises(ApiException) as e:
        pc.patch_namespaced_config_map("r", ns, {"data": {"a": "b"}})
    assert e.value.status == 403
    with pytest.raises(ApiException) as e:
        pc.delete_namespaced_config_map("r", ns)
    assert e.value.status == 403


def test_ssar_rules(admin, puller, ns):
    layers = dict(namespace=ns, group="image.openshift.io", resource="imagestreams", subresource="layers",
                  name="repo")
    assert _ssar(puller, verb="get", **layers).status.allowed is True
    assert _ssar(puller, verb="update", **layers).status.allowed is False
    assert _ssar(puller, verb="list", resource="pods").status.allowed is True
    assert _ssar(puller, verb="delete", resource="pods", namespace=ns).status.allowed is False
    assert _ssar(admin, verb="update", **layers).status.allowed is True
    assert _ssar(admin, verb="delete", group="imageregistry.operator.openshift.io", resource="configs",
                 name="cluster").status.allowed is True


def test_users_tilde(admin, puller):
    me = raw(admin, "GET", "/apis/user.openshift.io/v1/users/~")
    assert me["kind"] == "User" and me["metadata"]["name"] == "kube:admin"
    assert "system:authenticated" in me["groups"]
    assert raw(puller, "GET", "/apis/user.openshift.io/v1/users/~")["metadata"]["name"] == "puller"
