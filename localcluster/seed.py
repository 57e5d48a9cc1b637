"""The objects an OpenShift vSphere IPI cluster has before anyone touches the image registry.

Written through the API like any other client. The image registry Config itself is not seeded: the
operator bootstraps it (Removed on vSphere), as the real operator does on a new cluster.
"""
from __future__ import annotations

import base64
import datetime

from localcluster import settings as S
from localcluster.client import ApiError, path
from localcluster.pki import CertificateAuthority

NAMESPACES = {
    "default": {},
    "kube-system": {},
    "openshift-config": {},
    "openshift-config-managed": {},
    "openshift-image-registry": {
        "openshift.io/sa.scc.supplemental-groups": "1000430000/10000",
        "openshift.io/sa.scc.uid-range": "1000430000/10000",
    },
    "openshift-ingress": {},
    "openshift-ingress-operator": {},
    "openshift-service-ca": {},
    S.FAULTS_NAMESPACE: {},
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(name: str, index: int, master: bool) -> dict:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.openshift.io/os_id": "rhcos",
    }
    spec: dict = {"providerID": f"vsphere://4230{index:04d}-6b1c-5c51-a1f4-0c0ad7e7e1{index:02d}"}
    if master:
        labels["node-role.kubernetes.io/master"] = ""
        labels["node-role.kubernetes.io/control-plane"] = ""
        spec["taints"] = [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]
    else:
        labels["node-role.kubernetes.io/worker"] = ""
    now = _now()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"127.0.{index + 1}.1"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "4", "memory": "16393300Ki", "pods": "250"},
            "allocatable": {"cpu": "3500m", "memory": "15242324Ki", "pods": "250"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                 "lastTransitionTime": now},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"6f0c1e2a-0b8e-4a52-9d0e-4c1b7a9e{index:04d}",
                "containerRuntimeVersion": "cri-o://1.31.6-3.rhaos4.18.el9",
                "kernelVersion": "5.14.0-427.65.1.el9_4.x86_64",
                "kubeProxyVersion": "v1.31.7",
                "kubeletVersion": "v1.31.7",
                "machineID": f"4230{index:04d}6b1c5c51a1f40c0ad7e7e1{index:02d}",
                "operatingSystem": "linux",
                "osImage": "Red Hat Enterprise Linux CoreOS 418.94.202505061430-0",
                "systemUUID": f"4230{index:04d}-6b1c-5c51-a1f4-0c0ad7e7e1{index:02d}",
            },
        },
    }


def storage_classes(settings: S.Settings) -> list[dict]:
    return [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "thin-csi",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "csi.vsphere.vmware.com",
            "parameters": {"StoragePolicyName": "openshift-storage-policy-vsphere-local"},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "thin"},
            "provisioner": "kubernetes.io/vsphere-volume",
            "parameters": {"diskformat": "thin"},
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    ]


async def _create(client, collection: str, body: dict, status: dict | None = None) -> dict:
    try:
        obj = await client.create(collection, body)
    except ApiError as e:
        if e.status != 409:
            raise
        name = body["metadata"]["name"]
        obj = await client.get(f"{collection}/{name}")
    if status is not None:
        name = obj["metadata"]["name"]
        obj = await client.patch(f"{collection}/{name}/status", {"status": status})
    return obj


async def seed(client, settings: S.Settings, ingress_ca: CertificateAuthority, api_url: str) -> None:
    for ns, notes in NAMESPACES.items():
        await _create(client, path("v1", "namespaces"), {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "annotations": dict(notes),
                         "labels": {"kubernetes.io/metadata.name": ns}},
        })

    for i, name in enumerate(S.MASTER_NODES):
        node = _node(name, i, master=True)
        await _create(client, path("v1", "nodes"), {k: v for k, v in node.items() if k != "status"},
                      node["status"])
    for i, name in enumerate(S.worker_node_names(settings.worker_nodes)):
        node = _node(name, len(S.MASTER_NODES) + i, master=False)
        await _create(client, path("v1", "nodes"), {k: v for k, v in node.items() if k != "status"},
                      node["status"])

    ingress_ips = [settings.router_host]
    await _create(client, path("config.openshift.io/v1", "infrastructures"), {
        "apiVersion": "config.openshift.io/v1", "kind": "Infrastructure",
        "metadata": {"name": "cluster"},
        "spec": {"cloudConfig": {"key": "config", "name": "cloud-provider-config"},
                 "platformSpec": {"type": "VSphere", "vsphere": {}}},
    }, {
        "apiServerURL": f"https://{S.API_HOST}:6443",
        "apiServerInternalURI": f"https://api-int.{S.CLUSTER_NAME}.{S.BASE_DOMAIN}:6443",
        "controlPlaneTopology": "HighlyAvailable",
        "infrastructureTopology": "HighlyAvailable",
        "cpuPartitioning": "None",
        "etcdDiscoveryDomain": "",
        "infrastructureName": S.INFRA_NAME,
        "platform": "VSphere",
        "platformStatus": {"type": "VSphere", "vsphere": {
            "apiServerInternalIP": "127.0.0.1", "apiServerInternalIPs": ["127.0.0.1"],
            "ingressIP": ingress_ips[0], "ingressIPs": ingress_ips,
            "loadBalancer": {"type": "OpenShiftManagedDefault"},
        }},
    })
    await _create(client, path("config.openshift.io/v1", "clusterversions"), {
        "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion",
        "metadata": {"name": "version"},
        "spec": {"channel": "stable-4.18", "clusterID": "5d3c1e0a-6f55-4bb1-9a53-0a4c2f1d7e21"},
    }, {
        "desired": {"version": S.OPENSHIFT_VERSION,
                    "image": "quay.io/openshift-release-dev/ocp-release@sha256:" + "0" * 64},
        "history": [{"state": "Completed", "version": S.OPENSHIFT_VERSION, "startedTime": _now(),
                     "completionTime": _now(), "verified": False,
                     "image": "quay.io/openshift-release-dev/ocp-release@sha256:" + "0" * 64}],
        "observedGeneration": 1,
        "versionHash": "local",
        "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": _now(),
                        "message": f"Done applying {S.OPENSHIFT_VERSION}"}],
    })
    await _create(client, path("config.openshift.io/v1", "ingresses"), {
        "apiVersion": "config.openshift.io/v1", "kind": "Ingress",
        "metadata": {"name": "cluster"}, "spec": {"domain": S.APPS_DOMAIN},
    })
    await _create(client, path("config.openshift.io/v1", "proxies"), {
        "apiVersion": "config.openshift.io/v1", "kind": "Proxy", "metadata": {"name": "cluster"},
        "spec": {"trustedCA": {"name": ""}},
    })
    await _create(client, path("config.openshift.io/v1", "images"), {
        "apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
        "spec": {},
    })

    for sc in storage_classes(settings):
        await _create(client, path("storage.k8s.io/v1", "storageclasses"), sc)

    # Ingress: the default IngressController, its wildcard certificate and the published CA.
    router_cert, router_key = ingress_ca.issue(
        f"*.{S.APPS_DOMAIN}", dns_names=[f"*.{S.APPS_DOMAIN}", S.APPS_DOMAIN])
    router_chain = router_cert + ingress_ca.cert_pem
    published = ingress_ca.cert_pem
    ic_spec: dict = {"replicas": 2}
    if settings.custom_default_certificate:
        # A public CA's chain; the root goes only to the stand-in system trust store.
        root = CertificateAuthority.create("Localcluster Public Root CA")
        intermediate = root.issue_ca("Localcluster Public TLS CA 1")
        leaf, router_key = intermediate.issue(f"*.{S.APPS_DOMAIN}", dns_names=[f"*.{S.APPS_DOMAIN}", S.APPS_DOMAIN])
        router_chain = published = leaf + intermediate.cert_pem
        (settings.state_dir / "system-roots.pem").write_bytes(root.cert_pem)
        ic_spec["defaultCertificate"] = {"name": "custom-default-cert"}
        await _create(client, path("v1", "secrets", "openshift-ingress"), {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "custom-default-cert", "namespace": "openshift-ingress"},
            "data": {"tls.crt": _b64(router_chain), "tls.key": _b64(router_key)},
        })
    await _create(client, path("operator.openshift.io/v1", "ingresscontrollers", "openshift-ingress-operator"), {
        "apiVersion": "operator.openshift.io/v1", "kind": "IngressController",
        "metadata": {"name": "default", "namespace": "openshift-ingress-operator"},
        "spec": ic_spec,
    }, {"domain": S.APPS_DOMAIN, "availableReplicas": 2,
        "endpointPublishingStrategy": {"type": "HostNetwork"},
        "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": _now()}]})
    await _create(client, path("v1", "secrets", "openshift-ingress-operator"), {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "router-ca", "namespace": "openshift-ingress-operator"},
        "data": {"tls.crt": _b64(ingress_ca.cert_pem), "tls.key": _b64(ingress_ca.key_pem)},
    })
    await _create(client, path("v1", "secrets", "openshift-ingress"), {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "router-certs-default", "namespace": "openshift-ingress"},
        # (with a custom default certificate the real router serves that secret; this router serves
        # router-certs-default, so it holds the custom certificate then)
        "data": {"tls.crt": _b64(router_chain), "tls.key": _b64(router_key)},
    })
    await _create(client, path("v1", "configmaps", "openshift-config-managed"), {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "default-ingress-cert", "namespace": "openshift-config-managed"},
        # The ingress operator publishes its CA, or the custom default certificate's tls.crt
        # (cluster-ingress-operator certificate controller, PR #331).
        "data": {"ca-bundle.crt": published.decode()},
    })

    # kube-apiserver, openshift-apiserver, openshift-controller-manager: they roll out when the image
    # config's registry hostnames change (controllers/controlplane.py, issue 7).
    from localcluster.controllers.controlplane import seed_operators
    await seed_operators(client)
    # The ClusterOperator is created from a manifest by the CVO; the operator fills its status.
    await _create(client, path("config.openshift.io/v1", "clusteroperators"), {
        "apiVersion": "config.openshift.io/v1", "kind": "ClusterOperator",
        "metadata": {"name": "image-registry",
                     "annotations": {"include.release.openshift.io/self-managed-high-availability": "true"}},
        "spec": {},
    })
    # The image pruner controller keeps its own object; this is its steady state on a new cluster
    # (the operator folds its conditions into the ClusterOperator as ImagePruner*).
    await _create(client, path("imageregistry.operator.openshift.io/v1", "imagepruners"), {
        "apiVersion": "imageregistry.operator.openshift.io/v1", "kind": "ImagePruner",
        "metadata": {"name": "cluster"},
        "spec": {"schedule": "", "suspend": False, "keepTagRevisions": 3, "successfulJobsHistoryLimit": 3,
                 "failedJobsHistoryLimit": 3, "ignoreInvalidImageReferences": True, "logLevel": "Normal"},
    }, {"observedGeneration": 1, "conditions": [
        {"type": "Available", "status": "True", "lastTransitionTime": _now(), "reason": "AsExpected",
         "message": "Pruner CronJob has been created"},
        {"type": "Scheduled", "status": "True", "lastTransitionTime": _now(), "reason": "Scheduled",
         "message": "The pruner job has been scheduled"},
        {"type": "Failed", "status": "False", "lastTransitionTime": _now(), "reason": "Complete",
         "message": "Pruner completed successfully"},
        {"type": "Degraded", "status": "False", "lastTransitionTime": _now(), "reason": "AsExpected"},
    ]})
    # The knob through which selftests make the local cluster misbehave on purpose (empty: healthy).
    await _create(client, path("v1", "configmaps", S.FAULTS_NAMESPACE), {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": S.FAULTS_CONFIGMAP, "namespace": S.FAULTS_NAMESPACE},
        "data": {},
    })
