"""What the real control plane needs seeded besides localcluster/seed.py (which is reused as it is).

    apply_crds(client, release)   the CRDs of that release (../shared/reference/crds/<release>/) and the
                                  ObjectBucket CRDs, created with the client, waited for Established
    pre_seed(client, release, operator_version)   before seed(): objects whose shape the real API checks
    post_seed(client)             after seed(): node taints, RBAC for the suite's users

Facts from ../shared/reference/real-control-plane.md ("Seed pitfalls met").
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import json
import logging
import time
from pathlib import Path

import yaml

from localcluster.client import ApiError, path
from localcluster.realcp import binaries

log = logging.getLogger("localcluster.realcp")

CRD_PATH = path("apiextensions.k8s.io/v1", "customresourcedefinitions")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def crd_files(release: str) -> list[Path]:
    ref = binaries.reference_dir()
    files = sorted((ref / "crds" / release).glob("*.yaml")) + sorted((ref / "crds" / "objectbucket").glob("*.yaml"))
    return [f for f in files if f.is_file()]


async def apply_crds(client, release: str, timeout: float = 60.0) -> list[str]:
    names = []
    for f in crd_files(release):
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            names.append(doc["metadata"]["name"])
            try:
                await client.create(CRD_PATH, doc)
            except ApiError as e:
                if e.status != 409:
                    raise RuntimeError(f"CRD {f.name}: {e}") from e
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for n in list(pending):
            crd = await client.get(f"{CRD_PATH}/{n}")
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                pending.discard(n)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"CRDs not Established within {timeout:.0f} s: {sorted(pending)}")
        if pending:
            await asyncio.sleep(0.1)
    return names


async def wait_served(client, p: str, timeout: float = 30.0) -> None:
    """A custom resource may answer 404 for a couple of seconds after its CRD is Established."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.list(p)
            return
        except ApiError as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def _create(client, collection: str, body: dict) -> dict:
    try:
        return await client.create(collection, body)
    except ApiError as e:
        if e.status != 409:
            raise
        return await client.get(f"{collection}/{body['metadata']['name']}")


async def bootstrap_policy(client) -> None:
    """OpenShift's bootstrap ClusterRoles that the suite binds its ServiceAccounts to and the registry's
    authorization asks about (system:image-puller/-pusher/-builder; plain kube has only cluster-admin)."""
    from localcluster.apiserver.rbac import BOOTSTRAP_CLUSTER_ROLES
    for name, rules in BOOTSTRAP_CLUSTER_ROLES.items():
        if name == "cluster-admin":
            continue
        await _create(client, "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                      {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": name}, "rules": rules})


def feature_gate_status(release: str, version: str) -> dict:
    """The FeatureGate status of that release's payload, with its one entry for `version`."""
    ref = binaries.reference_dir() / "crds" / release / "featuregate-payload"
    files = sorted(ref.glob("*.yaml"))
    doc = json.loads(files[0].read_text()) if files else {"status": {"featureGates": [{}]}}
    entry = copy.deepcopy((doc.get("status") or {}).get("featureGates", [{}])[0])
    entry["version"] = version
    entry.setdefault("enabled", [])
    entry.setdefault("disabled", [])
    known = {g["name"] for g in entry["enabled"] + entry["disabled"]}
    if "ImageStreamImportMode" not in known:       # main panics when the gate is not listed
        entry["disabled"].append({"name": "ImageStreamImportMode"})
    return {"featureGates": [entry]}


async def pre_seed(client, release: str, operator_version: str) -> None:
    # cluster-policy-controller's annotations: the operator derives the pod's fsGroup from them.
    await _create(client, path("v1", "namespaces"), {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "openshift-image-registry", "labels": {
            "kubernetes.io/metadata.name": "openshift-image-registry"}, "annotations": {
            "openshift.io/sa.scc.supplemental-groups": "1000430000/10000",
            "openshift.io/sa.scc.uid-range": "1000430000/10000",
            "openshift.io/sa.scc.mcs": "s0:c21,c0"}}})
    for ns in ("openshift-config", "openshift-config-managed"):
        await _create(client, path("v1", "namespaces"), {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}})
    # Without it the operator writes an empty installation-pull-secrets that the API refuses.
    await _create(client, path("v1", "secrets", "openshift-config"), {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "pull-secret", "namespace": "openshift-config"},
        "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}})          # {"auths":{}}
    # From the operator's release manifests (applied by the CVO, not by the operator): the node-ca
    # DaemonSet's ServiceAccount.
    await _create(client, path("v1", "serviceaccounts", "openshift-image-registry"), {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "node-ca", "namespace": "openshift-image-registry"}})
    # The operator's metrics Service (a CVO manifest). Not only for metrics: the node-ca controller syncs
    # only on DaemonSet and Service events in openshift-image-registry, so without a Service there at
    # start a Removed cluster never gets its node-ca DaemonSet (real clusters always have it:
    # e2e TestNodeCADaemonAlwaysDeployed).
    await _create(client, path("v1", "services", "openshift-image-registry"), {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "image-registry-operator", "namespace": "openshift-image-registry",
                     "labels": {"name": "image-registry-operator"},
                     "annotations": {"service.alpha.openshift.io/serving-cert-secret-name": "image-registry-operator-tls"}},
        "spec": {"selector": {"name": "cluster-image-registry-operator"},
                 "ports": [{"name": "metrics", "port": 60000, "targetPort": 60000, "protocol": "TCP"}]}})
    # ClusterVersion: status.availableUpdates is required though nullable; seed.py's merge patch keeps it.
    cv_path = path("config.openshift.io/v1", "clusterversions")
    await wait_served(client, cv_path)
    cv = await _create(client, cv_path, {
        "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": {"name": "version"},
        "spec": {"channel": "stable-4.18", "clusterID": "5d3c1e0a-6f55-4bb1-9a53-0a4c2f1d7e21"}})
    await cluster_version_status(client, operator_version, cv["metadata"].get("generation", 1))
    fg_path = path("config.openshift.io/v1", "featuregates")
    await wait_served(client, fg_path)
    await _create(client, fg_path, {"apiVersion": "config.openshift.io/v1", "kind": "FeatureGate",
                                    "metadata": {"name": "cluster"}, "spec": {}})
    await client.patch(f"{fg_path}/cluster/status", {"status": feature_gate_status(release, operator_version)})
    for p in (path("config.openshift.io/v1", "infrastructures"), path("config.openshift.io/v1", "ingresses"),
              path("config.openshift.io/v1", "proxies"), path("config.openshift.io/v1", "images"),
              path("config.openshift.io/v1", "clusteroperators"),
              path("imageregistry.operator.openshift.io/v1", "imagepruners"),
              path("operator.openshift.io/v1", "ingresscontrollers"), path("route.openshift.io/v1", "routes"),
              path("objectbucket.io/v1alpha1", "objectbucketclaims")):
        await wait_served(client, p)


async def cluster_version_status(client, operator_version: str, generation: int = 1) -> None:
    """The whole status with a JSON patch: status.availableUpdates is required though nullable, and a
    merge patch's null would delete it."""
    image = "quay.io/openshift-release-dev/ocp-release@sha256:" + "0" * 64
    await client.patch(path("config.openshift.io/v1", "clusterversions", None, "version", "status"), [
        {"op": "add", "path": "/status", "value": {
            "availableUpdates": None,
            "desired": {"version": operator_version, "image": image},
            "history": [{"state": "Completed", "version": operator_version, "startedTime": _now(),
                         "completionTime": _now(), "verified": False, "image": image}],
            "observedGeneration": generation, "versionHash": "local",
            "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": _now(),
                            "message": f"Done applying {operator_version}"}]}}], patch_type="json")


PULLER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": "localcluster:puller"},
    # localcluster/apiserver/auth.py READ_RULES, as RBAC: read everything, pull from the registry.
    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
              {"apiGroups": ["image.openshift.io"], "resources": ["imagestreams/layers"], "verbs": ["get"]}],
}


async def post_seed(client, operator_version: str, kubelet_port: int) -> None:
    # seed.py wrote the builtin's version into the ClusterVersion: the release's own, again.
    await cluster_version_status(client, operator_version)
    # TaintNodesByCondition added node.kubernetes.io/not-ready at creation; only the node-lifecycle
    # controller (off here) would take it away.
    nodes = await client.list(path("v1", "nodes"))
    for n in nodes.get("items") or []:
        taints = [t for t in (n.get("spec") or {}).get("taints") or []
                  if not t.get("key", "").startswith("node.kubernetes.io/")]
        await client.patch(path("v1", "nodes", None, n["metadata"]["name"]),
                           [{"op": "replace" if "taints" in n.get("spec", {}) else "add",
                             "path": "/spec/taints", "value": taints}], patch_type="json")
        # Where kube-apiserver calls the kubelet API (pods/portforward): localcluster/realcp/kubeletapi.py.
        await client.patch(path("v1", "nodes", None, n["metadata"]["name"], "status"),
                           {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}}}})
    await _create(client, path("rbac.authorization.k8s.io/v1", "clusterroles"), PULLER_ROLE)
    await _create(client, path("rbac.authorization.k8s.io/v1", "clusterrolebindings"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "localcluster:puller"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "localcluster:puller"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "puller"}]})
