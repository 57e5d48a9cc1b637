"""The drain-blocking judges on a live local cluster, faults made by its knobs (issue 17): a Managed
registry (emptyDir, one replica) whose operator writes PDB image-registry with minAvailable 1
(`operator.pdbMinAvailable`) fails the `pdb` check, node-ca placed on no node (`daemonset.fitNoNode`)
fails `node-ca` ("0/0" passed before) and the ClusterOperator check; without the knobs all pass."""
from __future__ import annotations

import time

from selftests.faults.runner import set_knobs
from utilities import registry_steps as steps
from utilities import waits
from utilities.backends import EMPTYDIR
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess
from utilities.preupgrade.gather import ClusterView, run_check

TIMEOUT = 90


def _until(c, check: str, verdict: str, timeout: float = 60):
    """The check's verdict once it is `verdict` (the operator and controllers react within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        v = run_check(ClusterView(c), check)
        if v.verdict == verdict or time.monotonic() > deadline:
            return v
        time.sleep(1)


def test_drain_blockers_on_a_live_local_cluster(tmp_path):
    with LocalClusterProcess(tmp_path / "lc") as lc:
        c = load_cluster(lc.kubeconfig, embedded=True, info=lc.info)
        try:
            with steps.managed(c, TIMEOUT), steps.storage(c, EMPTYDIR, TIMEOUT):
                healthy = {n: _until(c, n, "pass") for n in ("pdb", "node-ca", "clusteroperator")}
                assert all(v.verdict == "pass" for v in healthy.values()), healthy
                assert "minAvailable 0" in healthy["pdb"].reason and "1 disruption(s) allowed" in healthy["pdb"].reason
                assert "Linux node(s)" in healthy["node-ca"].reason, healthy["node-ca"]

                set_knobs(c, {"operator.pdbMinAvailable": "1"})
                try:
                    v = _until(c, "pdb", "fail")
                    assert v.verdict == "fail", v
                    for needle in ("PDB image-registry (minAvailable 1)", "0 disruption(s) allowed", "Cannot evict"):
                        assert needle in v.reason, (needle, v.reason)
                finally:
                    set_knobs(c, {"operator.pdbMinAvailable": None})
                assert _until(c, "pdb", "pass").verdict == "pass"

                set_knobs(c, {"daemonset.fitNoNode": "openshift-image-registry/node-ca"})
                try:
                    v = _until(c, "node-ca", "fail")
                    assert v.verdict == "fail" and "0/0" in v.reason and "Linux node(s)" in v.reason, v
                    co = _until(c, "clusteroperator", "fail")
                    assert co.verdict == "fail" and "NodeCADaemon" in co.reason, co
                finally:
                    set_knobs(c, {"daemonset.fitNoNode": None})
                assert _until(c, "node-ca", "pass").verdict == "pass"
                waits.wait_for_clusteroperator(c, {"Available": ("True", None)}, TIMEOUT)
        finally:
            c.api_client.close()
