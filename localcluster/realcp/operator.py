"""The real cluster-image-registry-operator of one release, as a process.

Its `/etc/secrets/tls.{crt,key}` (hard-coded paths) come from a copy of `/etc` bind-mounted over `/etc`
in a private mount namespace of its own (`unshare -m --propagation private`): the host's `/etc` is not
touched. Its environment follows real-control-plane.md. Its metrics listener (`:60000`, all interfaces
on 4.16-4.20) is inside the private network namespace of the whole control plane (netns.py).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from localcluster import settings as S
from localcluster.pki import CertificateAuthority
from localcluster.realcp import binaries
from localcluster.realcp.controlplane import Process

# OPERATOR_IMAGE_VERSION / RELEASE_VERSION of each release (the FeatureGate status lists it).
VERSIONS = {"4.16": "4.16.40", "4.18": "4.18.12", "4.20": "4.20.5", "main": "4.22.0"}
OPERATOR_IMAGE = "quay.io/openshift/origin-cluster-image-registry-operator:latest"
PRUNER_IMAGE = "quay.io/openshift/origin-cli:latest"


def version(release: str) -> str:
    return VERSIONS[release]


def _etc_copy(root: Path, ca: CertificateAuthority) -> Path:
    etc = root / "etc"
    if etc.exists():
        shutil.rmtree(etc)
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True,
                    ignore=shutil.ignore_patterns("secrets"))
    cert, key = ca.issue("image-registry-operator.openshift-image-registry.svc",
                         dns_names=["image-registry-operator.openshift-image-registry.svc",
                                    "image-registry-operator.openshift-image-registry.svc.cluster.local"])
    (etc / "secrets").mkdir(mode=0o700)
    (etc / "secrets" / "tls.crt").write_bytes(cert + ca.cert_pem)
    (etc / "secrets" / "tls.key").write_bytes(key)
    return etc


def operator_process(release: str, state_dir: Path, kubeconfig: Path, service_ca: CertificateAuthority,
                     netproxy_url: str = "") -> Process:
    exe = binaries.binary(binaries.operator_name(release))
    root = state_dir / "operator"
    root.mkdir(parents=True, exist_ok=True)
    etc = _etc_copy(root, service_ca)
    azure = root / "azure.json"
    azure.write_text("{}\n")
    v = version(release)
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": str(root),
        "OPERATOR_IMAGE_VERSION": v,
        "RELEASE_VERSION": v,
        "IMAGE": S.REGISTRY_IMAGE,
        "IMAGE_PRUNER": PRUNER_IMAGE,
        "OPERATOR_IMAGE": OPERATOR_IMAGE,
        "AZURE_ENVIRONMENT_FILEPATH": str(azure),
        "WATCH_NAMESPACE": "openshift-image-registry",
        "POD_NAME": "cluster-image-registry-operator-7f8d9c6b5d-x4q2z",
    }
    if netproxy_url:
        # The operator's S3 client reaches route hosts through the cluster network proxy; the API stays direct.
        env.update(HTTPS_PROXY=netproxy_url, HTTP_PROXY=netproxy_url, NO_PROXY="127.0.0.1,localhost")
    argv = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc && exec "$@"', str(etc), str(exe),
            f"--kubeconfig={kubeconfig}"]
    return Process(f"cluster-image-registry-operator-{release}", argv, state_dir / "logs", env=env)
