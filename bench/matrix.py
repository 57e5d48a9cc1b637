"""Whole-matrix time against the local cluster's own built-in delays.

The suite runs on the local cluster (`pytest tests/`, the embedded cluster, in a subprocess) twice per
round, interleaved: with the built-in delays as they are (T1) and with every delay of
`localcluster/settings.py` multiplied by `--scale` (T2; a delay is any positive float setting but the
informer resync, set through its LOCALCLUSTER_<NAME> variable, so delays added later are included).
The time the built-in delays account for is D = (T2 - T1) / (scale - 1): what the run waits for the
cluster's simulated slowness. Printed: T1, D, and the ratio T1 / D (how much of the run is the suite's
own work rather than waiting for the cluster; 1 would be "nothing but the delays").

By default one backend (`--backend emptydir`, about a minute a run); `--full` runs every backend.

    .venv/bin/python -m bench.matrix [--repeat 1] [--scale 10] [--full] [--pytest-arg ARG ...]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Series, header, interleave
from localcluster.settings import Settings

NOT_DELAYS = {"resync_seconds"}


def delay_settings() -> dict[str, float]:
    s = Settings()
    return {f.name: getattr(s, f.name) for f in dataclasses.fields(Settings)
            if isinstance(getattr(s, f.name), float) and not isinstance(getattr(s, f.name), bool)
            and getattr(s, f.name) > 0 and f.name not in NOT_DELAYS and not f.name.startswith("api_")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_MATRIX_REPEAT", 1)))
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--full", action="store_true", help="every backend (default: emptydir only)")
    ap.add_argument("--pytest-arg", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args(argv)
    delays = delay_settings()
    header("whole matrix vs the local cluster's built-in delays")
    print("   delays: " + ", ".join(f"{k}={v:g}" for k, v in delays.items()) + f"; scaled x{a.scale:g}")
    work = Path(tempfile.mkdtemp(prefix="bench-matrix-"))
    selection = [] if a.full else ["--backend", "emptydir"]
    counter = iter(range(10 ** 6))
    failures: list[str] = []

    def run(scale: float):
        def go():
            n = next(counter)
            env = dict(os.environ)
            for k, v in delays.items():
                env[f"LOCALCLUSTER_{k.upper()}"] = repr(v * scale)
            # --local-cluster: the benchmark is of the local cluster, whatever KUBECONFIG the user has set
            cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--local-cluster", *selection,
                   f"--reports-dir={work}", "--run-id", f"m{n}", *a.pytest_arg]
            t = time.perf_counter()
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=a.timeout)
            seconds = time.perf_counter() - t
            if r.returncode != 0:
                failures.append(f"run x{scale:g} exited {r.returncode}: {r.stdout.strip().splitlines()[-1:]}")
            return seconds
        return go

    try:
        res = interleave(a.repeat, {"built-in delays": run(1.0), f"delays x{a.scale:g}": run(a.scale)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t1 = Series("matrix, built-in delays (T1)", "s", res["built-in delays"])
    t2 = Series(f"matrix, delays x{a.scale:g} (T2)", "s", res[f"delays x{a.scale:g}"])
    print(f"   selection: {'all backends' if a.full else 'emptydir'}")
    print("  ", t1.line())
    print("  ", t2.line())
    d = (t2.median - t1.median) / (a.scale - 1)
    print(f"   time the built-in delays account for: D = (T2 - T1) / {a.scale - 1:g} = {d:.1f} s")
    print(f"   ratio T1 / D: {t1.median / d:.1f}" if d > 0 else "   ratio T1 / D: n/a (the delays account for no measurable time: the run spends it elsewhere)")
    spread = max(t1.values) - min(t1.values) if len(t1.values) > 1 else None
    if spread is not None and abs(d) * (a.scale - 1) < spread:
        print(f"   NOTE: T2 - T1 is within the spread of T1 ({spread:.1f} s): raise --scale or --repeat")
    for f in failures:
        print(f"   NOTE: {f}")


if __name__ == "__main__":
    main()
