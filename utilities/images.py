"""Fresh random OCI images: every build is new, so every push really uploads.

An image is one gzipped tar layer holding a file of random bytes, an OCI config naming the
layer's diff_id (sha256 of the uncompressed tar), and an OCI manifest.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
import time

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclasses.dataclass(frozen=True)
class Image:
    config: Blob
    layers: tuple[Blob, ...]
    manifest_bytes: bytes
    diff_ids: tuple[str, ...]

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest_bytes)

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)


def _layer(payload: bytes, name: str) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzipped tar) with one file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(payload))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def build_random_image(layer_size: int = 64 * 1024, layers: int = 1) -> Image:
    """A new image made of `layers` layers of `layer_size` random bytes each."""
    blobs, diff_ids = [], []
    for i in range(layers):
        raw, gz = _layer(os.urandom(layer_size), f"random-{i}-{os.urandom(4).hex()}.bin")
        blobs.append(Blob(OCI_LAYER_GZIP, gz))
        diff_ids.append(sha256_digest(raw))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"Labels": {"io.registry-conformance.nonce": os.urandom(8).hex()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "registry-conformance random layer"} for _ in diff_ids],
    }
    config_blob = Blob(OCI_CONFIG, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in blobs],
    }
    return Image(config=config_blob, layers=tuple(blobs),
                 manifest_bytes=json.dumps(manifest, sort_keys=True).encode(), diff_ids=tuple(diff_ids))


def diff_id_of(gz_layer: bytes) -> str:
    """The diff_id of a gzipped layer: sha256 of its uncompressed bytes."""
    return sha256_digest(gzip.decompress(gz_layer))
