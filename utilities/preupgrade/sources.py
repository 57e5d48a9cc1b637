"""Where the pre-upgrade verdicts' facts come from: sections of `docs/operator-facts.md`, a document
of this repository, so a user's clone can follow every "source" a verdict cites.

A source is `docs/operator-facts.md#<anchor>` (several joined by "; "); the anchor is the GitHub slug
of a section heading. `unresolved(source)` names the references that do not lead to an existing file
and heading, for the selftest that keeps the judges and the document in step.
"""
from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FACTS = "docs/operator-facts.md"


def facts(*anchors: str) -> str:
    """The source naming these sections of the facts document."""
    return "; ".join(f"{FACTS}#{a}" for a in anchors)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of every heading of a Markdown file (outside fenced code)."""
    out, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.add(slug(line.lstrip("#")))
    return out


def unresolved(source: str, root: Path = REPO_ROOT) -> list[str]:
    """The parts of `source` that are not `<file of the repository>#<heading anchor of it>`."""
    bad = []
    for ref in [r.strip() for r in (source or "").split(";")]:
        path, _, anchor = ref.partition("#")
        f = root / path
        if not ref or not path or not anchor or not f.is_file() or anchor not in anchors(f):
            bad.append(ref or "(empty)")
    return bad
