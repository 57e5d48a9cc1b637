"""deploy/: the committed manifests are deploy/manifests.py's output and valid objects of their kinds
(checked against the official client's models); their RBAC is exactly utilities/rights.py's list; created
on a local cluster (whose API server authorizes ServiceAccounts by RBAC objects and issues TokenRequest
tokens), the preflight rights check run as the ServiceAccount passes, and fails with exit 7 naming the
right when the rule granting it is removed from the ClusterRole or Role.
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess

import pytest
import yaml
from kubernetes import client as k8s

from deploy import manifests
from utilities import preflight
from utilities.kube import load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess

SA_USER = f"system:serviceaccount:{manifests.NAMESPACE}:{manifests.NAME}"
ALL = ("namespace.yaml", "rbac.yaml", "pvc.yaml", "job.yaml", "cronjob.yaml")


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO_ROOT / "deploy" / name).read_text()) if d]


def test_committed_manifests_are_generated():
    for name, text in manifests.render().items():
        assert (REPO_ROOT / "deploy" / name).read_text() == text, \
            f"deploy/{name} is out of date: run `python -m deploy.manifests`"


KINDS = {"ServiceAccount": "V1ServiceAccount", "ClusterRole": "V1ClusterRole", "ClusterRoleBinding":
         "V1ClusterRoleBinding", "Role": "V1Role", "RoleBinding": "V1RoleBinding", "Namespace": "V1Namespace",
         "PersistentVolumeClaim": "V1PersistentVolumeClaim", "Job": "V1Job", "CronJob": "V1CronJob"}


def _unknown_keys(obj, model_cls, path="") -> list[str]:
    """Keys of `obj` that the official client's model does not know (a typo in a manifest)."""
    if not isinstance(obj, dict) or model_cls is None:
        return []
    cls = getattr(k8s, model_cls, None) if isinstance(model_cls, str) else model_cls
    if cls is None or not hasattr(cls, "attribute_map"):
        return []
    by_json = {v: k for k, v in cls.attribute_map.items()}
    out = []
    for key, value in obj.items():
        if key not in by_json:
            out.append(f"{path}.{key}")
            continue
        t = cls.openapi_types[by_json[key]]
        inner = t[5:-1] if t.startswith("list[") else t
        for v in (value if t.startswith("list[") else [value]):
            out += _unknown_keys(v, inner, f"{path}.{key}")
    return out


def test_manifests_are_valid_objects():
    seen = set()
    for name in ("namespace.yaml", "rbac.yaml", "pvc.yaml", "job.yaml", "cronjob.yaml"):
        for d in docs(name):
            assert d["kind"] in KINDS, d["kind"]
            seen.add(d["kind"])
            assert _unknown_keys(d, KINDS[d["kind"]]) == [], f"{name} {d['kind']}"
    assert set(KINDS) <= seen
    job = docs("job.yaml")[0]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == manifests.NAME
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == docs("pvc.yaml")[0]["metadata"]["name"]
    assert pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/reports"
    cron = docs("cronjob.yaml")[0]
    assert cron["spec"]["jobTemplate"]["spec"] == job["spec"] and cron["spec"]["concurrencyPolicy"] == "Forbid"


def _scope(r) -> str | None:
    """Where the manifests grant right `r`: the namespace of its Role, or None (the ClusterRole)."""
    return r.namespace if r.namespace in manifests.FIXED_NAMESPACES else None


def _res(r) -> str:
    return f"{r.resource}/{r.subresource}" if r.subresource else r.resource


def test_the_rules_name_exactly_the_rights():
    """Every (verb, group, resource, name, where) the committed RBAC grants is a right of the list, and
    every right is granted; no wildcards."""
    objs = docs("rbac.yaml")
    granted = set()
    for o in objs:
        if o["kind"] not in ("Role", "ClusterRole"):
            continue
        where = o["metadata"].get("namespace")
        for rule in o["rules"]:
            assert not any("*" in x for x in rule["verbs"] + rule["resources"] + rule["apiGroups"]), rule
            granted |= {(v, g, res, n, where) for v in rule["verbs"] for g in rule["apiGroups"]
                        for res in rule["resources"] for n in rule.get("resourceNames") or [None]}
    wanted = {(r.verb, r.group, _res(r), r.name, _scope(r)) for r in manifests.run_rights()}
    assert granted == wanted
    # Every Role is bound to the ServiceAccount, in its namespace; the ClusterRole by a ClusterRoleBinding.
    sa = {"kind": "ServiceAccount", "name": manifests.NAME, "namespace": manifests.NAMESPACE}
    roles = {(o["kind"], o["metadata"].get("namespace")) for o in objs if o["kind"] in ("Role", "ClusterRole")}
    bound = {({"RoleBinding": "Role", "ClusterRoleBinding": "ClusterRole"}[o["kind"]], o["metadata"].get("namespace"))
             for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding") and o["subjects"] == [sa]}
    assert roles == bound and ("ClusterRole", None) in roles


# --- on a local cluster, as the ServiceAccount ------------------------------------------------------------
CREATE = {
    "Namespace": lambda c, o: c.core.create_namespace(o),
    "ServiceAccount": lambda c, o: c.core.create_namespaced_service_account(o["metadata"]["namespace"], o),
    "PersistentVolumeClaim": lambda c, o: c.core.create_namespaced_persistent_volume_claim(
        o["metadata"]["namespace"], o),
    "ClusterRole": lambda c, o: k8s.RbacAuthorizationV1Api(c.api_client).create_cluster_role(o),
    "ClusterRoleBinding": lambda c, o: k8s.RbacAuthorizationV1Api(c.api_client).create_cluster_role_binding(o),
    "Role": lambda c, o: k8s.RbacAuthorizationV1Api(c.api_client).create_namespaced_role(
        o["metadata"]["namespace"], o),
    "RoleBinding": lambda c, o: k8s.RbacAuthorizationV1Api(c.api_client).create_namespaced_role_binding(
        o["metadata"]["namespace"], o),
    "Job": lambda c, o: k8s.BatchV1Api(c.api_client).create_namespaced_job(o["metadata"]["namespace"], o),
    "CronJob": lambda c, o: k8s.BatchV1Api(c.api_client).create_namespaced_cron_job(o["metadata"]["namespace"], o),
}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The deploy manifests created on a local cluster (in the order of README: namespace, RBAC, PVC,
    Job, CronJob); (admin Cluster, the ServiceAccount's kubeconfig)."""
    d = tmp_path_factory.mktemp("deploy")
    with LocalClusterProcess(d / "lc") as lc:
        admin = load_cluster(lc.kubeconfig, embedded=True, info=lc.info)
        try:
            for name in ALL:
                for o in docs(name):
                    CREATE[o["kind"]](admin, o)
            token = admin.core.create_namespaced_service_account_token(
                manifests.NAME, manifests.NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
            kc = yaml.safe_load(lc.kubeconfig.read_text())
            kc["users"] = [{"name": "sa", "user": {"token": token}}]
            kc["contexts"] = [{"name": "sa", "context": {"cluster": kc["clusters"][0]["name"], "user": "sa"}}]
            kc["current-context"] = "sa"
            path = d / "kubeconfig-sa"
            path.write_text(yaml.safe_dump(kc))
            yield admin, path
        finally:
            admin.api_client.close()


def _check_rights_as_sa(kubeconfig) -> None:
    cluster = preflight.connect(kubeconfig)
    try:
        assert preflight.whoami(cluster) == SA_USER
        preflight.check_rights(cluster, destructive=True)
    finally:
        cluster.api_client.close()


def test_the_manifests_are_created_and_preflight_passes_as_the_service_account(deployed):
    admin, kubeconfig = deployed
    sa = admin.core.read_namespaced_service_account(manifests.NAME, manifests.NAMESPACE)
    assert sa.metadata.labels == {"app.kubernetes.io/name": manifests.NAME}
    job = k8s.BatchV1Api(admin.api_client).read_namespaced_job(manifests.NAME, manifests.NAMESPACE)
    assert job.spec.template.spec.service_account_name == manifests.NAME
    _check_rights_as_sa(kubeconfig)


def _right(text: str):
    return next(r for r in manifests.run_rights() if str(r) == text)


# A sample (each case is one rule change and one preflight on the cluster): cluster-wide, with
# resourceNames, in a Role, a subresource, a read-only one, and `bind` (whose alternative the
# ServiceAccount does not hold either).
SAMPLE = ["create namespaces",
          "get clusterversions.config.openshift.io 'version' ",
          "update configs.imageregistry.operator.openshift.io",
          "create pods/portforward in openshift-image-registry",
          "get pods/log in openshift-image-registry",
          "get configmaps in openshift-config-managed",
          "bind clusterroles.rbac.authorization.k8s.io 'system:image-builder'"]


@pytest.mark.parametrize("text", [t.strip() for t in SAMPLE])
def test_preflight_fails_naming_the_right_when_its_rule_is_removed(deployed, text):
    admin, kubeconfig = deployed
    target = _right(text)
    rbac = k8s.RbacAuthorizationV1Api(admin.api_client)
    ns = _scope(target)
    read = (lambda: rbac.read_namespaced_role(manifests.NAME, ns)) if ns else \
        (lambda: rbac.read_cluster_role(manifests.NAME))
    replace = (lambda body: rbac.replace_namespaced_role(manifests.NAME, ns, body)) if ns else \
        (lambda body: rbac.replace_cluster_role(manifests.NAME, body))
    role = admin.api_client.sanitize_for_serialization(read())
    original = copy.deepcopy(role["rules"])
    hits = [rule for rule in role["rules"] if rule["apiGroups"] == [target.group]
            and rule["resources"] == [_res(target)] and (rule.get("resourceNames") or [None]) == [target.name]
            and target.verb in rule["verbs"]]
    assert len(hits) == 1, f"one rule grants {target}: {hits}"
    hits[0]["verbs"].remove(target.verb)
    role["rules"] = [r for r in role["rules"] if r["verbs"]]
    replace(role)
    try:
        with pytest.raises(preflight.PreflightError) as e:
            _check_rights_as_sa(kubeconfig)
        assert e.value.code == preflight.EXIT_FORBIDDEN == 7
        assert f"user {SA_USER} is not allowed to {target} ({target.why})" in e.value.message, e.value.message
    finally:
        role = admin.api_client.sanitize_for_serialization(read())
        role["rules"] = original
        replace(role)
    _check_rights_as_sa(kubeconfig)       # restored: the next case starts from the full role


@pytest.mark.skipif(os.environ.get("BUILD_IMAGE") != "1" or shutil.which("buildah") is None,
                    reason="building the image needs its base image from a container registry, which this "
                           "machine cannot reach (only PyPI, Debian and npm); BUILD_IMAGE=1 tries with buildah")
def test_buildah_builds_the_image(tmp_path):
    proc = subprocess.run(["buildah", "--storage-driver", "vfs", "bud", "--isolation", "chroot", "-f",
                           "deploy/Containerfile", "-t", "registry-conformance:test", "."], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
