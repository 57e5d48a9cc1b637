"""The run's JUnit XML, rewritten at the end of the run for the CI tools that read it (issue 17).

pytest's junitxml plugin writes the file; this module reshapes it, once, after pytest wrote it:

- the suite is `registry-conformance` (the `<testsuites>` and `<testsuite>` names), each testcase's
  classname is `registry-conformance.<backend>.<module>` (`registry-conformance.cluster.<module>` for
  checks not crossed with a backend) and its name is the check, with its other parameters but not the
  backend: Jenkins files the test under package `registry-conformance.<backend>`, class `<module>`;
  Spyglass lists it as "classname: name".
- a failure or error names the evidence directory (reports/<run>/evidence/NN-<test>/) in its message and
  at the top of its text, with the pytest node id to rerun it.
- testcase `<properties>` (not allowed by the JUnit schema Jenkins' xUnit plugin validates with, and
  shown by neither Jenkins nor Spyglass) become the first lines of the testcase's `<system-out>`
  ("name: value" under a "Properties" rule, `properties_of()` reads them back); the run's facts (run id,
  reports directory, OpenShift version, suite version) are `<testsuite>` properties.
- sections pytest left empty ("Captured Out" with nothing under it) and `<system-out>`/`<system-err>`
  blocks with nothing left in them are dropped; several blocks of one testcase become one.
- `timestamp` is the run's start in UTC (`YYYY-MM-DDTHH:MM:SS`, the form Ant writes) and `hostname` is set.
- every text and attribute passes through `utilities/redact.py`.

The new file replaces the old one atomically (a temporary file in the same directory, then rename).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

SUITE = "registry-conformance"
NO_BACKEND_GROUP = "cluster"          # the classname part of checks not crossed with a backend
PROPERTIES_TITLE = " Properties "
_RULE = re.compile(r"^-{3,} (.+?) -{3,}$")      # pytest's section rules: "---- Captured Log ----"
_RESULT_TAGS = ("failure", "error", "skipped")


@dataclasses.dataclass
class Case:
    """What the run knew of one test, for its testcase."""
    nodeid: str
    backend: str | None                # None: not crossed with a backend
    name: str                          # the check, with its parameters other than the backend
    group: str                         # the module (and class) the check is in
    evidence: list[str] = dataclasses.field(default_factory=list)    # paths as a person finds them

    @property
    def classname(self) -> str:
        return f"{SUITE}.{self.backend or NO_BACKEND_GROUP}.{self.group}"


def pytest_address(nodeid: str, prefix: str | None = None) -> tuple[str, str]:
    """The (classname, name) pytest's junitxml plugin gives a node id (the mapping it documents:
    path with dots for slashes and no `.py`, classes, then the test with its parameters)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    classname = ".".join(names[:-1])
    if prefix:
        classname = f"{prefix}.{classname}" if classname else prefix
    return classname, names[-1]


def group_of(nodeid: str) -> str:
    """`tests/test_storage_backends.py::test_claim[block]` -> `test_storage_backends`."""
    parts = nodeid.split("[", 1)[0].split("::")
    return ".".join([Path(parts[0]).stem, *parts[1:-1]])


def without_backend(params: str, backend: str | None) -> str:
    """A test's parameter id (pytest joins the parameters' ids with "-") without the backend's id."""
    if not backend or not params:
        return params
    if params == backend:
        return ""
    if params.startswith(backend + "-"):
        return params[len(backend) + 1:]
    if params.endswith("-" + backend):
        return params[:-len(backend) - 1]
    return params.replace(f"-{backend}-", "-", 1)


def case_name(check: str, params: str, backend: str | None) -> str:
    rest = without_backend(params, backend)
    return f"{check}[{rest}]" if rest else check


# --- reading back ------------------------------------------------------------------------------------
def properties_of(testcase: ET.Element) -> dict[str, str]:
    """The properties a rewritten testcase carries in its system-out ("name: value" lines)."""
    out: dict[str, str] = {}
    for block in testcase.findall("system-out"):
        sections = _sections(block.text or "")
        for title, body in sections:
            if title == PROPERTIES_TITLE.strip():
                for line in body.splitlines():
                    name, sep, value = line.partition(": ")
                    if sep:
                        out[name] = value
    return out


def pytest_id(testcase: ET.Element) -> str:
    """The last part of the pytest node id of a rewritten testcase (`test_claim[block]`), as pytest
    names it on the terminal and in `-k`; the backend comes first among the parameters."""
    parts = (testcase.get("classname") or "").split(".")
    name = testcase.get("name") or ""
    if len(parts) < 3 or parts[0] != SUITE or parts[1] == NO_BACKEND_GROUP:
        return name
    backend = parts[1]
    check, bracket, rest = name.partition("[")
    return f"{check}[{backend}-{rest}" if bracket else f"{name}[{backend}]"


# --- rewriting ---------------------------------------------------------------------------------------
def _sections(text: str) -> list[tuple[str, str]]:
    """pytest's captured-output text as (title, body) pairs; text before any rule has title ""."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        m = _RULE.match(line)
        if m and len(line) >= 40:
            out.append((m.group(1), []))
        else:
            out[-1][1].append(line)
    return [(t, "\n".join(lines).strip("\n")) for t, lines in out]


def _rule(title: str) -> str:
    return title.center(80, "-")


def _merged_output(blocks: list[ET.Element]) -> str:
    """The non-empty sections of several system-out (or -err) blocks, in order, each once."""
    kept: list[tuple[str, str]] = []
    for block in blocks:
        for title, body in _sections(block.text or ""):
            if not body.strip():
                continue
            # A later report repeats what an earlier one captured (teardown's log holds set-up's): keep
            # the longer text only.
            if any(t == title and body in b for t, b in kept):
                continue
            kept = [(t, b) for t, b in kept if not (t == title and b in body)] + [(title, body)]
    return "\n".join(f"{_rule(' ' + t + ' ')}\n{b}" if t else b for t, b in kept)


def _utc_timestamp(value: str | None) -> str:
    try:
        when = datetime.datetime.fromisoformat(value) if value else None
    except ValueError:
        when = None
    when = when or datetime.datetime.now(datetime.timezone.utc)
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat()


def _rewrite_case(tc: ET.Element, case: Case | None, redact: Callable[[str], str]) -> None:
    props: list[tuple[str, str]] = [(p.get("name") or "", p.get("value") or "")
                                    for ps in tc.findall("properties") for p in ps.findall("property")]
    if case is not None:
        tc.set("classname", case.classname)
        tc.set("name", case.name)
    else:                              # a collection error or pytest's internal error: no check behind it
        original = tc.get("classname") or tc.get("name") or "pytest"
        tc.set("classname", f"{SUITE}.{NO_BACKEND_GROUP}.{original.split('.')[-1]}")
    results = [el for el in tc if el.tag in _RESULT_TAGS]
    if case is not None and case.evidence:
        where = ", ".join(case.evidence)
        for el in results:
            if el.tag in ("failure", "error"):
                el.set("message", f"{el.get('message') or ''} (evidence: {where})".strip())
                el.text = f"evidence: {where}\ntest: {case.nodeid}\n\n{el.text or ''}"
    out = _merged_output(tc.findall("system-out"))
    err = _merged_output(tc.findall("system-err"))
    if props:
        lines = "\n".join(f"{n}: {v}" for n, v in props)
        out = f"{_rule(PROPERTIES_TITLE)}\n{lines}" + (f"\n{out}" if out else "")
    for el in list(tc):
        tc.remove(el)
    tc.extend(results)
    for tag, text in (("system-out", out), ("system-err", err)):
        if text.strip():
            ET.SubElement(tc, tag).text = text + "\n"
    _redact_tree(tc, redact)


def _redact_tree(el: ET.Element, redact: Callable[[str], str]) -> None:
    for node in el.iter():
        if node.text:
            node.text = redact(node.text)
        for k, v in node.attrib.items():
            node.set(k, redact(v))


def rewrite(path: Path, cases: dict[tuple[str, str], Case], suite_properties: list[tuple[str, str]],
            redact: Callable[[str], str] = lambda s: s) -> bool:
    """Reshape the JUnit file at `path` (see the module's docstring); `cases` maps pytest's (classname,
    name) to what the run knew of each test. False when there is nothing to do (no file, or already done)."""
    path = Path(path)
    if not path.is_file():
        return False
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.get("name") == SUITE or any(s.get("name") == SUITE for s in suites):
        return False
    if root.tag == "testsuites":
        root.set("name", SUITE)
    for suite in suites:
        suite.set("name", SUITE)
        suite.set("timestamp", _utc_timestamp(suite.get("timestamp")))
        suite.set("hostname", suite.get("hostname") or platform.node() or "localhost")
        if suite_properties:
            props = suite.find("properties")
            if props is None:
                props = ET.Element("properties")
                suite.insert(0, props)
            for name, value in suite_properties:
                ET.SubElement(props, "property", name=name, value=redact(str(value)))
        for tc in suite.findall("testcase"):
            _rewrite_case(tc, cases.get((tc.get("classname") or "", tc.get("name") or "")), redact)
    tmp = path.with_name(f".{path.name}.junit-{os.getpid()}")
    with open(tmp, "wb") as f:
        tree.write(f, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return True
