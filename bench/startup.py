"""Local cluster start-up: `python -m localcluster serve` until its kubeconfig is written (ready).

Variants are measured interleaved: `builtin` (the default: built-in control plane, ODF on) and
`builtin-no-odf`; more with `--variant NAME=ARGS` (e.g. the real control plane, when serve offers it:
`--variant "real=--control-plane=real"`; the env BENCH_STARTUP_VARIANTS takes `NAME=ARGS;NAME=ARGS`).
The reference is the goal: built-in ready in 1.5 s on a quiet machine; the ratio is median / 1.5 s.

    .venv/bin/python -m bench.startup [--repeat 5] [--variant NAME=ARGS ...]
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import Series, header, interleave
from utilities.localcluster_process import LocalClusterProcess

GOAL_SECONDS = 1.5
DEFAULT_VARIANTS = {"builtin": [], "builtin-no-odf": ["--no-odf"]}


def parse_variants(items) -> dict[str, list[str]]:
    out = {}
    for item in items:
        name, _, args = item.partition("=")
        out[name.strip()] = shlex.split(args)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 5)))
    ap.add_argument("--variant", action="append", default=[], help="NAME=ARGS: serve arguments of a variant")
    a = ap.parse_args(argv)
    variants = dict(DEFAULT_VARIANTS)
    env_variants = [v for v in os.environ.get("BENCH_STARTUP_VARIANTS", "").split(";") if v.strip()]
    variants.update(parse_variants(env_variants + a.variant))
    header("local cluster start-up (serve -> kubeconfig written)")
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    counter = iter(range(10 ** 6))

    def start(args):
        def run():
            lc = LocalClusterProcess(work / f"c{next(counter)}", args, start_timeout=120)
            t = time.perf_counter()
            lc.start()
            seconds = time.perf_counter() - t
            lc.stop()
            return seconds
        return run

    try:
        results = interleave(a.repeat, {n: start(args) for n, args in variants.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, values in results.items():
        s = Series(f"{name} ({' '.join(variants[name]) or 'defaults'})", "s", values)
        print("  ", s.line())
        print(f"   ratio {name} / goal {GOAL_SECONDS} s: {s.median / GOAL_SECONDS:.2f}")


if __name__ == "__main__":
    main()
