"""Each registry pod's state over time during a rollout, from the pods' status (a watch) and the events.

    with PodTimeline(cluster) as tl:
        ...                                   # configure a backend, restart the pods, ...
    fig = plot(tl.intervals(), tl.events())   # matplotlib: one bar per pod, coloured by state

States: Pending (created, not running), Running (a container runs, not Ready), Ready, Terminating
(deletionTimestamp set), until the pod is deleted. Plain code, used by notebooks/procedure.ipynb.
"""
from __future__ import annotations

import threading
import time

from kubernetes import watch

from utilities import kube
from utilities.kube import REGISTRY_NAMESPACE, REGISTRY_POD_SELECTOR
from utilities.waits import timestamp

STATES = ("Pending", "Running", "Ready", "Terminating")
COLOURS = {"Pending": "#f4b400", "Running": "#4285f4", "Ready": "#0f9d58", "Terminating": "#db4437"}
POD_EVENTS = ("Scheduled", "FailedScheduling", "Pulling", "Pulled", "Started", "Killing", "FailedMount",
              "FailedAttachVolume", "Unhealthy")


def pod_state(pod: dict) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status") or {}
    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
        return "Ready"
    if st.get("phase") == "Running":
        return "Running"
    return "Pending"


class PodTimeline:
    """Records (time, pod, state) whenever a registry pod changes, from a watch in a thread."""

    def __init__(self, cluster, namespace: str = REGISTRY_NAMESPACE, selector: str = REGISTRY_POD_SELECTOR):
        self.cluster, self.namespace, self.selector = cluster, namespace, selector
        self.samples: list[tuple[float, str, str]] = []
        self.started = self.stopped = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _note(self, pod: dict, state: str, when: float | None = None):
        name = pod["metadata"]["name"]
        with self._lock:
            last = next((s for t, n, s in reversed(self.samples) if n == name), None)
            if last != state:
                self.samples.append((when or time.time(), name, state))

    def _run(self):
        plain = self.cluster.api_client.sanitize_for_serialization
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(self.cluster.core.list_namespaced_pod, self.namespace,
                                   label_selector=self.selector, timeout_seconds=5, _request_timeout=10):
                    pod = plain(ev["object"])
                    self._note(pod, "Deleted" if ev["type"] == "DELETED" else pod_state(pod))
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a broken watch: watch again
                self._stop.wait(0.2)
            finally:
                w.stop()

    def __enter__(self):
        self.started = time.time()
        plain = self.cluster.api_client.sanitize_for_serialization
        for pod in plain(kube.call(self.cluster.core.list_namespaced_pod, self.namespace,
                                   label_selector=self.selector)).get("items", []):
            self._note(pod, pod_state(pod), self.started)
        self._thread = threading.Thread(target=self._run, daemon=True, name="pod-timeline")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)       # the last changes reach the watch
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.stopped = time.time()
        return False

    def intervals(self) -> dict[str, list[tuple[float, float, str]]]:
        """pod -> [(start, end, state)], seconds since the recording started."""
        end = (self.stopped or time.time())
        by_pod: dict[str, list[tuple[float, str]]] = {}
        with self._lock:
            for t, name, state in self.samples:
                by_pod.setdefault(name, []).append((t, state))
        out = {}
        for name, changes in by_pod.items():
            spans = []
            for i, (t, state) in enumerate(changes):
                if state == "Deleted":
                    continue
                t_end = changes[i + 1][0] if i + 1 < len(changes) else end
                spans.append((t - self.started, t_end - self.started, state))
            out[name] = spans
        return out

    def events(self) -> list[tuple[float, str, str]]:
        """(seconds since the start, pod, reason) of the namespace's pod events during the recording."""
        plain = self.cluster.api_client.sanitize_for_serialization
        items = plain(kube.call(self.cluster.core.list_namespaced_event, self.namespace)).get("items", [])
        names = {n for _, n, _ in self.samples}
        out = []
        for e in items:
            inv = e.get("involvedObject") or {}
            t = timestamp(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
            if inv.get("kind") == "Pod" and inv.get("name") in names and e.get("reason") in POD_EVENTS and t \
                    and t >= int(self.started) - 1:
                out.append((max(t - self.started, 0.0), inv["name"], e["reason"]))
        return sorted(out)


def plot(intervals: dict, events: list | None = None, title: str = "registry rollout: each pod's state"):
    """A matplotlib Figure: one row per pod, bars coloured by state, event reasons as ticks."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    pods = sorted(intervals, key=lambda p: min((s for s, _, _ in intervals[p]), default=0))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * max(len(pods), 1)))
    for row, pod in enumerate(pods):
        for start, end, state in intervals[pod]:
            ax.broken_barh([(start, max(end - start, 0.02))], (row - 0.35, 0.7), color=COLOURS.get(state, "#999"))
    ticks: dict[tuple[str, float], list[str]] = {}
    for t, pod, reason in events or []:
        if pod in pods and reason not in ticks.setdefault((pod, round(t, 1)), []):
            ticks[(pod, round(t, 1))].append(reason)
    for (pod, t), reasons in ticks.items():
        row = pods.index(pod)
        ax.plot([t], [row + 0.42], marker="v", color="#333", markersize=5)
        ax.annotate(", ".join(reasons), (t, row + 0.45), fontsize=7, rotation=20, ha="left", va="bottom")
    ax.set_yticks(range(len(pods)))
    ax.set_yticklabels(pods, fontsize=8)
    ax.set_ylim(-0.8, len(pods) + 0.2)
    ax.set_xlabel("seconds since the recording started (bars: pod status as watched; ticks: events, 1 s resolution)")
    ax.set_title(title)
    ax.legend(handles=[Patch(color=COLOURS[s], label=s) for s in STATES], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)        # shown once where it is returned (a notebook cell), not twice
    return fig
