"""A pytest plugin for the suite run by test_credential_fragments.py (`-p selftests.safety.credential_probe`):
it writes every ServiceAccount token the run requests through the TokenRequest API to the file named by
CREDENTIAL_PROBE_OUT (outside the run's reports), one a line, so that the selftest knows what to search
the run's outputs for. It only observes: the run gets the very token the API server issued."""
from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def pytest_configure(config):
    out = os.environ.get("CREDENTIAL_PROBE_OUT")
    if not out:
        return
    from utilities import registry_access
    issue = registry_access.request_token

    def recorded(*args, **kwargs):
        token, expires = issue(*args, **kwargs)
        with _lock, open(out, "a") as f:
            f.write(token + "\n")
        return token, expires
    registry_access.request_token = recorded
