"""The JUnit XML of a real run (the shared `small_run`: a failing set-up on default-pvc through the fault
knob `provisioner.fail`, a passing emptyDir check, a check without backend) is what Jenkins and Spyglass
show well: valid against the schema of Jenkins' xUnit plugin (junit-10.xsd beside this file), the suite
and classnames carry the backend and the module, the name is the check, the failure names its evidence
directory, no empty output blocks, a timestamp and a hostname (utilities/junit.py)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from utilities import certificate, junit

SCHEMA = Path(__file__).with_name("junit-10.xsd")


@pytest.fixture(scope="module")
def root(small_run):
    return ET.parse(small_run.run_dir / "junit.xml").getroot()


def _cases(root) -> dict[tuple[str, str], ET.Element]:
    return {(tc.get("classname"), tc.get("name")): tc for tc in root.iter("testcase")}


def test_valid_against_the_jenkins_junit_schema(small_run):
    import xmlschema
    schema = xmlschema.XMLSchema(SCHEMA)
    errors = [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(small_run.run_dir / "junit.xml"))]
    assert not errors, errors[:5]


def test_suite_timestamp_and_hostname(root):
    assert root.tag == "testsuites" and root.get("name") == junit.SUITE
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == junit.SUITE
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp") or ""), suite.attrib
    assert suite.get("hostname"), suite.attrib
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_id"] == "small" and props["openshift_version"] == "4.18.12", props
    assert props["cluster"].startswith("https://127.0.0.1:") and props["reports"].endswith("small"), props


def test_classname_carries_the_backend_and_the_module_name_the_check(root):
    cases = _cases(root)
    assert set(cases) == {
        ("registry-conformance.cluster.test_management_state", "test_config_and_clusteroperator_exist"),
        ("registry-conformance.emptydir.test_storage_backends", "test_push_and_pull_through_the_route"),
        ("registry-conformance.default-pvc.test_storage_backends", "test_rollout_completes"),
        ("registry-conformance.default-pvc.test_storage_backends", "test_ready_replicas_equal_spec_replicas"),
    }, sorted(cases)
    # Spyglass takes (suite, classname, name) as a test's identity: a repeat would be a rerun.
    assert len(list(root.iter("testcase"))) == len(cases)


def test_pytest_ids_and_properties_read_back(small_run, root):
    """Selftests and people key testcases by pytest's id (`test_claim[block]`): it is recoverable, and so
    are the testcase properties (the system-out's first lines)."""
    rec = certificate.load(small_run.run_dir)
    assert {junit.pytest_id(tc) for tc in root.iter("testcase")} == {r.nodeid.split("::")[-1] for r in rec.results}
    props = {junit.pytest_id(tc): junit.properties_of(tc) for tc in root.iter("testcase")}
    assert props["test_push_and_pull_through_the_route[emptydir]"] == {
        "backend": "emptydir", "check": "test_push_and_pull_through_the_route", "openshift_version": "4.18.12"}
    assert props["test_config_and_clusteroperator_exist"]["backend"] == "-"


def test_the_failure_names_its_evidence_directory(small_run, root):
    tc = _cases(root)[("registry-conformance.default-pvc.test_storage_backends", "test_rollout_completes")]
    (bad,) = [el for el in tc if el.tag in ("failure", "error")]
    dirs = list((small_run.run_dir / "evidence").iterdir())
    assert len(dirs) == 1, dirs
    shown = f"reports/small/evidence/{dirs[0].name}/"
    assert f"(evidence: {shown})" in bad.get("message"), bad.get("message")
    head = (bad.text or "").splitlines()[:2]
    assert head == [f"evidence: {shown}", "test: tests/test_storage_backends.py::test_rollout_completes[default-pvc]"], head
    assert (small_run.reports.parent / shown / "failure.txt").is_file()
    assert "ProvisioningFailed" in bad.text
    # The next default-pvc check errors on the same failed set-up: it names the same evidence.
    tc = _cases(root)[("registry-conformance.default-pvc.test_storage_backends", "test_ready_replicas_equal_spec_replicas")]
    (bad,) = [el for el in tc if el.tag in ("failure", "error")]
    assert f"(evidence: {shown})" in bad.get("message"), bad.get("message")


def test_no_empty_output_blocks(root):
    for tc in root.iter("testcase"):
        for block in [*tc.findall("system-out"), *tc.findall("system-err")]:
            text = block.text or ""
            assert text.strip(), f"empty {block.tag} in {tc.get('classname')} {tc.get('name')}"
            rules = [ln for ln in text.splitlines() if re.fullmatch(r"-{3,} .+ -{3,}", ln)]
            bodies = re.split(r"(?m)^-{3,} .+ -{3,}$", text)[1:]
            assert len(rules) == len(bodies) and all(b.strip() for b in bodies), (tc.get("name"), text[:2000])
        assert len(tc.findall("system-out")) <= 1 and len(tc.findall("system-err")) <= 1
    captured = [tc for tc in root.iter("testcase") if "Captured Log" in (tc.findtext("system-out") or "")]
    assert captured, "the captured logs are gone"


# --- the rewrite on its own (no cluster) -----------------------------------------------------------
PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" \
errors="0" failures="1" skipped="0" tests="2" time="1.5" timestamp="2026-12-07T16:17:43.401231+01:00" hostname="h">\
<testcase classname="tests.test_storage_backends" name="test_claim[ceph-rgw-big]" time="1.0"><failure \
message="AssertionError: token s3cr3t-t0ken-value">trace s3cr3t-t0ken-value</failure><properties>\
<property name="backend" value="ceph-rgw" /></properties><system-out>{log}</system-out><system-err>{err}\
</system-err></testcase><testcase classname="" name="tests.test_broken" time="0"><error message="collection failure">\
x</error></testcase></testsuite></testsuites>"""


def test_rewrite_alone(tmp_path):
    rule = " Captured Log ".center(80, "-")
    log = f"{rule}\nINFO something\n{' Captured Out '.center(80, '-')}\n\n"
    path = tmp_path / "j.xml"
    path.write_text(PYTEST_XML.format(log=log, err=" Captured Err ".center(80, "-") + "\n\n"))
    nodeid = "tests/test_storage_backends.py::test_claim[ceph-rgw-big]"
    case = junit.Case(nodeid, "ceph-rgw", junit.case_name("test_claim", "ceph-rgw-big", "ceph-rgw"),
                      junit.group_of(nodeid), ["reports/r/evidence/01-x/"])
    cases = {junit.pytest_address(nodeid): case}
    assert junit.rewrite(path, cases, [("run_id", "r")], lambda s: s.replace("s3cr3t-t0ken-value", "***"))
    text = path.read_text()
    assert "s3cr3t" not in text and "<properties><property name=\"run_id\"" in text
    root = ET.parse(path).getroot()
    tc, broken = root.iter("testcase")
    assert (tc.get("classname"), tc.get("name")) == ("registry-conformance.ceph-rgw.test_storage_backends", "test_claim[big]")
    assert junit.pytest_id(tc) == "test_claim[ceph-rgw-big]" and junit.properties_of(tc) == {"backend": "ceph-rgw"}
    assert tc.find("failure").get("message") == "AssertionError: token *** (evidence: reports/r/evidence/01-x/)"
    assert tc.find("system-err") is None and "Captured Out" not in tc.findtext("system-out")
    assert broken.get("classname") == "registry-conformance.cluster.test_broken"
    assert root.find("testsuite").get("timestamp") == "2026-12-07T15:17:43"
    # Once only: a second pass (a stale file, a rerun of the hook) leaves it alone.
    assert not junit.rewrite(path, cases, [("run_id", "r")]) and path.read_text() == text


@pytest.mark.parametrize("params, backend, rest", [
    ("default-pvc", "default-pvc", ""), ("default-pvc-x", "default-pvc", "x"), ("x-ceph-rgw", "ceph-rgw", "x"),
    ("a-emptydir-b", "emptydir", "a-b"), ("clusteroperator", None, "clusteroperator")])
def test_without_backend(params, backend, rest):
    assert junit.without_backend(params, backend) == rest
