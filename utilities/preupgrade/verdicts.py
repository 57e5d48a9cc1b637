"""Verdicts of the pre-upgrade review (issue 10): pass, warn, fail, skip, with a reason and a source."""
from __future__ import annotations

import dataclasses

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_RANK = {PASS: 0, SKIP: 0, WARN: 1, FAIL: 2}


@dataclasses.dataclass
class Verdict:
    verdict: str
    reason: str
    source: str = ""
    check: str = ""

    def as_dict(self) -> dict:
        return {"check": self.check, "verdict": self.verdict, "reason": self.reason, "source": self.source}


def passed(reason: str, source: str = "") -> Verdict:
    return Verdict(PASS, reason, source)


def warned(reason: str, source: str = "") -> Verdict:
    return Verdict(WARN, reason, source)


def failed(reason: str, source: str = "") -> Verdict:
    return Verdict(FAIL, reason, source)


def skipped(reason: str, source: str = "") -> Verdict:
    return Verdict(SKIP, reason, source)


_NOT_APPLICABLE = "does not apply: "


def not_applicable(reason: str, source: str = "") -> Verdict:
    """A skip because the check does not apply to this cluster (no claim, not S3, not Managed)."""
    return Verdict(SKIP, f"{_NOT_APPLICABLE}{reason}", source)


def applies_not(v: Verdict) -> bool:
    """The skip of `not_applicable` (the test is n/a), not one of a must-gather lacking a file."""
    return v.verdict == SKIP and v.reason.startswith(_NOT_APPLICABLE)


def worst(findings: list[Verdict], ok_reason: str = "", ok_source: str = "") -> Verdict:
    """One verdict out of several findings: the worst one wins; the reasons of every finding at that
    level are joined, the others dropped (a pass says what was checked)."""
    if not findings:
        return passed(ok_reason, ok_source)
    top = max(_RANK[f.verdict] for f in findings)
    if top == 0:      # only notes (pass) or things that could not be told (skip)
        reasons = [r for r in [ok_reason] + [f.reason for f in findings] if r]
        verdict = PASS if ok_reason or any(f.verdict == PASS for f in findings) else SKIP
        return Verdict(verdict, "; ".join(reasons), ok_source or findings[0].source)
    chosen = [f for f in findings if _RANK[f.verdict] == top]
    sources = []
    for f in chosen:
        for s in (f.source or "").split("; "):
            if s and s not in sources:
                sources.append(s)
    return Verdict(chosen[0].verdict, "; ".join(f.reason for f in chosen if f.reason), "; ".join(sources))


class NotGathered(Exception):
    """An input the check needs is not in the must-gather (`file`, relative to it)."""

    def __init__(self, file: str):
        super().__init__(f"{file} is not in the must-gather")
        self.file = file
