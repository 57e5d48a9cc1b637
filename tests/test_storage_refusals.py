"""What the operator must refuse, each reported with its own words (operator-facts.md §3.1, §3.3):

- a ReadWriteOnce claim with two replicas: "cannot use ReadWriteOnce access mode with more than one
  replica of the image registry";
- a ReadWriteOnce claim without Recreate: "cannot use ReadWriteOnce access mode with RollingUpdate
  rollout strategy";
- two storage types at once: "exactly one storage type should be configured at the same time, got 2:
  [EmptyDir PVC]".

Each is a transient error, so it surfaces in the Config's Progressing=True/Error condition as
"Unable to apply resources: unable to sync storage configuration: <error>". The wait fails at once,
quoting the operator, when the operator has observed the spec and says something else (it accepted).
The RWO claim is created on the `block` backend's storage class (--storage-class block=CLASS) or the default.

They run last, from a registry with no Deployment (`no_registry`): the operator checks storage before it
makes any object (CIRO Generator.Apply syncs storage first), so a refused spec rolls out nothing; and a
refusal leaves StorageExists=False/PVC Issues Found, which the operator does not write again for an
unchanged emptyDir (CIRO pkg/storage/emptydir CreateStorage), so refusing before a backend would leave
that backend's StorageExists stale. From Removed, status.storage is empty and the next storage is judged
afresh.
"""
from __future__ import annotations

import pytest

from fixtures.verdicts import BackendUnavailable
from utilities import deadline, waits
from utilities import registry_steps as steps
from utilities.backends import BLOCK

pytestmark = [pytest.mark.destructive, pytest.mark.storage, pytest.mark.phase("last")]

APPLY_PREFIX = "Unable to apply resources: unable to sync storage configuration: "
RWO_CLAIM = "registry-conformance-rwo"


def _block(pytestconfig):
    from fixtures.storage import selected_backends
    return next((b for b in selected_backends(pytestconfig) if b.id == BLOCK.id), BLOCK)


@pytest.fixture
def rwo_claim(request, cluster, make_claim, pytestconfig):
    block = _block(pytestconfig)
    missing = steps.missing_prerequisites(cluster, block)
    if missing:
        raise BackendUnavailable(block.id, missing)
    request.getfixturevalue("no_registry")      # only once the claim can be made
    return make_claim(RWO_CLAIM, "ReadWriteOnce", "100Gi", storage_class=block.storage_class)


def _refused(cluster, rollout_timeout, expected: str, **fields) -> dict:
    """Managed + `fields`; the operator must refuse with `expected`; the spec is put back and the
    registry settles before the next step (with a timeout of its own: the test's deadline may be spent)."""
    try:
        with steps.spec_fields(cluster, managementState="Managed", **fields):
            cfg = waits.wait_for_progressing_error(cluster, expected, rollout_timeout)
    finally:
        with deadline.lifted():
            steps.wait_settled(cluster, rollout_timeout)
    prog = waits.conditions(cfg)["Progressing"]
    assert prog.get("reason") == "Error", waits.storage_conditions_text(cfg)
    assert prog.get("message") == APPLY_PREFIX + expected, \
        f"Progressing message {prog.get('message')!r}, expected {APPLY_PREFIX + expected!r}"
    return cfg


def test_rwo_with_two_replicas_is_refused(cluster, rwo_claim, rollout_timeout):
    cfg = _refused(cluster, rollout_timeout,
                   "cannot use ReadWriteOnce access mode with more than one replica of the image registry",
                   storage={"pvc": {"claim": RWO_CLAIM}}, replicas=2, rolloutStrategy="Recreate")
    se = waits.conditions(cfg).get("StorageExists") or {}
    assert (se.get("status"), se.get("reason")) == ("False", "PVC Issues Found"), waits.storage_conditions_text(cfg)


def test_rwo_without_recreate_is_refused(cluster, rwo_claim, rollout_timeout):
    cfg = _refused(cluster, rollout_timeout,
                   "cannot use ReadWriteOnce access mode with RollingUpdate rollout strategy",
                   storage={"pvc": {"claim": RWO_CLAIM}}, replicas=1, rolloutStrategy="RollingUpdate")
    se = waits.conditions(cfg).get("StorageExists") or {}
    assert (se.get("status"), se.get("reason")) == ("False", "PVC Issues Found"), waits.storage_conditions_text(cfg)


def test_two_storage_types_are_refused(cluster, no_registry, rollout_timeout):
    _refused(cluster, rollout_timeout,
             "exactly one storage type should be configured at the same time, got 2: [EmptyDir PVC]",
             storage={"emptyDir": {}, "pvc": {"claim": ""}}, replicas=1)
