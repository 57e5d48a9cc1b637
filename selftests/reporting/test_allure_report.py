"""`make report`: the small real run rendered with Allure 3 and opened in headless Chromium; the tests and
their steps are on the page, and the failed check shows its evidence. History is kept between renders."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile

import pytest

from utilities import allure_report

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test-setup installs it)"),
    pytest.mark.skipif(allure_report.allure_cli() is None,
                       reason="the Allure 3 CLI is not installed (make report-setup installs it)"),
]


def _dump(url: str, budget_ms: int) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                "--window-size=1400,1600"]
        dom = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def page_text(url: str, must_contain: str = "Powered by") -> str:
    """The page's text once the app has rendered `must_contain`; a loaded machine may need another try
    (the app reads its embedded data asynchronously: a first dump can catch it loading)."""
    text = ""
    for budget in (10000, 20000, 40000):
        text = _dump(url, budget)
        if must_contain in text and "Failed to fetch" not in text:
            return text
    return text


@pytest.fixture(scope="module")
def report(small_run):
    index = allure_report.render(small_run.run_dir)
    allure_report.render(small_run.run_dir)          # a second render: one more history entry
    return index


def test_history_is_kept_between_renders(small_run, report):
    history = small_run.reports / allure_report.HISTORY_FILE
    assert history.is_file()
    assert len(history.read_text().splitlines()) == 2


def test_the_report_lists_the_tests(report):
    text = page_text(report.as_uri(), "Passed")
    assert "Registry conformance, run small" in text, text[:500]
    assert "Passed" in text and "3" in text


def _test_ids(report) -> dict[str, str]:
    by_id = json.loads((report.parent / "test-results.json").read_text())["byId"]
    return {v["name"]: k for k, v in by_id.items()}


def test_a_passing_check_shows_its_steps(report):
    ids = _test_ids(report)
    text = page_text(report.as_uri() + "#/" + ids["test_push_and_pull_through_the_route[emptydir]"], "Test body")
    assert "Passed" in text
    assert re.search(r"push registry-conformance-\w+/conformance:t-", text), text[:2000]
    assert re.search(r"pull registry-conformance-\w+/conformance:t-", text), text[:2000]
    assert "configure the emptydir backend" not in text or "backend emptydir" in text


def test_a_failed_check_shows_its_evidence(report):
    ids = _test_ids(report)
    text = page_text(report.as_uri() + "#/" + ids["test_rollout_completes[default-pvc]"], "evidence: events")
    assert "Failed" in text and "ProvisioningFailed" in text, text[:2000]
    for step in ("configure the default-pvc backend", "wait for the registry rollout"):
        assert step in text, step
    assert "backend default-pvc" in text          # the backend is a parameter of the steps
    for name in ("evidence: Config cluster", "evidence: ClusterOperator image-registry",
                 "evidence: Deployment image-registry", "evidence: registry pods", "evidence: PVCs",
                 "evidence: events"):
        assert name in text, name
