"""Unit tests: bootstrap per platform (operator-facts.md §2) and the generated objects (§4)."""
import pytest

from localcluster import settings as S
from localcluster.controllers.registry_operator import resources as R
from localcluster.controllers.registry_operator.bootstrap import bootstrap_config, platform_storage
from localcluster.controllers.registry_operator.errors import PermanentError
from localcluster.controllers.registry_operator.storage import EmptyDirDriver, PVCDriver


def infra(platform, topology="HighlyAvailable"):
    return {"status": {"platformStatus": {"type": platform}, "infrastructureTopology": topology}}


# --- bootstrap ------------------------------------------------------------------------------------------

def test_bootstrap_vsphere():
    cfg, pvc = bootstrap_config(infra("VSphere"))
    assert pvc is None
    assert cfg["metadata"] == {"name": "cluster", "finalizers": ["imageregistry.operator.openshift.io/finalizer"]}
    assert cfg["spec"] == {"logLevel": "Normal", "operatorLogLevel": "Normal", "managementState": "Removed",
                           "replicas": 1, "rolloutStrategy": "RollingUpdate", "storage": {}}
    assert "httpSecret" not in cfg["spec"]


@pytest.mark.parametrize("platform,storage,replicas,state", [
    ("BareMetal", {}, 1, "Removed"), ("None", {}, 1, "Removed"), ("Nutanix", {}, 1, "Removed"),
    ("KubeVirt", {}, 1, "Removed"), ("EquinixMetal", {}, 1, "Removed"), ("AlibabaCloud", {}, 1, "Removed"),
    ("External", {}, 1, "Removed"),
    ("AWS", {"s3": {}}, 2, "Managed"), ("Azure", {"azure": {}}, 2, "Managed"), ("GCP", {"gcs": {}}, 2, "Managed"),
    ("IBMCloud", {"ibmcos": {}}, 2, "Managed"), ("PowerVS", {"ibmcos": {}}, 2, "Managed"),
    ("Libvirt", {"emptyDir": {}}, 1, "Managed"), ("SomethingNew", {"emptyDir": {}}, 1, "Managed"),
])
def test_bootstrap_platforms(platform, storage, replicas, state):
    cfg, pvc = bootstrap_config(infra(platform))
    assert (cfg["spec"]["storage"], cfg["spec"]["replicas"], cfg["spec"]["managementState"]) == \
        (storage, replicas, state)
    assert cfg["spec"]["rolloutStrategy"] == "RollingUpdate" and pvc is None


@pytest.mark.parametrize("platform,sc", [("OpenStack", "standard-csi"), ("Ovirt", "ovirt-csi-sc")])
def test_bootstrap_pvc_platforms(platform, sc):
    cfg, pvc = bootstrap_config(infra(platform))
    assert cfg["spec"]["storage"] == {"pvc": {"claim": "image-registry-storage"}}
    assert cfg["spec"]["rolloutStrategy"] == "Recreate" and cfg["spec"]["replicas"] == 1
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}},
                           "storageClassName": sc}


def test_bootstrap_single_replica_topology():
    assert bootstrap_config(infra("AWS", "SingleReplica"))[0]["spec"]["replicas"] == 1
    assert platform_storage(infra("VSphere")) == ({}, 1)


# --- verification and defaults --------------------------------------------------------------------------

def test_verify():
    R.verify_config({"replicas": 0})
    with pytest.raises(PermanentError) as e:
        R.verify_config({"replicas": -1})
    assert (e.value.reason, str(e.value)) == (
        "VerificationFailed", "unable to complete resource: replicas must be greater than or equal to 0")
    with pytest.raises(PermanentError) as e:
        R.verify_config({"replicas": 1, "routes": [{"name": "a"}, {"name": "a"}]})
    assert str(e.value) == "unable to complete resource: duplication of names has been detected in the additional routes"
    with pytest.raises(PermanentError):
        R.verify_config({"replicas": 1, "routes": [{"name": "default-route"}]})


def test_http_secret_default():
    spec = {}
    R.apply_defaults(spec)
    assert len(spec["httpSecret"]) == 128 and int(spec["httpSecret"], 16) >= 0
    kept = dict(spec)
    R.apply_defaults(spec)
    assert spec == kept


def test_json_merge_patch():
    assert R.json_merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == \
        {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}


# --- the Deployment -------------------------------------------------------------------------------------

def env_of(dep):
    return {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def spec(**kw):
    s = {"replicas": 1, "rolloutStrategy": "RollingUpdate", "httpSecret": "s3cr3t", "logLevel": "Normal",
         "storage": {"emptyDir": {}}}
    s.update(kw)
    return s


def test_deployment_empty_dir():
    sp = spec()
    dep = R.deployment(sp, EmptyDirDriver().volumes({"spec": sp}), "deps")
    assert dep["metadata"]["name"] == "image-registry" and dep["metadata"]["namespace"] == "openshift-image-registry"
    assert dep["metadata"]["labels"] == {"docker-registry": "default"}
    assert dep["spec"]["selector"] == {"matchLabels": {"docker-registry": "default"}}
    assert dep["spec"]["template"]["metadata"]["labels"] == {"docker-registry": "default"}
    assert dep["spec"]["progressDeadlineSeconds"] == 60      # release-4.12 ... 4.21 (facts §12.1)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["name"] == "registry" and c["image"] == S.REGISTRY_IMAGE
    assert c["ports"] == [{"containerPort": 5000, "protocol": "TCP"}]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["registry-storage"] == {"name": "registry-storage", "emptyDir": {}}
    assert vols["registry-tls"]["secret"]["secretName"] == "image-registry-tls"
    assert vols["registry-certificates"]["configMap"]["name"] == "image-registry-certificates"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["registry-storage"] == "/registry" and mounts["registry-tls"] == "/etc/secrets"
    assert mounts["registry-certificates"] == "/etc/pki/ca-trust/source/anchors"
    env = env_of(dep)
    assert env["REGISTRY_STORAGE"] == "filesystem"
    assert env["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] == "/registry"
    assert env["REGISTRY_HTTP_SECRET"] == "s3cr3t"
    assert env["REGISTRY_HTTP_TLS_CERTIFICATE"] == "/etc/secrets/tls.crt"
    assert env["REGISTRY_HTTP_TLS_KEY"] == "/etc/secrets/tls.key"
    assert env["REGISTRY_HTTP_ADDR"] == ":5000" and env["REGISTRY_LOG_LEVEL"] == "info"
    assert env["REGISTRY_OPENSHIFT_SERVER_ADDR"] == "image-registry.openshift-image-registry.svc:5000"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": 5000, "scheme": "HTTPS"}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["serviceAccountName"] == "registry" and pod["terminationGracePeriodSeconds"] == 55
    assert [t["topologyKey"] for t in pod["topologySpreadConstraints"]][0] == "kubernetes.io/hostname"
    assert "affinity" not in pod
    assert dep["spec"]["template"]["metadata"]["annotations"]["imageregistry.operator.openshift.io/dependencies-checksum"] == "deps"
    assert dep["metadata"]["annotations"]["release.openshift.io/version"] == S.OPENSHIFT_VERSION


def test_deployment_pvc_and_recreate():
    sp = spec(storage={"pvc": {"claim": "mine"}}, rolloutStrategy="Recreate")
    dep = R.deployment(sp, PVCDriver().volumes({"spec": sp}), "d")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["registry-storage"] == {"name": "registry-storage", "persistentVolumeClaim": {"claimName": "mine"}}
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(dep)["REGISTRY_STORAGE"] == "filesystem"


@pytest.mark.parametrize("replicas,params", [
    (1, {"maxUnavailable": 0, "maxSurge": "25%"}), (2, {"maxUnavailable": 1, "maxSurge": 1}),
    (3, {"maxUnavailable": 2, "maxSurge": "25%"})])
def test_rolling_update_parameters(replicas, params):
    assert R.rollout_strategy({"replicas": replicas}) == {"type": "RollingUpdate", "rollingUpdate": params}
    assert R.rollout_strategy({"replicas": replicas, "rolloutStrategy": ""})["type"] == "RollingUpdate"


def test_affinity_default_only_at_two_replicas_and_node_selector():
    sp = spec(replicas=2)
    pod = R.deployment(sp, EmptyDirDriver().volumes({}), "d")["spec"]["template"]["spec"]
    req = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert req == [{"topologyKey": "kubernetes.io/hostname",
                    "labelSelector": {"matchLabels": {"docker-registry": "default"}}}]
    pod = R.deployment(spec(replicas=3), EmptyDirDriver().volumes({}), "d")["spec"]["template"]["spec"]
    assert "affinity" not in pod
    pod = R.deployment(spec(nodeSelector={"role": "infra"}), EmptyDirDriver().volumes({}), "d")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"role": "infra", "kubernetes.io/os": "linux"}
    assert "topologySpreadConstraints" not in pod


def test_checksum_changes_with_config():
    a = R.deployment(spec(), EmptyDirDriver().volumes({}), "d")
    b = R.deployment(spec(httpSecret="other"), EmptyDirDriver().volumes({}), "d")
    key = "imageregistry.operator.openshift.io/checksum"
    assert a["metadata"]["annotations"][key] != b["metadata"]["annotations"][key]


def test_env_options():
    env = {e["name"]: e["value"] for e in R.registry_env(
        {"readOnly": True, "disableRedirect": True, "logLevel": "Debug",
         "proxy": {"http": "http://p:3128"}, "requests": {"read": {"maxRunning": 4}}}, [])}
    assert env["REGISTRY_STORAGE_MAINTENANCE_READONLY"] == "{enabled: true}"
    assert env["REGISTRY_STORAGE_REDIRECT_DISABLE"] == "true"
    assert env["REGISTRY_LOG_LEVEL"] == "debug" and env["HTTP_PROXY"] == "http://p:3128"
    assert env["REGISTRY_OPENSHIFT_REQUESTS_READ_MAXRUNNING"] == "4"
    assert R.log_level({"logging": 1}) == "warn"


# --- other objects --------------------------------------------------------------------------------------

def test_service_route_pdb():
    svc = R.service()
    assert svc["metadata"]["annotations"] == {"service.alpha.openshift.io/serving-cert-secret-name": "image-registry-tls"}
    assert svc["spec"]["ports"] == [{"name": "5000-tcp", "port": 5000, "protocol": "TCP", "targetPort": 5000}]
    assert svc["spec"]["selector"] == {"docker-registry": "default"}
    assert R.routes({}) == []
    (route,) = R.routes({"defaultRoute": True})
    assert route["metadata"]["name"] == "default-route"
    assert route["metadata"]["annotations"] == {"imageregistry.openshift.io": "true"}
    assert route["spec"]["tls"] == {"termination": "reencrypt"} and "host" not in route["spec"]
    assert R.pdb({"replicas": 1})["spec"]["minAvailable"] == 0
    assert R.pdb({"replicas": 2})["spec"]["minAvailable"] == 1


def test_certificates_configmap():
    cm = R.certificates_configmap("PEM", {"extra": "X"})
    assert cm["data"] == {"image-registry.openshift-image-registry.svc..5000": "PEM",
                          "image-registry.openshift-image-registry.svc.cluster.local..5000": "PEM", "extra": "X"}


def test_reverting_manual_edits():
    dep = R.deployment(spec(), EmptyDirDriver().volumes({}), "d")
    import copy
    existing = copy.deepcopy(dep)
    existing["metadata"].update(resourceVersion="7", uid="u")
    existing["status"] = {"replicas": 1}
    existing["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] = "x"   # server-style addition
    existing["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    assert not R.needs_update(dep, existing)
    existing["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "FOO", "value": "bar"})
    assert R.needs_update(dep, existing)
    fixed = R.updated_object(dep, existing)
    assert fixed["metadata"]["resourceVersion"] == "7" and fixed["status"] == {"replicas": 1}
    assert not R.needs_update(dep, fixed)
    assert "FOO" not in env_of(fixed)
    svc = R.service()
    live = copy.deepcopy(svc)
    live["spec"]["clusterIP"] = "172.30.0.10"
    live["spec"]["ports"][0]["port"] = 5001
    fixed = R.updated_object(svc, live)
    assert fixed["spec"]["clusterIP"] == "172.30.0.10" and fixed["spec"]["ports"][0]["port"] == 5000
    assert not R.needs_update(R.private_config_secret(), {"metadata": {"name": "x"}, "type": "Opaque"})


@pytest.mark.parametrize("version,override,want", [("4.18", 0, 60), ("4.12", 0, 60), ("4.21", 0, 60),
                                                    ("4.22", 0, 120), ("main", 0, 120), ("4.18", 3, 3)])
def test_progress_deadline_by_openshift_version(version, override, want):
    """CIRO pkg/resource/deployment.go: 60 s on release-4.12 ... 4.21, 120 s from release-4.22."""
    from localcluster.settings import Settings, progress_deadline_seconds
    settings = Settings(openshift=version, progress_deadline_seconds=override)
    sp = spec()
    dep = R.deployment(sp, EmptyDirDriver().volumes({"spec": sp}), "d",
                       progress_deadline_seconds=progress_deadline_seconds(settings))
    assert dep["spec"]["progressDeadlineSeconds"] == want
