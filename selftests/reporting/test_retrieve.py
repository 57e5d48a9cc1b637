"""deploy/retrieve.py copies a finished in-cluster run's reports out of the reports claim.

Checked: the helper pod object (valid for the official client's model, the claim read-only, ends by
itself); the code the pod runs (`PACKER`, run here as the pod would, on a reports tree with its `latest`
link) and the unpacking of its output, which refuses members outside the run; and, end to end on a served
local cluster (whose kubelet offers pods/exec, running the command as a local process with /reports
mapped to the claim's volume): the command as a user holding exactly its `--rights` copies the run and
deletes its pod, a missing run gives its message and exit 16, and a user without pods/exec gets exit 16
naming the right.
"""
from __future__ import annotations

import base64
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from deploy import manifests, retrieve
from selftests.reporting.test_deploy import _unknown_keys, docs
from utilities.localcluster_process import REPO_ROOT


def test_the_helper_pod_mounts_the_claim_read_only_and_ends_by_itself():
    pod = retrieve.helper_pod("img:1", suffix="abc")
    assert _unknown_keys(pod, "V1Pod") == []
    assert pod["metadata"] == {"name": "registry-conformance-retrieve-abc", "namespace": manifests.NAMESPACE,
                               "labels": {"app.kubernetes.io/name": "registry-conformance",
                                          "app.kubernetes.io/component": "retrieve"}}
    spec = pod["spec"]
    assert spec["volumes"] == [{"name": "reports", "persistentVolumeClaim": {
        "claimName": docs("pvc.yaml")[0]["metadata"]["name"], "readOnly": True}}]
    (c,) = spec["containers"]
    assert c["volumeMounts"] == [{"name": "reports", "mountPath": "/reports", "readOnly": True}]
    assert c["command"] == ["sleep", str(retrieve.POD_SECONDS)] and spec["activeDeadlineSeconds"] == retrieve.POD_SECONDS
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    assert retrieve.helper_pod("img:1")["metadata"]["name"] != retrieve.helper_pod("img:1")["metadata"]["name"]


@pytest.fixture
def claim(tmp_path):
    """A reports claim's content as the suite leaves it: two runs and `latest` pointing at the newer."""
    root = tmp_path / "claim"
    for run in ("nightly-1", "nightly-2"):
        (root / run / "allure-results").mkdir(parents=True)
        (root / run / "junit.xml").write_text(f"<testsuites name='{run}'/>")
        (root / run / "allure-results" / "a-result.json").write_text("{}")
    (root / "latest").symlink_to("nightly-2")
    return root


def _pack(root, run):
    """What the helper pod prints for `run` (its PACKER, run as the pod runs it)."""
    cmd = retrieve.packer_command(run)
    assert cmd[:2] == ["python", "-c"] and cmd[3] == "/reports"
    return subprocess.run([sys.executable, "-c", cmd[2], str(root), run], capture_output=True, text=True)


def test_latest_is_packed_and_unpacked_into_dest(claim, tmp_path):
    proc = _pack(claim, "latest")
    assert proc.returncode == 0, proc.stderr
    where = retrieve.unpack(proc.stdout, tmp_path / "out")
    assert where == (tmp_path / "out" / "nightly-2").resolve()
    assert (where / "junit.xml").read_text() == "<testsuites name='nightly-2'/>"
    assert (where / "allure-results" / "a-result.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["nightly-2"]


def test_a_named_run_and_a_missing_one(claim, tmp_path):
    assert retrieve.unpack(_pack(claim, "nightly-1").stdout, tmp_path / "out").name == "nightly-1"
    proc = _pack(claim, "nightly-9")
    assert proc.returncode == 3 and "no run nightly-9 in the reports claim; runs: nightly-1 nightly-2" in proc.stderr


def _archive(run, members) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return f"{run}\n" + base64.b64encode(buf.getvalue()).decode()


def _member(name, kind=tarfile.REGTYPE, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member", [_member("r/../../evil"), _member("other/file"),
                                    _member("r/link", tarfile.SYMTYPE, "/etc/passwd")])
def test_an_archive_reaching_outside_the_run_is_refused(tmp_path, member):
    with pytest.raises(retrieve.RetrieveError, match="refused member"):
        retrieve.unpack(_archive("r", [_member("r", tarfile.DIRTYPE), member]), tmp_path / "out")
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "other").exists()


def test_the_rights_it_needs_are_printed():
    proc = subprocess.run([sys.executable, "-m", "deploy.retrieve", "--rights", "--namespace", "ns1"], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for line in ("create pods in ns1", "delete pods in ns1", "create pods/exec in ns1", "get pods/exec in ns1",
                 "get jobs.batch in ns1", "get persistentvolumeclaims in ns1"):
        assert line in proc.stdout, proc.stdout


RETRIEVER = "retriever"


def _as_retriever(lc, cluster, path, rights) -> Path:
    """A kubeconfig for the ServiceAccount `retriever` holding exactly `rights` (its Role replaced)."""
    from kubernetes import client as k8s

    from utilities import rights as r
    rbac = k8s.RbacAuthorizationV1Api(cluster.api_client)
    role = {"metadata": {"name": RETRIEVER}, "rules": r.rules(rights)}
    if not cluster.core.list_namespaced_service_account(manifests.NAMESPACE,
                                                        field_selector=f"metadata.name={RETRIEVER}").items:
        cluster.core.create_namespaced_service_account(manifests.NAMESPACE, {"metadata": {"name": RETRIEVER}})
        rbac.create_namespaced_role(manifests.NAMESPACE, role)
        rbac.create_namespaced_role_binding(manifests.NAMESPACE, {
            "metadata": {"name": RETRIEVER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RETRIEVER},
            "subjects": [{"kind": "ServiceAccount", "name": RETRIEVER, "namespace": manifests.NAMESPACE}]})
    else:
        rbac.replace_namespaced_role(RETRIEVER, manifests.NAMESPACE, role)
    token = cluster.core.create_namespaced_service_account_token(
        RETRIEVER, manifests.NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    kc = yaml.safe_load(lc.kubeconfig.read_text())
    kc["users"] = [{"name": RETRIEVER, "user": {"token": token}}]
    kc["contexts"] = [{"name": RETRIEVER, "context": {"cluster": kc["clusters"][0]["name"], "user": RETRIEVER}}]
    kc["current-context"] = RETRIEVER
    path.write_text(yaml.safe_dump(kc))
    return path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A served local cluster with what a run leaves: the namespace, the Job naming the image, and the
    reports claim (bound at once) holding two runs and `latest` -> the newer; (lc, admin Cluster, the
    claim's host directory, a tmp dir)."""
    from kubernetes import client as k8s

    from selftests.support import served_cluster_in
    with served_cluster_in(tmp_path_factory, "retrieve") as (lc, cluster, tmp):
        proc = _retrieve(lc.kubeconfig, tmp / "before")
        assert proc.returncode == 16 and \
            "no claim registry-conformance/registry-conformance-reports" in proc.stderr, proc.stderr
        for name in ("namespace.yaml", "pvc.yaml", "job.yaml"):
            for o in docs(name):
                if o["kind"] == "Namespace":
                    cluster.core.create_namespace(o)
                elif o["kind"] == "PersistentVolumeClaim":
                    cluster.core.create_namespaced_persistent_volume_claim(o["metadata"]["namespace"], o)
                else:
                    k8s.BatchV1Api(cluster.api_client).create_namespaced_job(o["metadata"]["namespace"], o)
        from selftests.support import wait_until
        pvc = wait_until(lambda: (lambda c: c if c.spec.volume_name else None)(
            cluster.core.read_namespaced_persistent_volume_claim(manifests.REPORTS_CLAIM, manifests.NAMESPACE)),
            timeout=30, what="the reports claim bound")
        pv = cluster.core.read_persistent_volume(pvc.spec.volume_name)
        host = Path(pv.metadata.annotations["localcluster.openshift.io/host-path"])
        host.mkdir(parents=True, exist_ok=True)
        for run in ("nightly-1", "nightly-2"):
            (host / run / "allure-results").mkdir(parents=True)
            (host / run / "junit.xml").write_text(f"<testsuites name='{run}'/>")
            (host / run / "allure-results" / "a-result.json").write_text("{}")
            (host / run / "certificate.html").write_text(f"<html>{run}</html>")
        (host / "latest").symlink_to("nightly-2")
        yield lc, cluster, host, tmp


def _retrieve(kubeconfig, dest, *args):
    cmd = [sys.executable, "-m", "deploy.retrieve", f"--kubeconfig={kubeconfig}", *args, str(dest)]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _helper_pods_left(cluster) -> list[str]:
    return [p.metadata.name for p in cluster.core.list_namespaced_pod(manifests.NAMESPACE).items
            if p.metadata.name.startswith("registry-conformance-retrieve-") and not p.metadata.deletion_timestamp]


def test_the_latest_run_is_copied_out_with_exactly_the_rights_it_names(deployed, tmp_path):
    lc, cluster, host, _ = deployed
    kc = _as_retriever(lc, cluster, tmp_path / "kubeconfig", retrieve.RIGHTS)
    proc = _retrieve(kc, tmp_path / "out")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    where = tmp_path / "out" / "nightly-2"
    assert f"retrieved {where.resolve()}" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["nightly-2"]
    assert _files(where) == _files(host / "nightly-2") and len(_files(where)) == 3
    assert _helper_pods_left(cluster) == []
    proc = _retrieve(kc, tmp_path / "named", "--run=nightly-1")
    assert proc.returncode == 0 and _files(tmp_path / "named" / "nightly-1") == _files(host / "nightly-1"), proc.stderr


def test_a_missing_run_names_the_runs_there(deployed, tmp_path):
    lc, cluster, _, _ = deployed
    proc = _retrieve(lc.kubeconfig, tmp_path / "out", "--run=nightly-9")
    assert proc.returncode == 16, (proc.stdout, proc.stderr)
    assert "no run nightly-9 in the reports claim; runs: nightly-1 nightly-2" in proc.stderr
    assert not (tmp_path / "out").exists() and _helper_pods_left(cluster) == []


@pytest.mark.parametrize("verb", ["create", "get"])
def test_without_pods_exec_it_names_the_right(deployed, tmp_path, verb):
    """As kube 1.35 checks a WebSocket exec (get, and create with AuthorizePodWebsocketUpgradeCreatePermission),
    the local cluster needs both: either one missing refuses the copy."""
    lc, cluster, _, _ = deployed
    kept = [r for r in retrieve.RIGHTS if not (r.subresource == "exec" and r.verb == verb)]
    assert len(kept) == len(retrieve.RIGHTS) - 1
    proc = _retrieve(_as_retriever(lc, cluster, tmp_path / "kubeconfig", kept), tmp_path / "out")
    assert proc.returncode == 16, (proc.stdout, proc.stderr)
    assert '403 Forbidden: pods "registry-conformance-retrieve-' in proc.stderr, proc.stderr
    assert f'cannot {verb} resource "pods/exec"' in proc.stderr and "create and get on pods/exec" in proc.stderr
    assert not (tmp_path / "out").exists() and _helper_pods_left(cluster) == []
