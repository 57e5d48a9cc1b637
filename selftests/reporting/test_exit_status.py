"""fixtures/verdicts.py's exit status (issue 16): which of pytest's status, 16 and 17 a run ends with, and
the n/a lines that replace one -ra line per test (the runs themselves: selftests/runstructure/test_verdicts.py)."""
from __future__ import annotations

from fixtures.verdicts import EXIT_BACKEND_UNAVAILABLE, EXIT_NO_BACKEND_CERTIFIED, decide, na_summary

LACKS = {"cephfs": "cephfs: StorageClass ocs-storagecluster-cephfs not found on the cluster"}


def test_a_named_backend_that_cannot_run():
    assert decide(0, {"cephfs", "emptydir"}, LACKS, {"emptydir"}) == EXIT_BACKEND_UNAVAILABLE == 16
    assert decide(0, {"emptydir"}, LACKS, {"emptydir"}) == 0       # cephfs was not asked for (a refusal's claim)


def test_no_backend_certified_by_default():
    assert decide(0, set(), LACKS, set()) == EXIT_NO_BACKEND_CERTIFIED == 17
    assert decide(0, set(), LACKS, {"emptydir"}) == 0
    assert decide(0, set(), {}, set()) == 0                         # nothing lacked: a read-only run, say


def test_failures_and_interruptions_outrank_them():
    assert decide(1, {"cephfs"}, LACKS, set()) == 1
    assert decide(2, set(), LACKS, set()) == 2


def test_na_lines():
    assert na_summary([None, "cephfs", None, "cephfs"], LACKS) == [
        "N/A 2 check(s) do not apply to their backend (the reasons: matrix.md)",
        "N/A 2 check(s) of cephfs: StorageClass ocs-storagecluster-cephfs not found on the cluster"]
    assert na_summary([], LACKS) == []
