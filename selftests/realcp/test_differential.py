"""The emulation held to the real operator (issue 8, item 4): both control planes driven through the same
procedure steps, and what each operator produced compared field by field.

Compared after each step: the Config's status (conditions: status, reason, message; storage;
readyReplicas), the ClusterOperator's conditions, the Deployment (replicas, strategy,
progressDeadlineSeconds, volume names, env names of the registry container), the PVC (access modes,
size, storage class), the PDB (minAvailable / maxUnavailable). A difference names the field and both
values. Differences the project knows of and has not fixed yet are listed in KNOWN_DIFFERENCES with
the release they concern: they are reported (xfail), not hidden; any other difference fails.

Skips where the real control plane cannot run (../shared/bin, etcd, root).
"""
from __future__ import annotations

import os

import pytest
from kubernetes import client as k8s

from localcluster.realcp import binaries
from utilities import kube, waits
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess

RELEASES = [r for r in binaries.RELEASES
            if r in (os.environ.get("LOCALCLUSTER_DIFF_RELEASES") or ",".join(binaries.RELEASES)).split(",")]
TIMEOUT = 240
pytestmark = [pytest.mark.skipif(binaries.missing_reason() is not None, reason=str(binaries.missing_reason())),
              pytest.mark.timeout(900)]

CONFIG_GVR = ("imageregistry.operator.openshift.io", "v1", "configs")
CO_GVR = ("config.openshift.io", "v1", "clusteroperators")

# (release or "*", field prefix) -> why. Found by this test (issue 8); each is an emulation gap still open.
_OTHER_CONTROLLERS = ("the operator's other controllers write their own *ControllerDegraded condition when they "
                      "first sync: which exist depends on the release (ConfigObservation on main) "
                      " and on when the snapshot is taken")
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("main", "deployment.registry.env"): "main adds REGISTRY_HTTP_TLS_MINVERSION and "
                                         "OPENSHIFT_REGISTRY_HTTP_TLS_CIPHERSUITES (the APIServer's TLS profile); "
                                         "the emulation has no per-release registry env yet",
    # Seen once in three clean-clone runs: the real main operator's node-ca controller hit conflicts on
    # the Config and had written no NodeCADaemon* conditions (nor their lines in the ClusterOperator)
    # when the steps had settled; the emulation writes them at once. Timing, not yet understood.
    ("main", "config.status.conditions.NodeCADaemon"): "main's node-ca conditions may come late (conflicts)",
    ("main", "clusteroperator.status.conditions.Available"): "main's node-ca line may come late (conflicts)",
    ("main", "clusteroperator.status.conditions.Progressing"): "main's node-ca line may come late (conflicts)",
    ("*", "config.status.conditions.ImageConfigControllerDegraded"): _OTHER_CONTROLLERS,
    ("*", "config.status.conditions.ImageRegistryCertificatesControllerDegraded"): _OTHER_CONTROLLERS,
    ("*", "config.status.conditions.NodeCADaemonControllerDegraded"): _OTHER_CONTROLLERS,
    ("*", "config.status.conditions.ConfigObservationDegraded"): _OTHER_CONTROLLERS,
}


def _conditions(obj: dict | None, prefix: str) -> dict:
    out = {}
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        out[f"{prefix}.{c['type']}"] = (c.get("status"), c.get("reason") or "", c.get("message") or "")
    return out


def observe(c) -> dict:
    """The compared fields of one cluster, flattened: {field: value}."""
    out: dict = {}
    cfg = kube.get_or_none(c.custom.get_cluster_custom_object, *CONFIG_GVR, "cluster") or {}
    st = cfg.get("status") or {}
    out.update(_conditions(cfg, "config.status.conditions"))
    out["config.status.storage"] = st.get("storage")
    out["config.status.readyReplicas"] = st.get("readyReplicas")
    out["config.spec.replicas"] = (cfg.get("spec") or {}).get("replicas")
    out["config.spec.rolloutStrategy"] = (cfg.get("spec") or {}).get("rolloutStrategy")
    co = kube.get_or_none(c.custom.get_cluster_custom_object, *CO_GVR, "image-registry") or {}
    # The ClusterOperator's messages join the Config conditions' messages in the order of the Config's
    # conditions list, i.e. in the order the operator's controllers first wrote them (a race at start,
    # seen both ways on the real operator): compared as sets of lines.
    out.update({k: (v[0], v[1], tuple(sorted(v[2].splitlines())))
                for k, v in _conditions(co, "clusteroperator.status.conditions").items()
                if k.rsplit(".", 1)[1] in ("Available", "Progressing", "Degraded")})
    ac = c.api_client
    dep = kube.get_or_none(c.apps.read_namespaced_deployment, "image-registry", "openshift-image-registry")
    if dep is None:
        out["deployment"] = None
    else:
        d = ac.sanitize_for_serialization(dep)
        spec = d["spec"]
        pod = spec["template"]["spec"]
        ctr = next((x for x in pod["containers"] if x["name"] == "registry"), pod["containers"][0])
        out["deployment.spec.replicas"] = spec.get("replicas")
        out["deployment.spec.strategy"] = spec.get("strategy")
        out["deployment.spec.progressDeadlineSeconds"] = spec.get("progressDeadlineSeconds")
        out["deployment.volumes"] = sorted(v["name"] for v in pod.get("volumes") or [])
        out["deployment.registry.env"] = sorted(e["name"] for e in ctr.get("env") or [])
        out["deployment.registry.mounts"] = sorted((m["name"], m["mountPath"]) for m in ctr.get("volumeMounts") or [])
        storage_vol = next((v for v in pod.get("volumes") or [] if v["name"] == "registry-storage"), None)
        out["deployment.volumes.registry-storage"] = sorted((storage_vol or {}).keys() - {"name"})
    pvc = kube.get_or_none(c.core.read_namespaced_persistent_volume_claim, "image-registry-storage",
                           "openshift-image-registry")
    if pvc is None:
        out["pvc"] = None
    else:
        p = ac.sanitize_for_serialization(pvc)
        out["pvc.spec.accessModes"] = p["spec"].get("accessModes")
        out["pvc.spec.resources"] = p["spec"].get("resources")
        out["pvc.spec.storageClassName"] = p["spec"].get("storageClassName")
    pdb = kube.get_or_none(k8s.PolicyV1Api(ac).read_namespaced_pod_disruption_budget, "image-registry",
                           "openshift-image-registry")
    if pdb is None:
        out["pdb"] = None
    else:
        p = ac.sanitize_for_serialization(pdb)["spec"]
        out["pdb.spec"] = {k: p.get(k) for k in ("minAvailable", "maxUnavailable")}
    return out


def _patch(c, spec: dict) -> None:
    kube.call(c.custom.patch_cluster_custom_object, *CONFIG_GVR, "cluster", {"spec": spec})


def _settle_removed(c):
    waits.wait_for_conditions(c, {"Available": ("True", "Removed"), "Removed": ("True", "Removed")},
                              timeout=TIMEOUT)
    waits.wait_for_clusteroperator(c, {"Available": ("True", None), "Progressing": ("False", None)},
                                   timeout=TIMEOUT)


def _settle_rolled_out(c):
    waits.wait_for_rollout(c, timeout=TIMEOUT)
    waits.wait_for_clusteroperator(c, {"Available": ("True", None), "Progressing": ("False", None)},
                                   timeout=TIMEOUT)


DEGRADED_WINDOW = 3.0      # seconds a Removed registry is watched for a controller's Degraded


def _degraded_while_removed(c) -> dict:
    """Removed, with an S3 storage whose trustedCA config map does not exist: no controller may say
    Degraded, for the operator reads no storage while Removed (CIRO pkg/resource/caconfig.go
    storageDriver). The certificates controller answers on its own time, so the Config is watched for
    DEGRADED_WINDOW seconds; the first *Degraded=True ends the watch. The condition types are compared
    here, unlike the other steps' *ControllerDegraded conditions, which differ by release."""
    _settle_removed(c)

    def degraded(cfg):
        return sorted(t for t, cond in waits.conditions(cfg).items()
                      if t.endswith("Degraded") and cond.get("status") == "True")
    try:
        cfg = waits.wait_for_config(c, lambda cfg: bool(degraded(cfg)), DEGRADED_WINDOW, "a controller's Degraded")
    except waits.WaitTimeout:
        cfg = c.registry_config()
    return {"config.degraded": degraded(cfg)}


MISSING_CA_S3 = {"bucket": "no-such-bucket", "region": "us-east-1", "regionEndpoint": "https://s3.invalid",
                 "trustedCA": {"name": "no-such-trusted-ca"}}
STEPS = [
    ("bootstrap", None, _settle_removed),
    ("emptydir", {"managementState": "Managed", "storage": {"emptyDir": {}}}, _settle_rolled_out),
    ("default-pvc", {"storage": {"emptyDir": None, "pvc": {"claim": ""}}}, _settle_rolled_out),
    ("removed", {"managementState": "Removed"}, _settle_removed),
    ("removed-missing-trusted-ca", {"storage": {"pvc": None, "s3": MISSING_CA_S3}}, _degraded_while_removed),
]


def _run(workdir, args) -> dict:
    """{step: observed fields} of one cluster driven through STEPS."""
    out = {}
    with LocalClusterProcess(workdir, args, start_timeout=300) as lc:
        c = load_cluster(lc.kubeconfig, None, embedded=True, ingress_address=lc.info.get("ingress_address"),
                         info=lc.info)
        for name, spec, settle in STEPS:
            if spec is not None:
                _patch(c, spec)
            extra = settle(c)
            out[name] = observe(c) | (extra or {})
    return out


def differences(release: str, emulated: dict, real: dict) -> list[str]:
    diffs = []
    for step in real:
        e, r = emulated.get(step, {}), real[step]
        for field in sorted(set(e) | set(r)):
            if e.get(field) != r.get(field):
                diffs.append(f"{step}: {field}: emulated {e.get(field)!r}, real {r.get(field)!r}")
    return diffs


@pytest.mark.parametrize("release", RELEASES)
def test_emulation_agrees_with_the_real_operator(release, tmp_path):
    real = _run(tmp_path / "real", ["--control-plane=real", f"--openshift={release}"])
    emulated = _run(tmp_path / "builtin", ["--control-plane=builtin", f"--openshift={release}"])
    diffs = differences(release, emulated, real)
    known = [d for d in diffs if any(d.split(": ", 2)[1].startswith(k[1]) for k in KNOWN_DIFFERENCES
                                     if k[0] in ("*", release))]
    print(f"{len(diffs)} difference(s) with the real {release} operator, {len(known)} known:\n" + "\n".join(diffs))
    unknown = [d for d in diffs if d not in known]
    assert not unknown, f"{len(unknown)} difference(s) between the emulated and the real {release} operator:\n" + \
        "\n".join(unknown)
    if known:
        pytest.xfail("known differences:\n" + "\n".join(known))
