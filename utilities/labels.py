"""Labels carried by everything the suite creates on a cluster (issue 4: leftovers and sweep).

`labels(run_id)` gives the metadata.labels of an object the suite creates; `selector()` finds all of
them (any run), `run_selector(run_id)` those of one run.
"""
from __future__ import annotations

SUITE_LABEL = "app.kubernetes.io/managed-by"
SUITE_LABEL_VALUE = "registry-conformance"
RUN_LABEL = "registry-conformance.openshift.io/run-id"


def _label_value(run_id: str) -> str:
    """A valid label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "-" for c in str(run_id))
    out = out[:63].strip("._-")
    return out or "unknown"


def labels(run_id: str) -> dict:
    """metadata.labels for an object created by the run `run_id`."""
    return {SUITE_LABEL: SUITE_LABEL_VALUE, RUN_LABEL: _label_value(run_id)}


def selector() -> str:
    """Label selector matching everything any run of the suite created."""
    return f"{SUITE_LABEL}={SUITE_LABEL_VALUE}"


def run_selector(run_id: str) -> str:
    """Label selector matching what the run `run_id` created."""
    return f"{selector()},{RUN_LABEL}={_label_value(run_id)}"
