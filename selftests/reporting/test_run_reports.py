"""A real run leaves the matrix, the certificate, results.json and the evidence (its JUnit XML: test_junit.py),
and ends its output saying what happened to the cluster and where the reports are."""
from __future__ import annotations

import json

from utilities import certificate


def test_matrix_and_certificate_of_a_real_run(small_run):
    run_dir = small_run.run_dir
    for name in ("matrix.md", "matrix.html", "certificate.md", "certificate.html", "results.json"):
        assert (run_dir / name).is_file(), f"{name} missing: {sorted(p.name for p in run_dir.iterdir())}"
    rec = certificate.load(run_dir)
    assert rec.cluster["openshift_version"] == "4.18.12" and rec.cluster["platform"] == "VSphere"
    assert rec.cluster["infrastructure_name"].startswith("vsphere-local")
    assert rec.cluster["api_url"].startswith("https://127.0.0.1:")
    assert rec.restore["verdict"] == "restored", rec.restore
    by = {(r.check, r.backend): r for r in rec.results}
    assert by[("test_push_and_pull_through_the_route", "emptydir")].outcome == "passed"
    failed = by[("test_rollout_completes", "default-pvc")]
    assert failed.outcome == "error" and "ProvisioningFailed" in failed.reason
    verdicts = certificate.backend_verdicts(rec)
    assert verdicts["emptydir"][0] is True
    assert verdicts["default-pvc"][0] is False and "ProvisioningFailed" in verdicts["default-pvc"][1]
    assert verdicts["cephfs"] == (False, "not run (deselected)")
    md = (run_dir / "certificate.md").read_text()
    for text in ("4.18.12", "VSphere", "vsphere-local", "Restore | restored", "| emptydir | ✓ yes",
                 "| default-pvc | ✗ no", rec.suite_version):
        assert text in md, text
    assert "ProvisioningFailed" in (run_dir / "matrix.md").read_text()
    html = (run_dir / "matrix.html").read_text()
    assert "<details><summary>✗ error</summary>" in html and "injected fault (localcluster provisioner.fail)" in html
    steps = {s["step"] for s in rec.steps}
    assert {"prepare_backend", "wait_for_rollout", "RegistryClient.push_image"} <= steps, steps


def test_evidence_of_the_failed_setup_is_kept(small_run):
    dirs = list((small_run.run_dir / "evidence").iterdir())
    assert len(dirs) == 1, dirs
    files = {p.name for p in dirs[0].iterdir()}
    assert {"Config_cluster.yaml", "ClusterOperator_image-registry.yaml", "Deployment_image-registry.yaml",
            "registry_pods.yaml", "PVCs.yaml", "events.txt", "failure.txt"} <= files, files
    events = (dirs[0] / "events.txt").read_text()
    assert "ProvisioningFailed" in events and "injected fault (localcluster provisioner.fail)" in events


def test_the_last_lines_say_what_happened_to_the_cluster(small_run):
    count = json.loads((small_run.run_dir / "control-plane.json").read_text())["count"]
    assert small_run.proc.stdout.rstrip().splitlines()[-2:] == [
        f"cluster: the Config was restored exactly; the run caused {count} control-plane rollout(s), settled",
        f"reports: {small_run.run_dir}/ (certificate.md, matrix.md, journal.jsonl)"], small_run.proc.stdout[-2000:]


def test_a_run_stopped_by_a_preflight_check_still_leaves_its_certificate(tmp_path):
    import subprocess
    import sys

    from utilities.localcluster_process import REPO_ROOT
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--kubeconfig={tmp_path / 'missing'}", f"--reports-dir={tmp_path}", "--run-id=stopped"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stdout + proc.stderr
    rec = certificate.load(tmp_path / "stopped")
    assert rec.exitstatus == 9 and "cannot use the kubeconfig" in rec.stopped
    md = (tmp_path / "stopped" / "certificate.md").read_text()
    assert "| Exit status | 9 (stopped: cannot use the kubeconfig" in md
    assert "not run (deselected)" in md or "No check ran." in md
    assert proc.stdout.rstrip().splitlines()[-2:] == [
        "cluster: the Config was not changed (nothing to restore); no control-plane rollout (the run did not "
        "change the image registry)", f"reports: {tmp_path / 'stopped'}/ (certificate.md, matrix.md, journal.jsonl)"], \
        proc.stdout[-2000:]
