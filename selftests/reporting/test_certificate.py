"""utilities/certificate.py on records made here: the matrix cells and reasons, the verdicts, the restore
verdict from the run's files, and that a record survives results.json."""
from __future__ import annotations

import json

from utilities import certificate as cert
from utilities.certificate import CheckResult, RunRecord


def record(**kw) -> RunRecord:
    results = [
        CheckResult("t::a[emptydir]", "test_a", "emptydir", "passed", duration=1.0),
        CheckResult("t::b[emptydir]", "test_b", "emptydir", "n/a", "emptydir stores images on no PVC: "
                    "the check does not apply", 0.1),
        CheckResult("t::a[block]", "test_a", "block", "failed", "AssertionError: PVC phase Pending", 2.0),
        CheckResult("t::b[block]", "test_b", "block", "passed", duration=0.5),
        CheckResult("t::a[cephfs]", "test_a", "cephfs", "n/a", "cephfs: StorageClass ocs-storagecluster-cephfs "
                    "not found on the cluster (is OpenShift Data Foundation installed?)"),
        CheckResult("t::a[noobaa]", "test_a", "noobaa", "skipped", "destructive: pass --allow-destructive"),
        CheckResult("m::test_exists", "test_exists", cert.NO_BACKEND, "passed", duration=0.2),
    ]
    base = dict(run_id="r1", started="2026-12-01T10:00:00+00:00", finished="2026-12-01T10:05:00+00:00",
                ran_by="qa@host", selected_backends=["emptydir", "block", "cephfs", "noobaa", "default-pvc"],
                results=results,
                cluster={"api_url": "https://api.c.example:6443", "openshift_version": "4.18.12",
                         "platform": "VSphere", "infrastructure_name": "c-x7k2p", "user": "kube:admin"},
                restore={"verdict": "restored", "detail": "back exactly"})
    base.update(kw)
    return RunRecord(**base)


def test_verdicts():
    v = cert.backend_verdicts(record())
    assert v["emptydir"] == (True, "1 check(s) passed, 1 not applicable")
    assert v["block"][0] is False and "test_a: AssertionError: PVC phase Pending" in v["block"][1]
    assert v["cephfs"] == (None, "n/a: cephfs: StorageClass ocs-storagecluster-cephfs not found on the "
                                  "cluster (is OpenShift Data Foundation installed?)")
    assert v["noobaa"] == (False, "skipped: destructive: pass --allow-destructive")
    assert v["default-pvc"] == (False, "not run (deselected)")
    assert cert.backend_durations(record())["block"] == 2.5


def test_matrix_md_cells_and_reasons():
    md = cert.matrix_md(record())
    assert "| check | emptydir | block | cephfs | noobaa | default-pvc |" in md
    assert "| `test_a` | ✓ passed | ✗ failed [1] | ○ n/a [2] | – skipped [3] | · not run |" in md
    assert "| `test_b` | ○ n/a [4] | ✓ passed | · not run | · not run | · not run |" in md
    assert "1. **block / test_a** (failed): AssertionError: PVC phase Pending" in md
    assert "| `test_exists` | ✓ passed |" in md


def test_html_escapes_and_folds_reasons():
    rec = record()
    rec.results[2].reason = "<script>alert(1)</script>"
    page = cert.matrix_html(rec)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<details><summary>✗ failed</summary>" in page


def test_certificate_names_the_cluster_and_the_verdict():
    md = cert.certificate_md(record())
    for text in ("https://api.c.example:6443", "4.18.12", "VSphere", "c-x7k2p", "qa@host", "kube:admin",
                 "restored: back exactly", "| block | ✗ no |", "| emptydir | ✓ yes |", "| cephfs | ○ n/a |",
                 "| noobaa | ✗ no |", "2.5 s"):
        assert text in md, text
    page = cert.certificate_html(record(restore={"verdict": "NOT RESTORED", "detail": "x"}))
    assert 'class="verdict-bad">NOT RESTORED' in page


def test_restore_verdict_from_the_run_files(tmp_path):
    assert cert.restore_verdict(tmp_path)["verdict"] == "not needed"
    (tmp_path / "config-snapshot.json").write_text(json.dumps({"spec": {"managementState": "Removed"}}))
    assert cert.restore_verdict(tmp_path)["verdict"] == "NOT RESTORED"       # the restore never finished
    (tmp_path / "config-final.json").write_text(json.dumps({"spec": {"managementState": "Removed"}}))
    assert cert.restore_verdict(tmp_path)["verdict"] == "restored"
    (tmp_path / "config-final.json").write_text(json.dumps({"spec": {"managementState": "Managed"}}))
    v = cert.restore_verdict(tmp_path)
    assert v["verdict"] == "NOT RESTORED" and "spec.managementState: expected 'Removed', found 'Managed'" in v["detail"]


def test_round_trip_and_load_runs(tmp_path):
    for i, rid in enumerate(["r1", "r2"]):
        d = tmp_path / rid
        d.mkdir()
        cert.write(d, record(run_id=rid, started=f"2026-12-0{i + 1}T10:00:00+00:00"))
    (tmp_path / "latest").symlink_to("r2")
    runs = cert.load_runs(tmp_path)
    assert [r.run_id for r in runs] == ["r1", "r2"]
    assert runs[0].results == record().results
    assert (tmp_path / "r1" / "certificate.html").read_text().startswith("<!DOCTYPE html>")
