"""--run-namespace: the run uses existing namespaces for its own objects and deletes only what it made in
them, never the namespaces, also when it is killed and `python -m utilities restore` cleans up; a
namespace that does not exist stops the run before anything changes (exit 4). Against a served local
cluster, with the suite in a subprocess."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from kubernetes import client as k8s

from selftests.support import served_cluster_in
from utilities import kube, rights
from utilities.localcluster_process import REPO_ROOT

RUN_NS = "conformance-runs"
ACCESS = ["tests/test_registry_access.py"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "run-namespace", ["--control-plane-rollout-seconds=1",
                                                                     # the suite's requests slowed: time to kill it
                                                                     "--api-latency=0.1"]) as served:
        yield served


def _suite(lc, tmp, run_id, args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pytest", *args, f"--kubeconfig={lc.kubeconfig}", "--allow-destructive",
           f"--ingress-address={lc.info['ingress_address']}", "--rollout-timeout=60",
           f"--reports-dir={tmp / 'reports'}", f"--run-id={run_id}", "-p", "no:cacheprovider", "-q"]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_run_namespace_that_does_not_exist_stops_the_run(served):
    lc, cluster, tmp = served
    proc = _suite(lc, tmp, "missing", ACCESS + ["--run-namespace=nowhere"])
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 4, out[-3000:]
    assert "--run-namespace=nowhere: namespace nowhere does not exist" in out
    assert not (tmp / "reports" / "missing" / "config-snapshot.json").exists()


def _state(cluster) -> dict:
    rbac = k8s.RbacAuthorizationV1Api(cluster.api_client)
    out = {}
    for ns in (RUN_NS, rights.outsider_namespace(RUN_NS)):
        out[ns] = {
            "uid": cluster.core.read_namespace(ns).metadata.uid,
            "serviceaccounts": sorted(a.metadata.name for a in cluster.core.list_namespaced_service_account(ns).items),
            "rolebindings": sorted(b.metadata.name for b in rbac.list_namespaced_role_binding(ns).items),
            "imagestreams": sorted(i["metadata"]["name"] for i in cluster.custom.list_namespaced_custom_object(
                "image.openshift.io", "v1", ns, "imagestreams")["items"])}
    return out


def _images_in(cluster, ns) -> list[str]:
    items = cluster.custom.list_cluster_custom_object("image.openshift.io", "v1", "images")["items"]
    return [i["metadata"]["name"] for i in items if f"/{ns}/" in str(i.get("dockerImageReference"))]


def test_killed_after_pushing_restore_deletes_only_what_the_run_made(served):
    lc, cluster, tmp = served
    for ns in (RUN_NS, rights.outsider_namespace(RUN_NS)):
        kube.call(cluster.core.create_namespace, {"metadata": {"name": ns}})
    # What someone else keeps there: the run must leave it alone.
    kube.call(cluster.core.create_namespaced_service_account, RUN_NS, {"metadata": {"name": "theirs"}})
    kube.call(cluster.custom.create_namespaced_custom_object, "image.openshift.io", "v1", RUN_NS, "imagestreams",
              {"apiVersion": "image.openshift.io/v1", "kind": "ImageStream", "metadata": {"name": "kept"}})
    before = _state(cluster)

    proc = _suite(lc, tmp, "killed", ACCESS + [f"--run-namespace={RUN_NS}"])
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline and not _images_in(cluster, RUN_NS):
        time.sleep(0.02)
    pushed = _images_in(cluster, RUN_NS)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{out[-3000:]}"
    assert pushed, out[-3000:]
    journal = [json.loads(line) for line in (tmp / "reports" / "killed" / "journal.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "run-namespace" and e.get("name") == RUN_NS and e.get("streams") == ["kept"]
               for e in journal), journal
    assert _state(cluster) != before             # the run's ServiceAccount and stream are there

    restore = subprocess.run([sys.executable, "-m", "utilities", "restore", f"--kubeconfig={lc.kubeconfig}",
                              f"--run-dir={tmp / 'reports' / 'killed'}", "--break-lock", "--timeout=60"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert _state(cluster) == before
    assert _images_in(cluster, RUN_NS) == []
    assert f"ImageStream {RUN_NS}/" in restore.stdout, restore.stdout


def test_on_the_embedded_cluster_a_missing_run_namespace_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", *ACCESS, "--run-namespace=nowhere", "-q",
                           "-p", "no:cacheprovider", f"--reports-dir={tmp_path}"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4, (proc.stdout + proc.stderr)[-3000:]
    assert "--run-namespace=nowhere: namespace nowhere does not exist" in proc.stdout + proc.stderr
    assert "the Config was restored exactly" in proc.stdout + proc.stderr
