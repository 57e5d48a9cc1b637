"""Time from a permanent fault to the test failure, for every fault of the catalogue.

The catalogue is the one the suite's own selftest uses (`selftests/suite/test_suite_against_faults.py`
`CASES`: knob, selection, the test that must fail); cases added there are measured here too. For each
case a fresh local cluster gets the fault, the selection runs (`pytest tests/...`, subprocess) and the
failing test's duration is read from the JUnit report; the reference is the same test on a healthy
cluster (same selection, no fault), measured interleaved with it. Printed per case: time to failure,
healthy time, the excess (failure - healthy) and their ratio. Goal: the failure within 2 s of the
cluster showing the fault, i.e. an excess near zero (a rollout that cannot succeed must not wait for
the timeout). Faults set once the Config is saved (`after_snapshot`) are set then, as the selftest does.
The suite runs with `--grace all=3` by default (`--grace`): a transient cause (a pod not ready, a
create refused) fails the rollout only once it has persisted for its grace, 120 s by default, which
would otherwise hide the detection time behind the 30 s rollout timeout.

    .venv/bin/python -m bench.faults [--case ID ...] [--repeat 1] [--rollout-timeout 30] [--grace all=3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench.common import REPO, Series, header, interleave
from selftests.suite.test_suite_against_faults import CASES, set_faults
from utilities.junit import pytest_id
from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess


def durations(junit: Path) -> dict[str, tuple[float, bool]]:
    out = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        failed = bool(tc.findall("failure") or tc.findall("error"))
        out[pytest_id(tc)] = (float(tc.get("time") or 0), failed)
    return out


def run_case(case, work: Path, faulty: bool, n: int, rollout_timeout: int,
             grace: str = "all=3") -> tuple[float, bool, float]:
    """(duration of the case's test, whether it failed, whole run seconds)."""
    d = work / f"{case.id}-{'f' if faulty else 'h'}-{n}"
    lc = LocalClusterProcess(d / "cluster", case.serve_args if faulty else [])
    lc.start()
    try:
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        if faulty and case.faults and not case.after_snapshot:
            set_faults(cluster, case.faults)
        junit = d / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", *case.select, f"--kubeconfig={lc.kubeconfig}", "--allow-destructive",
               "--ingress-address", lc.info["ingress_address"], "--rollout-timeout", str(rollout_timeout),
               f"--grace={grace}",
               f"--reports-dir={d / 'reports'}", "--run-id", "r", f"--junitxml={junit}", "-p", "no:cacheprovider",
               "-q"]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if faulty and case.faults and case.after_snapshot:   # as the selftest does: once the Config is saved
            snapshot = d / "reports" / "r" / "config-snapshot.json"
            deadline = time.monotonic() + 60
            while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            set_faults(cluster, case.faults)
        try:
            proc.wait(900)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        whole = time.perf_counter() - t
        cluster.api_client.close()
    finally:
        lc.stop()
    got = durations(junit)
    if case.failing_test == "*":
        failed = any(f for _, f in got.values())
        return sum(s for s, _ in got.values()), failed, whole
    seconds, failed = got.get(case.failing_test, (float("nan"), False))
    return seconds, failed, whole


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=[], help="case id (default: every case)")
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_FAULT_REPEAT", 1)))
    ap.add_argument("--rollout-timeout", type=int, default=30)
    ap.add_argument("--grace", default=os.environ.get("BENCH_FAULT_GRACE", "all=3"),
                    help="the suite's --grace (default all=3)")
    a = ap.parse_args(argv)
    wanted = set(a.case or [c for c in os.environ.get("BENCH_FAULT_CASES", "").split(",") if c])
    cases = [c for c in CASES if not wanted or c.id in wanted]
    header(f"time from a permanent fault to the test failure ({len(cases)} case(s), --grace {a.grace}, "
           f"--rollout-timeout {a.rollout_timeout})")
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    counter = iter(range(10 ** 6))
    notes: dict[str, list[str]] = {}

    def measure(case, faulty: bool):
        def go():
            seconds, failed, _ = run_case(case, work, faulty, next(counter), a.rollout_timeout, a.grace)
            if failed != faulty:
                notes.setdefault(case.id, []).append(f"{'faulty' if faulty else 'healthy'} run "
                                                     f"{'failed' if failed else 'passed'}")
            return seconds
        return go

    # One healthy reference per selection (cases sharing a selection share it), all interleaved.
    healthy_of = {c.id: "healthy: " + " ".join(c.select) for c in cases}
    subjects = {c.id: measure(c, True) for c in cases}
    for c in cases:
        subjects.setdefault(healthy_of[c.id], measure(c, False))
    try:
        res = interleave(a.repeat, subjects)
        for case in cases:
            f = Series(f"{case.id}: to failure", "s", res[case.id])
            h = Series("   healthy, same selection", "s", res[healthy_of[case.id]])
            ratio = f.median / h.median if h.median else float("nan")
            print("  ", f.line())
            print("  ", h.line())
            print(f"   {case.id}: excess {f.median - h.median:+.1f} s, ratio to healthy {ratio:.2f} "
                  f"({case.failing_test})" + (f"; NOTE: {', '.join(notes[case.id])}" if case.id in notes else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
