"""How the local API server's request latency holds up as objects and requests accumulate.

kmock, evaluated as a base for this server, re-scanned every earlier request on each request (2 ms at
first, 140-250 ms after ~900 requests; see ../shared/reference/parts-notes.md). This prints the median
latency of get / patch / selector list at growing object counts, and the ratio to the first round, so
a regression to that kind of behaviour shows as a ratio far above 1. Run:

    .venv/bin/python bench/apiserver_scaling.py [--rounds 4] [--step 1500]

Ratios are measured within one run (the machines are shared and noisy); no threshold is enforced.
Get and patch stay flat; a label-selector list grows with the objects of its namespace, as a
kube-apiserver's does (it filters every object of the namespace).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localcluster.apiserver import APIServer, default_users  # noqa: E402
from localcluster.client import KubeClient, path  # noqa: E402
from localcluster.pki import CertificateAuthority  # noqa: E402
from localcluster.settings import Settings  # noqa: E402


async def _median_ms(fn, n: int) -> float:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def main(rounds: int, step: int, samples: int) -> None:
    ca = CertificateAuthority.create("bench-ca")
    cert, key = ca.issue("bench", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    users = default_users()
    server = APIServer(Settings(), cert, key, users)
    await server.start()
    admin = next(u for u in users if u.name == "kube:admin")
    c = KubeClient(server.url, admin.token, ca.cert_pem)
    ns = "bench"
    await c.create(path("v1", "namespaces"), {"metadata": {"name": ns}})
    cms = path("v1", "configmaps", ns)
    await c.create(cms, {"metadata": {"name": "probe", "labels": {"probe": "yes"}}, "data": {"n": "0"}})
    total = 0
    first = None
    print(f"{'objects':>8} {'requests':>9} {'get ms':>8} {'patch ms':>9} {'list ms':>8}  ratios to the first round")
    for r in range(rounds):
        get = await _median_ms(lambda i: c.get(f"{cms}/probe"), samples)
        patch = await _median_ms(lambda i: c.patch(f"{cms}/probe", {"data": {"n": str(i)}}), samples)
        lst = await _median_ms(lambda i: c.list(cms, label_selector="probe=yes"), samples)
        row = (get, patch, lst)
        first = first or row
        ratios = " ".join(f"{a / b:5.2f}" for a, b in zip(row, first))
        print(f"{total:>8} {server.stats.get('requests', 0) if isinstance(server.stats, dict) else '-':>9} "
              f"{get:8.2f} {patch:9.2f} {lst:8.2f}  {ratios}")
        if r < rounds - 1:
            await asyncio.gather(*(c.create(cms, {"metadata": {"name": f"cm-{total + i}",
                                                               "labels": {"round": str(r)}},
                                                  "data": {"v": "x" * 64}}) for i in range(step)))
            total += step
    await c.close()
    await server.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--step", type=int, default=1500, help="objects added between rounds")
    ap.add_argument("--samples", type=int, default=200, help="requests timed per operation and round")
    a = ap.parse_args()
    asyncio.run(main(a.rounds, a.step, a.samples))
