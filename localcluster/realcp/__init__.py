"""The local cluster on a real control plane (issue 8).

etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager, kube-scheduler and the real
cluster-image-registry-operator of one OpenShift release run as processes inside a private network
namespace (loopback only); the project's node-side components (kubelet, provisioner, service CA, router,
ODF) are clients of that kube-apiserver. See localcluster/README.md, "Control planes".

    binaries.py      find ../shared/bin, unpack the .xz binaries into a cache, check SHA256SUMS
    netns.py         re-run `serve` inside `unshare -n -m`; the loopback-only bridge to the outside
    controlplane.py  PKI, etcd, kube-apiserver, kube-controller-manager, kube-scheduler
    seed.py          CRDs of the release and what the real operator needs besides localcluster/seed.py
    operator.py      the real operator: environment, /etc/secrets in a private mount namespace
    kubeletapi.py    the kubelet API (HTTPS /portForward/<ns>/<pod>) that kube-apiserver calls
    cluster.py       RealCluster: LocalCluster's interface on the real control plane
"""
