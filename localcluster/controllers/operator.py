"""The OpenShift Image Registry Operator of the local cluster.

The implementation lives in the `registry_operator` package: pure functions (bootstrap, condition
matrix, ClusterOperator aggregation, storage drivers' decisions, desired objects) and a thin reconcile
loop (`registry_operator.controller`)."""
from localcluster.controllers.registry_operator.controller import ImageRegistryOperator

__all__ = ["ImageRegistryOperator"]
