"""Record every state that some objects go through, as watches deliver them (issue 9: conditions read
while the registry is down, not only once a rollout has finished).

    with Timeline(cluster, registry_sources(cluster)) as tl:
        ...                      # make something happen
    tl.events                    # [Event(t, source, type, obj)], in arrival order

Each source is listed first (its current state is the first event, type "LIST"), then watched from that
list's resourceVersion, re-watched from the last one seen when a watch ends, re-listed after 410 Gone.
A watch delivers every change in order, so short states (a pod gone for a second) are seen too.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from utilities import kube
from utilities.kube import (CLUSTEROPERATOR_GVR, CONFIG_GVR, CONFIG_NAME, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE,
                            Cluster)

WATCH_SECONDS = 10


@dataclasses.dataclass(frozen=True)
class Event:
    t: float          # time.monotonic() of arrival
    source: str
    type: str         # LIST, ADDED, MODIFIED, DELETED
    obj: dict


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    list_fn: Callable
    kwargs: dict


def registry_sources(cluster: Cluster) -> list[Source]:
    """The Config `cluster`, the ClusterOperator `image-registry` and the Deployment `image-registry`."""
    return [
        Source("config", cluster.custom.list_cluster_custom_object,
               {"group": CONFIG_GVR[0], "version": CONFIG_GVR[1], "plural": CONFIG_GVR[2],
                "field_selector": f"metadata.name={CONFIG_NAME}"}),
        Source("clusteroperator", cluster.custom.list_cluster_custom_object,
               {"group": CLUSTEROPERATOR_GVR[0], "version": CLUSTEROPERATOR_GVR[1], "plural": CLUSTEROPERATOR_GVR[2],
                "field_selector": "metadata.name=image-registry"}),
        Source("deployment", cluster.apps.list_namespaced_deployment,
               {"namespace": REGISTRY_NAMESPACE, "field_selector": f"metadata.name={REGISTRY_DEPLOYMENT}"}),
    ]


class Timeline:
    def __init__(self, cluster: Cluster, sources: list[Source]):
        self.cluster = cluster
        self.sources = sources
        self.events: list[Event] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listed = {s.name: threading.Event() for s in sources}
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []

    def _plain(self, obj) -> dict:
        return obj if isinstance(obj, dict) else self.cluster.api_client.sanitize_for_serialization(obj)

    def _record(self, source: str, type_: str, obj) -> None:
        with self._lock:
            self.events.append(Event(time.monotonic(), source, type_, self._plain(obj)))

    def _run(self, src: Source) -> None:
        rv = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    lst = self._plain(kube.call(src.list_fn, **src.kwargs))
                    for item in lst.get("items") or []:
                        self._record(src.name, "LIST", item)
                    rv = (lst.get("metadata") or {}).get("resourceVersion")
                    self._listed[src.name].set()
                w = watch.Watch()
                self._watches.append(w)
                try:
                    for ev in w.stream(src.list_fn, resource_version=rv, timeout_seconds=WATCH_SECONDS,
                                       _request_timeout=WATCH_SECONDS + 5, **src.kwargs):
                        obj = ev.get("raw_object") or self._plain(ev.get("object"))
                        if ev.get("type") == "ERROR":
                            if (obj or {}).get("code") == 410:
                                rv = None
                            break
                        if ev.get("type") == "BOOKMARK":
                            continue
                        rv = ((obj or {}).get("metadata") or {}).get("resourceVersion") or rv
                        self._record(src.name, ev.get("type") or "?", obj)
                        if self._stop.is_set():
                            break
                finally:
                    w.stop()
                    self._watches.remove(w)
            except ApiException as e:
                if e.status == 410:
                    rv = None
                self.errors.append(f"{src.name}: {e.status} {e.reason}")
                self._stop.wait(0.2)
            except Exception as e:  # noqa: BLE001 - a broken watch: watch again
                self.errors.append(f"{src.name}: {e.__class__.__name__}: {e}")
                self._stop.wait(0.2)

    def __enter__(self) -> "Timeline":
        for src in self.sources:
            t = threading.Thread(target=self._run, args=(src,), daemon=True, name=f"timeline-{src.name}")
            t.start()
            self._threads.append(t)
        for src in self.sources:
            if not self._listed[src.name].wait(60):
                self.__exit__(None, None, None)
                raise AssertionError(f"could not list {src.name} to record its states: {self.errors[-3:]}")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for w in list(self._watches):
            w.stop()
        for t in self._threads:
            t.join(timeout=WATCH_SECONDS + 6)

    def of(self, source: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.source == source]


def state_at(events: list[Event], t: float) -> Event | None:
    """The last event at or before `t` (events of one source, in order)."""
    last = None
    for e in events:
        if e.t > t:
            break
        last = e
    return last


def condition(obj: dict | None, type_: str) -> dict:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return {}


def reasons(cond: dict) -> set[str]:
    """The components of a ClusterOperator reason (a union joined with "::", operator-facts.md §6.3, §12.7)."""
    return {r for r in (cond.get("reason") or "").split("::") if r}
