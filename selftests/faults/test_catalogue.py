"""Per-fault selftests of the catalogue (issue 9): the check meant for each fault fails, and its message
names the cause. One local cluster serves every case of the module (knobs set and cleared per case).
`make detection` runs the whole catalogue, older faults included."""
from __future__ import annotations

import pytest

from selftests.support import served_cluster_in

from . import runner
from .catalogue import CATALOGUE

CASES = [f for f in CATALOGUE if f.selftest and not f.serve_args]


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "faults") as served:
        yield served


@pytest.mark.parametrize("fault", CASES, ids=[f.id for f in CASES])
def test_the_check_catches_the_fault(fault, shared_cluster):
    lc, cluster, tmp = shared_cluster
    outcome = runner.run(lc, cluster, fault, tmp / "runs")
    assert outcome.as_expected, outcome.verdict()
