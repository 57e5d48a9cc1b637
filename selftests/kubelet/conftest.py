from selftests.kubelet.kubelet_support import api, cluster, loop_thread  # noqa: F401  (fixtures)
