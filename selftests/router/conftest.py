from selftests.kubelet.kubelet_support import api, loop_thread  # noqa: F401  (fixtures)
