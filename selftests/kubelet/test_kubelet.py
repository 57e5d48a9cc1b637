"""The kubelet with a real APIServer: pods, volumes, registry processes, restarts, deletion, fault knobs."""
from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from selftests.kubelet.kubelet_oci import Registry, RegistryError
from selftests.kubelet.kubelet_support import b64, pause_pod, registry_pid_of, registry_pids_under, registry_pod
from localcluster.settings import APPS_DOMAIN, FAULTS_CONFIGMAP, FAULTS_NAMESPACE

NS = "openshift-image-registry"


@pytest.fixture(scope="module")
def registry(cluster):
    """A registry pod on worker-0 with an RWO PV, its service, and a reencrypt route."""
    cluster.namespace(NS)
    cluster.serving_secret(NS, "image-registry", "image-registry-tls")
    pv = cluster.bound_pvc(NS, "registry-storage")
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "image-registry", "namespace": NS},
                   "spec": {"selector": {"docker-registry": "default"},
                            "ports": [{"name": "5000-tcp", "port": 5000, "targetPort": 5000}]}})
    cluster.apply(registry_pod(NS, "image-registry-a", "worker-0"))
    cluster.apply({"apiVersion": "route.openshift.io/v1", "kind": "Route",
                   "metadata": {"name": "default-route", "namespace": NS},
                   "spec": {"to": {"kind": "Service", "name": "image-registry"},
                            "tls": {"termination": "reencrypt"}}})
    cluster.wait(lambda: cluster.ready(NS, "image-registry-a"), timeout=15, what="registry pod Ready")
    return pv


def _route_client(cluster, token):
    host = f"default-route-{NS}.{APPS_DOMAIN}"
    return Registry(f"https://{host}", token, verify=False, resolve=cluster.router.address)


def test_registry_pod_ready_with_status(cluster, registry):
    pod = cluster.pod(NS, "image-registry-a")
    st = pod["status"]
    assert st["phase"] == "Running"
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network("127.1.0.0/16")
    assert st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["hostIP"].startswith("127.0.")
    conds = {c["type"]: c for c in st["conditions"]}
    for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conds[t]["status"] == "True" and conds[t]["lastTransitionTime"]
    cs = st["containerStatuses"][0]
    assert cs["name"] == "registry" and cs["ready"] and cs["started"] and "running" in cs["state"]
    # The real front answers on podIP:5000 with the service-CA serving certificate.
    r = requests.get(f"https://{st['podIP']}:5000/healthz", verify=False, timeout=5)
    assert r.status_code == 200


def test_push_pull_through_router_and_route(cluster, registry, api):
    route = cluster.wait(lambda: (cluster.get("route.openshift.io/v1", "routes", NS, "default-route")
                                  .get("status", {}).get("ingress")), what="route admitted")
    assert route[0]["host"] == f"default-route-{NS}.{APPS_DOMAIN}"
    reg = _route_client(cluster, api.tokens["kube:admin"])
    digest = reg.push_image(f"{NS}/app", "v1", layer=os.urandom(2000))
    reg.pull_image(f"{NS}/app", digest)
    # The data is on the PV's directory.
    pv = cluster.get("v1", "persistentvolumes", None, registry)
    host_dir = Path(pv["metadata"]["annotations"]["localcluster.openshift.io/host-path"])
    assert (host_dir / "docker/registry/v2/repositories" / NS / "app").is_dir()
    # puller can pull but not push, through the route too.
    puller = _route_client(cluster, api.tokens["puller"])
    puller.pull_image(f"{NS}/app", "v1")
    with pytest.raises(RegistryError) as e:
        puller.push_image(f"{NS}/app", "v2")
    assert e.value.status == 401


def test_multi_attach_waits_until_the_other_pod_is_gone(cluster, registry):
    cluster.apply(registry_pod(NS, "image-registry-b", "worker-1"))
    msg = f'Multi-Attach error for volume "{registry}" Volume is already used by pod(s) image-registry-a'
    ev = cluster.wait(lambda: [e for e in cluster.events(NS, "image-registry-b")
                               if e["reason"] == "FailedAttachVolume"], what="FailedAttachVolume event")
    assert ev[0]["message"] == msg and ev[0]["type"] == "Warning"
    time.sleep(0.3)
    pod_b = cluster.pod(NS, "image-registry-b")
    assert pod_b["status"]["phase"] == "Pending"
    assert pod_b["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    # Graceful delete of A: the kubelet stops it quickly (not 55 s) and removes the object.
    t0 = time.monotonic()
    cluster.delete_pod(NS, "image-registry-a")
    cluster.wait(lambda: cluster.pod(NS, "image-registry-a") is None, timeout=5, what="pod A removed")
    assert time.monotonic() - t0 < 4
    cluster.wait(lambda: cluster.ready(NS, "image-registry-b"), timeout=15, what="pod B Ready")


def test_image_survives_on_the_pv_in_the_new_pod(cluster, registry, api):
    cluster.wait(lambda: cluster.ready(NS, "image-registry-b"), timeout=15, what="pod B Ready")
    reg = _route_client(cluster, api.tokens["kube:admin"])
    reg.pull_image(f"{NS}/app", "v1")


def test_restart_on_crash_and_backoff(cluster, registry):
    name = "image-registry-b"
    cluster.wait(lambda: cluster.ready(NS, name), timeout=15, what="pod B Ready")
    for n in (1, 2):
        pid = registry_pid_of(cluster, NS, name)
        os.kill(pid, signal.SIGKILL)
        cluster.wait(lambda: cluster.pod(NS, name)["status"]["containerStatuses"][0]["restartCount"] == n,
                     what=f"restartCount {n}")
        cluster.wait(lambda: cluster.ready(NS, name) and registry_pid_of(cluster, NS, name) != pid,
                     timeout=10, what="Ready again")
    cs = cluster.pod(NS, name)["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] != 0
    assert any(e["reason"] == "BackOff" for e in cluster.events(NS, name))


def test_fault_never_ready(cluster, registry):
    name = "image-registry-b"
    cluster.namespace(FAULTS_NAMESPACE)
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE}, "data": {"kubelet.neverReady": "true"}}
    cluster.apply(cm)
    try:
        cluster.wait(lambda: not cluster.ready(NS, name), what="not Ready")
        assert cluster.pod(NS, name)["status"]["phase"] == "Running"
    finally:
        cluster.apply(dict(cm, data={}))
    cluster.wait(lambda: cluster.ready(NS, name), what="Ready again")


def test_fault_corrupt_blobs_via_configmap(cluster, registry, api):
    reg = _route_client(cluster, api.tokens["kube:admin"])
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE},
          "data": {"registry.corruptBlobs": "true"}}
    cluster.namespace(FAULTS_NAMESPACE)
    cluster.apply(cm)
    try:
        cluster.wait(lambda: cluster.kubelet.faults.get("registry.corruptBlobs"), what="knob seen")
        with pytest.raises(RegistryError, match="digest mismatch"):
            reg.pull_image(f"{NS}/app", "v1")
    finally:
        cluster.apply(dict(cm, data={}))
    cluster.wait(lambda: not cluster.kubelet.faults, what="knob cleared")
    reg.pull_image(f"{NS}/app", "v1")


def test_fault_drop_images_via_configmap(cluster, registry, api):
    reg = _route_client(cluster, api.tokens["kube:admin"])
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE},
          "data": {"registry.dropImages": "true"}}
    cluster.namespace(FAULTS_NAMESPACE)
    cluster.apply(cm)
    try:
        cluster.wait(lambda: cluster.kubelet.faults.get("registry.dropImages"), what="knob seen")
        reg.push_image(f"{NS}/vanishing", "v1")
        with pytest.raises(RegistryError) as e:
            reg.pull_image(f"{NS}/vanishing", "v1")
        assert e.value.status == 404
    finally:
        cluster.apply(dict(cm, data={}))


def test_failed_mount_until_secret_exists(cluster):
    ns = "kubelet-mounts"
    cluster.namespace(ns)
    vol = {"name": "creds", "secret": {"secretName": "late-secret", "items": [{"key": "k", "path": "sub/file"}]}}
    cluster.apply(pause_pod(ns, "mounter", "worker-2", volumes=[vol]))
    ev = cluster.wait(lambda: [e for e in cluster.events(ns, "mounter") if e["reason"] == "FailedMount"],
                      what="FailedMount")
    assert ev[0]["message"] == 'MountVolume.SetUp failed for volume "creds" : secret "late-secret" not found'
    assert cluster.pod(ns, "mounter")["status"]["phase"] == "Pending"
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late-secret", "namespace": ns},
                   "data": {"k": b64("hello")}})
    cluster.wait(lambda: cluster.ready(ns, "mounter"), what="Ready after the secret appeared")
    uid = cluster.pod(ns, "mounter")["metadata"]["uid"]
    f = cluster.settings.state_dir / "pods" / uid / "volumes" / "files" / "creds" / "sub" / "file"
    assert f.read_text() == "hello"


def test_optional_missing_configmap_does_not_block(cluster):
    ns = "kubelet-mounts"
    cluster.namespace(ns)
    vol = {"name": "opt", "configMap": {"name": "absent", "optional": True}}
    cluster.apply(pause_pod(ns, "optional", "worker-2", volumes=[vol]))
    cluster.wait(lambda: cluster.ready(ns, "optional"), what="Ready")


def test_emptydir_removed_with_pod(cluster):
    ns = "kubelet-mounts"
    cluster.namespace(ns)
    cluster.apply(pause_pod(ns, "scratch", "worker-1", volumes=[{"name": "tmp", "emptyDir": {}}]))
    cluster.wait(lambda: cluster.ready(ns, "scratch"), what="Ready")
    uid = cluster.pod(ns, "scratch")["metadata"]["uid"]
    d = cluster.settings.state_dir / "pods" / uid / "volumes" / "empty-dir" / "tmp"
    assert d.is_dir()
    cluster.delete_pod(ns, "scratch")
    cluster.wait(lambda: cluster.pod(ns, "scratch") is None, what="pod removed")
    assert not (cluster.settings.state_dir / "pods" / uid).exists()


def test_readiness_waits_for_the_scaled_initial_delay(cluster):
    """No readiness probe before initialDelaySeconds x probe_delay_scale (the operator's 15 s): the pod's
    container runs, answers /healthz, and is still not Ready; then it is."""
    pod = registry_pod(NS, "image-registry-delayed", "worker-1", claim=None)
    c = pod["spec"]["containers"][0]
    c["readinessProbe"] = dict(c["readinessProbe"], initialDelaySeconds=15)
    delay = 15 * cluster.settings.probe_delay_scale
    assert delay > 0.2, "the kubelet selftests' settings leave no delay to see"
    cluster.apply(pod)
    try:
        started = cluster.wait(lambda: (time.monotonic() if ((cluster.pod(NS, "image-registry-delayed") or {})
                                        .get("status", {}).get("containerStatuses") or [{}])[0].get("started")
                                        else None), timeout=15, what="container started")
        ip = cluster.pod(NS, "image-registry-delayed")["status"]["podIP"]
        cluster.wait(lambda: requests.get(f"https://{ip}:5000/healthz", verify=False, timeout=2).ok,
                     timeout=10, what="/healthz answers")
        if time.monotonic() - started < delay * 0.8:
            assert not cluster.ready(NS, "image-registry-delayed"), "Ready before the initial delay"
        cluster.wait(lambda: cluster.ready(NS, "image-registry-delayed"), timeout=15, what="Ready after the delay")
        assert time.monotonic() - started >= delay * 0.9
        # After a crash the restarted container waits the delay again.
        os.kill(registry_pid_of(cluster, NS, "image-registry-delayed"), signal.SIGKILL)
        restarted = cluster.wait(lambda: (time.monotonic() if cluster.pod(NS, "image-registry-delayed")["status"]
                                          ["containerStatuses"][0]["restartCount"] == 1 else None),
                                 timeout=15, what="restartCount 1")
        cluster.wait(lambda: cluster.ready(NS, "image-registry-delayed"), timeout=15, what="Ready after the restart")
        assert time.monotonic() - restarted >= delay * 0.9, "Ready again without the initial delay after a restart"
    finally:
        cluster.delete_pod(NS, "image-registry-delayed", grace=0)


def test_zz_stop_leaves_no_registry_process(cluster, registry):
    assert registry_pids_under(cluster.settings.state_dir)
    cluster.stop()
    assert registry_pids_under(cluster.settings.state_dir) == []
