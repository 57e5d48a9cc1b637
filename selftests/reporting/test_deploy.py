"""deploy/: the committed manifests are deploy/manifests.py's output and valid objects of their kinds
(checked against the official client's models); their RBAC is exactly utilities/rights.py's list for a
--run-namespace run, with nothing sensitive cluster-wide; the Job leaves a restore its time. Created on a
local cluster (whose API server authorizes ServiceAccounts by RBAC objects and issues TokenRequest
tokens), the whole suite run as the ServiceAccount (a TokenRequest token, `--run-namespace`) passes and
leaves the two namespaces as they were; the preflight rights check fails with exit 7 naming the right
when the rule granting it is removed from the ClusterRole or a Role.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from kubernetes import client as k8s

from deploy import manifests
from utilities import preflight, rights
from utilities.kube import load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess

SA_USER = f"system:serviceaccount:{manifests.NAMESPACE}:{manifests.NAME}"
RBAC_FILES = ("rbac.yaml", "rbac-odf.yaml")
ALL = ("namespace.yaml", *RBAC_FILES, "pvc.yaml", "job.yaml", "cronjob.yaml")


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
    for name in ALL:
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
    return r.namespace


def _res(r) -> str:
    return f"{r.resource}/{r.subresource}" if r.subresource else r.resource


def test_the_rules_name_exactly_the_rights():
    """Every (verb, group, resource, name, where) the committed RBAC grants is a right of the list, and
    every right is granted; no wildcards."""
    objs = [o for f in RBAC_FILES for o in docs(f)]
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
    # Only ODF's namespace, which may be absent, is in a file of its own.
    assert {o["metadata"].get("namespace") for o in docs("rbac-odf.yaml")} == {"openshift-storage"}


# Nothing that reaches other namespaces' credentials or deletes namespaces is granted cluster-wide.
NOT_CLUSTER_WIDE = {("", "secrets"), ("", "serviceaccounts"), ("", "serviceaccounts/token"),
                    (rights.RBAC, "rolebindings"), ("", "pods"), ("", "configmaps"),
                    ("", "persistentvolumeclaims"), ("", "pods/portforward"), ("", "pods/log")}


def test_the_cluster_role_holds_only_what_is_cluster_scoped_or_a_harmless_read():
    role = next(o for o in docs("rbac.yaml") if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                assert (g, res) not in NOT_CLUSTER_WIDE, f"cluster-wide {rule['verbs']} on {res}"
                if res == "namespaces":
                    assert rule["verbs"] == ["list"], rule
                if (g, res) == (rights.RBAC, "clusterroles"):
                    assert rule["verbs"] == ["get"], f"bind is granted in the run's namespace only: {rule}"
    run_ns = manifests.NAMESPACE
    role_in_run_ns = next(o for o in docs("rbac.yaml") if o["kind"] == "Role" and o["metadata"]["namespace"] == run_ns)
    token = [r for r in role_in_run_ns["rules"] if r["resources"] == ["serviceaccounts/token"]]
    assert token and token[0]["verbs"] == ["create"], role_in_run_ns["rules"]
    assert [d["metadata"]["name"] for d in docs("namespace.yaml")] == [run_ns, rights.outsider_namespace(run_ns)]


def _arg(args: list[str], name: str) -> float:
    return float(next(a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")))


def test_the_job_leaves_the_restore_its_time():
    """SIGTERM (the Job's activeDeadlineSeconds, a node drain) makes the suite restore (fixtures/safety.py):
    the grace period covers the longest restore the Job's own timeouts allow, and the deadline plus
    that grace ends before the next night's run."""
    job = docs("job.yaml")[0]
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert f"--run-namespace={manifests.NAMESPACE}" in args
    rollout, control_plane = _arg(args, "rollout-timeout"), _arg(args, "control-plane-timeout")
    longest_restore = 3 * rollout + control_plane
    assert pod["terminationGracePeriodSeconds"] > longest_restore, (pod["terminationGracePeriodSeconds"], longest_restore)
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert deadline >= 2 * 3600, "a full run takes about two hours on vSphere"
    assert deadline + pod["terminationGracePeriodSeconds"] < 24 * 3600
    assert docs("cronjob.yaml")[0]["spec"]["jobTemplate"]["spec"] == job["spec"]


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
    with LocalClusterProcess(d / "lc", ["--control-plane-rollout-seconds=3"]) as lc:
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
            yield admin, path, lc, d
        finally:
            admin.api_client.close()


def _check_rights_as_sa(kubeconfig) -> None:
    cluster = preflight.connect(kubeconfig)
    try:
        assert preflight.whoami(cluster) == SA_USER
        preflight.check_rights(cluster, destructive=True, run_namespace=manifests.NAMESPACE)
    finally:
        cluster.api_client.close()


def test_the_manifests_are_created_and_preflight_passes_as_the_service_account(deployed):
    admin, kubeconfig, _, _ = deployed
    sa = admin.core.read_namespaced_service_account(manifests.NAME, manifests.NAMESPACE)
    assert sa.metadata.labels == {"app.kubernetes.io/name": manifests.NAME}
    job = k8s.BatchV1Api(admin.api_client).read_namespaced_job(manifests.NAME, manifests.NAMESPACE)
    assert job.spec.template.spec.service_account_name == manifests.NAME
    _check_rights_as_sa(kubeconfig)


def _state_of_the_run_namespaces(admin) -> dict:
    """What a run may not leave changed in its two namespaces (they exist before and after it)."""
    out = {}
    for ns in (manifests.NAMESPACE, rights.outsider_namespace(manifests.NAMESPACE)):
        out[ns] = {
            "namespace": admin.core.read_namespace(ns).metadata.uid,
            "serviceaccounts": sorted(a.metadata.name for a in admin.core.list_namespaced_service_account(ns).items),
            "rolebindings": sorted(b.metadata.name for b in k8s.RbacAuthorizationV1Api(
                admin.api_client).list_namespaced_role_binding(ns).items),
            "imagestreams": sorted(i["metadata"]["name"] for i in admin.custom.list_namespaced_custom_object(
                "image.openshift.io", "v1", ns, "imagestreams")["items"]),
        }
    return out


def test_the_whole_suite_passes_as_the_service_account(deployed):
    """The run of the Job (its arguments, --run-namespace), from outside the cluster with the
    ServiceAccount's token: every test passes with exactly the rendered rights, and the run namespaces
    are left as they were (the run's ServiceAccounts, bindings and pushed image streams deleted, the
    namespaces not)."""
    admin, kubeconfig, lc, d = deployed
    before = _state_of_the_run_namespaces(admin)
    args = docs("job.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    args = [a if not a.startswith("--rollout-timeout=") else "--rollout-timeout=60" for a in args]
    cmd = [sys.executable, "-m", "pytest", "tests", *args, f"--kubeconfig={kubeconfig}",
           f"--ingress-address={lc.info['ingress_address']}", f"--reports-dir={d / 'reports'}", "--run-id=as-sa",
           "-p", "no:cacheprovider", "-q", "-rfE"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert " passed" in out and "forbidden" not in out.lower(), out[-3000:]
    assert _state_of_the_run_namespaces(admin) == before
    images = admin.custom.list_cluster_custom_object("image.openshift.io", "v1", "images")["items"]
    assert not images, [i["metadata"]["name"] for i in images]


def test_leftovers_are_found_and_swept_with_the_namespaced_rights(deployed):
    """`python -m utilities leftovers|sweep --run-namespace` as the ServiceAccount: what a killed run left in
    its namespace and in the namespaces it touches is found and deleted without cluster-wide reads."""
    from utilities.labels import labels
    admin, kubeconfig, _, _ = deployed
    mark = labels("killed-run")
    admin.core.create_namespaced_service_account(manifests.NAMESPACE, {"metadata": {"name": "left-sa", "labels": mark}})
    admin.core.create_namespaced_config_map("openshift-config", {"metadata": {"name": "left-cm", "labels": mark}})
    base = [sys.executable, "-m", "utilities"]
    scope = [f"--kubeconfig={kubeconfig}", f"--run-namespace={manifests.NAMESPACE}"]
    found = subprocess.run(base + ["leftovers", *scope], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert f"ServiceAccount {manifests.NAMESPACE}/left-sa (run killed-run)" in found.stdout, found.stdout
    assert "ConfigMap openshift-config/left-cm (run killed-run)" in found.stdout, found.stdout
    swept = subprocess.run(base + ["sweep", *scope], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert swept.returncode == 0, swept.stderr
    assert "left-sa" not in [a.metadata.name for a in admin.core.list_namespaced_service_account(manifests.NAMESPACE).items]
    assert "left-cm" not in [c.metadata.name for c in admin.core.list_namespaced_config_map("openshift-config").items]


def _right(text: str):
    return next(r for r in manifests.run_rights() if str(r) == text)


# A sample (each case is one rule change and one preflight on the cluster): cluster-wide, with
# resourceNames, in a Role, a subresource, a read-only one, and `bind` (whose alternative the
# ServiceAccount does not hold either).
SAMPLE = ["create serviceaccounts/token in registry-conformance",
          "create rolebindings.rbac.authorization.k8s.io in registry-conformance",
          "get secrets in openshift-storage",
          "list secrets in openshift-image-registry",
          "get clusterversions.config.openshift.io 'version' ",
          "update configs.imageregistry.operator.openshift.io",
          "create pods/portforward in openshift-image-registry",
          "get pods/log in openshift-image-registry",
          "get configmaps in openshift-config-managed",
          "bind clusterroles.rbac.authorization.k8s.io 'system:image-builder' in registry-conformance"]


@pytest.mark.parametrize("text", [t.strip() for t in SAMPLE])
def test_preflight_fails_naming_the_right_when_its_rule_is_removed(deployed, text):
    admin, kubeconfig, _, _ = deployed
    target = _right(text)
    with _rule_removed(admin, target):
        with pytest.raises(preflight.PreflightError) as e:
            _check_rights_as_sa(kubeconfig)
        assert e.value.code == preflight.EXIT_FORBIDDEN == 7
        assert f"user {SA_USER} is not allowed to {target} ({target.why})" in e.value.message, e.value.message
    _check_rights_as_sa(kubeconfig)       # restored: the next case starts from the full role


@contextlib.contextmanager
def _rule_removed(admin, target):
    """The Role or ClusterRole of the deploy without the verb that grants `target`, put back at exit."""
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
        yield
    finally:
        role = admin.api_client.sanitize_for_serialization(read())
        role["rules"] = original
        replace(role)


def test_the_run_as_the_service_account_stops_naming_a_missing_right(deployed):
    """The Job's run itself, not only the preflight function: exit 7 before any change, naming the right."""
    admin, kubeconfig, lc, d = deployed
    target = _right("create serviceaccounts/token in registry-conformance")
    args = docs("job.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    cmd = [sys.executable, "-m", "pytest", "tests", *args, f"--kubeconfig={kubeconfig}",
           f"--ingress-address={lc.info['ingress_address']}", f"--reports-dir={d / 'reports'}",
           "--run-id=missing-right", "-p", "no:cacheprovider", "-q"]
    with _rule_removed(admin, target):
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 7, (proc.stdout + proc.stderr)[-3000:]
    assert f"is not allowed to {target} ({target.why})" in proc.stdout + proc.stderr
    assert not (d / "reports" / "missing-right" / "config-snapshot.json").exists()


@pytest.mark.skipif(os.environ.get("BUILD_IMAGE") != "1" or shutil.which("buildah") is None,
                    reason="building the image needs its base image from a container registry, which this "
                           "machine cannot reach (only PyPI, Debian and npm); BUILD_IMAGE=1 tries with buildah")
def test_buildah_builds_the_image(tmp_path):
    proc = subprocess.run(["buildah", "--storage-driver", "vfs", "bud", "--isolation", "chroot", "-f",
                           "deploy/Containerfile", "-t", "registry-conformance:test", "."], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_utilities_rights_renders_the_same_roles_for_a_run_namespace():
    """`python -m utilities rights --run-namespace=NS --yaml --user=U`: the deploy's Roles and ClusterRole
    (for a user instead of the ServiceAccount), from the same list."""
    proc = subprocess.run([sys.executable, "-m", "utilities", "rights", f"--run-namespace={manifests.NAMESPACE}",
                           "--yaml", "--user=alice"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    printed = [d for d in yaml.safe_load_all(proc.stdout) if d]
    shipped = [o for f in RBAC_FILES for o in docs(f)]
    rules = {(o["kind"], o["metadata"].get("namespace")): o["rules"] for o in shipped if "rules" in o}
    assert {(o["kind"], o["metadata"].get("namespace")): o["rules"] for o in printed if "rules" in o} == rules
    subjects = [o["subjects"] for o in printed if o["kind"].endswith("Binding")]
    assert subjects and all(s == [{"kind": "User", "name": "alice", "apiGroup": rights.RBAC}] for s in subjects)
