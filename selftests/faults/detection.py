"""`make detection`: run the whole fault catalogue (selftests/faults/catalogue.py) and print, per fault,
the test that caught it, seconds to failure and the message; then the faults caught by no test (or not
by the test meant for them, or without their cause in the message). Exit 1 when any is not as expected.

    .venv/bin/python -m selftests.faults.detection [--only ID ...] [--workdir DIR]

One local cluster serves every entry with the same `serve` flags (the knobs are set and cleared around
each run; the suite's own teardown puts the cluster back between runs).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import textwrap
from pathlib import Path

from utilities.kube import load_cluster
from utilities.localcluster_process import LocalClusterProcess

from . import runner
from .catalogue import BY_ID, CATALOGUE


def first_line(text: str, width: int = 110) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return textwrap.shorten(line, width, placeholder="…")
    return ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selftests.faults.detection", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="ID", help="run only this fault (repeatable)")
    ap.add_argument("--workdir", type=Path, default=None, help="where clusters, reports and JUnit files go")
    args = ap.parse_args(argv)
    unknown = [i for i in args.only if i not in BY_ID]
    if unknown:
        ap.error(f"unknown fault {unknown}; known: {', '.join(BY_ID)}")
    faults = [BY_ID[i] for i in args.only] if args.only else list(CATALOGUE)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="detection-"))
    outcomes = []
    groups = itertools.groupby(sorted(faults, key=lambda f: f.serve_args), key=lambda f: f.serve_args)
    for n, (serve_args, group) in enumerate(groups):
        lc = LocalClusterProcess(workdir / f"cluster-{n}", list(serve_args))
        lc.start()
        cluster = load_cluster(lc.kubeconfig, embedded=True)
        try:
            for fault in group:
                print(f"... {fault.id}", flush=True)
                outcomes.append(runner.run(lc, cluster, fault, workdir / "runs"))
        finally:
            cluster.api_client.close()
            lc.stop()
    order = {f.id: i for i, f in enumerate(CATALOGUE)}
    outcomes.sort(key=lambda o: order[o.fault.id])
    rows = []
    for o in outcomes:
        f = o.caught_by or (o.failures[0] if o.failures else None)
        mark = "ok" if o.as_expected else ("MISSED" if not o.failures or o.returncode == 0 else
                                           "WRONG TEST" if o.caught_by is None else "NO CAUSE")
        rows.append((mark, o.fault.id, f.test if f else "-", f"{f.seconds:.1f}" if f else "-",
                     f"{o.wall_seconds:.1f}", first_line(f.message) if f else "-"))
    head = ("", "fault", "caught by", "test s", "run s", "message")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(5)]
    print()
    for r in [head] + rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5])) + "  " + r[5])
    missed = [o for o in outcomes if not o.failures or o.returncode == 0]
    print(f"\nfaults caught by no test: {', '.join(o.fault.id for o in missed) or 'none'}")
    bad = [o for o in outcomes if not o.as_expected]
    for o in bad:
        print("\n" + o.verdict())
    print(f"\n{len(outcomes) - len(bad)}/{len(outcomes)} faults caught by the test meant for them, naming the cause"
          f" (work directory {workdir})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
