"""Names the OpenShift image registry operator uses (operator-facts.md §1, §4)."""
from __future__ import annotations

from localcluster import settings as _s

NAMESPACE = "openshift-image-registry"
CONFIG_NAME = "cluster"
CONFIG_API = "imageregistry.operator.openshift.io/v1"
FINALIZER = "imageregistry.operator.openshift.io/finalizer"

DEPLOYMENT_NAME = "image-registry"
SERVICE_NAME = "image-registry"
PDB_NAME = "image-registry"
SERVICE_ACCOUNT = "registry"
PRIVATE_CONFIG_SECRET = "image-registry-private-configuration"
USER_CONFIG_SECRET = "image-registry-private-configuration-user"   # S3 (later issue)
TLS_SECRET = "image-registry-tls"
CERTS_CONFIGMAP = "image-registry-certificates"
SERVICE_CA_CONFIGMAP = "openshift-service-ca.crt"
NODE_CA = "node-ca"
DEFAULT_ROUTE = "default-route"
CLUSTER_OPERATOR = "image-registry"
DEFAULT_PVC = "image-registry-storage"

LABELS = {"docker-registry": "default"}
OWNER_ANNOTATION = "imageregistry.openshift.io"     # on the auto-created PVC and on operator routes
CHECKSUM_ANNOTATION = "imageregistry.operator.openshift.io/checksum"
DEPS_CHECKSUM_ANNOTATION = "imageregistry.operator.openshift.io/dependencies-checksum"
VERSION_ANNOTATION = "release.openshift.io/version"
SERVING_CERT_ANNOTATION = "service.alpha.openshift.io/serving-cert-secret-name"

PORT = 5000
INTERNAL_HOSTNAME = f"{SERVICE_NAME}.{NAMESPACE}.svc:{PORT}"
VERSION = _s.OPENSHIFT_VERSION
REGISTRY_IMAGE = _s.REGISTRY_IMAGE
NODE_CA_IMAGE = _s.PAUSE_IMAGE

# Fault knobs read from configmap localcluster-system/localcluster-faults.
FAULT_MUTATE_SPEC = "operator.mutateSpec"
FAULT_SKIP_PVC_CHECKS = "operator.skipPVCChecks"
FAULT_ACCEPT_SEVERAL_STORAGE_TYPES = "operator.acceptSeveralStorageTypes"
FAULT_DEPLOYMENT_PATCH = "operator.deploymentPatch"     # JSON merge patch on the Deployment it writes
FAULT_DEFAULT_CLAIM_ACCESS_MODE = "operator.defaultClaimAccessMode"   # access mode of the claim it creates
# issue 9 (checks that cannot be fooled)
FAULT_AVAILABLE_WHILE_DOWN = "operator.availableWhileDown"
FAULT_CO_ALWAYS_AVAILABLE = "operator.clusterOperatorAlwaysAvailable"
FAULT_PDB_MIN_AVAILABLE = "operator.pdbMinAvailable"
FAULT_IGNORE_TRUSTED_CA = "operator.ignoreTrustedCA"
FAULT_S3_BUCKET_SUFFIX = "operator.s3BucketSuffix"
FAULT_STALE_IMAGE_CONFIG = "operator.staleImageConfig"
FAULT_KEEP_USER_EDITS = "operator.keepUserEdits"
FAULT_LEAVE_OBJECTS_ON_REMOVED = "operator.leaveObjectsOnRemoved"
# Issue 7: the Deployment keeps the claim of the storage before a storage change (as volume
# registry-storage-previous), so a check of "storage changed on a running registry" can fail.
FAULT_STALE_STORAGE_VOLUME = "operator.staleStorageVolume"
STALE_VOLUME = "registry-storage-previous"

# Config storage members in the order the real NewDriver checks them, with their driver names.
STORAGE_TYPES = (
    ("emptyDir", "EmptyDir"), ("s3", "S3"), ("swift", "Swift"), ("gcs", "GCS"),
    ("ibmcos", "IBMCOS"), ("pvc", "PVC"), ("azure", "Azure"),
)
