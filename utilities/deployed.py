"""What the registry was actually given, read from its Deployment (issue 9): failure messages compare it
with what the Config asks (which bucket the registry writes to, which volume it mounts)."""
from __future__ import annotations

from utilities import kube
from utilities.kube import REGISTRY_NAMESPACE, Cluster


# ---------------------------------------------------------------------------------------------
def registry_env(cluster: Cluster) -> dict:
    """The env of the registry container of Deployment image-registry ({} without a Deployment)."""
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, kube.REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    if dep is None:
        return {}
    for c in dep.spec.template.spec.containers or []:
        if c.name == "registry" or len(dep.spec.template.spec.containers) == 1:
            return {e.name: e.value for e in c.env or [] if e.value is not None}
    return {}


def registry_volumes(cluster: Cluster) -> str:
    """The storage volume of the Deployment, e.g. "registry-storage: emptyDir"."""
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, kube.REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    if dep is None:
        return "no Deployment"
    out = []
    for v in dep.spec.template.spec.volumes or []:
        if v.name == "registry-storage":
            kind = ("emptyDir" if v.empty_dir is not None else
                    f"persistentVolumeClaim {v.persistent_volume_claim.claim_name}" if v.persistent_volume_claim else
                    "other")
            out.append(f"{v.name}: {kind}")
    return ", ".join(out) or "no registry-storage volume"


def registry_bucket_text(cluster: Cluster) -> str:
    """Which bucket the registry writes to (Deployment env REGISTRY_STORAGE_S3_BUCKET / REGIONENDPOINT)
    against what the Config asks (spec.storage.s3.bucket / regionEndpoint)."""
    env = registry_env(cluster)
    s3 = (((cluster.registry_config() or {}).get("spec") or {}).get("storage") or {}).get("s3") or {}
    got_b, got_e = env.get("REGISTRY_STORAGE_S3_BUCKET"), env.get("REGISTRY_STORAGE_S3_REGIONENDPOINT")
    text = (f"the registry writes to bucket {got_b!r} at {got_e!r} (Deployment {kube.REGISTRY_DEPLOYMENT} env "
            f"REGISTRY_STORAGE_S3_BUCKET / REGISTRY_STORAGE_S3_REGIONENDPOINT); the Config asks for "
            f"spec.storage.s3.bucket {s3.get('bucket')!r} at {s3.get('regionEndpoint')!r}")
    if got_b != s3.get("bucket") or (got_e or None) != (s3.get("regionEndpoint") or None):
        text += ": they differ"
    return text
