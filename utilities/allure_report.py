"""Render a run's Allure results with Allure 3 (the npm package `allure`, no Java): `make report`.

    python -m utilities.allure_report [RUN_DIR]      # default reports/latest

writes RUN_DIR/allure-report/index.html (one self-contained file: it opens from disk in any browser)
and keeps the history of every run in `<reports root>/allure-history.jsonl`, so trends show from one run
to the next. The CLI is looked up in .cache/allure (where `make report-setup` installs it), then $PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLURE_VERSION = "3.18.0"
LOCAL_CLI = ROOT / ".cache" / "allure" / "node_modules" / ".bin" / "allure"
HISTORY_FILE = "allure-history.jsonl"


class ReportError(Exception):
    pass


def allure_cli() -> str | None:
    if os.access(LOCAL_CLI, os.X_OK):
        return str(LOCAL_CLI)
    return shutil.which("allure")


def render(run_dir: Path, *, history: Path | None = None, name: str | None = None, timeout: float = 300) -> Path:
    """Render RUN_DIR/allure-results into RUN_DIR/allure-report; returns the index.html."""
    run_dir = Path(run_dir).resolve()
    results = run_dir / "allure-results"
    if not results.is_dir() or not any(results.iterdir()):
        raise ReportError(f"no Allure results in {results}: run the suite first (make validate)")
    cli = allure_cli()
    if cli is None:
        raise ReportError("the Allure 3 CLI is not installed: run `make report-setup` "
                          f"(npm install --prefix .cache/allure allure@{ALLURE_VERSION})")
    out = run_dir / "allure-report"
    history = history or (run_dir.parent / HISTORY_FILE)
    cfg = {"name": name or f"Registry conformance, run {run_dir.name}", "output": str(out),
           "historyPath": str(history),
           "plugins": {"awesome": {"options": {"singleFile": True, "reportLanguage": "en",
                                               "reportName": name or f"Registry conformance, run {run_dir.name}"}}}}
    cfg_path = run_dir / "allurerc.json"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    if out.exists():
        shutil.rmtree(out)
    proc = subprocess.run([cli, "generate", str(results), "--config", str(cfg_path)], capture_output=True,
                          text=True, timeout=timeout, cwd=str(run_dir))
    index = out / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise ReportError(f"allure generate failed (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return index


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run_dir = Path(argv[0]) if argv else ROOT / "reports" / "latest"
    try:
        index = render(run_dir)
    except ReportError as e:
        print(f"make report: {e}", file=sys.stderr)
        return 1
    print(f"Allure report: {index}")
    for extra in ("matrix.html", "certificate.html"):
        if (run_dir / extra).exists():
            print(f"{extra.split('.')[0]}: {(run_dir / extra).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
