"""The image builder: every image is new, and every digest it declares is right."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

from utilities.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, build_random_image, diff_id_of, sha256_digest


def test_digests_and_sizes_are_consistent():
    img = build_random_image(layer_size=10_000, layers=2)
    manifest = json.loads(img.manifest_bytes)
    assert manifest["mediaType"] == OCI_MANIFEST and manifest["schemaVersion"] == 2
    assert manifest["config"] == {"mediaType": OCI_CONFIG, "digest": sha256_digest(img.config.data),
                                  "size": len(img.config.data)}
    assert [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]] == \
        [(OCI_LAYER_GZIP, sha256_digest(b.data), len(b.data)) for b in img.layers]
    config = json.loads(img.config.data)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id_of(b.data) for b in img.layers]}
    assert img.manifest_digest == sha256_digest(img.manifest_bytes)


def test_layer_is_a_tar_of_random_bytes():
    img = build_random_image(layer_size=5000)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(img.layers[0].data))) as tar:
        members = tar.getmembers()
        assert len(members) == 1 and members[0].size == 5000


def test_every_build_is_new():
    a, b = build_random_image(), build_random_image()
    assert a.manifest_digest != b.manifest_digest
    assert a.layers[0].digest != b.layers[0].digest
    assert a.config.digest != b.config.digest


def test_file_image_digests_and_diff_ids_are_computed_while_writing(tmp_path):
    from utilities.images import DOCKER, DOCKER_MANIFEST, LayerVerifier, build_random_image_files
    img = build_random_image_files(tmp_path, 3_000_000, layers=2, media_types=DOCKER)
    assert img.manifest["mediaType"] == DOCKER_MANIFEST
    for layer, diff_id in zip(img.layers, img.diff_ids):
        data = layer.path.read_bytes()
        assert layer.digest == sha256_digest(data) and layer.size == len(data)
        assert diff_id_of(data) == diff_id
        v = LayerVerifier()
        for i in range(0, len(data), 77_777):      # any chunking
            v.update(data[i:i + 77_777])
        v.finish()
        assert (v.digest, v.diff_id, v.error) == (layer.digest, diff_id, None)
    truncated = LayerVerifier()
    truncated.update(img.layers[0].path.read_bytes()[:-50])
    truncated.finish()
    assert truncated.error and "end of the gzip stream" in truncated.error


def test_blob_digest_is_computed_once(tmp_path):
    from utilities.images import Blob
    p = tmp_path / "blob"
    p.write_bytes(b"first")
    blob = Blob("application/octet-stream", path=p)
    first = blob.digest
    p.write_bytes(b"changed afterwards")       # a second computation would see this
    assert blob.digest == first == sha256_digest(b"first")
    mem = Blob("application/octet-stream", b"x" * 10)
    assert mem.digest is mem.digest
