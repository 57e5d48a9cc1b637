"""The suite's judgement and the local cluster's emulation, held against objects from real clusters.

`../shared/realdata/` holds verbatim dumps from real OpenShift clusters (see its SOURCES.md): CI
must-gathers (vSphere, AWS, Azure, bare metal) of healthy registries, and an insights sample of a GCS
registry stuck with "Unable to apply resources". Tests read them from there and skip, saying so,
where they are absent.
"""
from __future__ import annotations

import glob
import json
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config as kconfig

from selftests.support import wait_until
from utilities.localcluster_process import REPO_ROOT, LocalClusterProcess
from utilities.waits import RolloutJudge, Snapshot, config_synced

REALDATA = REPO_ROOT.parent / "shared" / "realdata"
PLATFORMS = ("vsphere", "aws", "azure", "metal")
GCS_ERROR = "openshift__insights-operator__docs__insights-archive-sample__config__clusteroperator__" \
            "imageregistry.operator.openshift.io__config__cluster.at-1538757-gcs-progressing-error.json"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real cluster data not found at {path} (../shared/realdata is not beside the checkout)")
    return path


def _docs(path: Path) -> list[dict]:
    out = []
    for d in yaml.safe_load_all(path.read_text()):
        if not d:
            continue
        out += (d.get("items") or []) if "items" in d else [d]
    return out


def _must_gather(platform: str) -> Path:
    found = glob.glob(str(_need(REALDATA) / f"*must-gather-{platform}*subset" / f"must-gather-{platform}" / "*"))
    if not found:
        pytest.skip(f"no {platform} must-gather under {REALDATA}")
    return Path(found[0])


def _snapshot(mg: Path) -> Snapshot:
    cfg = _docs(mg / "cluster-scoped-resources/imageregistry.operator.openshift.io/configs/cluster.yaml")[0]
    ns = mg / "namespaces/openshift-image-registry"
    deps = [d for d in _docs(ns / "apps/deployments.yaml") if d["metadata"]["name"] == "image-registry"]
    pods = [p for p in _docs(ns / "core/pods.yaml")
            if (p["metadata"].get("labels") or {}).get("docker-registry") == "default"]
    return Snapshot(config=cfg, deployment=deps[0] if deps else None, pods=pods,
                    pvcs=_docs(ns / "core/persistentvolumeclaims.yaml"), events=_docs(ns / "core/events.yaml"))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_rollout_judge_calls_real_healthy_registries_complete(platform):
    """The rollout wait would stop, with success, on each real healthy registry: it neither waits
    forever on a state real clusters reach nor sees a failure in their (71-104) events."""
    snap = _snapshot(_must_gather(platform))
    assert config_synced(snap.config)
    assert RolloutJudge.complete(snap), f"{platform}: a healthy real registry is not judged complete"
    judge = RolloutJudge(since=0)
    assert judge.failure(snap, time.time()) is None
    assert judge.failure(snap, time.time() + 60) is None


def test_rollout_judge_fails_on_a_real_persisting_apply_error():
    """A real Config stuck with Progressing=True/Error is a failure, quoted, once it persists."""
    cfg = json.loads(_need(REALDATA / GCS_ERROR).read_text())
    snap = Snapshot(config=cfg, deployment=None, pods=[], pvcs=[], events=[])
    judge = RolloutJudge(since=0, apply_error_grace=5)
    now = time.time()
    assert judge.failure(snap, now) is None          # not yet: it may be a passing error
    reason = judge.failure(snap, now + 6)
    assert reason and "Unable to apply resources" in reason and "installer-cloud-credentials" in reason, reason
    assert not RolloutJudge.complete(snap)


# The conditions the local operator writes for a healthy emptyDir registry, held against the real
# vSphere cluster's (OpenShift 4.8, must-gather): every type the real one has is written, with the same
# status, reason and message. (The emulation, following master, also writes NodeCADaemonProgressing.)


@pytest.fixture(scope="module")
def local_emptydir_config(tmp_path_factory):
    lc = LocalClusterProcess(tmp_path_factory.mktemp("realdata")).start()
    try:
        api = client.CustomObjectsApi(kconfig.new_client_from_config(str(lc.kubeconfig)))
        gvr = ("imageregistry.operator.openshift.io", "v1", "configs", "cluster")
        wait_until(lambda: _get(api, gvr), timeout=20, what="the Config")
        api.patch_cluster_custom_object(*gvr, {"spec": {"managementState": "Managed",
                                                        "storage": {"emptyDir": {}}}})

        def ready():
            c = _get(api, gvr)
            conds = {x["type"]: x for x in (c or {}).get("status", {}).get("conditions") or []}
            return c if conds.get("Available", {}).get("reason") == "Ready" and \
                conds.get("Progressing", {}).get("status") == "False" else None
        cfg = wait_until(ready, timeout=60, what="a healthy emptyDir registry")
        co_gvr = ("config.openshift.io", "v1", "clusteroperators", "image-registry")

        def co_settled():
            co = _get(api, co_gvr)
            conds = {x["type"]: x for x in (co or {}).get("status", {}).get("conditions") or []}
            state = tuple(conds.get(t, {}).get("status") for t in ("Available", "Progressing", "Degraded"))
            return co if state == ("True", "False", "False") else None
        cfg["_clusteroperator"] = wait_until(co_settled, timeout=30, what="the ClusterOperator to settle")
        yield cfg
    finally:
        lc.stop()


def _get(api, gvr):
    try:
        return api.get_cluster_custom_object(*gvr)
    except client.ApiException:
        return None


def test_local_emptydir_config_matches_a_real_vsphere_cluster(local_emptydir_config):
    real = _snapshot(_must_gather("vsphere")).config
    assert real["spec"]["storage"] == {"emptyDir": {}, "managementState": "Managed"}   # the same setup
    ours = local_emptydir_config
    assert ours["spec"]["storage"] == real["spec"]["storage"]
    assert ours["status"]["storage"] == real["status"]["storage"]
    assert ours["status"]["storageManaged"] is real["status"]["storageManaged"] is True
    assert ours["metadata"]["finalizers"] == real["metadata"]["finalizers"]
    assert len(ours["spec"]["httpSecret"]) == len(real["spec"]["httpSecret"]) == 128

    def view(c):
        return {x["type"]: (x["status"], x.get("reason") or "", x.get("message") or "")
                for x in c["status"]["conditions"]}
    real_c, ours_c = view(real), view(ours)
    shared = set(real_c) & set(ours_c)
    assert {"Available", "Progressing", "Degraded", "Removed", "StorageExists", "NodeCADaemonAvailable",
            "ImageConfigControllerDegraded"} <= shared
    assert {t: ours_c[t] for t in shared} == {t: real_c[t] for t in shared}
    assert set(real_c) <= set(ours_c), set(real_c) - set(ours_c)


def test_local_clusteroperator_matches_a_real_vsphere_cluster(local_emptydir_config, tmp_path_factory):
    """The ClusterOperator image-registry of a healthy emptyDir registry, against the real vSphere
    cluster's: Available and Degraded whole (status, reason, message), Progressing's status and reason
    (its message has a NodeCADaemonProgressing line since 4.22 that 4.8 did not have)."""
    mg = _must_gather("vsphere")
    real = _docs(mg / "cluster-scoped-resources/config.openshift.io/clusteroperators/image-registry.yaml")[0]
    ours = local_emptydir_config["_clusteroperator"]

    def view(co):
        return {c["type"]: (c["status"], c.get("reason") or "", c.get("message") or "")
                for c in co["status"]["conditions"]}
    real_c, ours_c = view(real), view(ours)
    assert ours_c["Available"] == real_c["Available"]
    assert ours_c["Degraded"] == real_c["Degraded"]
    assert ours_c["Progressing"][:2] == real_c["Progressing"][:2]
    assert real_c["Progressing"][2] in ours_c["Progressing"][2]
    assert {(o["resource"], o["name"]) for o in real["status"]["relatedObjects"]} <= \
        {(o["resource"], o["name"]) for o in ours["status"]["relatedObjects"]}
