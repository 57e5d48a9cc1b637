"""API requests per wait: how many requests the suite's waits (utilities/waits.py) send to the API server.

On a fresh local cluster (`--no-odf`), each round drives the registry through the procedure's steps and
counts every HTTP request the suite's client sends during each wait (urllib3, in this process: lists,
gets, and each watch opened): Removed -> Managed with emptyDir (the rollout wait), defaultRoute (route
admitted), back to Removed (Deployment gone). The reference is the least a watch-based wait can send:
one list and one watch per collection it follows (2 x the watches it opened); ratio = requests / reference.

    .venv/bin/python -m bench.api_requests [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import urllib3

from bench.common import Series, header
from utilities import waits
from utilities.kube import CONFIG_GVR, CONFIG_NAME, REGISTRY_NAMESPACE, load_cluster
from utilities.localcluster_process import LocalClusterProcess


class Counter:
    def __init__(self, host: str):
        self.host = host
        self.lock = threading.Lock()
        self.requests = self.watches = 0
        self._orig = urllib3.PoolManager.urlopen
        counter = self

        def urlopen(pm, method, url, *a, **kw):
            if counter.host in url:
                with counter.lock:
                    counter.requests += 1
                    counter.watches += "watch=true" in url.lower()
            return counter._orig(pm, method, url, *a, **kw)
        urllib3.PoolManager.urlopen = urlopen

    def take(self) -> tuple[int, int]:
        with self.lock:
            out = (self.requests, self.watches)
            self.requests = self.watches = 0
            return out

    def close(self):
        urllib3.PoolManager.urlopen = self._orig


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 3)))
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args(argv)
    header("API requests per wait")
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    lc = LocalClusterProcess(work / "c", ["--no-odf"])
    lc.start()
    counter = None
    try:
        cluster = load_cluster(lc.kubeconfig, embedded=True, ingress_address=lc.info["ingress_address"])
        g, v, p = CONFIG_GVR
        waits.wait_for_config_exists(cluster, a.timeout)
        counter = Counter(cluster.server.split("//", 1)[1])
        steps = [
            ("rollout (Managed, emptyDir)", "rollout",
             {"managementState": "Managed", "storage": {"emptyDir": {}}, "replicas": 1},
             lambda since: waits.wait_for_rollout(cluster, a.timeout, since=since)),
            ("route admitted (defaultRoute)", "route", {"defaultRoute": True},
             lambda since: waits.wait_for_route_admitted(cluster, "default-route", REGISTRY_NAMESPACE, a.timeout)),
            ("Deployment gone (Removed)", "gone", {"managementState": "Removed", "defaultRoute": False},
             lambda since: waits.wait_for_deployment_gone(cluster, a.timeout)),
        ]
        series = {name: (Series(name, "requests"), Series(name, "s"), []) for name, *_ in steps}
        for _ in range(a.repeat):
            for name, kind, spec, wait in steps:
                cluster.custom.patch_cluster_custom_object(g, v, p, CONFIG_NAME, {"spec": spec})
                counter.take()
                t = time.perf_counter()
                wait(time.time() - 1)
                seconds = time.perf_counter() - t
                reqs, watches = counter.take()
                series[name][0].values.append(reqs)
                series[name][1].values.append(seconds)
                series[name][2].append(watches)
        for name, kind, *_ in steps:
            r, s, w = series[name]
            ref = 2 * max(sorted(w)[len(w) // 2], 1)   # list + watch per collection it watched
            print(f"   {name:<32} requests median {r.median:.0f} (min {min(r.values):.0f}, max {max(r.values):.0f}; "
                  f"watches {sorted(w)[len(w) // 2]}), wait {s.median:.2f} s; reference {ref} "
                  f"(list+watch x {ref // 2}); ratio {r.median / ref:.2f}")
        cluster.api_client.close()
    finally:
        if counter is not None:
            counter.close()
        lc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
