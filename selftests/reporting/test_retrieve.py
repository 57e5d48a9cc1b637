"""deploy/retrieve.py copies a finished in-cluster run's reports out of the reports claim.

The local cluster's kubelet runs only the registry image (any other image is a pause container) and its
API server has no pods/exec, so the copy itself is not run end to end here. What is: the helper pod
object (valid for the official client's model, the claim read-only, ends by itself); the code the pod
runs (`PACKER`, run here as the pod would, on a reports tree with its `latest` link) and the unpacking
of its output, which refuses members outside the run; and, on a served local cluster, the command up to
the exec: it starts the helper pod, fails with exit 16 and a line saying what to do, and deletes the pod.
"""
from __future__ import annotations

import base64
import io
import subprocess
import sys
import tarfile

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


def test_on_a_served_cluster_the_helper_pod_is_started_and_always_deleted(tmp_path):
    """The local cluster has no pods/exec: the command starts the pod, fails saying so (exit 16), and
    leaves no pod behind; without the claim it says where to look."""
    from kubernetes import client as k8s

    from selftests.support import served_cluster
    with served_cluster(tmp_path / "cluster") as (lc, cluster):
        cmd = [sys.executable, "-m", "deploy.retrieve", f"--kubeconfig={lc.kubeconfig}", str(tmp_path / "out")]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 16 and "no claim registry-conformance/registry-conformance-reports" in proc.stderr
        for name in ("namespace.yaml", "pvc.yaml", "job.yaml"):
            for o in docs(name):
                if o["kind"] == "Namespace":
                    cluster.core.create_namespace(o)
                elif o["kind"] == "PersistentVolumeClaim":
                    cluster.core.create_namespaced_persistent_volume_claim(o["metadata"]["namespace"], o)
                else:
                    k8s.BatchV1Api(cluster.api_client).create_namespaced_job(o["metadata"]["namespace"], o)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 16, (proc.returncode, proc.stdout, proc.stderr)
        assert "retrieve: pods/exec into registry-conformance/registry-conformance-retrieve-" in proc.stderr, proc.stderr
        left = [p.metadata.name for p in cluster.core.list_namespaced_pod(manifests.NAMESPACE).items
                if p.metadata.name.startswith("registry-conformance-retrieve-")]
        assert left == [] or all(p.metadata.deletion_timestamp for p in cluster.core.list_namespaced_pod(
            manifests.NAMESPACE).items if p.metadata.name in left), left
        assert not (tmp_path / "out").exists()
    assert yaml.safe_dump(retrieve.helper_pod("x"))
