"""Redaction catches pieces of credentials, and objects holding credentials never show them (issue 17,
item 1; the end-to-end proof on a served cluster is test_credential_fragments.py)."""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import secrets

import pytest
from _pytest._io.saferepr import saferepr
from allure_commons import model2

from utilities import redact
from utilities.allure_redaction import redact_item
from utilities.kube import Cluster
from utilities.registry_access import ServiceAccountIdentity
from utilities.registry_client import RegistryClient
from utilities.registry_steps import BucketClaim
from utilities.snapshot import Journal, read_journal

TOKEN = "sha256~" + "Kq7Rw98DJzWxifCZ7EZUGzirgSIj48uWogOCW2zgQr4"


@pytest.fixture(autouse=True)
def registry():
    redact.clear()
    yield
    redact.clear()


def fragments_in(text: str, secret: str, n: int = redact.FRAGMENT) -> list[str]:
    return [secret[i:i + n] for i in range(len(secret) - n + 1) if secret[i:i + n] in text]


@dataclasses.dataclass
class Holder:
    """An object of someone else's that shows its token in its repr, as Cluster did."""
    api_client: object
    token: str
    server: str = "https://api.example.test:6443"


def test_a_shortened_repr_of_a_token_is_redacted():
    redact.register(TOKEN)
    shown = "cluster = " + saferepr(Holder(object(), TOKEN, "https://x" * 40), maxsize=160)
    assert "..." in shown and fragments_in(shown, TOKEN), shown        # pytest's shortened repr
    assert TOKEN not in shown                    # whole-value redaction alone would not see it
    out = redact.redact(shown)
    assert not fragments_in(out, TOKEN) and "***" in out, out
    assert redact.contains_secret(shown) and not redact.contains_secret(out)
    # bytes alike, 7 characters are left alone (too short to tell apart from ordinary text)
    assert redact.redact(b"x " + TOKEN[9:17].encode() + b" y") == b"x *** y"
    assert redact.redact("tail " + TOKEN[:7] + " end") == "tail " + TOKEN[:7] + " end"


def test_fragments_of_base64_forms_and_of_private_keys():
    key = "S3" + secrets.token_urlsafe(30)
    redact.register(key)
    b64 = base64.b64encode(key.encode()).decode()
    assert not fragments_in(redact.redact(f"data: {b64[5:30]}..."), b64)
    pem = "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(secrets.token_bytes(48)).decode() + \
        "\n-----END PRIVATE KEY-----\n"
    redact.register(pem)
    body = pem.splitlines()[1]
    assert not fragments_in(redact.redact(f"key='{body[10:40]}'"), body)
    # the armour is no secret: other PEM text stays readable
    assert redact.redact("-----BEGIN CERTIFICATE-----") == "-----BEGIN CERTIFICATE-----"


def test_secret_objects_register_credentials_not_plain_words():
    password = "pw-" + secrets.token_hex(12)
    docker = json.dumps({"auths": {"image-registry.openshift-image-registry.svc:5000": {
        "auth": base64.b64encode(f"serviceaccount:{password}".encode()).decode(), "email": "x@example.test"}}})
    redact.register_secret_object({"kind": "Secret", "data": {
        ".dockercfg": base64.b64encode(docker.encode()).decode(),
        "namespace": base64.b64encode(b"openshift-image-registry").decode()}})
    text = f"registry openshift-image-registry.svc:5000 login with {password[:12]}... done"
    out = redact.redact(text)
    assert not fragments_in(out, password), out
    assert "registry openshift-image-registry.svc:5000 login with" in out, out


def test_the_terminal_stream_redacts_a_credential_written_in_pieces():
    redact.register(TOKEN)
    inner = io.StringIO()
    stream = redact.RedactingStream(inner)
    for piece in ("token='", TOKEN[:5], TOKEN[5:11], TOKEN[11:30], "...'\n", "progress ", TOKEN[3:12]):
        stream.write(piece)
    stream.flush()
    assert not fragments_in(inner.getvalue(), TOKEN), inner.getvalue()
    assert inner.getvalue().startswith("token='***...'\nprogress ***")


def test_objects_holding_credentials_do_not_show_them(tmp_path):
    cluster = Cluster(api_client=None, token=TOKEN, server="https://api.example.test:6443", ca_file="",
                      kubeconfig="/kube/config", context=None)
    assert not fragments_in(repr(cluster), TOKEN) and "kubeconfig='/kube/config'" in repr(cluster)
    claim = BucketClaim("c", "openshift-storage", "bucket-1", "AKIA" + "X" * 16, "S" * 40, {})
    assert "AKIA" not in repr(claim) and "SSSSSSSS" not in repr(claim) and "bucket-1" in repr(claim)
    who = ServiceAccountIdentity(cluster, "ns", "pusher")
    who._token = TOKEN
    assert repr(who) == "ServiceAccountIdentity('system:serviceaccount:ns:pusher')"
    client = RegistryClient("registry.example.test", ca_file="", token=TOKEN)
    try:
        assert TOKEN[:12] not in repr(client) and "registry.example.test" in repr(client)
    finally:
        client.close()


def test_allure_results_and_the_journal_are_redacted_as_written(tmp_path):
    redact.register(TOKEN)
    result = model2.TestResult(name="t", statusDetails=model2.StatusDetails(
        message=f"AssertionError: {TOKEN[:20]}", trace=f"token='{TOKEN[:39]}...'"),
        steps=[model2.TestStepResult(name=f"push with {TOKEN[5:25]}")])
    redact_item(result)
    shown = [result.statusDetails.message, result.statusDetails.trace, result.steps[0].name]
    assert not any(fragments_in(s, TOKEN) for s in shown), shown
    journal = Journal(tmp_path)
    spec = {"managementState": "Managed", "httpSecret": "kept-exact-" + TOKEN}
    journal.append({"event": "config-seen", "spec": spec, "note": f"by {TOKEN[:30]}"})
    (entry,) = read_journal(tmp_path)
    assert entry["spec"] == spec, "the spec the restore compares must stay exact"
    assert not fragments_in(entry["note"], TOKEN), entry


def test_a_report_keeps_no_credential_in_its_texts_or_properties():
    from _pytest.reports import TestReport

    from fixtures.safety import redact_report
    redact.register(TOKEN)
    report = TestReport("t.py::t", ("t.py", 1, "t"), {}, "failed", f"E   token='{TOKEN[:39]}...'", "call",
                        sections=[("Captured stdout call", f"Bearer {TOKEN[4:20]}")],
                        user_properties=[("identity", f"token {TOKEN[7:30]}"), ("count", 3)])
    redact_report(report)
    texts = [str(report.longrepr), report.sections[0][1], report.user_properties[0][1]]
    assert not any(fragments_in(t, TOKEN) for t in texts), texts
    assert report.user_properties[1] == ("count", 3)
