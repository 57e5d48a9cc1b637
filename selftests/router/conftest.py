from selftests.kubelet.kubelet_support import api  # noqa: F401  (fixtures)
