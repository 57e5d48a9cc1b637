"""Fresh random OCI images: every build is new, so every push really uploads.

An image is one or more gzipped tar layers, each holding a file of random bytes, an OCI config naming
the layers' diff_ids (sha256 of the uncompressed tars), and an OCI manifest (or, with
`media_types=DOCKER`, a Docker v2 schema 2 one).

`build_random_image` keeps the blobs in memory (small images for the checks);
`build_random_image_files` writes the layers to a directory, streaming (random bytes -> tar -> gzip ->
file, with the digest and the diff_id computed as the bytes go by), so a 1 GiB image costs no more
memory than a 1 MiB one. A `Blob` is either `data` (bytes) or `path` (a file); its digest is computed
once.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from pathlib import Path
from typing import Iterator

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI = (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
DOCKER = (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
READ_CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Blob:
    """Content by digest: `data` in memory, or the file `path`. `digest` and `size` are computed once
    (or given, when the builder computed them while writing the file)."""
    media_type: str
    data: bytes | None = None
    path: Path | None = None
    known_digest: dataclasses.InitVar[str | None] = None
    known_size: dataclasses.InitVar[int | None] = None

    def __post_init__(self, known_digest, known_size):
        if (self.data is None) == (self.path is None):
            raise ValueError("a Blob is either data or path")
        if known_digest:
            self.__dict__["digest"] = known_digest
        if known_size is not None:
            self.__dict__["size"] = known_size

    @functools.cached_property
    def digest(self) -> str:
        if self.data is not None:
            return sha256_digest(self.data)
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return "sha256:" + h.hexdigest()

    @functools.cached_property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path)

    def open(self):
        """A binary file object with the content (read it in chunks)."""
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def chunks(self, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
        if self.data is not None:
            for i in range(0, len(self.data), chunk_size):
                yield self.data[i:i + chunk_size]
            return
        with open(self.path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

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


def _config_and_manifest(layers: list[Blob], diff_ids: list[str], media_types: tuple[str, str, str]):
    manifest_type, config_type, _ = media_types
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"Labels": {"io.registry-conformance.nonce": os.urandom(8).hex()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "registry-conformance random layer"} for _ in diff_ids],
    }
    config_blob = Blob(config_type, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    return config_blob, json.dumps(manifest, sort_keys=True).encode()


def build_random_image(layer_size: int = 64 * 1024, layers: int = 1, media_types: tuple = OCI) -> Image:
    """A new image made of `layers` layers of `layer_size` random bytes each, in memory."""
    blobs, diff_ids = [], []
    for i in range(layers):
        raw, gz = _layer(os.urandom(layer_size), f"random-{i}-{os.urandom(4).hex()}.bin")
        blobs.append(Blob(media_types[2], gz))
        diff_ids.append(sha256_digest(raw))
    config_blob, manifest_bytes = _config_and_manifest(blobs, diff_ids, media_types)
    return Image(config=config_blob, layers=tuple(blobs), manifest_bytes=manifest_bytes, diff_ids=tuple(diff_ids))


class _HashingWriter:
    """A write-only file object that hashes and counts what goes through it into `out`."""

    def __init__(self, out):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data) if self.out is not None else len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()


def write_random_layer(path: Path, size: int, name: str, compresslevel: int = 0,
                       chunk_size: int = READ_CHUNK) -> tuple[str, int, str]:
    """Write a gzipped tar holding one file of `size` random bytes to `path`, streaming; returns
    (digest, compressed size, diff_id), each computed while writing."""
    with open(path, "wb") as f:
        gz_side = _HashingWriter(f)
        with gzip.GzipFile(fileobj=gz_side, mode="wb", compresslevel=compresslevel, mtime=0) as gz:
            tar_side = _HashingWriter(gz)
            with tarfile.open(fileobj=tar_side, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo(name)
                info.size = size
                info.mode = 0o644
                info.mtime = int(time.time())
                tar.addfile(info, _RandomReader(size, chunk_size))
    return "sha256:" + gz_side.sha.hexdigest(), gz_side.size, "sha256:" + tar_side.sha.hexdigest()


class _RandomReader:
    """`size` random bytes as a file object (tarfile copies it in its own buffer size)."""

    def __init__(self, size: int, chunk_size: int):
        import random
        self.left, self.chunk_size = size, chunk_size
        self._rng = random.Random(os.urandom(32))   # seeded from the OS: a new image every time, fast

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self._rng.randbytes(n)


def build_random_image_files(directory: str | os.PathLike, layer_size: int, layers: int = 1,
                             media_types: tuple = OCI, compresslevel: int = 0) -> Image:
    """A new image whose layers are files in `directory` (made if needed), written in constant memory.
    Random bytes do not compress: level 0 (stored deflate blocks, still gzip) keeps building fast."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    blobs, diff_ids = [], []
    for i in range(layers):
        tmp = d / f"layer-{i}-{os.urandom(4).hex()}.tmp"
        digest, size, diff_id = write_random_layer(tmp, layer_size, f"random-{i}-{os.urandom(4).hex()}.bin",
                                                   compresslevel)
        final = d / digest.replace(":", "-")
        os.replace(tmp, final)
        blobs.append(Blob(media_types[2], path=final, known_digest=digest, known_size=size))
        diff_ids.append(diff_id)
    config_blob, manifest_bytes = _config_and_manifest(blobs, diff_ids, media_types)
    return Image(config=config_blob, layers=tuple(blobs), manifest_bytes=manifest_bytes, diff_ids=tuple(diff_ids))


class LayerVerifier:
    """Feed a compressed layer in chunks: its sha256 (digest) and, decompressing as it goes, the sha256
    of the uncompressed tar (diff_id). Constant memory; `error` says why the gzip stream is invalid."""

    def __init__(self, gzipped: bool = True):
        self.digest_sha = hashlib.sha256()
        self.diff_sha = hashlib.sha256()
        self.size = 0
        self.gzipped = gzipped
        self._z = zlib.decompressobj(wbits=31) if gzipped else None
        self._in_member = False
        self.error: str | None = None

    def update(self, chunk: bytes) -> None:
        self.digest_sha.update(chunk)
        self.size += len(chunk)
        if not self.gzipped:
            self.diff_sha.update(chunk)
            return
        if self.error is not None:
            return
        data = chunk
        try:
            while data:
                self._in_member = True
                self.diff_sha.update(self._z.decompress(data, READ_CHUNK))
                data = self._z.unconsumed_tail
                if self._z.eof:          # a gzip member ended; another may follow
                    data = self._z.unused_data + data
                    self._z = zlib.decompressobj(wbits=31)
                    self._in_member = False
        except zlib.error as e:
            self.error = str(e)

    def finish(self) -> None:
        if self.gzipped and self.error is None:
            try:
                self.diff_sha.update(self._z.flush())
            except zlib.error as e:
                self.error = str(e)
            if self.error is None and (self._in_member or self.size == 0):
                self.error = "unexpected end of the gzip stream"

    @property
    def digest(self) -> str:
        return "sha256:" + self.digest_sha.hexdigest()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff_sha.hexdigest()


def diff_id_of(gz_layer: bytes) -> str:
    """The diff_id of a gzipped layer: sha256 of its uncompressed bytes."""
    return sha256_digest(gzip.decompress(gz_layer))
