"""Start-up time and memory of the local cluster on each control plane (issue 8).

For the builtin control plane and for the real one (each release asked for), starts
`python -m localcluster serve` as the suite does, and prints: seconds until the kubeconfig is written,
the real control plane's own timings (etcd healthy, kube-apiserver ready, seed, total inside the
namespace), seconds until the operator has bootstrapped the Config (Removed, Available=True), and
resident memory (the control-plane processes, and every process of the cluster's process tree).
Run:

    .venv/bin/python bench/realcp_startup.py [--release 4.18 --release main] [--no-builtin]

Figures only: the machines are shared and noisy; nothing is asserted.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcluster.realcp import binaries  # noqa: E402
from utilities import kube  # noqa: E402
from utilities.kube import load_cluster  # noqa: E402
from utilities.localcluster_process import LocalClusterProcess  # noqa: E402


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (ps: one snapshot)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,rss="], capture_output=True, text=True).stdout
    children, rss = {}, {}
    for line in out.splitlines():
        p, pp, r = (int(x) for x in line.split())
        children.setdefault(pp, []).append(p)
        rss[p] = r
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def _bootstrap_seconds(lc, t0: float, timeout: float = 180.0) -> float:
    c = load_cluster(lc.kubeconfig, None, embedded=True, info=lc.info)
    while time.monotonic() - t0 < timeout:
        cfg = kube.get_or_none(c.custom.get_cluster_custom_object, "imageregistry.operator.openshift.io", "v1",
                               "configs", "cluster")
        conds = {x["type"]: x["status"] for x in ((cfg or {}).get("status") or {}).get("conditions") or []}
        if conds.get("Available") == "True" and conds.get("Removed") == "True":
            return time.monotonic() - t0
        time.sleep(0.2)
    return float("nan")


def run(args: list[str], label: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-realcp-") as d:
        t0 = time.monotonic()
        lc = LocalClusterProcess(Path(d), args, start_timeout=300).start()
        try:
            ready = time.monotonic() - t0
            boot = _bootstrap_seconds(lc, t0)
            time.sleep(2)
            tree = _tree_rss_kib(lc.proc.pid)
            inner = {}
            info = lc.info
            print(f"{label}: kubeconfig written after {ready:.1f} s, Config bootstrapped after {boot:.1f} s, "
                  f"cluster processes {tree / 1024:.0f} MiB resident")
            for k, v in (info.get("timings") or {}).items():
                inner[k] = v
            if inner:
                print("  inside the namespace: " + ", ".join(f"{k} {v:.1f} s" for k, v in inner.items()))
            if info.get("memory_kib"):
                print("  at ready: " + ", ".join(f"{k} {v / 1024:.0f} MiB" for k, v in info["memory_kib"].items()))
        finally:
            lc.stop()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--release", action="append", default=[])
    p.add_argument("--no-builtin", action="store_true")
    a = p.parse_args()
    if not a.no_builtin:
        run(["--control-plane=builtin"], "builtin")
    for release in a.release or [binaries.DEFAULT_RELEASE]:
        why = binaries.missing_reason(release)
        if why:
            print(f"real {release}: skipped: {why}")
            continue
        run(["--control-plane=real", f"--openshift={release}"], f"real {release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
