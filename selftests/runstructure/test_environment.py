"""Issue 7 on a local cluster without vSAN File Services and without ODF (reached with --kubeconfig):

- item 13: default-pvc on thin-csi without vSAN File Services SKIPS as an environment without
  ReadWriteMany volumes (the claim's ProvisioningFailed quoted), not as an operator failure; named with
  --backend, it fails the run as a backend that cannot run here (issue 16: exit 16);
- item 11: an original Config with rolloutStrategy Recreate and a nodeSelector: the emptyDir backend
  still rolls out with RollingUpdate (every backend sets what its procedure implies), and the
  inherited nodeSelector is reported;
- item 6: a restore onto an Unmanaged original that leaves the Deployment as the run changed it reports
  the difference instead of success.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from selftests.runstructure.test_on_a_cluster import (
    _back_to_removed,
    _set_spec,
    run_suite,
)
from selftests.support import served_cluster
from utilities import kube, waits
from utilities import registry_steps as steps
from utilities import snapshot as snapshots
from utilities.junit import pytest_id

BACKENDS = "tests/test_storage_backends.py"


@pytest.fixture(scope="module")
def no_rwx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("no-rwx")
    with served_cluster(tmp / "cluster", ["--no-vsan-file-services", "--no-odf"]) as (lc, cluster):
        yield lc, cluster, tmp


def _outcomes(run_dir):
    out = {}
    for tc in ET.parse(run_dir / "junit.xml").getroot().iter("testcase"):
        for kind in ("skipped", "failure", "error"):
            el = tc.find(kind)
            if el is not None:
                out[pytest_id(tc)] = (kind, el.get("message") or "")
                break
        else:
            out[pytest_id(tc)] = ("passed", "")
    return out


def test_default_pvc_without_rwx_skips_as_the_environment(no_rwx):
    lc, cluster, tmp = no_rwx
    rc, out, run_dir = run_suite(lc, tmp, "no-rwx", [BACKENDS, "--backend=default-pvc", "-k", "rollout_completes"])
    assert rc == 16, out[-4000:]
    assert "\ndefault-pvc: an environment without ReadWriteMany volumes" in out, out[-4000:]
    kind, msg = _outcomes(run_dir)["test_rollout_completes[default-pvc]"]
    assert kind == "skipped", (kind, msg)
    assert "an environment without ReadWriteMany volumes" in msg and "thin-csi" in msg, msg
    assert "vsan file service may be disabled" in msg, msg
    assert not kube.call(cluster.core.list_namespaced_persistent_volume_claim, "openshift-image-registry").items


def test_original_recreate_and_node_selector_do_not_leak_unnoticed(no_rwx):
    lc, cluster, tmp = no_rwx
    _set_spec(cluster, rolloutStrategy="Recreate", nodeSelector={"node-role.kubernetes.io/worker": ""})
    try:
        rc, out, run_dir = run_suite(lc, tmp, "inherited", [BACKENDS, "--backend=emptydir", "-k",
                                                            "rollout_completes or spread"])
        assert rc == 0, out[-4000:]
        assert _outcomes(run_dir)["test_rollout_completes[emptydir]"][0] == "passed"
        assert "emptydir: inherited from the original Config" in out and "nodeSelector=" in out, out[-3000:]
        spec = cluster.registry_config()["spec"]
        assert spec["rolloutStrategy"] == "Recreate" and spec["nodeSelector"], "the original was not put back"
    finally:
        spec = cluster.registry_config()["spec"]
        spec.pop("nodeSelector", None)
        steps.put_spec(cluster, dict(spec, rolloutStrategy="RollingUpdate"))


def test_restore_onto_unmanaged_reports_the_deployment_left_changed(no_rwx, tmp_path):
    lc, cluster, tmp = no_rwx
    _set_spec(cluster, managementState="Managed", storage={"emptyDir": {}}, rolloutStrategy="RollingUpdate")
    try:
        waits.wait_for_rollout(cluster, 60)
        _set_spec(cluster, managementState="Unmanaged")
        snapshots.take_snapshot(cluster, tmp_path, "unmanaged-original")
        _set_spec(cluster, managementState="Managed", rolloutStrategy="Recreate")   # what a run would do
        waits.wait_for_config(cluster, lambda o: o is not None and waits.config_synced(o), 60, "synced")
        waits.wait_for_rollout(cluster, 60)
        result = snapshots.restore(cluster, tmp_path, force=True, timeout=60)
        text = "; ".join(result.problems)
        assert "the registry Deployment is not as it was (the original Config is Unmanaged" in text, result
        assert "Deployment.strategy: originally 'RollingUpdate', now 'Recreate'" in text, result
    finally:
        _back_to_removed(cluster)


def test_cleanup_deletes_only_the_object_the_run_created(no_rwx):
    """Item 17: the journal names a claim the run created; a later claim of the same name (e.g. the
    operator's own image-registry-storage) is not deleted; the run's own one is."""
    lc, cluster, tmp = no_rwx
    ns, name = "openshift-image-registry", "registry-conformance-uid"
    body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    ours = kube.call(cluster.core.create_namespaced_persistent_volume_claim, ns, body)
    steps.delete_and_wait(cluster, "pvc", name, ns, 30)
    later = kube.call(cluster.core.create_namespaced_persistent_volume_claim, ns, body)
    journal = [{"event": "created", "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                "name": name, "uid": ours.metadata.uid}]
    try:
        assert snapshots.delete_created(cluster, journal) == []
        still = kube.get_or_none(cluster.core.read_namespaced_persistent_volume_claim, name, ns)
        assert still is not None and still.metadata.uid == later.metadata.uid, "a later claim of the same name was deleted"
        journal[0]["uid"] = later.metadata.uid
        assert snapshots.delete_created(cluster, journal) == [f"PersistentVolumeClaim {ns}/{name}"]
    finally:
        steps.delete_and_wait(cluster, "pvc", name, ns, 30)
