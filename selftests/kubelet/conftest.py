from selftests.kubelet.kubelet_support import api, cluster  # noqa: F401  (fixtures)
