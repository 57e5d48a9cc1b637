"""Real OCI clients through the local cluster's route, as users push and pull: skopeo (Debian package)
and oras-py (PyPI `oras`), and the suite's own client, against the real registry behind the router,
with the registry's auth (token realm /openshift/token, the admin's API token as the password).

Docker v2 schema 2 and OCI manifests, chunked and monolithic uploads, cross-repository mounts, HEAD and
range requests; every digest is checked on the way back, across clients (what one pushed, another pulls).
skopeo has no connect-to option: it reaches the route host through the cluster network proxy
(HTTPS_PROXY, a CONNECT tunnel to the router), as a pod resolving `*.apps` would.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from selftests.routed_registry import RoutedRegistry
from utilities.images import DOCKER, DOCKER_MANIFEST, OCI_MANIFEST, build_random_image, build_random_image_files, \
    sha256_digest
from utilities.registry_client import RouteAdapter

SKOPEO = shutil.which("skopeo")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (make setup installs it: "
                                                         "apt-get install skopeo)")


@pytest.fixture(scope="module")
def rr(tmp_path_factory):
    with RoutedRegistry(tmp_path_factory.mktemp("routed")) as r:
        yield r


def sha_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def write_oci_layout(image, d: Path, tag: str) -> None:
    (d / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for b in image.blobs:
        (d / "blobs" / "sha256" / b.digest[7:]).write_bytes(b.data)
    (d / "blobs" / "sha256" / image.manifest_digest[7:]).write_bytes(image.manifest_bytes)
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": image.manifest["mediaType"], "digest": image.manifest_digest,
        "size": len(image.manifest_bytes), "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


def skopeo(rr, *args, creds: bool = True, check: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(rr.workdir),
           "HTTPS_PROXY": rr.proxy_url, "NO_PROXY": ""}
    cmd = [SKOPEO, "--registries-conf", "/dev/null", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


def src(rr):
    return ["--src-creds", f"unused:{rr.token}", "--src-cert-dir", str(rr.cert_dir)]


def dest(rr):
    return ["--dest-creds", f"unused:{rr.token}", "--dest-cert-dir", str(rr.cert_dir)]


def check_dir_copy(d: Path, manifest_digest: str) -> dict:
    """A `skopeo copy ... dir:` result: the manifest verbatim (its digest) and every blob's bytes."""
    manifest_bytes = (d / "manifest.json").read_bytes()
    assert sha256_digest(manifest_bytes) == manifest_digest
    manifest = json.loads(manifest_bytes)
    for desc in [manifest["config"], *manifest["layers"]]:
        blob = d / desc["digest"][7:]
        assert sha_file(blob) == desc["digest"] and blob.stat().st_size == desc["size"]
    return manifest


# --------------------------------------------------------------------------- skopeo
@needs_skopeo
def test_skopeo_pushes_oci_and_the_suite_pulls_it(rr, tmp_path):
    image = build_random_image(layer_size=400_000, layers=2)
    write_oci_layout(image, tmp_path / "oci", "v1")
    digestfile = tmp_path / "digest"
    skopeo(rr, "copy", "--quiet", "--preserve-digests", "--digestfile", str(digestfile), *dest(rr),
           f"oci:{tmp_path / 'oci'}:v1", f"docker://{rr.host}/skopeo/oci:v1")
    assert digestfile.read_text().strip() == image.manifest_digest
    with rr.client() as c:
        pulled = c.pull_image("skopeo/oci", "v1", expected_digest=image.manifest_digest)
        c.verify_same(pulled, image)


@needs_skopeo
def test_skopeo_pushes_docker_v2s2_and_pulls_it_back(rr, tmp_path):
    image = build_random_image(layer_size=300_000, layers=1)
    write_oci_layout(image, tmp_path / "oci", "v1")
    digestfile = tmp_path / "digest"
    skopeo(rr, "copy", "--quiet", "--format", "v2s2", "--digestfile", str(digestfile), *dest(rr),
           f"oci:{tmp_path / 'oci'}:v1", f"docker://{rr.host}/skopeo/docker:v1")
    digest = digestfile.read_text().strip()
    raw = skopeo(rr, "inspect", "--raw", "--creds", f"unused:{rr.token}", "--cert-dir", str(rr.cert_dir),
                 f"docker://{rr.host}/skopeo/docker:v1").stdout.encode()
    assert sha256_digest(raw) == digest and json.loads(raw)["mediaType"] == DOCKER_MANIFEST
    skopeo(rr, "copy", "--quiet", *src(rr), f"docker://{rr.host}/skopeo/docker@{digest}", f"dir:{tmp_path / 'out'}")
    manifest = check_dir_copy(tmp_path / "out", digest)
    assert [layer["digest"] for layer in manifest["layers"]] == [image.layers[0].digest]
    with rr.client() as c:      # and the suite's client verifies the diff_ids of what skopeo wrote
        assert c.pull_image("skopeo/docker", "v1", expected_digest=digest).manifest["mediaType"] == DOCKER_MANIFEST


@needs_skopeo
def test_skopeo_pulls_what_the_suite_pushed_oci_and_docker(rr, tmp_path):
    with rr.client() as c:
        for repo, types in (("suite/oci", None), ("suite/docker", DOCKER)):
            image = build_random_image(layer_size=200_000, layers=2, **({"media_types": types} if types else {}))
            digest = c.push_image(repo, "v1", image)
            out = tmp_path / repo.replace("/", "-")
            # skopeo sends several Accept lines: the OCI one must reach the registry
            skopeo(rr, "copy", "--quiet", *src(rr), f"docker://{rr.host}/{repo}:v1", f"dir:{out}")
            manifest = check_dir_copy(out, digest)
            assert manifest["mediaType"] == (DOCKER_MANIFEST if types else OCI_MANIFEST)


@needs_skopeo
def test_skopeo_without_credentials_is_refused(rr, tmp_path):
    r = skopeo(rr, "copy", "--quiet", "--src-cert-dir", str(rr.cert_dir), "--src-no-creds",
               f"docker://{rr.host}/suite/oci:v1", f"dir:{tmp_path / 'x'}", check=False)
    assert r.returncode != 0 and ("unauthorized" in r.stderr.lower() or "authentication required" in r.stderr)


@needs_skopeo
def test_skopeo_copies_between_repositories_by_mounting(rr, tmp_path):
    """skopeo mounts blobs it knows in another repository of the registry (its blob-info cache learns
    the locations on the first copy): the second copy is a cross-repository mount, POST ?mount=&from=."""
    image = build_random_image(layer_size=200_000)
    with rr.client() as c:
        digest = c.push_image("mount/from", "v1", image)
    skopeo(rr, "copy", "--quiet", *src(rr), *dest(rr), f"docker://{rr.host}/mount/from:v1",
           f"docker://{rr.host}/mount/to:v1")
    r = skopeo(rr, "--debug", "copy", *src(rr), *dest(rr), f"docker://{rr.host}/mount/from:v1",
               f"docker://{rr.host}/mount/again:v1")
    mounts = [line for line in r.stderr.splitlines() if "POST" in line and "mount=" in line]
    assert mounts and "mount OK" in r.stderr, "skopeo did not mount the layer it knows"   # (configs are copied)
    with rr.client() as c:
        for repo in ("mount/to", "mount/again"):
            c.verify_same(c.pull_image(repo, "v1", expected_digest=digest), image)


# --------------------------------------------------------------------------- oras-py
def oras_registry(rr):
    import oras.provider
    reg = oras.provider.Registry(hostname=rr.host, tls_verify=str(rr.ca_file))
    reg.session.trust_env = False
    reg.session.mount(f"https://{rr.host}", RouteAdapter(rr.host, rr.ingress_address))
    reg.auth.set_basic_auth("unused", rr.token)
    return reg


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_oras_pushes_and_pulls_an_oci_artifact(rr, tmp_path, monkeypatch, chunked):
    payload = os.urandom(2_500_000)
    work = tmp_path / "in"
    work.mkdir()
    (work / "payload.bin").write_bytes(payload)
    monkeypatch.chdir(work)
    reg = oras_registry(rr)
    target = f"{rr.host}/oras/artifact:{'chunked' if chunked else 'mono'}"
    resp = reg.push(target=target, files=["payload.bin"], do_chunked=chunked, chunk_size=1_000_000, quiet=True)
    assert resp.status_code == 201, resp.text
    digest = resp.headers["Docker-Content-Digest"]
    files = reg.pull(target=target, outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() == payload for f in files] == [True]
    with rr.client() as c:       # the manifest oras wrote, by digest, through the suite's client
        body, got = c.get_manifest(target.split("/", 1)[1].split(":")[0], digest)
        layer = json.loads(body)["layers"][0]
        assert layer["digest"] == sha256_digest(payload) and layer["size"] == len(payload)


def test_oras_pushes_docker_v2s2_and_pulls_what_the_suite_pushed(rr, tmp_path):
    import oras.container
    reg = oras_registry(rr)
    image = build_random_image(layer_size=300_000, media_types=DOCKER)
    container = oras.container.Container(f"{rr.host}/oras/docker:v1")
    for b in image.blobs:
        p = tmp_path / b.digest[7:]
        p.write_bytes(b.data)
        r = reg.upload_blob(str(p), container, b.descriptor())
        assert r.status_code in (200, 201), r.text
    r = reg.do_request(f"https://{container.manifest_url()}", "PUT", data=image.manifest_bytes,
                       headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == image.manifest_digest, r.text
    with rr.client() as c:
        c.verify_same(c.pull_image("oras/docker", "v1", expected_digest=image.manifest_digest), image)
        other = build_random_image(layer_size=100_000)
        c.push_image("oras/fromsuite", "v1", other)
    manifest = oras_registry(rr).get_manifest(f"{rr.host}/oras/fromsuite:v1")
    assert manifest["layers"][0]["digest"] == other.layers[0].digest
    out = tmp_path / "layer"
    oras_registry(rr).download_blob(oras.container.Container(f"{rr.host}/oras/fromsuite:v1"),
                                    other.layers[0].digest, str(out))
    assert out.read_bytes() == other.layers[0].data


# --------------------------------------------------------------------------- the suite's client
def test_suite_client_chunked_iterator_mount_head_and_range(rr):
    data = os.urandom(3_000_000)
    with rr.client() as c:
        digest = c.push_blob("suite/blobs", (data[i:i + 700_000] for i in range(0, len(data), 700_000)))
        assert digest == sha256_digest(data)
        assert c.blob_size("suite/blobs", digest) == len(data)
        assert c.blob_size("suite/blobs", "sha256:" + "0" * 64) is None
        assert c.get_blob_range("suite/blobs", digest, 1000, 1999) == data[1000:2000]
        assert c.mount_blob("suite/mounted", digest, "suite/blobs") is True
        assert c.get_blob("suite/mounted", digest, len(data)) == data


def test_suite_client_streams_in_constant_memory(rr, tmp_path):
    """A 48 MiB layer pushed from a file and pulled to a file: the client's Python allocations peak at
    a few chunks (1 MiB each), not at a copy of the blob (tracemalloc: a ratio, not a timing)."""
    size = 48 << 20
    image = build_random_image_files(tmp_path / "img", size, layers=1)
    with rr.client() as c:
        c.ping("suite/big")
        tracemalloc.start()
        try:
            digest = c.push_image("suite/big", "v1", image)
            _, push_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            pulled = c.pull_image("suite/big", "v1", expected_digest=digest, dest_dir=tmp_path / "out")
            _, pull_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        c.verify_same(pulled, image)
    assert push_peak < size / 6, f"push peaked at {push_peak / 2**20:.1f} MiB of Python memory for a 48 MiB blob"
    assert pull_peak < size / 6, f"pull peaked at {pull_peak / 2**20:.1f} MiB of Python memory for a 48 MiB blob"
