"""The one list of rights (utilities/rights.py): preflight checks all of it, and the ClusterRole it
renders is exactly enough (issue 7 item 16). Against a local cluster whose API server authorizes
ServiceAccounts with RBAC objects and applies kube's escalation check."""
from __future__ import annotations

import copy

import pytest
import yaml
from kubernetes import client as k8s

from localcluster.apiserver.auth import Rule
from selftests.support import served_cluster_in
from utilities import preflight, rights

NS = "rights-selftest"


def test_every_right_is_granted_by_the_rendered_role():
    docs = rights.cluster_role(destructive=True, subject={"kind": "User", "name": "alice"})
    role, binding = docs
    assert role["kind"] == "ClusterRole" and binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]
    granted = [Rule(tuple(r["verbs"]), tuple(r["apiGroups"]), tuple(r["resources"]), tuple(r.get("resourceNames", ())))
               for r in role["rules"]]
    for r in rights.needed(destructive=True):
        assert any(g.matches(r.verb, r.group, r.resource, r.subresource, r.name or "") for g in granted), str(r)
    # What the issue lists as unchecked before is in the list.
    have = {(r.verb, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.namespace) for r in rights.RIGHTS}
    for want in [("create", "secrets", "openshift-image-registry"), ("create", "configmaps", "openshift-config"),
                 ("create", "persistentvolumeclaims", "openshift-image-registry"),
                 ("create", "objectbucketclaims", "openshift-storage"), ("create", "pods/portforward", "openshift-image-registry"),
                 ("list", "imagestreams", None), ("create", "serviceaccounts", None),
                 ("create", "serviceaccounts/token", None), ("create", "rolebindings", None),
                 ("bind", "clusterroles", None), ("update", "leases", "openshift-image-registry")]:
        assert want in have, want
    assert len(yaml.safe_dump_all(docs)) > 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "rights") as (lc, admin, d):
        k8s.CoreV1Api(admin.api_client).create_namespace({"metadata": {"name": NS}})
        yield lc, admin, d


def _runner_kubeconfig(lc, admin, d, name: str, rules: list[dict]) -> str:
    """A ServiceAccount bound (ClusterRoleBinding) to a ClusterRole with `rules`; its kubeconfig."""
    core, rbac = k8s.CoreV1Api(admin.api_client), k8s.RbacAuthorizationV1Api(admin.api_client)
    core.create_namespaced_service_account(NS, {"metadata": {"name": name}})
    role = rights.cluster_role(destructive=True, name=name,
                               subject={"kind": "ServiceAccount", "name": name, "namespace": NS})
    role[0]["rules"] = rules
    rbac.create_cluster_role(role[0])
    rbac.create_cluster_role_binding(role[1])
    token = core.create_namespaced_service_account_token(name, NS, {"spec": {}}).status.token
    doc = yaml.safe_load(lc.kubeconfig.read_text())
    doc["users"] = [{"name": name, "user": {"token": token}}]
    doc["contexts"] = [{"name": name, "context": {"cluster": doc["clusters"][0]["name"], "user": name}}]
    doc["current-context"] = name
    path = d / f"kubeconfig-{name}"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_the_rendered_role_passes_preflight(served):
    lc, admin, d = served
    kc = _runner_kubeconfig(lc, admin, d, "runner-full", rights.rules(rights.needed(True)))
    c = preflight.run(kc, None, destructive=True)
    c.api_client.close()


def _without(rules, resource, verb, name=None):
    out = copy.deepcopy(rules)
    for r in out:
        if resource in r["resources"] and (name is None or r.get("resourceNames") == [name]):
            r["verbs"] = [v for v in r["verbs"] if v != verb]
    return [r for r in out if r["verbs"]]


@pytest.mark.parametrize("resource,verb,name,words", [
    ("secrets", "create", None, ["create secrets in openshift-image-registry", "S3 keys"]),
    ("pods/portforward", "create", None, ["create pods/portforward in openshift-image-registry"]),
    ("serviceaccounts/token", "create", None, ["create serviceaccounts/token", "TokenRequest"]),
    ("clusterroles", "bind", "system:image-builder", ["bind clusterroles.rbac.authorization.k8s.io "
                                                      "'system:image-builder'", "escalation"]),
])
def test_preflight_names_the_missing_right(served, resource, verb, name, words):
    lc, admin, d = served
    sa = f"runner-no-{verb}-{resource.replace('/', '-')}"
    kc = _runner_kubeconfig(lc, admin, d, sa, _without(rights.rules(rights.needed(True)), resource, verb, name))
    with pytest.raises(preflight.PreflightError) as e:
        preflight.run(kc, None, destructive=True)
    assert e.value.code == preflight.EXIT_FORBIDDEN
    assert all(w in e.value.message for w in words), e.value.message
    assert len(e.value.message) < 600 and "\n" not in e.value.message
    # A read-only run needs none of these.
    preflight.run(kc, None, destructive=False).api_client.close()


def test_holding_the_roles_rights_replaces_bind(served):
    """kube lets a user who holds all of system:image-builder's rights bind it without `bind`."""
    lc, admin, d = served
    rules = _without(_without(rights.rules(rights.needed(True)), "clusterroles", "bind", "system:image-builder"),
                     "clusterroles", "bind", "system:image-puller")
    rules.append({"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams/layers"],
                  "verbs": ["get", "update"]})
    rules.append({"apiGroups": ["", "image.openshift.io"], "resources": ["imagestreams"], "verbs": ["create"]})
    rules.append({"apiGroups": ["", "build.openshift.io"], "resources": ["builds/details"], "verbs": ["update"]})
    rules.append({"apiGroups": ["", "build.openshift.io"], "resources": ["builds"], "verbs": ["get"]})
    kc = _runner_kubeconfig(lc, admin, d, "runner-holds-builder", rules)
    preflight.run(kc, None, destructive=True).api_client.close()
