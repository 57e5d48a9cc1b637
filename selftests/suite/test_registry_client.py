"""The registry client against a real docker-registry (TLS, token auth) on 127.0.0.1."""
from __future__ import annotations

import pytest
import requests

from selftests.suite.bare_registry import start_bare_registry
from utilities.images import build_random_image
from utilities.registry_client import DigestMismatch, ManifestUnknown, RegistryClient, RegistryError


@pytest.fixture
def registry(tmp_path):
    reg = start_bare_registry(tmp_path)
    yield reg
    reg.stop()


@pytest.fixture
def client(registry):
    with RegistryClient(registry.host, ca_file=registry.ca_file, token=registry.api_token,
                        connect_to=registry.address) as c:
        yield c


def test_push_pull_round_trip_verifies_every_digest(client):
    image = build_random_image(layer_size=200_000, layers=2)
    digest = client.push_image("selftest/app", "v1", image)
    assert digest == image.manifest_digest
    pulled = client.pull_image("selftest/app", "v1", expected_digest=digest)
    client.verify_same(pulled, image)
    by_digest = client.pull_image("selftest/app", digest)
    assert by_digest.manifest_digest == digest


def test_corrupted_blob_is_detected(client, registry):
    image = build_random_image()
    client.push_image("selftest/corrupt", "v1", image)
    layer = image.layers[0]
    path = registry.blob_data_path(layer.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF          # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=rf"blob selftest/corrupt@{layer.digest}: .* bytes received hash to"):
        client.pull_image("selftest/corrupt", "v1")


def test_unknown_manifest_is_reported_as_such(client):
    with pytest.raises(ManifestUnknown, match="MANIFEST_UNKNOWN"):
        client.get_manifest("selftest/none", "missing")


def test_wrong_api_token_is_refused(registry):
    with RegistryClient(registry.host, ca_file=registry.ca_file, token="wrong",
                        connect_to=registry.address) as c:
        with pytest.raises(RegistryError, match="token request .* failed: HTTP 401"):
            c.push_blob("selftest/app", b"x", "sha256:" + "0" * 64)


def test_route_adapter_sends_sni_and_checks_the_route_host(registry):
    # Without the adapter, the certificate (issued for the route host) does not match 127.0.0.1's name
    # request path... and the route host itself does not resolve.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"https://{registry.host}/v2/", verify=registry.ca_file, timeout=3)
    # With it, TLS verifies against the route host name and /v2/ asks for a token.
    with RegistryClient(registry.host, ca_file=registry.ca_file, connect_to=registry.address) as c:
        resp = c.session.get(f"https://{registry.host}/v2/", verify=registry.ca_file, timeout=5)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
