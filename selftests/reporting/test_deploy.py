"""deploy/: the committed manifests are deploy/manifests.py's output; they are valid objects of their kinds;
the ones the local cluster serves are created there; and the preflight rights check, run unchanged as the
ServiceAccount, passes with the generated rules and fails naming the right when one rule is removed.

The local cluster neither evaluates RBAC objects nor issues ServiceAccount tokens (nor serves
rbac.authorization.k8s.io and batch), so the SelfSubjectAccessReviews of `preflight.check_rights` are
answered here by a small HTTP endpoint that evaluates the generated Role/ClusterRole rules as Kubernetes
RBAC does (verbs, API groups, resources with subresources, namespaces of Roles): the rule set is tested
directly, through the real preflight code and the official client.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from kubernetes import client as k8s

from deploy import manifests
from utilities import preflight
from utilities.kube import Cluster, load_cluster
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess

SA_USER = f"system:serviceaccount:{manifests.NAMESPACE}:{manifests.NAME}"


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


def test_the_rules_name_exactly_the_rights():
    rights = manifests.run_rights()
    cluster_rules, ns_rules = manifests.rbac_rules(rights)
    granted = {(v, g, res, None) for r in cluster_rules for g in r["apiGroups"] for res in r["resources"]
               for v in r["verbs"]}
    granted |= {(v, g, res, ns) for ns, rules in ns_rules.items() for r in rules for g in r["apiGroups"]
                for res in r["resources"] for v in r["verbs"]}
    wanted = {(r.verb, r.group, manifests._resource(r), r.namespace) for r in rights}
    assert granted == wanted
    assert not any("*" in x for r in cluster_rules for x in r["verbs"] + r["resources"] + r["apiGroups"])


# --- RBAC evaluation of the generated objects, behind a SelfSubjectAccessReview endpoint ---------------
def rbac_allows(objs: list[dict], user: str, attrs: dict) -> bool:
    """Kubernetes RBAC: a (Cluster)RoleBinding to `user` grants its role's rules; a ClusterRoleBinding
    everywhere, a RoleBinding only in its namespace."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs
             if o["kind"] in ("Role", "ClusterRole")}
    res = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
    ns = attrs.get("namespace") or None
    for b in objs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(f"system:serviceaccount:{s.get('namespace')}:{s['name']}" == user for s in b["subjects"]
                   if s["kind"] == "ServiceAccount"):
            continue
        if b["kind"] == "RoleBinding" and b["metadata"]["namespace"] != ns:
            continue
        ref = b["roleRef"]
        role = roles.get((ref["kind"], b["metadata"].get("namespace") if ref["kind"] == "Role" else None, ref["name"]))
        for rule in (role or {}).get("rules", []):
            if (attrs.get("verb") in rule["verbs"] or "*" in rule["verbs"]) and \
                    (attrs.get("group", "") in rule["apiGroups"] or "*" in rule["apiGroups"]) and \
                    (res in rule["resources"] or "*" in rule["resources"]):
                return True
    return False


class ReviewServer:
    def __init__(self, objs: list[dict]):
        self.objs = objs
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.startswith("/apis/user.openshift.io/v1/users/~"):
                    return self._send(200, {"kind": "User", "apiVersion": "user.openshift.io/v1",
                                            "metadata": {"name": SA_USER}})
                self._send(404, {"kind": "Status", "code": 404})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                attrs = body["spec"]["resourceAttributes"]
                body["status"] = {"allowed": rbac_allows(outer.objs, SA_USER, attrs)}
                self._send(201, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def cluster(self) -> Cluster:
        cfg = k8s.Configuration()
        cfg.host = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        cfg.api_key = {"authorization": "Bearer sa-token-for-the-test"}
        return Cluster(api_client=k8s.ApiClient(cfg), token="sa-token-for-the-test", server=cfg.host,
                       ca_file="", kubeconfig="", context=None)

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def review_server():
    servers = []

    def make(objs):
        servers.append(ReviewServer(objs))
        return servers[-1].cluster()
    yield make
    for s in servers:
        s.close()


def test_preflight_passes_as_the_service_account(review_server):
    preflight.check_rights(review_server(docs("rbac.yaml")), destructive=True)


@pytest.mark.parametrize("right", [str(r) for r in manifests.run_rights()])
def test_preflight_fails_naming_the_right_when_its_rule_is_removed(review_server, right):
    target = next(r for r in manifests.run_rights() if str(r) == right)
    objs = copy.deepcopy(docs("rbac.yaml"))
    for o in objs:
        if o["kind"] in ("Role", "ClusterRole") and o["metadata"].get("namespace") == target.namespace:
            for rule in o["rules"]:
                if rule["apiGroups"] == [target.group] and rule["resources"] == [manifests._resource(target)]:
                    rule["verbs"].remove(target.verb)
    with pytest.raises(preflight.PreflightError) as e:
        preflight.check_rights(review_server(objs), destructive=True)
    assert e.value.code == preflight.EXIT_FORBIDDEN
    assert f"user {SA_USER} is not allowed to {right} (403)" in e.value.message, e.value.message


def test_served_manifests_are_created_on_the_local_cluster(tmp_path):
    """Namespace, ServiceAccount and the reports PVC (what the local API server serves) are accepted."""
    with LocalClusterProcess(tmp_path / "lc") as lc:
        c = load_cluster(lc.kubeconfig, embedded=True, info=lc.info)
        try:
            ns = docs("namespace.yaml")[0]
            c.core.create_namespace(ns)
            sa = next(d for d in docs("rbac.yaml") if d["kind"] == "ServiceAccount")
            c.core.create_namespaced_service_account(sa["metadata"]["namespace"], sa)
            pvc = docs("pvc.yaml")[0]
            c.core.create_namespaced_persistent_volume_claim(pvc["metadata"]["namespace"], pvc)
            got = c.core.read_namespaced_service_account(manifests.NAME, manifests.NAMESPACE)
            assert got.metadata.labels == sa["metadata"]["labels"]
            assert c.core.read_namespaced_persistent_volume_claim(manifests.REPORTS_CLAIM, manifests.NAMESPACE)
        finally:
            c.api_client.close()


@pytest.mark.skipif(os.environ.get("BUILD_IMAGE") != "1" or shutil.which("buildah") is None,
                    reason="building the image needs its base image from a container registry, which this "
                           "machine cannot reach (only PyPI, Debian and npm); BUILD_IMAGE=1 tries with buildah")
def test_buildah_builds_the_image(tmp_path):
    proc = subprocess.run(["buildah", "--storage-driver", "vfs", "bud", "--isolation", "chroot", "-f",
                           "deploy/Containerfile", "-t", "registry-conformance:test", "."], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
