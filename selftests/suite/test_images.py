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
