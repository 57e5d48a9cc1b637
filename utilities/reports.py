"""Where a run's reports go: reports/<run-id>/ (junit.xml, allure-results/, logs), reports/latest."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

RUN_DIR = pytest.StashKey[Path]()
RUN_ID = pytest.StashKey[str]()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def prepare_run_dir(reports_root: Path, run_id: str) -> Path:
    """Create reports_root/run_id and point reports_root/latest at it (atomically)."""
    run_dir = reports_root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = reports_root / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_id)
    os.replace(tmp, reports_root / "latest")
    return run_dir
