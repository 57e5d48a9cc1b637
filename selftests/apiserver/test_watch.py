"""Watch through the official kubernetes.watch.Watch: initial state, resourceVersion, timeout, selectors,
410 Gone, no leaked watchers after disconnects."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException


def _collect(fn, *args, **kwargs):
    return [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(fn, *args, **kwargs)]


def test_watch_from_zero_sends_current_then_times_out(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w1"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "w2"}})
    t0 = time.monotonic()
    events = _collect(core.list_namespaced_config_map, ns, timeout_seconds=1)
    elapsed = time.monotonic() - t0
    assert events == [("ADDED", "w1"), ("ADDED", "w2")]
    assert 0.9 <= elapsed < 3


def test_watch_from_resource_version(core, ns):
    a = core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
    core.delete_namespaced_config_map("b", ns)
    events = _collect(core.list_namespaced_config_map, ns, resource_version=a.metadata.resource_version,
                      timeout_seconds=1)
    assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_watch_follows_live_changes_with_selectors(core, ns):
    core.create_namespaced_config_map(ns, {"metadata": {"name": "s1", "labels": {"app": "x"}}})
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    got = []

    def run():
        for e in watch.Watch().stream(core.list_namespaced_config_map, ns, label_selector="app=x",
                                      resource_version=rv, timeout_seconds=2):
            got.append((e["type"], e["object"].metadata.name, e["object"].metadata.resource_version))
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_config_map(ns, {"metadata": {"name": "s2", "labels": {"app": "x"}}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "other", "labels": {"app": "y"}}})
    core.patch_namespaced_config_map("s1", ns, {"metadata": {"labels": {"app": "gone"}}})
    core.patch_namespaced_config_map("other", ns, {"metadata": {"labels": {"app": "x"}}})
    t.join(5)
    assert [(a, b) for a, b, _ in got] == [("ADDED", "s2"), ("DELETED", "s1"), ("ADDED", "other")]
    rvs = [int(r) for _, _, r in got]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_all_namespaces_and_field_selector(core, ns):
    rv = core.list_config_map_for_all_namespaces().metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "f1"}})
    core.create_namespaced_config_map(ns, {"metadata": {"name": "f2"}})
    events = _collect(core.list_config_map_for_all_namespaces, field_selector="metadata.name=f2",
                      resource_version=rv, timeout_seconds=1)
    assert events == [("ADDED", "f2")]


def test_too_old_resource_version_is_410(core, ns, cluster):
    first = core.create_namespaced_config_map(ns, {"metadata": {"name": "old"}})
    for i in range(cluster.server.store.history_size + 5):
        core.patch_namespaced_config_map("old", ns, {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as e:
        _collect(core.list_namespaced_config_map, ns, resource_version=first.metadata.resource_version,
                 timeout_seconds=1)
    assert e.value.status == 410 and "too old resource version" in e.value.reason
    assert len(cluster.server.store.history[("", "v1", "configmaps")]) == cluster.server.store.history_size
    # raw: the stream carries an ERROR event with a 410 Status
    http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_cert_data=cluster.ca_pem.decode())
    r = http.request("GET", f"{cluster.url}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion="
                            f"{first.metadata.resource_version}",
                     headers={"Authorization": f"Bearer {cluster.tokens['kube:admin']}"})
    ev = json.loads(r.data.splitlines()[0])
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410 and ev["object"]["kind"] == "Status"


def test_watch_typed_objects_and_cluster_scoped(core):
    rv = core.list_namespace().metadata.resource_version
    name = "watch-ns-" + str(int(time.time() * 1000) % 100000)
    core.create_namespace({"metadata": {"name": name}})
    events = list(watch.Watch().stream(core.list_namespace, resource_version=rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", name)]
    assert isinstance(events[0]["object"], k8s.V1Namespace) and events[0]["object"].status.phase == "Active"
    core.delete_namespace(name)


def test_disconnected_watchers_are_released(cluster, core, ns):
    store = cluster.server.store
    base = store.watcher_count()
    ctx = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    socks = []
    for _ in range(5):
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", cluster.server.port)),
                               server_hostname="127.0.0.1")
        sock.sendall(f"GET /api/v1/namespaces/{ns}/configmaps?watch=true HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {cluster.tokens['kube:admin']}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        socks.append(sock)
    assert store.watcher_count() == base + 5
    for sock in socks:
        sock.close()
    deadline = time.monotonic() + 3
    while store.watcher_count() > base and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.watcher_count() == base
    assert core.list_namespaced_config_map(ns).items == []
