"""The catalogue as data (no cluster): every knob is documented, every check it names exists."""
from __future__ import annotations

import re

import pytest

from utilities.localcluster_process import REPO_ROOT

from .catalogue import CATALOGUE

README = (REPO_ROOT / "localcluster" / "README.md").read_text()


@pytest.mark.parametrize("fault", CATALOGUE, ids=[f.id for f in CATALOGUE])
def test_entry_is_consistent(fault):
    for knob in fault.knobs:
        assert f"`{knob}`" in README, f"{fault.id}: knob {knob} is not documented in localcluster/README.md"
    for flag in fault.serve_args:
        assert flag in README, f"{fault.id}: serve flag {flag} is not documented in localcluster/README.md"
    files = [a for a in fault.args if a.startswith("tests/")]
    assert files, f"{fault.id}: args select no tests/ file: {fault.args}"
    for f in files:
        assert (REPO_ROOT / f).exists(), f"{fault.id}: {f} does not exist"
    if fault.caught_by != "*":
        name = fault.caught_by.split("[", 1)[0]
        assert any(re.search(rf"^def {name}\(", (REPO_ROOT / f).read_text(), re.M) for f in files), \
            f"{fault.id}: {name} is not a test of {files}"
    assert fault.cause, f"{fault.id}: no cause words to find in the message"
