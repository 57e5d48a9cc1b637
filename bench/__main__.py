"""`python -m bench` (`make bench`): every benchmark in turn, each in its own process and time bound.

    .venv/bin/python -m bench [--only NAME ...] [--quick]

`--quick` (or BENCH_QUICK=1) shrinks sizes and repetitions (a smoke run of every script). Sizes and
repetitions are also set per script through their options or the BENCH_* variables they read
(BENCH_SIZE_MIB, BENCH_REPEAT, BENCH_MEMORY_SIZE_MIB, BENCH_MATRIX_REPEAT, BENCH_FAULT_CASES, ...).
Figures are printed, never asserted; a script that fails is reported and the others still run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import REPO, header

# name -> (module, arguments, arguments with --quick, time bound in seconds)
BENCHES = {
    "transfer": ("bench.transfer", [], ["--size-mib", "32", "--repeat", "1", "--memory-size-mib", "64"], 600),
    "startup": ("bench.startup", [], ["--repeat", "1"], 300),
    "api_requests": ("bench.api_requests", [], ["--repeat", "1"], 300),
    "matrix": ("bench.matrix", [], [], 900),
    "faults": ("bench.faults", [], ["--case", "scheduler.unschedulable"], 900),
    "apiserver_scaling": ("bench.apiserver_scaling", [], ["--rounds", "2", "--step", "300", "--samples", "50"], 300),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], choices=sorted(BENCHES))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    a = ap.parse_args(argv)
    header("make bench")
    failed = []
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, (module, args, quick, bound) in BENCHES.items():
        if a.only and name not in a.only:
            continue
        cmd = [sys.executable, "-m", module, *(quick if a.quick else args)]
        print(f"\n$ {' '.join(cmd[1:])}", flush=True)
        t = time.perf_counter()
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, timeout=bound).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"   ({name}: {time.perf_counter() - t:.0f} s{'' if rc == 0 else f', FAILED: {rc}'})", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that did not complete: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
