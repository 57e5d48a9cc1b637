"""localcluster.client: path, KubeClient (CA pinned), watch, Informer (list+watch, re-watch, 410, resync)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from localcluster.client import ApiError, Informer, KubeClient, path
from localcluster.pki import CertificateAuthority


def test_path():
    assert path("v1", "pods", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert path("apps/v1", "deployments") == "/apis/apps/v1/deployments"
    assert path("v1", "namespaces", name="x") == "/api/v1/namespaces/x"
    assert path("apps/v1", "deployments", "ns", "d", "status") == "/apis/apps/v1/namespaces/ns/deployments/d/status"
    assert path("imageregistry.operator.openshift.io/v1", "configs", name="cluster") == \
        "/apis/imageregistry.operator.openshift.io/v1/configs/cluster"


@pytest.fixture
def run(cluster):
    return cluster.loop.run


@pytest.fixture
def kc(cluster, run):
    c = KubeClient(cluster.url, cluster.tokens["kube:admin"], cluster.ca_pem)
    yield c
    run(c.close())


def test_crud_and_errors(kc, run, ns):
    async def go():
        cms = path("v1", "configmaps", ns)
        created = await kc.create(cms, {"metadata": {"name": "a", "labels": {"k": "v"}}, "data": {"x": "1"}})
        assert created["metadata"]["uid"] and created["kind"] == "ConfigMap"
        with pytest.raises(ApiError) as e:
            await kc.create(cms, {"metadata": {"name": "a"}})
        assert (e.value.status, e.value.reason) == (409, "AlreadyExists")
        assert e.value.message == 'configmaps "a" already exists' and e.value.body["code"] == 409
        one = path("v1", "configmaps", ns, "a")
        assert (await kc.get(one))["data"] == {"x": "1"}
        assert [i["metadata"]["name"] for i in (await kc.list(cms, label_selector="k=v"))["items"]] == ["a"]
        assert (await kc.list(cms, field_selector="metadata.name=zz"))["items"] == []
        got = await kc.get(one)
        got["data"] = {"x": "2"}
        assert (await kc.replace(one, got))["data"] == {"x": "2"}
        with pytest.raises(ApiError) as e:
            await kc.replace(one, got)      # stale resourceVersion
        assert e.value.status == 409 and e.value.reason == "Conflict"
        assert (await kc.patch(one, {"data": {"y": "3"}}))["data"] == {"x": "2", "y": "3"}
        assert (await kc.patch(one, [{"op": "remove", "path": "/data/x"}], "json"))["data"] == {"y": "3"}
        pods = path("v1", "pods", ns)
        await kc.create(pods, {"metadata": {"name": "p"}, "spec": {"nodeName": "worker-0", "containers": [
            {"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}})
        p = await kc.patch(path("v1", "pods", ns, "p"), {"spec": {"containers": [{"name": "b", "image": "j"}]}},
                           "strategic")
        assert [(c["name"], c["image"]) for c in p["spec"]["containers"]] == [("a", "i"), ("b", "j")]
        gone = await kc.delete(one)
        assert gone["metadata"]["name"] == "a"
        with pytest.raises(ApiError) as e:
            await kc.get(one)
        assert e.value.status == 404 and e.value.reason == "NotFound"
        marked = await kc.delete(path("v1", "pods", ns, "p"), grace_period_seconds=5)
        assert marked["metadata"]["deletionGracePeriodSeconds"] == 5
        await kc.delete(path("v1", "pods", ns, "p"), grace_period_seconds=0)
        with pytest.raises(ApiError):
            await kc.get(path("v1", "pods", ns, "p"))
    run(go())


def test_ca_is_pinned(cluster, run):
    other = CertificateAuthority.create("other-ca")

    async def go():
        c = KubeClient(cluster.url, cluster.tokens["kube:admin"], other.cert_pem)
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await c.get("/version")
        finally:
            await c.close()
        bad = KubeClient(cluster.url, "bad-token", cluster.ca_pem)
        try:
            with pytest.raises(ApiError) as e:
                await bad.get("/api/v1/namespaces")
            assert e.value.status == 401
        finally:
            await bad.close()
    run(go())


def test_watch_iterates_and_ends_on_timeout(kc, run, ns):
    async def go():
        cms = path("v1", "configmaps", ns)
        first = await kc.create(cms, {"metadata": {"name": "w0"}})
        await kc.create(cms, {"metadata": {"name": "w1"}})
        await kc.patch(path("v1", "configmaps", ns, "w0"), {"data": {"a": "b"}})
        seen = []
        async for etype, obj in kc.watch(cms, resource_version=first["metadata"]["resourceVersion"],
                                         timeout_seconds=1):
            if etype == "BOOKMARK":      # kube's bookmarks carry only a resourceVersion
                assert int(obj["metadata"]["resourceVersion"]) >= int(first["metadata"]["resourceVersion"])
                continue
            seen.append((etype, obj["metadata"]["name"]))
        assert seen == [("ADDED", "w1"), ("MODIFIED", "w0")]
    run(go(), timeout=10)


def test_informer_follows_and_survives_watch_timeouts(kc, run, cluster, ns):
    events = []

    async def on_change(etype, obj):
        events.append((etype, obj["metadata"]["name"]))

    async def go():
        cms = path("v1", "configmaps", ns)
        await kc.create(cms, {"metadata": {"name": "pre"}})
        inf = Informer(kc, cms, on_change, resync=0, watch_timeout=1)   # the server closes every 1-2 s
        task = asyncio.ensure_future(inf.run())
        try:
            await asyncio.wait_for(inf.synced.wait(), 5)
            assert inf.get(ns, "pre")["metadata"]["name"] == "pre"
            for i in range(16):
                await kc.create(cms, {"metadata": {"name": f"c{i}"}})
                await asyncio.sleep(0.2)       # spans several watch timeouts
            await kc.patch(path("v1", "configmaps", ns, "c3"), {"data": {"a": "b"}})
            await kc.delete(path("v1", "configmaps", ns, "c4"))
            for _ in range(100):
                if ("DELETED", "c4") in events:
                    break
                await asyncio.sleep(0.02)
            assert events[0] == ("ADDED", "pre")
            assert [e for e in events if e[0] == "ADDED"] == [("ADDED", "pre")] + [("ADDED", f"c{i}")
                                                                               for i in range(16)]
            assert ("MODIFIED", "c3") in events and events[-1] == ("DELETED", "c4")
            assert inf.get(ns, "c4") is None and inf.get(ns, "c3")["data"] == {"a": "b"}
            assert sorted(o["metadata"]["name"] for o in inf.items()) == sorted(
                ["pre"] + [f"c{i}" for i in range(16) if i != 4])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    run(go(), timeout=20)


def test_informer_relists_on_410_and_resyncs(kc, run, cluster, ns):
    events = []

    def on_change(etype, obj):          # plain functions work too
        events.append((etype, obj["metadata"]["name"]))

    async def go():
        cms = path("v1", "configmaps", ns)
        await kc.create(cms, {"metadata": {"name": "keep"}})
        await kc.create(cms, {"metadata": {"name": "drop"}})
        inf = Informer(kc, cms, on_change, resync=0)
        task = asyncio.ensure_future(inf.run())
        await asyncio.wait_for(inf.synced.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # While it is stopped: more changes than the server's history holds.
        await kc.delete(path("v1", "configmaps", ns, "drop"))
        await kc.create(cms, {"metadata": {"name": "new"}})
        for i in range(cluster.server.store.history_size + 5):
            await kc.patch(path("v1", "configmaps", ns, "keep"), {"data": {"i": str(i)}})
        events.clear()
        inf.resync = 0.3
        task = asyncio.ensure_future(inf.run())     # continues from its old resourceVersion: 410, re-list
        try:
            for _ in range(200):
                if ("SYNC", "new") in events:
                    break
                await asyncio.sleep(0.02)
            assert ("DELETED", "drop") in events and ("ADDED", "new") in events and ("MODIFIED", "keep") in events
            assert ("SYNC", "keep") in events and ("SYNC", "new") in events
            assert sorted(o["metadata"]["name"] for o in inf.items()) == ["keep", "new"]
            assert inf.get(ns, "keep")["data"]["i"] == str(cluster.server.store.history_size + 4)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    run(go(), timeout=30)
