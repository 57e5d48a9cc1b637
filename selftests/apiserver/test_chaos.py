"""Fault injection (issue 4): the official client sees 429/500/503 and 409 at about the configured rate,
watches end early, latency is added; the local cluster's own client (X-Localcluster-Component) is exempt;
the configuration endpoint is admins-only and the Settings/flags set the initial values."""
from __future__ import annotations

import json
import tempfile
import time

import pytest
import requests
from kubernetes import watch
from kubernetes.client.rest import ApiException

from localcluster.apiserver.chaos import COMPONENT_HEADER
from localcluster.client import KubeClient, path
from localcluster.settings import Settings

N = 300


class ChaosControl:
    def __init__(self, cluster):
        self.url = cluster.url + "/localcluster/chaos"
        self.tokens = cluster.tokens
        f = tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False)
        f.write(cluster.ca_pem)
        f.close()
        self.ca = f.name

    def call(self, method, body=None, user="kube:admin", headers=None):
        h = {"Authorization": f"Bearer {self.tokens[user]}", **(headers or {})}
        return requests.request(method, self.url, json=body, headers=h, verify=self.ca, timeout=10)

    def set(self, **config):
        r = self.call("PUT", config)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def chaos(cluster):
    c = ChaosControl(cluster)
    c.set()
    yield c
    c.set()


def _outcomes(fn, n=N):
    out = []
    for _ in range(n):
        try:
            fn()
            out.append(200)
        except ApiException as e:
            out.append(e.status)
    return out


def test_endpoint_is_for_admins(chaos):
    for user in ("nobody", "puller"):
        r = chaos.call("PUT", {"errorRate": 1}, user=user)
        assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    assert chaos.call("GET", user="nobody").status_code == 403
    assert chaos.call("GET", user="puller").status_code == 200       # puller may read everything
    r = chaos.call("PUT", {"errorRate": 0.5, "seed": 7})
    assert r.status_code == 200 and r.json()["spec"]["errorRate"] == 0.5
    r = chaos.call("PATCH", {"latency": 0.01})
    assert r.json()["spec"]["errorRate"] == 0.5 and r.json()["spec"]["latency"] == 0.01
    assert chaos.call("PUT", {}).json()["spec"]["errorRate"] == 0.0     # PUT replaces: back to defaults
    for bad in ({"errorRate": 1.5}, {"latency": -1}, {"errorCodes": [418]}, {"nope": 1}, {"seed": "x"}):
        r = chaos.call("PUT", bad)
        assert r.status_code == 400 and r.json()["reason"] == "BadRequest", bad
    # The answer of GET can be edited and sent back.
    doc = chaos.call("GET").json()
    doc["spec"]["conflictRate"] = 0.25
    assert chaos.call("PUT", doc).json()["spec"]["conflictRate"] == 0.25


def _raw_outcomes(chaos, n=N):
    """Statuses of `n` GETs made with plain requests (no retries at all)."""
    url = chaos.url.replace("/localcluster/chaos", "/api/v1/namespaces/default")
    h = {"Authorization": f"Bearer {chaos.tokens['kube:admin']}"}
    with requests.Session() as s:
        s.trust_env = False
        return [s.get(url, headers=h, verify=chaos.ca).status_code for _ in range(n)]


def test_error_rate_and_mix(chaos):
    chaos.set(errorRate=0.3, seed=11)
    out = _raw_outcomes(chaos)
    errors = [s for s in out if s != 200]
    assert set(errors) == {429, 500, 503}
    assert 0.2 * N <= len(errors) <= 0.4 * N, len(errors)
    # Deterministic for a seed: the same sequence again; another seed, another sequence.
    chaos.set(errorRate=0.3, seed=11)
    assert _raw_outcomes(chaos) == out
    chaos.set(errorRate=0.3, seed=12)
    assert _raw_outcomes(chaos) != out


def test_error_rate_seen_by_the_official_client(chaos, core):
    chaos.set(errorRate=0.3, errorCodes=[500, 503], seed=4)
    out = _outcomes(lambda: core.read_namespace("default"))
    errors = [s for s in out if s != 200]
    assert set(errors) == {500, 503}
    assert 0.2 * N <= len(errors) <= 0.4 * N, len(errors)


def test_official_client_retries_429_after_retry_after(chaos, core):
    """urllib3 (under the official client) honours Retry-After on 429: it retries (sleeping Retry-After
    seconds) before the ApiException reaches the caller, as against a real kube-apiserver's APF."""
    chaos.set(errorRate=1.0, errorCodes=[429], retryAfterSeconds=0)
    with pytest.raises(ApiException) as e:
        core.read_namespace("default")
    assert e.value.status == 429
    assert chaos.call("GET").json()["status"]["injected"]["errors"] == 4
    chaos.set(errorRate=0.3, errorCodes=[429], retryAfterSeconds=0, seed=2)
    out = _outcomes(lambda: core.read_namespace("default"), n=100)
    assert out.count(200) >= 95
    assert chaos.call("GET").json()["status"]["injected"]["errors"] >= 15


def test_injected_errors_look_like_kube(chaos, core):
    chaos.set(errorRate=1.0, errorCodes=[429], retryAfterSeconds=2)
    r = requests.get(chaos.url.replace("/localcluster/chaos", "/api/v1/namespaces/default/configmaps"),
                     headers={"Authorization": f"Bearer {chaos.tokens['kube:admin']}"}, verify=chaos.ca)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
                        "details": {"retryAfterSeconds": 2}, "code": 429}
    chaos.set(errorRate=1.0, errorCodes=[500])
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default")
    body = json.loads(e.value.body)
    assert e.value.status == 500 and body["reason"] == "InternalError"
    assert body["message"].startswith("Internal error occurred: ")
    chaos.set(errorRate=1.0, errorCodes=[503])
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map("default")
    assert e.value.status == 503 and json.loads(e.value.body)["reason"] == "ServiceUnavailable"
    # Authentication still comes first: a bad token is 401, not an injected error.
    r = requests.get(chaos.url.replace("/localcluster/chaos", "/api/v1/namespaces"),
                     headers={"Authorization": "Bearer wrong"}, verify=chaos.ca)
    assert r.status_code == 401
    # The counters.
    assert chaos.call("GET").json()["status"]["injected"]["errors"] == 1   # since the last PUT


def test_conflict_rate_on_updates_and_patches(chaos, core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"n": "0"}})
    chaos.set(conflictRate=0.5, seed=3)
    ok = conflicts = 0
    for i in range(1, 101):
        rv = core.read_namespaced_config_map("c", ns).metadata.resource_version
        try:
            if i % 2:
                core.patch_namespaced_config_map("c", ns, {"metadata": {"resourceVersion": rv},
                                                            "data": {"n": str(i)}})
            else:
                core.replace_namespaced_config_map("c", ns, {"metadata": {"name": "c", "resourceVersion": rv},
                                                              "data": {"n": str(i)}})
            ok += 1
            assert core.read_namespaced_config_map("c", ns).data["n"] == str(i)
        except ApiException as e:
            assert e.status == 409 and json.loads(e.body)["reason"] == "Conflict"
            assert json.loads(e.body)["message"] == (
                'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply '
                'your changes to the latest version and try again')
            assert core.read_namespaced_config_map("c", ns).data["n"] != str(i)    # nothing written
            conflicts += 1
    assert 35 <= conflicts <= 65, conflicts
    # Creates, reads and deletes are not conflicted, nor are writes without a resourceVersion (as on
    # kube-apiserver: unconditional updates, patches retried server-side); a patch of a missing
    # object stays 404.
    chaos.set(conflictRate=1.0)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "d"}})
    core.patch_namespaced_config_map("d", ns, {"data": {"a": "b"}})
    core.replace_namespaced_config_map("d", ns, {"metadata": {"name": "d"}, "data": {"a": "c"}})
    assert core.read_namespaced_config_map("d", ns).data == {"a": "c"}
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_config_map("missing", ns, {"data": {"a": "b"}})
    assert e.value.status == 404
    core.delete_namespaced_config_map("d", ns)


def test_watches_drop_early(chaos, core, ns):
    chaos.set(watchDropRate=1.0, watchDropMinSeconds=0.2, watchDropMaxSeconds=0.4)
    t0 = time.monotonic()
    list(watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=5))
    assert 0.15 <= time.monotonic() - t0 < 1.5
    chaos.set(watchDropRate=0.5, watchDropMinSeconds=0.1, watchDropMaxSeconds=0.1, seed=1)
    dropped = 0
    for _ in range(10):
        t0 = time.monotonic()
        list(watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1))
        dropped += time.monotonic() - t0 < 0.7
    assert 2 <= dropped <= 8, dropped
    # Watches are not answered with injected errors (errorRate is for non-watch requests).
    chaos.set(errorRate=1.0)
    list(watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=1))


def test_latency(chaos, core):
    chaos.set(latency=0.3)
    t0 = time.monotonic()
    core.read_namespace("default")
    assert time.monotonic() - t0 >= 0.3


def test_local_cluster_components_are_exempt(chaos, cluster, ns, core):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "x"}})
    chaos.set(errorRate=1.0, conflictRate=1.0, watchDropRate=1.0, watchDropMinSeconds=0.1,
              watchDropMaxSeconds=0.1, latency=0.5)
    # The same requests fail for the suite...
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("x", ns)
    # ...and succeed, fast, for the local cluster's own client.

    async def as_component():
        c = KubeClient(cluster.url, cluster.tokens["kube:admin"], cluster.ca_pem)
        try:
            t0 = time.monotonic()
            for i in range(20):
                await c.get(path("v1", "configmaps", ns, "x"))
                await c.patch(path("v1", "configmaps", ns, "x"), {"data": {"i": str(i)}})
            fast = time.monotonic() - t0
            t0 = time.monotonic()
            async for _ in c.watch(path("v1", "configmaps", ns), timeout_seconds=1):
                pass
            return fast, time.monotonic() - t0
        finally:
            await c.close()
    fast, watched = cluster.loop.run(as_component())
    assert fast < 0.5 * 40 / 4        # far less than the latency every request would get
    assert watched >= 0.9             # not dropped after 0.1 s
    r = requests.get(chaos.url.replace("/localcluster/chaos", f"/api/v1/namespaces/{ns}/configmaps/x"),
                     headers={"Authorization": f"Bearer {cluster.tokens['kube:admin']}",
                              COMPONENT_HEADER: "registry"}, verify=chaos.ca)
    assert r.status_code == 200 and r.json()["data"]["i"] == "19"


def test_chaos_endpoint_itself_is_never_faulted(chaos):
    chaos.set(errorRate=1.0)
    for _ in range(10):
        assert chaos.call("GET").status_code == 200
    assert chaos.call("PUT", {}).status_code == 200


def test_settings_and_flags_set_the_initial_values(loop_thread, tmp_path, monkeypatch):
    from localcluster.__main__ import _parser
    from localcluster.apiserver import APIServer, default_users
    from localcluster.pki import CertificateAuthority

    args = _parser().parse_args(["serve", "--kubeconfig", "k", "--api-error-rate", "0.25", "--api-latency",
                                 "0.5", "--api-watch-drop-rate", "0.1", "--api-conflict-rate", "0.2",
                                 "--api-chaos-seed", "9"])
    assert (args.api_error_rate, args.api_latency, args.api_watch_drop_rate, args.api_conflict_rate,
            args.api_chaos_seed) == (0.25, 0.5, 0.1, 0.2, 9)
    monkeypatch.setenv("LOCALCLUSTER_API_CONFLICT_RATE", "0.75")
    s = Settings.from_env(api_error_rate=1.0)
    assert (s.api_error_rate, s.api_conflict_rate, s.api_latency, s.api_watch_drop_rate) == (1.0, 0.75, 0.0, 0.0)

    ca = CertificateAuthority.create("chaos-settings-ca")
    cert, key = ca.issue("kube-apiserver", ip_addresses=["127.0.0.1"])
    users = default_users()
    server = APIServer(s, cert, key, users)
    loop_thread.run(server.start())
    try:
        (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
        h = {"Authorization": f"Bearer {users[0].token}"}
        spec = requests.get(server.url + "/localcluster/chaos", headers=h, verify=str(tmp_path / "ca.crt")).json()
        assert spec["spec"]["errorRate"] == 1.0 and spec["spec"]["conflictRate"] == 0.75
        r = requests.get(server.url + "/api/v1/namespaces", headers=h, verify=str(tmp_path / "ca.crt"))
        assert r.status_code in (429, 500, 503)
    finally:
        loop_thread.run(server.stop())


def test_temporary_edit_of_an_existing_object_survives_conflicts(chaos, cluster, core, ns):
    """The suite's temporary edit of an object that exists already (utilities/registry_steps.py: the S3
    secret and trusted-CA config map) re-reads on 409 for its write and for the restore, and puts back
    exactly what was there (the CI failure of stop 13's second try: one 409 on the restore)."""
    from utilities import registry_steps
    from utilities.kube import load_cluster
    core.create_namespaced_config_map(ns, {"metadata": {"name": "ca", "labels": {"mine": "yes"}},
                                           "data": {"ca-bundle.crt": "theirs"}})
    before = core.read_namespaced_config_map("ca", ns).to_dict()
    suite = load_cluster(cluster.kubeconfig)
    try:
        for seed in range(8):
            chaos.set(conflictRate=0.4, seed=seed)
            with registry_steps._temporary(suite, "configmap", ns, "ca", {"ca-bundle.crt": "ours"}, {}) as cm:
                assert cm["data"] == {"ca-bundle.crt": "ours"}
                assert core.read_namespaced_config_map("ca", ns).data == {"ca-bundle.crt": "ours"}
            after = core.read_namespaced_config_map("ca", ns).to_dict()
            assert after["data"] == before["data"] and after["metadata"]["labels"] == {"mine": "yes"}
        assert chaos.call("GET").json()["status"]["injected"]["conflicts"] > 0
        # Always conflicted: the error comes out after the bounded re-reads, nothing half-done.
        chaos.set(conflictRate=1.0)
        with pytest.raises(ApiException) as e:
            with registry_steps._temporary(suite, "configmap", ns, "ca", {"ca-bundle.crt": "ours"}, {}):
                pass
        assert e.value.status == 409
        assert core.read_namespaced_config_map("ca", ns).data == {"ca-bundle.crt": "theirs"}
    finally:
        suite.api_client.close()
