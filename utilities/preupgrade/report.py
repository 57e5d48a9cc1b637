"""The pre-upgrade review's output (issue 10): a verdict table, `preupgrade.md` and `preupgrade.json`
(a list of {"check", "verdict", "reason", "source"}, one per check)."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from utilities import redact
from utilities.preupgrade.verdicts import FAIL, PASS, SKIP, WARN, Verdict

JSON_FILE = "preupgrade.json"
MD_FILE = "preupgrade.md"


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    out = {PASS: 0, WARN: 0, FAIL: 0, SKIP: 0}
    for v in verdicts:
        out[v.verdict] = out.get(v.verdict, 0) + 1
    return out


def summary_line(verdicts: list[Verdict]) -> str:
    c = counts(verdicts)
    return ", ".join(f"{n} {k}" for k, n in c.items() if n) or "no checks"


def table(verdicts: list[Verdict], width: int = 120, cw: int | None = None) -> list[str]:
    """Plain-text table for the terminal: check, verdict, reason (wrapped)."""
    cw = cw or max([len("check")] + [len(v.check) for v in verdicts])
    lines = [f"{'check':<{cw}}  verdict  reason", f"{'-' * cw}  -------  {'-' * 6}"]
    rw = max(30, width - cw - 11)
    for v in verdicts:
        wrapped = textwrap.wrap(v.reason, rw, break_on_hyphens=False, break_long_words=False) or [""]
        lines.append(f"{v.check:<{cw}}  {v.verdict.upper():<7}  {wrapped[0]}")
        lines += [f"{'':<{cw}}  {'':<7}  {w}" for w in wrapped[1:]]
    return lines


def _md_cell(s: str) -> str:
    return (s or "").replace("|", "\\|").replace("\n", " ")


def markdown(verdicts: list[Verdict], title: str, subject: str) -> str:
    out = [f"# {title}", "", f"{subject}", "", f"Verdicts: {summary_line(verdicts)}.", "",
           "| check | verdict | reason | source |", "|---|---|---|---|"]
    for v in verdicts:
        out.append(f"| {v.check} | **{v.verdict}** | {_md_cell(v.reason)} | {_md_cell(v.source)} |")
    return "\n".join(out) + "\n"


def write(run_dir: Path, verdicts: list[Verdict], subject: str) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    j, m = run_dir / JSON_FILE, run_dir / MD_FILE
    for path, text in ((j, json.dumps([v.as_dict() for v in verdicts], indent=2) + "\n"),
                       (m, markdown(verdicts, "Pre-upgrade review of the image registry", subject))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(redact.redact(text))         # the verdicts quote the cluster's objects
        os.replace(tmp, path)
    return j, m
