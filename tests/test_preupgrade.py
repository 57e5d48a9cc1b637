"""Pre-upgrade review of the image registry: read-only health and risk checks (issue 10).

Each check reads the cluster (GET and LIST only), or a must-gather with `--must-gather=DIR`, and ends
with a verdict: pass; warn (a risk: the test passes, the verdict shows in the table at the end of the
run, in JUnit and in reports/<run>/preupgrade.md|json); fail (a defect that breaks the registry now or
that the upgrade will hit); skip (the check does not apply, or a must-gather lacks a file it needs).
The judges are plain functions in utilities/preupgrade/judges.py; their sources are
docs/operator-facts.md (each verdict names its sections) and the OpenShift docs quoted there.
"""
from __future__ import annotations

import pytest

from utilities.preupgrade.gather import CHECKS

pytestmark = pytest.mark.readonly


@pytest.mark.parametrize("check", list(CHECKS))
def test_preupgrade(preupgrade_check, check):
    preupgrade_check(check)
