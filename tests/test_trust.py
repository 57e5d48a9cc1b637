"""Trust (issue 9): the S3 endpoint is verified with the configured `trustedCA`, by the operator and by
the registry (the procedure's config map step; operator-facts.md §4.2, §5.2, §12.3).

With an S3 backend rolled out, the trustedCA config map (`openshift-config/<spec.storage.s3.trustedCA.name>`,
key `ca-bundle.crt`) is replaced by a freshly made CA that signed nothing, then put back exactly:

- the operator: its own S3 client (HeadBucket) must now fail verification: Progressing=True
  "Unable to apply resources: unable to sync storage configuration: ... x509: ..." within OPERATOR_GRACE
  seconds after image-registry-certificates carries the new bundle (`storage-ca-bundle.pem`);
- the registry: pods started with that bundle (every registry pod deleted; the ReplicaSet starts new ones)
  must fail to use S3: a fresh image pushed through the route must fail (or no pod becomes ready, as the
  registry's storage health check fails). A push that succeeds means the registry does not verify the S3
  endpoint's certificate.

At the end the config map is put back, the operator recovers, and the registry pods are replaced again so
they trust the right CA. Skips (saying why) when the endpoint is plain HTTP, or when its certificate is
trusted anyway (the system trust store, or another bundle of image-registry-certificates such as
image.config additionalTrustedCA): then a wrong trustedCA cannot be told apart.
"""
from __future__ import annotations

import datetime
import logging
import socket
import ssl
import time

import pytest
import requests

from fixtures.registry import push_fresh_image
from fixtures.verdicts import not_applicable
from utilities import kube, waits
from utilities import registry_steps as steps
from utilities.kube import REGISTRY_NAMESPACE
from utilities.registry_client import RegistryError

pytestmark = [pytest.mark.destructive, pytest.mark.storage]

log = logging.getLogger(__name__)
CERTS_CONFIGMAP = "image-registry-certificates"
STORAGE_CA_KEY = "storage-ca-bundle.pem"
OPERATOR_GRACE = 30.0     # seconds for the operator to re-check the bucket once it has the new bundle
READY_GRACE = 120.0       # at most this (and the rollout timeout) for a replacement pod to become ready: a
                          # registry that skips verification becomes ready as fast as a healthy one would


def unrelated_ca_pem() -> str:
    """A new self-signed CA certificate that signed nothing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry-conformance unrelated CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def verifies(host: str, connect_to: str | None, cadata: str | None) -> bool:
    """Whether a TLS handshake with `host` (SNI), reached at `connect_to`, verifies against `cadata`
    (None: the system trust store)."""
    ctx = ssl.create_default_context(cadata=cadata) if cadata else ssl.create_default_context()
    addr, _, port = (connect_to or f"{host}:443").rpartition(":")
    try:
        with socket.create_connection((addr, int(port)), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname=host):
                return True
    except ssl.SSLError:
        return False


def certificates_bundle(cluster) -> dict:
    cm = kube.get_or_none(cluster.core.read_namespaced_config_map, CERTS_CONFIGMAP, REGISTRY_NAMESPACE)
    return dict((cm.data or {}) if cm is not None else {})


def wait_for_storage_ca(cluster, pem: str, timeout: float) -> None:
    """Wait until image-registry-certificates carries `pem` as storage-ca-bundle.pem."""
    state = {}

    def evaluate():
        got = state["got"] = certificates_bundle(cluster).get(STORAGE_CA_KEY)
        return got is not None and got.strip() == pem.strip()

    sources = [("certificates", cluster.core.list_namespaced_config_map,
                {"namespace": REGISTRY_NAMESPACE, "field_selector": f"metadata.name={CERTS_CONFIGMAP}"})]
    try:
        waits._wait_loop(sources, evaluate, timeout, lambda: "", "storage CA")
    except waits.WaitTimeout:
        got = state.get("got")
        raise AssertionError(
            f"configmap {REGISTRY_NAMESPACE}/{CERTS_CONFIGMAP} key {STORAGE_CA_KEY} did not take the trustedCA "
            f"bundle within {timeout:.0f}s (the operator puts it there for the registry): it holds "
            f"{'nothing' if got is None else 'another bundle'}") from None


class WrongCA:
    def __init__(self, name, pem, original, s3_host, bucket):
        self.name, self.pem, self.original, self.s3_host, self.bucket = name, pem, original, s3_host, bucket
        self.since = time.time()

    @property
    def where(self) -> str:
        return f"trustedCA config map openshift-config/{self.name} (key ca-bundle.crt)"


@pytest.fixture(scope="module")
def wrong_trusted_ca(cluster, registry_backend, backend_route, rollout_timeout, suite_labels):
    # backend_route first: with the wrong CA the operator applies no spec change (no route appears).
    backend = registry_backend.backend
    if not backend.s3:
        not_applicable(f"{backend.id} is not S3 storage (no trustedCA): the check does not apply")
    s3 = registry_backend.config["spec"]["storage"]["s3"]
    endpoint, name = s3.get("regionEndpoint") or "", (s3.get("trustedCA") or {}).get("name")
    if not name:
        not_applicable(f"{backend.id}: spec.storage.s3.trustedCA is not set: the check does not apply")
    if not endpoint.startswith("https://"):
        not_applicable(f"{backend.id}: regionEndpoint {endpoint!r} is not HTTPS: there is no certificate to verify")
    host = endpoint[len("https://"):].split("/")[0].split(":")[0]
    connect_to = cluster.ingress_for(host)
    if verifies(host, connect_to, None):
        pytest.skip(f"the certificate of {host} is trusted by the system trust store: a wrong trustedCA "
                    "cannot be told apart")
    others = "".join(v if v.endswith("\n") else v + "\n" for k, v in certificates_bundle(cluster).items()
                     if k != STORAGE_CA_KEY and "BEGIN CERTIFICATE" in v)
    if others and verifies(host, connect_to, others):
        pytest.skip(f"the certificate of {host} is trusted through another bundle of "
                    f"{REGISTRY_NAMESPACE}/{CERTS_CONFIGMAP} (image.config additionalTrustedCA?): a wrong "
                    "trustedCA cannot be told apart")
    cm = kube.call(cluster.core.read_namespaced_config_map, name, "openshift-config")
    original = (cm.data or {}).get("ca-bundle.crt") or ""
    pem = unrelated_ca_pem()
    with steps.trusted_ca(cluster, name, pem, suite_labels):
        wrong = WrongCA(name, pem, original, host, s3.get("bucket"))
        yield wrong
    # Put back: the operator recovers, the registry gets the right bundle, its pods trust it again.
    waits.wait_for_conditions(cluster, {"Progressing": ("False", None)}, rollout_timeout)
    wait_for_storage_ca(cluster, original, rollout_timeout)
    steps.restart_registry_pods(cluster, rollout_timeout)


def test_operator_verifies_the_s3_endpoint(cluster, wrong_trusted_ca, rollout_timeout):
    """With an unrelated CA as trustedCA, the operator's S3 client fails verification (x509)."""
    wrong = wrong_trusted_ca
    wait_for_storage_ca(cluster, wrong.pem, min(rollout_timeout, 120))
    state = {}

    def refused(obj):
        state["obj"] = obj
        prog = waits.conditions(obj).get("Progressing") or {}
        return prog.get("status") == "True" and "x509" in (prog.get("message") or "")

    try:
        waits.wait_for_config(cluster, refused, OPERATOR_GRACE, "the operator to refuse the S3 endpoint")
    except waits.WaitTimeout:
        pytest.fail(f"the operator did not report an x509 error within {OPERATOR_GRACE:.0f}s although the "
                    f"{wrong.where} holds only an unrelated CA: it does not verify https://{wrong.s3_host} with "
                    f"the trustedCA; Config conditions: {waits.storage_conditions_text(state.get('obj'))}")


def test_registry_verifies_the_s3_endpoint(cluster, wrong_trusted_ca, backend_route, test_namespace,
                                           rollout_timeout):
    """Registry pods started with an unrelated CA as trustedCA cannot use S3: a push fails."""
    wrong = wrong_trusted_ca
    wait_for_storage_ca(cluster, wrong.pem, min(rollout_timeout, 120))
    old = steps.registry_pod_uids(cluster)
    for pod in kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE,
                         label_selector=kube.REGISTRY_POD_SELECTOR).items:
        if pod.metadata.uid in old:
            try:
                kube.call(cluster.core.delete_namespaced_pod, pod.metadata.name, REGISTRY_NAMESPACE)
            except kube.ApiException as e:
                if e.status != 404:
                    raise
    waits.wait_until_gone(lambda: steps.registry_pod_uids(cluster, include_terminating=True) & old or None,
                          "the deleted registry pods to terminate", rollout_timeout)
    grace = min(READY_GRACE, rollout_timeout)
    sources = [("pods", cluster.core.list_namespaced_pod,
                {"namespace": REGISTRY_NAMESPACE, "label_selector": kube.REGISTRY_POD_SELECTOR})]
    try:
        waits._wait_loop(sources, lambda: steps.ready_registry_pods(cluster), grace, lambda: "",
                         "a replacement registry pod to become ready")
    except waits.WaitTimeout:
        pass
    ready = steps.ready_registry_pods(cluster)
    if not ready:
        log.info("no replacement registry pod became ready within %.0fs: the registry refuses storage it "
                 "cannot verify", grace)
        return
    try:
        pushed = push_fresh_image(cluster, backend_route, test_namespace, name="trust")
    except (RegistryError, requests.RequestException) as e:
        log.info("the push failed, as it must: %s", e)
        return
    pytest.fail(f"the registry stored {pushed.repository}:{pushed.tag} in bucket {wrong.bucket} at "
                f"https://{wrong.s3_host} although the {wrong.where} holds only an unrelated CA (pods "
                f"{[p.metadata.name for p in ready]} started with it): the registry does not verify the S3 "
                f"endpoint's certificate")
