"""Push and pull of one image through the route: the suite's client against skopeo; the client's memory.

A local cluster (`python -m localcluster serve --no-odf`) runs the registry on emptyDir behind its
`default-route`. Each round (interleaved, `--repeat` rounds) builds a fresh image with one random layer
of `--size-mib` (default 256) on disk for each client (a layer the registry already holds would not be
uploaded again: skopeo checks first), pushes it to a new repository and pulls it back with the
suite's client (`bench/transfer_client.py`, its own process) and with skopeo (`oci:` layout ->
`docker://`, `docker://` -> `dir:`, a fresh HOME each time so its blob-info cache cannot mount). Both go
router -> registry front -> registry: the suite's client connects to the router with the route host as
SNI/Host; skopeo, which has no connect-to option, through a second Route whose host is the router's IP
(`--dest-tls-verify=false`: the certificate names the route host; the bytes are still TLS).

Prints MiB/s (median, min, max) of each and the ratio suite/skopeo (goal: at least 1 both ways), and
the peak RSS of each process; then `--memory-size-mib` (default 1024, 0 skips) pushed and pulled once
by the suite's client: peak RSS above its baseline (goal: under 100 MiB).

    .venv/bin/python -m bench.transfer [--size-mib 256] [--repeat 3] [--memory-size-mib 1024]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Series, header, interleave, ratio_line, run_measured
from bench.transfer_client import save_image
from selftests.routed_registry import IR, RoutedRegistry
from utilities.images import build_random_image_files

IP_ROUTE = "bench-by-ip"


def ip_route(rr: RoutedRegistry) -> str:
    """A Route whose host is the router's IP, for clients that cannot connect elsewhere than the URL."""
    host, port = rr.ingress_address.rsplit(":", 1)
    body = {"apiVersion": "route.openshift.io/v1", "kind": "Route",
            "metadata": {"name": IP_ROUTE, "namespace": IR},
            "spec": {"host": host, "to": {"kind": "Service", "name": "image-registry"},
                     "tls": {"termination": "reencrypt"}}}
    rr.cluster.custom.create_namespaced_custom_object("route.openshift.io", "v1", IR, "routes", body)
    deadline = time.monotonic() + 30
    import requests
    import urllib3
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)   # the IP does not match the cert
    while time.monotonic() < deadline:
        try:
            if requests.get(f"https://{rr.ingress_address}/v2/", verify=False, timeout=5).status_code == 401:
                return rr.ingress_address
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("the IP route does not serve the registry")


def write_layout(image, d: Path) -> None:
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for b in image.layers:
        os.link(b.path, blobs / b.digest[7:])
    (blobs / image.config.digest[7:]).write_bytes(image.config.data)
    (blobs / image.manifest_digest[7:]).write_bytes(image.manifest_bytes)
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": image.manifest["mediaType"], "digest": image.manifest_digest,
        "size": len(image.manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=int(os.environ.get("BENCH_SIZE_MIB", 256)))
    ap.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", 3)))
    ap.add_argument("--memory-size-mib", type=int, default=int(os.environ.get("BENCH_MEMORY_SIZE_MIB", 1024)))
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)
    skopeo = shutil.which("skopeo")
    header(f"push/pull {a.size_mib} MiB through the route: suite client vs skopeo")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench-transfer-"))
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rr = RoutedRegistry(work / "rr").start()
    try:
        token_file = work / "token"
        token_file.write_text(rr.token)
        token_file.chmod(0o600)
        desc = work / "image.json"
        size_mib = a.size_mib
        base_args = ["--host", rr.host, "--ca", str(rr.ca_file), "--token-file",
                     str(token_file), "--connect-to", rr.ingress_address]
        counter = iter(range(10 ** 6))
        rss: dict[str, list[int]] = {}

        def fresh(n: int, layout: bool = False) -> Path:
            """A new image for each push (the registry must not already hold its layer: skopeo would
            skip the upload); its description for the suite's client, or an OCI layout for skopeo."""
            for old in work.glob("img-*"):
                shutil.rmtree(old, ignore_errors=True)
            img = build_random_image_files(work / f"img-{n}" / "blobs", a.size_mib << 20, layers=1)
            if layout:
                write_layout(img, work / f"img-{n}" / "layout")
                return work / f"img-{n}" / "layout"
            d = work / f"img-{n}" / "image.json"
            save_image(img, d)
            return d

        def suite(op):
            def run():
                n = next(counter)
                out = work / f"pulled-{n}"
                if op == "push":
                    suite.repo, suite.desc = f"bench/suite-{n}", fresh(n)
                args = [py, "-m", "bench.transfer_client", op, "--repo", suite.repo, "--image", str(suite.desc),
                        *base_args, "--out", str(out)]
                _, peak, text = run_measured(args, env=env)
                report = json.loads(text.strip().splitlines()[-1])
                rss.setdefault(f"suite {op}", []).append(report["peak_rss_kib"])
                shutil.rmtree(out, ignore_errors=True)
                return size_mib / report["seconds"]
            return run

        ip = ip_route(rr) if skopeo else None

        def sk(op):
            def run():
                n = next(counter)
                home = work / f"home-{n}"
                home.mkdir()
                senv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
                creds = f"unused:{rr.token}"
                if op == "push":
                    sk.repo = f"bench/skopeo-{n}"
                    layout = fresh(n, layout=True)
                    cmd = [skopeo, "--registries-conf", "/dev/null", "copy", "--quiet", "--dest-creds", creds,
                           "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{ip}/{sk.repo}:v1"]
                else:
                    cmd = [skopeo, "--registries-conf", "/dev/null", "copy", "--quiet", "--src-creds", creds,
                           "--src-tls-verify=false", f"docker://{ip}/{sk.repo}:v1", f"dir:{work / f'sk-{n}'}"]
                wall, peak, _ = run_measured(cmd, env=senv)
                rss.setdefault(f"skopeo {op}", []).append(peak)
                shutil.rmtree(work / f"sk-{n}", ignore_errors=True)
                shutil.rmtree(home, ignore_errors=True)
                return size_mib / wall
            return run

        series = {}
        # per client and round: a push, then a pull of what was just pushed
        subjects = {"suite": lambda: (suite("push")(), suite("pull")())}
        if skopeo:
            subjects["skopeo"] = lambda: (sk("push")(), sk("pull")())
        results = interleave(a.repeat, subjects)
        for who, pairs in results.items():
            series[f"{who} push"] = Series(f"{who} push", "MiB/s", [p for p, _ in pairs])
            series[f"{who} pull"] = Series(f"{who} pull", "MiB/s", [q for _, q in pairs])
        print(f"   image: one layer, {size_mib:.0f} MiB; {a.repeat} interleaved rounds")
        for s in series.values():
            print("  ", s.line("{:.1f}"))
        for k, v in rss.items():
            print(f"   peak RSS {k:<22} median {sorted(v)[len(v) // 2] / 1024:.0f} MiB  max {max(v) / 1024:.0f} MiB")
        if skopeo:
            for op in ("push", "pull"):
                print("  ", ratio_line(f"{op} speed suite/skopeo (goal >= 1)", series[f"suite {op}"],
                                       series[f"skopeo {op}"]))
        else:
            print("   skopeo not installed (apt-get install skopeo): no reference")
        if a.memory_size_mib:
            for old in work.glob("img-*"):
                shutil.rmtree(old, ignore_errors=True)
            big = build_random_image_files(work / "big", a.memory_size_mib << 20, layers=1)
            save_image(big, desc)
            costs = {}
            for op in ("push", "pull"):
                if op == "push":
                    suite.repo = "bench/memory"
                args = [py, "-m", "bench.transfer_client", op, "--repo", "bench/memory", "--image", str(desc),
                        *base_args,
                        "--out", str(work / "big-out")]
                _, _, text = run_measured(args, env=env, timeout=900)
                r = json.loads(text.strip().splitlines()[-1])
                costs[op] = ((r["peak_rss_kib"] - r["baseline_rss_kib"]) / 1024, r["seconds"])
                shutil.rmtree(work / "big-out", ignore_errors=True)
            for op, (mib, secs) in costs.items():
                print(f"   memory: {a.memory_size_mib} MiB {op} by the suite client: peak RSS {mib:.1f} MiB above "
                      f"baseline (goal < 100; ratio to the goal {mib / 100:.2f}), {a.memory_size_mib / secs:.0f} MiB/s")
    finally:
        rr.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
