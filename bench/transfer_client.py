"""One push or pull by the suite's client, in its own process, reporting its time and memory (JSON line).

    python -m bench.transfer_client push|pull --image IMAGE.json --repo R --host H --ca CA --token-file F \
        --connect-to ADDR [--out DIR]

The baseline is the process's RSS after its imports and before the transfer; the peak is VmHWM
after it (reset to the baseline first), so `peak - baseline` is what the transfer itself cost.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import reset_peak_rss, rss_kib  # noqa: F401  (sets sys.path)
from utilities.images import Blob, Image
from utilities.registry_client import RegistryClient


def load_image(path: Path) -> Image:
    d = json.loads(path.read_text())
    config = Blob(d["config"]["mediaType"], bytes.fromhex(d["config"]["hex"]))
    layers = tuple(Blob(x["mediaType"], path=Path(x["path"]), known_digest=x["digest"], known_size=x["size"])
                   for x in d["layers"])
    return Image(config=config, layers=layers, manifest_bytes=bytes.fromhex(d["manifest_hex"]),
                 diff_ids=tuple(d["diff_ids"]))


def save_image(image: Image, path: Path) -> None:
    path.write_text(json.dumps({
        "config": {"mediaType": image.config.media_type, "hex": image.config.data.hex()},
        "layers": [{"mediaType": b.media_type, "path": str(b.path), "digest": b.digest, "size": b.size}
                   for b in image.layers],
        "manifest_hex": image.manifest_bytes.hex(), "diff_ids": list(image.diff_ids)}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("op", choices=["push", "pull"])
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--connect-to")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    image = load_image(a.image)
    client = RegistryClient(a.host, ca_file=a.ca, token=a.token_file.read_text().strip(), connect_to=a.connect_to)
    client.ping(a.repo)                       # token and connection first: not part of the transfer
    base, _ = rss_kib()
    reset_peak_rss()
    t = time.perf_counter()
    if a.op == "push":
        digest = client.push_image(a.repo, "v1", image)
        assert digest == image.manifest_digest
    else:
        pulled = client.pull_image(a.repo, "v1", expected_digest=image.manifest_digest, dest_dir=a.out)
        client.verify_same(pulled, image)
    seconds = time.perf_counter() - t
    _, peak = rss_kib()
    client.close()
    print(json.dumps({"seconds": seconds, "baseline_rss_kib": base, "peak_rss_kib": peak}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
