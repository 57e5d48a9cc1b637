"""Settings of the local cluster: every built-in delay is short by default and configurable.

One `Settings` object is built by the `serve` command (from flags and `LOCALCLUSTER_*` environment
variables) and handed to every component: the API server, the controllers, the router.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

CLUSTER_NAME = "vsphere-local"
BASE_DOMAIN = "example.test"
INFRA_NAME = "vsphere-local-x7k2p"
APPS_DOMAIN = f"apps.{CLUSTER_NAME}.{BASE_DOMAIN}"
API_HOST = f"api.{CLUSTER_NAME}.{BASE_DOMAIN}"
OPENSHIFT_VERSION = "4.18.12"

# The image the operator puts in the registry Deployment; the kubelet runs a real registry for it.
REGISTRY_IMAGE = "quay.io/openshift/origin-docker-registry:latest"
# Any other image runs as a "pause" container: Running and Ready, doing nothing.
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"

WORKER_NODES = ("worker-0", "worker-1", "worker-2")   # the default; Settings.worker_nodes picks how many


def worker_node_names(count: int) -> tuple[str, ...]:
    return tuple(f"worker-{i}" for i in range(max(1, int(count))))
MASTER_NODES = ("master-0", "master-1", "master-2")

# The namespace and ConfigMap through which tests make the local cluster misbehave on purpose.
FAULTS_NAMESPACE = "localcluster-system"
FAULTS_CONFIGMAP = "localcluster-faults"


def _env(name: str, default):
    raw = os.environ.get(f"LOCALCLUSTER_{name}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, int):
        return int(raw)
    return raw


@dataclasses.dataclass
class Settings:
    state_dir: Path = dataclasses.field(default_factory=lambda: Path("/tmp/localcluster"))
    # vSphere: thin-csi provisions ReadWriteMany only with vSAN file services enabled.
    vsan_file_services: bool = True
    # Operator: Degraded after Available has been non-True this long (real: 60/120/300 s by version).
    degraded_grace_seconds: float = 5.0
    # Controller delays (real clusters take seconds to minutes; here they are short on purpose).
    provision_delay: float = 0.05     # PVC -> bound PV
    pod_start_delay: float = 0.05     # scheduled -> container started
    probe_interval: float = 0.2       # readiness probe period
    # readinessProbe initialDelaySeconds times this (the registry's 15 s -> 0.45 s): a restarted registry
    # is down for a while, as on a real cluster, not ready the instant its process listens.
    probe_delay_scale: float = 0.03
    resync_seconds: float = 30.0      # informer resync period
    # Router listen address; port 0 picks a free port.
    router_host: str = "127.0.0.1"
    router_port: int = 0
    api_port: int = 0
    # OpenShift Data Foundation (issue 3): two real S3 servers (moto), the ODF StorageClasses, Services,
    # Routes and the ObjectBucketClaim provisioner. `--no-odf` / LOCALCLUSTER_ODF=false turns it off.
    odf: bool = True
    # Filled in at start: the cluster network proxy (localcluster/netproxy.py) that registry processes
    # and the operator's S3 client use to reach route hosts and `<svc>.<ns>.svc` names.
    netproxy_url: str = ""
    # API server fault injection (localcluster/apiserver/chaos.py), for the suite's requests only: the
    # local cluster's own components are exempt. Also changeable at run time: PUT /localcluster/chaos.
    api_error_rate: float = 0.0       # fraction of non-watch requests answered 429 / 500 / 503
    api_latency: float = 0.0          # seconds added to every request
    api_watch_drop_rate: float = 0.0  # fraction of watches closed early after a short random time
    api_conflict_rate: float = 0.0    # fraction of updates/patches answered 409 Conflict
    api_chaos_seed: int = 0           # seed of the fault injection's random generator
    # Trust (issue 7 item 15): the default IngressController has a custom default certificate signed
    # by a public CA (root -> intermediate -> *.apps leaf). default-ingress-cert then holds that
    # certificate (leaf + intermediate), as the ingress operator publishes it, not a CA that verifies
    # alone; the root is only in the stand-in for the machine's trust store, <state_dir>/system-roots.pem
    # (info.json `system_ca_file`). `--custom-default-certificate` / LOCALCLUSTER_CUSTOM_DEFAULT_CERTIFICATE.
    custom_default_certificate: bool = False
    # Pre-upgrade review offline (issue 10): serve this must-gather directory read-only through the API
    # server (no seed, no controllers, router or ODF; writes answered 405). `--must-gather DIR`.
    must_gather: str = ""

    # Versions (issue 7, rollout wait and conditions): the OpenShift release the operator emulates
    # ("4.12" ... "4.21", "4.22", "main"); `--openshift`. progressDeadlineSeconds of the registry
    # Deployment is 60 s up to 4.21 and 120 s from 4.22 (operator-facts §12.1);
    # `--progress-deadline-seconds` overrides it (0: by version) so selftests can pass it quickly.
    openshift: str = "4.18"
    progress_deadline_seconds: float = 0.0
    # The ODF (ocs-operator) release: "4.12" serves the RGW route without TLS (plain HTTP), later
    # releases as an edge route (operator-facts §12.9); `--odf-version`.
    odf_version: str = "4.18"
    # Control plane (issue 8): "builtin" (the project's API server, controllers and operator emulation)
    # or "real" (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the real operator of
    # release `openshift` (4.16, 4.18, 4.20 or main), in a private network namespace: localcluster/realcp/). `--control-plane`,
    # `--openshift` / LOCALCLUSTER_CONTROL_PLANE, LOCALCLUSTER_OPENSHIFT.
    control_plane: str = "builtin"
    # Issue 7 (control plane, single node): how long kube-apiserver, openshift-apiserver and
    # openshift-controller-manager stay Progressing when the image config's registry hostnames change
    # (real: minutes), and how many worker nodes the cluster has (1: a single-node cluster's view).
    control_plane_rollout_seconds: float = 0.3
    worker_nodes: int = 3

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        s = cls()
        for f in dataclasses.fields(cls):
            if f.name == "state_dir":
                raw = os.environ.get("LOCALCLUSTER_STATE_DIR")
                if raw:
                    s.state_dir = Path(raw)
                continue
            setattr(s, f.name, _env(f.name.upper(), getattr(s, f.name)))
        for k, v in overrides.items():
            if v is not None:
                setattr(s, k, v)
        return s


def version_tuple(version: str) -> tuple[int, int]:
    """"4.18" -> (4, 18); "main"/"master" -> a release after every numbered one."""
    if version.strip().lower() in ("main", "master"):
        return (99, 0)
    parts = version.strip().split(".")
    try:
        return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0)
    except ValueError:
        raise ValueError(f"openshift version {version!r}: expected MAJOR.MINOR such as 4.18, or main") from None


def progress_deadline_seconds(settings: "Settings") -> int:
    """progressDeadlineSeconds the operator writes on the registry Deployment (CIRO
    pkg/resource/deployment.go: 60 on release-4.12 ... 4.21, 120 from release-4.22)."""
    if settings.progress_deadline_seconds:
        return max(1, int(round(settings.progress_deadline_seconds)))
    return 120 if version_tuple(settings.openshift) >= (4, 22) else 60
