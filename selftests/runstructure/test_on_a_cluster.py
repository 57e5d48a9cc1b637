"""Issue 7 against one local cluster reached with --kubeconfig (the real-cluster path), a SINGLE-NODE one
(`--worker-nodes=1`) whose control-plane operators take 3 s to roll out:

- item 6: an Unmanaged Config is refused before anything changes (exit 15);
- item 5: a registry in use (Managed with storage; image streams in a user namespace holding images)
  is refused (exit 14) unless --allow-registry-outage;
- items 4, 17, 19: the whole matrix passes on one node, saying what one node cannot show, changes the
  image config's registry hostnames at most six times, waits for kube-apiserver, openshift-apiserver
  and openshift-controller-manager to settle before it reports the cluster restored, and leaves no
  Image, claim or bucket claim behind;
- item 4: a control plane that does not settle in time is reported, with the operators' state.
"""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from selftests.support import served_cluster
from utilities import kube, waits
from utilities import registry_steps as steps
from utilities.junit import pytest_id
from utilities.localcluster_process import REPO_ROOT

ROLLOUT_SECONDS = 3


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-node")
    with served_cluster(tmp / "cluster", ["--worker-nodes=1",
                                          f"--control-plane-rollout-seconds={ROLLOUT_SECONDS}"]) as (lc, cluster):
        yield lc, cluster, tmp


def run_suite(lc, tmp: Path, run_id: str, args: list[str], timeout: float = 500) -> tuple[int, str, Path]:
    cmd = [sys.executable, "-m", "pytest", *args, f"--kubeconfig={lc.kubeconfig}", "--allow-destructive",
           f"--ingress-address={lc.info['ingress_address']}", "--rollout-timeout=60",
           f"--reports-dir={tmp / 'reports'}", f"--run-id={run_id}", "-p", "no:cacheprovider", "-q"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, tmp / "reports" / run_id


def _set_spec(cluster, **fields):
    def mutate(spec):
        spec.update(fields)
    steps.replace_spec(cluster, mutate)


def _back_to_removed(cluster):
    steps.replace_spec(cluster, lambda s: (s.__setitem__("managementState", "Removed"),
                                           s.__setitem__("storage", {})))
    steps.wait_removed(cluster, 60)


READONLY = ["tests/test_management_state.py", "-k", "exist"]


def test_unmanaged_config_is_refused_before_any_change(one_node):
    lc, cluster, tmp = one_node
    _set_spec(cluster, managementState="Unmanaged")
    try:
        rc, out, run_dir = run_suite(lc, tmp, "unmanaged", READONLY)
        assert rc == 15, f"exit {rc}, expected 15 (Unmanaged refused):\n{out[-3000:]}"
        assert "Unmanaged" in out and "operator ignores it" in out, out[-2000:]
        assert not (run_dir / "config-snapshot.json").exists(), "a snapshot was taken: the run had started"
        assert cluster.registry_config()["spec"]["managementState"] == "Unmanaged"
    finally:
        _back_to_removed(cluster)


def test_registry_in_use_is_refused_unless_the_outage_is_allowed(one_node):
    lc, cluster, tmp = one_node
    _set_spec(cluster, managementState="Managed", storage={"emptyDir": {}})
    try:
        waits.wait_for_rollout(cluster, 60)
        rc, out, _ = run_suite(lc, tmp, "in-use", READONLY)
        assert rc == 14, f"exit {rc}, expected 14 (registry in use):\n{out[-3000:]}"
        assert "the image registry is in use: the Config is Managed with storage emptyDir" in out, out[-2000:]
        assert "--allow-registry-outage" in out
        rc, out, _ = run_suite(lc, tmp, "in-use-allowed", READONLY + ["--allow-registry-outage"])
        assert rc == 0, f"--allow-registry-outage did not let it run:\n{out[-3000:]}"
        assert "taking the registry out of service although" in out, out[-2000:]
    finally:
        _back_to_removed(cluster)
    # Image streams in a user namespace that hold images pushed to the registry (an imported-only one
    # elsewhere does not count).
    for ns in ("team-a", "team-b"):
        kube.call(cluster.core.create_namespace, {"metadata": {"name": ns}})
    internal = "image-registry.openshift-image-registry.svc:5000"
    for ns, name, ref in (("team-a", "app", f"{internal}/team-a/app@sha256:{'1' * 64}"),
                          ("team-b", "ubi", f"registry.access.redhat.com/ubi9@sha256:{'2' * 64}")):
        body = {"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
                "metadata": {"name": name, "namespace": ns}, "spec": {}}
        obj = kube.call(cluster.custom.create_namespaced_custom_object, "image.openshift.io", "v1", ns,
                        "imagestreams", body)
        obj["status"] = {"dockerImageRepository": f"{internal}/{ns}/{name}",
                         "tags": [{"tag": "latest", "items": [{"dockerImageReference": ref, "image": "sha256:x"}]}]}
        kube.call(cluster.custom.replace_namespaced_custom_object_status, "image.openshift.io", "v1", ns,
                  "imagestreams", name, obj)
    try:
        rc, out, _ = run_suite(lc, tmp, "in-use-streams", READONLY)
        assert rc == 14, f"exit {rc}, expected 14 (image streams holding images):\n{out[-3000:]}"
        assert "1 image stream(s) in user namespaces hold images pushed to it: team-a/app (1 tag)" in out, out[-2000:]
        assert "team-b" not in out.split("in use:", 1)[-1].split("\n", 1)[0]
    finally:
        for ns in ("team-a", "team-b"):
            kube.call(cluster.core.delete_namespace, ns)


def test_whole_matrix_on_one_node(one_node):
    lc, cluster, tmp = one_node
    before = cluster.registry_config()["spec"]
    rc, out, run_dir = run_suite(lc, tmp, "matrix", ["tests"])
    assert rc == 0, out[-5000:]
    root = ET.parse(run_dir / "junit.xml").getroot()
    skips = {pytest_id(tc): tc.find("skipped").get("message", "") for tc in root.iter("testcase")
             if tc.find("skipped") is not None}
    for b in ("cephfs", "ceph-rgw", "noobaa"):
        reason = skips.get(f"test_replicas_spread_over_nodes[{b}]", "")
        assert "single-node cluster" in reason and "not shown" in reason, (b, reason)
    reason = skips.get("test_rwo_claim_is_held_to_one_node[block]", "")
    assert "single-node cluster" in reason and "cannot show" in reason, reason
    assert "what this cluster could not show" in out
    ran = sum(1 for tc in root.iter("testcase") if tc.find("skipped") is None)
    assert ran >= 50, f"only {ran} tests ran"
    # The control plane: at most six changes of the registry hostnames from Removed; settled at the end.
    cp = json.loads((run_dir / "control-plane.json").read_text())
    assert 1 <= cp["count"] <= 6, cp
    assert cp["settled"] is True and not cp["pending"], cp
    assert all("Progressing=False" in s for s in cp["final"].values()), cp["final"]
    assert f"changed the registry hostnames of images.config.openshift.io/cluster {cp['count']} time(s)" in out
    # Nothing left: Images of the pushes, claims, bucket claims; the Config as it was.
    images = kube.call(cluster.custom.list_cluster_custom_object, "image.openshift.io", "v1", "images")["items"]
    assert not images, f"Images left behind: {[i['metadata']['name'] for i in images]}"
    assert not kube.call(cluster.core.list_namespaced_persistent_volume_claim, "openshift-image-registry").items
    assert not kube.call(cluster.custom.list_namespaced_custom_object, "objectbucket.io", "v1alpha1",
                         "openshift-storage", "objectbucketclaims")["items"]
    assert cluster.registry_config()["spec"] == before


def test_control_plane_not_settling_in_time_is_reported(one_node):
    lc, cluster, tmp = one_node
    rc, out, run_dir = run_suite(lc, tmp, "cp-timeout", ["tests/test_storage_backends.py", "--backend=emptydir",
                                                         "-k", "rollout_completes", "--control-plane-timeout=0.5"])
    assert rc == 1, f"exit {rc}:\n{out[-3000:]}"
    assert "the control plane did not settle within 0 s" in out or "did not settle within" in out, out[-3000:]
    assert "ClusterOperator kube-apiserver: " in out and "Progressing=True" in out, out[-3000:]
    waits.wait_for_clusteroperator(cluster, {"Progressing": ("False", None)}, 60, name="kube-apiserver")
