"""Run one catalogue entry (selftests/faults/catalogue.py) against a local cluster and read the verdict.

`run(lc, cluster, fault, workdir)` sets the fault's knobs, runs `pytest <fault.args>` in a subprocess
against the cluster (--kubeconfig --allow-destructive, short rollout timeout), clears the knobs and
returns an `Outcome`: which tests failed, with their messages and JUnit times, and the wall time.
"""
from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from localcluster.settings import FAULTS_CONFIGMAP, FAULTS_NAMESPACE
from selftests.support import run_suite
from utilities import kube
from utilities.junit import pytest_id
from utilities.localcluster_process import LocalClusterProcess

from .catalogue import Fault

RUN_TIMEOUT = 600


@dataclasses.dataclass
class Failure:
    test: str
    message: str          # the failure's message attribute and text
    seconds: float        # the test's JUnit time (set-up included)


@dataclasses.dataclass
class Outcome:
    fault: Fault
    returncode: int
    failures: list[Failure]
    wall_seconds: float
    output: str

    @property
    def caught_by(self) -> Failure | None:
        """The failure of the test meant for the fault (any failure for "*"), else None."""
        for f in self.failures:
            if self.fault.caught_by in ("*", f.test):
                return f
        return None

    @property
    def missing_cause(self) -> list[str]:
        f = self.caught_by
        text = "\n".join(x.message for x in self.failures) if self.fault.caught_by == "*" else (f.message if f else "")
        return [c for c in self.fault.cause if c not in text]

    @property
    def as_expected(self) -> bool:
        return self.returncode != 0 and self.caught_by is not None and not self.missing_cause

    def verdict(self) -> str:
        """One paragraph saying why the outcome is not the expected one ("" when it is)."""
        if self.as_expected:
            return ""
        tail = self.output[-3000:]
        if self.returncode == 0 or not self.failures:
            return f"{self.fault.id}: caught by no test (exit {self.returncode}):\n{tail}"
        if self.caught_by is None:
            return (f"{self.fault.id}: {self.fault.caught_by} did not fail; failed instead: "
                    f"{[f.test for f in self.failures]}:\n" + "\n".join(f.message[:1500] for f in self.failures))
        return (f"{self.fault.id}: the failure does not name {self.missing_cause}:\n"
                f"{self.caught_by.message[:4000]}")


def set_knobs(cluster, data: dict) -> None:
    """Merge `data` into the faults configmap (None values delete keys); creates it when absent."""
    try:
        kube.call(cluster.core.patch_namespaced_config_map, FAULTS_CONFIGMAP, FAULTS_NAMESPACE, {"data": data})
    except kube.ApiException as e:
        if e.status != 404:
            raise
        kube.call(cluster.core.create_namespaced_config_map, FAULTS_NAMESPACE,
                  {"metadata": {"name": FAULTS_CONFIGMAP, "namespace": FAULTS_NAMESPACE},
                   "data": {k: v for k, v in data.items() if v is not None}})


def junit_failures(path: Path) -> list[Failure]:
    out = []
    if not path.exists():
        return out
    for tc in ET.parse(path).getroot().iter("testcase"):
        for bad in list(tc.findall("failure")) + list(tc.findall("error")):
            out.append(Failure(pytest_id(tc) or "?", (bad.get("message") or "") + "\n" + (bad.text or ""),
                               float(tc.get("time") or 0.0)))
    return out


def run(lc: LocalClusterProcess, cluster, fault: Fault, workdir: Path) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    if fault.knobs and not fault.after_snapshot:
        set_knobs(cluster, fault.knobs)
    start = time.monotonic()
    try:
        # The catalogue's runs keep the suite's default graces (no --grace).
        suite = run_suite(lc, fault.args, workdir, fault.id.replace("/", "_"),
                          rollout_timeout=fault.rollout_timeout, grace=None, timeout=RUN_TIMEOUT,
                          fail_on_timeout=False,
                          after_snapshot=(lambda: set_knobs(cluster, fault.knobs)) if fault.after_snapshot else None)
    finally:
        if fault.knobs:
            set_knobs(cluster, {k: None for k in fault.knobs})
    return Outcome(fault, suite.returncode, junit_failures(suite.junit), time.monotonic() - start, suite.output)
