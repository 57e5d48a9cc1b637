"""The registry pod on its own: real docker-registry + the OpenShift front, against a real APIServer."""
from __future__ import annotations

import base64
import json
import os
import re
import time

import pytest
import requests

from localcluster.pki import CertificateAuthority
from localcluster.registrypod import RegistryContainer, TokenSigner, libtrust_kid

from selftests.kubelet.kubelet_support import registry_pids_under
from selftests.kubelet.kubelet_oci import Registry, RegistryError

POD_IP = "127.1.250.7"


class Pod:
    def __init__(self, rc, ca_path, root, faults):
        self.rc, self.ca_path, self.root, self.faults = rc, ca_path, root, faults
        self.base = f"https://{POD_IP}:5000"

    def client(self, token):
        return Registry(self.base, token, verify=self.ca_path)


@pytest.fixture(scope="module")
def pod(api, loop_thread, tmp_path_factory):
    d = tmp_path_factory.mktemp("regpod")
    sca = CertificateAuthority.create("selftest-service-ca")
    crt, key = sca.issue("image-registry.openshift-image-registry.svc",
                         dns_names=["image-registry.openshift-image-registry.svc"], ip_addresses=[POD_IP])
    (d / "tls.crt").write_bytes(crt)
    (d / "tls.key").write_bytes(key)
    (d / "ca.crt").write_bytes(sca.cert_pem)
    faults: dict = {}
    env = {
        "REGISTRY_HTTP_ADDR": ":5000",
        "REGISTRY_HTTP_TLS_CERTIFICATE": str(d / "tls.crt"), "REGISTRY_HTTP_TLS_KEY": str(d / "tls.key"),
        "REGISTRY_STORAGE": "filesystem", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(d / "data"),
        "REGISTRY_OPENSHIFT_SERVER_ADDR": "image-registry.openshift-image-registry.svc:5000",
        "REGISTRY_OPENSHIFT_QUOTA_ENABLED": "true", "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
        "REGISTRY_HEALTH_STORAGEDRIVER_ENABLED": "true",
    }
    rc = RegistryContainer(pod_ip=POD_IP, env=env, workdir=d / "container", signer=TokenSigner.create(),
                           api_server=api.url, api_ca_pem=api.ca_pem, faults=lambda: faults)
    loop_thread.run(rc.start())
    p = Pod(rc, str(d / "ca.crt"), d / "data", faults)
    for _ in range(200):
        try:
            if requests.get(p.base + "/healthz", verify=p.ca_path, timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.02)
    yield p
    loop_thread.run(rc.stop())
    assert registry_pids_under(d) == []


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_push_pull_with_admin_token(pod, api):
    reg = pod.client(api.tokens["kube:admin"])
    digest = reg.push_image("team-a/app", "v1", layer=os.urandom(3000))
    image = reg.pull_image("team-a/app", digest)
    assert image["manifest"]["schemaVersion"] == 2
    assert (pod.root / "docker/registry/v2/repositories/team-a/app").is_dir()


def test_large_blob_streams_through_front(pod, api):
    reg = pod.client(api.tokens["kube:admin"])
    blob = os.urandom(6 * 1024 * 1024)
    digest = reg.push_blob("team-a/big", blob)
    r = reg.request("GET", f"/v2/team-a/big/blobs/{digest}", "repository:team-a/big:pull")
    assert r.status_code == 200 and r.content == blob


def test_token_endpoint_answers_the_api_token_itself(pod, api):
    """As OpenShift's registry (token.go): the Basic password, once users/~ accepts it, IS the token."""
    for user in ("kube:admin", "puller", "nobody"):
        r = requests.get(pod.base + "/openshift/token", verify=pod.ca_path,
                         params={"service": "x", "scope": "repository:team-a/app:pull,push"},
                         auth=("any", api.tokens[user]))
        assert r.status_code == 200, r.text
        assert r.json() == {"token": api.tokens[user], "access_token": api.tokens[user]}
    r = requests.get(pod.base + "/openshift/token", verify=pod.ca_path,
                     headers={"Authorization": f"Bearer {api.tokens['kube:admin']}"})
    assert r.status_code == 401, "only Basic credentials are exchanged"


def test_puller_pulls_but_cannot_push(pod, api):
    pod.client(api.tokens["kube:admin"]).push_image("team-a/pulled", "v1")
    puller = pod.client(api.tokens["puller"])
    puller.pull_image("team-a/pulled", "v1")
    with pytest.raises(RegistryError) as e:
        puller.push_image("team-a/pulled", "v2")
    assert e.value.status == 401
    # OpenShift's access denied: a Basic challenge (auth.go wrapErr), not distribution's insufficient_scope.
    assert e.value.headers["WWW-Authenticate"] == 'Basic realm=openshift,error="access denied"'
    assert json.loads(e.value.text)["errors"][0]["code"] == "UNAUTHORIZED"


def test_faults_open_one_door_each(pod, api):
    admin = pod.client(api.tokens["kube:admin"])
    admin.push_image("team-a/doors", "v1")
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    def manifest(token):
        headers = {**accept, **({"Authorization": f"Bearer {token}"} if token else {})}
        return requests.get(pod.base + "/v2/team-a/doors/manifests/v1", verify=pod.ca_path, headers=headers)
    assert manifest("anonymous").status_code == 401
    assert manifest(api.tokens["nobody"]).status_code == 401
    try:
        pod.faults["registry.anonymousPull"] = "true"
        assert manifest("anonymous").status_code == 200
        assert manifest(api.tokens["nobody"]).status_code == 401
        pod.faults.clear()
        pod.faults["registry.pullWithoutRole"] = "true"
        assert manifest(api.tokens["nobody"]).status_code == 200
        assert manifest("anonymous").status_code == 401
        pod.faults.clear()
        pod.faults["registry.pushWithPullRole"] = "true"
        pod.client(api.tokens["puller"]).push_image("team-a/doors", "v2")
        with pytest.raises(RegistryError):
            pod.client(api.tokens["nobody"]).push_image("team-a/doors", "v3")
        pod.faults.clear()
        pod.faults["registry.anonymousPush"] = "true"
        pod.client(None).push_image("team-a/doors", "v4")
        assert manifest("anonymous").status_code == 401, "anonymousPush opens pushes only"
    finally:
        pod.faults.clear()


def test_bad_token_is_401_and_anonymous_gets_nothing(pod):
    r = requests.get(pod.base + "/openshift/token", verify=pod.ca_path, auth=("u", "sha256~not-a-token"),
                     params={"scope": "repository:team-a/app:pull"})
    assert r.status_code == 401
    r = requests.get(pod.base + "/openshift/token", verify=pod.ca_path)
    assert r.json() == {"token": "anonymous", "access_token": "anonymous"}
    with pytest.raises(RegistryError) as e:
        pod.client(None).pull_image("team-a/app", "v1")
    assert e.value.status == 401


def test_challenge_realm_names_the_request_host(pod):
    r = requests.get(pod.base + "/v2/", verify=pod.ca_path)
    assert r.status_code == 401
    realm = re.search(r'realm="([^"]+)"', r.headers["WWW-Authenticate"]).group(1)
    assert realm == f"https://{POD_IP}:5000/openshift/token"
    r = requests.get(pod.base + "/v2/", verify=False, headers={"Host": "reg.example.test"})
    assert 'realm="https://reg.example.test/openshift/token"' in r.headers["WWW-Authenticate"]


def test_api_token_accepted_directly_as_bearer(pod, api):
    digest = pod.client(api.tokens["kube:admin"]).push_image("team-a/direct", "v1")
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    r = requests.get(pod.base + "/v2/team-a/direct/manifests/v1", verify=pod.ca_path,
                     headers={**accept, "Authorization": f"Bearer {api.tokens['puller']}"})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    r = requests.get(pod.base + "/v2/team-a/direct/manifests/v1", verify=pod.ca_path,
                     headers={**accept, "Authorization": f"Bearer {api.tokens['nobody']}"})
    assert r.status_code == 401


def test_process_env_is_what_upstream_accepts(pod):
    environ = open(f"/proc/{pod.rc.proc.pid}/environ", "rb").read().split(b"\0")
    names = {e.split(b"=", 1)[0].decode() for e in environ if e}
    assert "AWS_CA_BUNDLE" not in names
    assert not [n for n in names if n.startswith("REGISTRY_OPENSHIFT_") or n.startswith("REGISTRY_HTTP_TLS")]
    assert "REGISTRY_STORAGE_DELETE_ENABLED" in names
    # Redirects stay as the pod's env says (facts §12.3: only spec.disableRedirect disables them).
    assert "REGISTRY_STORAGE_REDIRECT_DISABLE" not in names


def test_fault_corrupt_blobs(pod, api):
    reg = pod.client(api.tokens["kube:admin"])
    reg.push_image("team-a/corrupt", "v1")
    pod.faults["registry.corruptBlobs"] = "true"
    try:
        with pytest.raises(RegistryError, match="digest mismatch"):
            reg.pull_image("team-a/corrupt", "v1")
    finally:
        pod.faults.clear()
    reg.pull_image("team-a/corrupt", "v1")


def test_fault_drop_images(pod, api):
    reg = pod.client(api.tokens["kube:admin"])
    pod.faults["registry.dropImages"] = "true"
    try:
        reg.push_image("team-a/dropped", "v1")
    finally:
        pod.faults.clear()
    with pytest.raises(RegistryError) as e:
        reg.pull_image("team-a/dropped", "v1")
    assert e.value.status == 404
    reg.push_image("team-a/kept", "v1")
    reg.pull_image("team-a/kept", "v1")


def test_healthz_follows_the_process(pod, loop_thread):
    assert requests.get(pod.base + "/healthz", verify=pod.ca_path).status_code == 200
    os.kill(pod.rc.proc.pid, 9)
    time.sleep(0.2)
    assert requests.get(pod.base + "/healthz", verify=pod.ca_path).status_code == 503
    loop_thread.run(pod.rc.restart_process())
    for _ in range(100):
        if requests.get(pod.base + "/healthz", verify=pod.ca_path).status_code == 200:
            break
        time.sleep(0.02)
    else:
        pytest.fail("registry did not come back")


def test_libtrust_kid_format():
    kid = libtrust_kid(TokenSigner.create().key.public_key())
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", kid)
