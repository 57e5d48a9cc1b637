"""Authorization checks (tests/test_registry_access.py) against a registry that lets the wrong callers
in: each fault knob of the registry pods' front is caught by its own check, and by that check only; and
the healthy run passes with the installer-style certificate kubeconfig (context system:admin: no token,
pushes and pulls as the run's ServiceAccount with a TokenRequest token)."""
from __future__ import annotations

import pytest

from selftests.suite.test_suite_against_faults import junit_outcomes, set_faults
from selftests.support import run_suite, served_cluster_in

ACCESS = "tests/test_registry_access.py"
CHECKS = {
    "push": "test_push_without_push_role_is_refused",
    "anon-push": "test_anonymous_push_is_refused",
    "anon-pull": "test_anonymous_pull_is_refused",
    "outsider": "test_pull_without_rights_is_refused",
}
# fault knob -> (the check that must fail, what its message must say)
FAULTS = {
    "registry.pushWithPullRole": ("push", ["the registry accepted a push", "system:image-puller",
                                           "registry-conformance-puller-only"]),
    "registry.anonymousPush": ("anon-push", ["the registry accepted a push", "anonymous"]),
    "registry.anonymousPull": ("anon-pull", ["the registry accepted a pull", "anonymous"]),
    "registry.pullWithoutRole": ("outsider", ["the registry accepted a pull", "registry-conformance-outsider",
                                              "no get on imagestreams/layers"]),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_cluster_in(tmp_path_factory, "access") as served:
        yield served


def _run(lc, d, run_id, *select):
    # As the installer's kubeconfig (a client certificate), the suite's default graces.
    run = run_suite(lc, [*select, "--context=system:admin", "--backend=emptydir"], d, run_id, rollout_timeout=60,
                    grace=None, timeout=600)
    return run.returncode, run.output, run.junit


def _case(outcomes, name):
    hits = [k for k in outcomes if k.startswith(name + "[")]
    assert len(hits) == 1, f"{name}: {sorted(outcomes)}"
    return outcomes[hits[0]]


def test_healthy_registry_with_a_certificate_kubeconfig(served):
    lc, cluster, d = served
    set_faults(cluster, {})
    # --backend=emptydir: the access checks run on the first selected backend (ONE_BACKEND)
    rc, out, junit = _run(lc, d, "healthy", ACCESS, "tests/test_storage_backends.py", "-k",
                          "emptydir and (refused or push_and_pull or every_replica)")
    assert rc == 0, out[-4000:]
    outcomes = junit_outcomes(junit)
    assert len(outcomes) == 6 and not any(outcomes.values()), outcomes


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_caught_by_its_check_only(served, fault):
    lc, cluster, d = served
    set_faults(cluster, {fault: "true"})
    try:
        rc, out, junit = _run(lc, d, fault.replace(".", "-"), ACCESS)
    finally:
        set_faults(cluster, {fault: None})
    assert rc == 1, f"the suite did not fail with {fault}:\n{out[-3000:]}"
    outcomes = junit_outcomes(junit)
    meant, expect = FAULTS[fault]
    messages = "\n".join(_case(outcomes, CHECKS[meant]))
    assert messages, f"{CHECKS[meant]} did not fail with {fault}:\n{out[-3000:]}"
    missing = [e for e in expect if e not in messages]
    assert not missing, f"the failure does not name {missing}:\n{messages[:3000]}"
    others = {k: _case(outcomes, v) for k, v in CHECKS.items() if k != meant}
    assert not any(others.values()), f"{fault} also failed other checks: {others}"
