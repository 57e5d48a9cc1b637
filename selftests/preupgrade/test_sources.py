"""Every source a pre-upgrade verdict cites is a document of this repository with that section (issue
17): users' clones have no ../shared, so a citation outside the repository leads nowhere.

Statically: every `facts(...)` section named in utilities/preupgrade/ and every check's default source
resolve to a heading of docs/operator-facts.md. The verdicts actually given on served must-gathers are
checked in test_served.py (`unresolved` on each)."""
from __future__ import annotations

import ast
from pathlib import Path

from utilities.preupgrade import gather, sources
from utilities.preupgrade.gather import CHECKS, SOURCES

PKG = Path(gather.__file__).resolve().parent


def _cited_sections() -> dict[str, list[str]]:
    """{anchor: [file:line]} for every facts("...") call in the pre-upgrade package."""
    out: dict[str, list[str]] = {}
    for f in sorted(PKG.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "facts":
                for a in node.args:
                    assert isinstance(a, ast.Constant), f"{f.name}:{node.lineno}: facts() takes literal sections"
                    out.setdefault(a.value, []).append(f"{f.name}:{node.lineno}")
    return out


def test_every_cited_section_exists():
    cited = _cited_sections()
    assert len(cited) > 15, cited
    have = sources.anchors(sources.REPO_ROOT / sources.FACTS)
    missing = {a: where for a, where in cited.items() if a not in have}
    assert not missing, f"sections cited but not in {sources.FACTS}: {missing}"


def test_every_check_has_a_source_in_the_repository():
    assert set(SOURCES) == set(CHECKS)
    bad = {c: sources.unresolved(s) for c, s in SOURCES.items() if sources.unresolved(s)}
    assert not bad, bad


def test_no_source_points_outside_the_repository():
    for f in sorted(PKG.glob("*.py")):
        text = f.read_text()
        assert "../shared" not in text and "operator-facts §" not in text, f.name


def test_unresolved_names_what_leads_nowhere(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "f.md").write_text("# Title\n\n## Pod disruption budget\n\n```\n## not a heading\n```\n")
    assert sources.unresolved("docs/f.md#pod-disruption-budget", tmp_path) == []
    assert sources.unresolved("docs/f.md#not-a-heading; docs/g.md#title; operator-facts §6.3", tmp_path) == [
        "docs/f.md#not-a-heading", "docs/g.md#title", "operator-facts §6.3"]
    assert sources.unresolved("", tmp_path) == ["(empty)"]
