"""What a run does to the control plane (operator-facts.md §12.4).

The image registry operator writes `images.config.openshift.io/cluster` `status.internalRegistryHostname`
(from the registry Service: empty when Removed) and `status.externalRegistryHostnames` (from its
routes: the default route's host with `defaultRoute`). kube-apiserver, openshift-apiserver and
openshift-controller-manager observe both fields: every change rolls out new revisions of them.

`ControlPlaneMonitor` watches, from before the run's first change, the image config (each change of
those two fields is one control-plane rollout) and the three ClusterOperators (whether each went
Progressing after the last change). `wait_settled` waits, bounded, until all three are Available, not
Progressing and not Degraded, having rolled since the last change (or `settle` seconds passed without
them starting, for a change they did not act on).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import threading
import time
from pathlib import Path

from kubernetes import watch

from utilities import kube, redact
from utilities.kube import CLUSTEROPERATOR_GVR, Cluster

log = logging.getLogger(__name__)

IMAGE_CONFIG_GVR = ("config.openshift.io", "v1", "images")
CONTROL_PLANE_OPERATORS = ("kube-apiserver", "openshift-apiserver", "openshift-controller-manager")
REPORT_FILE = "control-plane.json"
WATCH_SECONDS = 10


def registry_hostnames(obj: dict | None) -> tuple[str, tuple[str, ...]]:
    st = (obj or {}).get("status") or {}
    return st.get("internalRegistryHostname") or "", tuple(st.get("externalRegistryHostnames") or ())


def _conditions(obj: dict | None) -> dict:
    return {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def _ts(value) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def operator_state(obj: dict | None) -> str:
    c = _conditions(obj)
    return ", ".join(f"{t}={(c.get(t) or {}).get('status', '?')}"
                     + (f"/{c[t].get('reason')}" if (c.get(t) or {}).get("reason") else "")
                     for t in ("Available", "Progressing", "Degraded"))


def operator_settled(obj: dict | None) -> bool:
    c = _conditions(obj)
    return ((c.get("Available") or {}).get("status") == "True"
            and (c.get("Progressing") or {}).get("status") == "False"
            and (c.get("Degraded") or {}).get("status") == "False")


@dataclasses.dataclass
class Change:
    time: float
    internal: str
    external: tuple

    def as_dict(self) -> dict:
        return {"time": round(self.time, 3), "internalRegistryHostname": self.internal,
                "externalRegistryHostnames": list(self.external)}


class ControlPlaneMonitor:
    """Counts the changes of the registry hostnames in the image config and watches the three
    control-plane ClusterOperators, from `start()` to `stop()` (threads, watches resynced by lists)."""

    def __init__(self, cluster: Cluster, operators=CONTROL_PLANE_OPERATORS):
        self.cluster = cluster
        self.operators = tuple(operators)
        self.initial: tuple | None = None
        self.last: tuple | None = None
        self.changes: list[Change] = []
        self.progressing_seen: dict[str, float] = {}     # operator -> last time seen Progressing=True
        self.operator_objs: dict[str, dict] = {}
        self.present = True                               # the image config exists (an OpenShift cluster)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- recording -------------------------------------------------------------------------------
    def _see_image_config(self, obj: dict | None) -> None:
        if obj is None:
            return
        now = registry_hostnames(obj)
        with self._lock:
            if self.last is None:
                self.initial = self.last = now
                return
            if now != self.last:
                self.last = now
                self.changes.append(Change(time.time(), now[0], now[1]))
                log.info("image config status changed (%d): internalRegistryHostname=%r externalRegistryHostnames=%r",
                         len(self.changes), now[0], list(now[1]))

    def _see_operator(self, obj: dict | None) -> None:
        name = ((obj or {}).get("metadata") or {}).get("name")
        if name not in self.operators:
            return
        with self._lock:
            self.operator_objs[name] = obj
            if (_conditions(obj).get("Progressing") or {}).get("status") == "True":
                self.progressing_seen[name] = time.time()

    # --- threads ---------------------------------------------------------------------------------
    def _loop(self, gvr, see, field_selector=None):
        backoff = 0.5
        while not self._stop.is_set():
            try:
                kwargs = {"field_selector": field_selector} if field_selector else {}
                lst = self.cluster.custom.list_cluster_custom_object(*gvr, **kwargs)
                for item in lst.get("items") or []:
                    see(item)
                rv = (lst.get("metadata") or {}).get("resourceVersion")
                w = watch.Watch()
                for ev in w.stream(self.cluster.custom.list_cluster_custom_object, *gvr, resource_version=rv,
                                   timeout_seconds=WATCH_SECONDS, **kwargs):
                    if self._stop.is_set():
                        w.stop()
                        break
                    if ev.get("type") in ("ADDED", "MODIFIED"):
                        see(ev.get("object"))
                backoff = 0.5
            except Exception as e:  # noqa: BLE001 - a watch that breaks is listed again
                log.debug("control-plane watch %s: %s", gvr[2], e)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def start(self) -> "ControlPlaneMonitor":
        obj = kube.get_or_none(self.cluster.custom.get_cluster_custom_object, *IMAGE_CONFIG_GVR, "cluster")
        self.present = obj is not None
        self._see_image_config(obj)
        for name in self.operators:
            self._see_operator(self.cluster.get_cluster_object(CLUSTEROPERATOR_GVR, name))
        for gvr, see, sel in ((IMAGE_CONFIG_GVR, self._see_image_config, "metadata.name=cluster"),
                              (CLUSTEROPERATOR_GVR, self._see_operator, None)):
            t = threading.Thread(target=self._loop, args=(gvr, see, sel), daemon=True,
                                 name=f"control-plane-{gvr[2]}")
            t.start()
            self._threads.append(t)
        return self

    def poll(self) -> None:
        """Read both now (a change a broken watch missed)."""
        self._see_image_config(kube.get_or_none(self.cluster.custom.get_cluster_custom_object,
                                                *IMAGE_CONFIG_GVR, "cluster"))
        for name in self.operators:
            self._see_operator(self.cluster.get_cluster_object(CLUSTEROPERATOR_GVR, name))

    def stop(self) -> None:
        """Stop recording (the watch threads are daemons: they end with their current watch)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=0.2)
        self._threads = []

    # --- results ---------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.changes)

    def last_change(self) -> float | None:
        return self.changes[-1].time if self.changes else None

    def rolled_since(self, name: str, since: float) -> bool:
        """The operator acted on the change: seen Progressing after it, or its Progressing condition
        moved after it."""
        if self.progressing_seen.get(name, 0) >= since:
            return True
        ltt = _ts((_conditions(self.operator_objs.get(name)).get("Progressing") or {}).get("lastTransitionTime"))
        return ltt is not None and ltt >= since

    def pending(self, settle: float) -> dict[str, str]:
        """{operator: why it is not settled} (empty: all settled)."""
        out = {}
        since = self.last_change()
        for name in self.operators:
            obj = self.operator_objs.get(name)
            if obj is None:
                out[name] = "ClusterOperator not found"
            elif not operator_settled(obj):
                out[name] = operator_state(obj)
            elif since is not None and not self.rolled_since(name, since) and time.time() - since < settle:
                out[name] = (f"{operator_state(obj)}, not yet seen rolling out since the last change "
                             f"({time.time() - since:.0f} s ago)")
        return out

    def wait_settled(self, timeout: float, settle: float = 60.0) -> dict[str, str]:
        """Wait until `pending(settle)` is empty or `timeout`; returns what is still pending."""
        deadline = time.monotonic() + timeout
        pending = {}
        while True:
            self.poll()
            pending = self.pending(settle)
            if not pending or time.monotonic() >= deadline:
                return pending
            self._stop.wait(min(1.0, max(0.05, deadline - time.monotonic())))

    def summary(self) -> str:
        n = self.count
        if not self.present:
            return "control plane: no images.config.openshift.io/cluster on this cluster; nothing counted"
        return (f"control plane: the run changed the registry hostnames of images.config.openshift.io/cluster "
                f"{n} time(s), i.e. {n} rollout(s) of each of {', '.join(self.operators)}")

    def write(self, run_dir, settled: bool | None, pending: dict | None, waited: float | None) -> Path:
        path = Path(run_dir) / REPORT_FILE
        data = {"count": self.count, "initial": None if self.initial is None else
                {"internalRegistryHostname": self.initial[0], "externalRegistryHostnames": list(self.initial[1])},
                "changes": [c.as_dict() for c in self.changes], "operators": list(self.operators),
                "settled": settled, "pending": pending or {}, "waited_seconds": waited,
                "final": {n: operator_state(o) for n, o in self.operator_objs.items()}}
        path.write_text(redact.redact(json.dumps(data, indent=2, sort_keys=True)))   # operators' messages
        return path


def read_report(run_dir) -> dict | None:
    """The run's control-plane.json (`ControlPlaneMonitor.write`); None when there is none (the run
    changed nothing, or stopped before watching) or it cannot be read."""
    try:
        return json.loads((Path(run_dir) / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
