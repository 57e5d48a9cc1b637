"""Waits driven by `watch`, with bounded watch timeouts and a periodic resync (never tight polling).

`wait_for_rollout` succeeds when the Deployment `image-registry` is complete and the Config says
Available=True/Ready, Progressing=False; it FAILS AT ONCE when the cluster says why it cannot succeed
(see `RolloutJudge`), quoting the object, the reason and the message.
"""
from __future__ import annotations

import dataclasses
import datetime
import queue
import threading
import time
from typing import Any, Callable

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from utilities import kube, progress
from utilities.kube import (CLUSTEROPERATOR_GVR, CONFIG_GVR, CONFIG_NAME, REGISTRY_DEPLOYMENT,
                            REGISTRY_NAMESPACE, REGISTRY_POD_SELECTOR, Cluster)

WATCH_SECONDS = 10        # each watch request is bounded server-side
RESYNC_SECONDS = 5.0      # re-evaluate at least this often even without events


class WaitTimeout(AssertionError):
    pass


class RolloutFailed(AssertionError):
    """The cluster says why the rollout cannot succeed."""


# ---------------------------------------------------------------------------------------------
# Change feed: one thread per watched collection; every event wakes the waiter.
# ---------------------------------------------------------------------------------------------
class ChangeFeed:
    """Watches several collections at once; `wait(timeout)` returns when any of them changed."""

    def __init__(self, sources: list[tuple[str, Callable, dict]]):
        self._sources = sources
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self):
        for name, fn, kwargs in self._sources:
            t = threading.Thread(target=self._run, args=(name, fn, kwargs), daemon=True,
                                 name=f"watch-{name}")
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for w in list(self._watches):
            w.stop()

    def _run(self, name, fn, kwargs):
        backoff = 0.2
        while not self._stop.is_set():
            w = watch.Watch()
            self._watches.append(w)
            try:
                for _ in w.stream(fn, timeout_seconds=WATCH_SECONDS, _request_timeout=WATCH_SECONDS + 5,
                                  **kwargs):
                    self._queue.put(name)
                    if self._stop.is_set():
                        break
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - a broken watch means: resync, then watch again
                self._queue.put(f"{name}:error:{e.__class__.__name__}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, RESYNC_SECONDS)
            finally:
                w.stop()
                self._watches.remove(w)

    def wait(self, timeout: float) -> list[str]:
        """Block until something changed (or `timeout`); returns what changed, debounced."""
        changed = []
        try:
            changed.append(self._queue.get(timeout=max(timeout, 0.0)))
        except queue.Empty:
            return changed
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            try:
                changed.append(self._queue.get(timeout=0.02))
            except queue.Empty:
                break
        return changed


def _wait_loop(feed_sources, evaluate: Callable[[], Any], timeout: float, describe: Callable[[], str],
               what: str):
    """Evaluate now, then after every change (or every RESYNC_SECONDS); `evaluate` returns a truthy
    value to finish or raises to fail."""
    deadline = time.monotonic() + timeout
    with ChangeFeed(feed_sources) as feed, progress.task(what) as task:
        while True:
            result = evaluate()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{what}: not reached within {timeout:.0f}s; {describe()}")
            task.update(describe())
            feed.wait(min(left, RESYNC_SECONDS))


# ---------------------------------------------------------------------------------------------
# Simple waits
# ---------------------------------------------------------------------------------------------
def conditions(obj: dict | None) -> dict[str, dict]:
    return {c.get("type"): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def format_conditions(obj: dict | None, types=("Available", "Progressing", "Degraded", "Removed")) -> str:
    conds = conditions(obj)
    parts = []
    for t in types:
        c = conds.get(t)
        if c:
            parts.append(f"{t}={c.get('status')}/{c.get('reason') or ''}: {c.get('message') or ''}")
    return "; ".join(parts) or "no conditions"


def _config_sources(cluster: Cluster) -> list:
    return [("config", cluster.custom.list_cluster_custom_object,
             {"group": CONFIG_GVR[0], "version": CONFIG_GVR[1], "plural": CONFIG_GVR[2],
              "field_selector": f"metadata.name={CONFIG_NAME}"})]


def wait_for_config(cluster: Cluster, predicate: Callable[[dict | None], bool], timeout: float,
                    what: str) -> dict | None:
    """Wait until predicate(Config or None) holds."""
    state = {}

    def evaluate():
        state["obj"] = cluster.registry_config()
        return (state["obj"],) if predicate(state["obj"]) else None

    def describe():
        obj = state.get("obj")
        return "the Config does not exist" if obj is None else f"Config conditions: {format_conditions(obj)}"

    return _wait_loop(_config_sources(cluster), evaluate, timeout, describe, what)[0]


def wait_for_config_exists(cluster: Cluster, timeout: float) -> dict:
    return wait_for_config(cluster, lambda o: o is not None, timeout,
                           f"configs.imageregistry.operator.openshift.io/{CONFIG_NAME} to exist")


def config_synced(obj: dict | None) -> bool:
    """The operator has observed the current generation."""
    if not obj:
        return False
    return ((obj.get("status") or {}).get("observedGeneration") or 0) >= (obj["metadata"].get("generation") or 0)


def wait_for_config_synced(cluster: Cluster, timeout: float) -> dict:
    return wait_for_config(cluster, config_synced, timeout, "the operator to observe the Config generation")


def wait_for_conditions(cluster: Cluster, expected: dict[str, tuple[str, str | None]], timeout: float) -> dict:
    """expected: {type: (status, reason or None)} on the synced Config."""
    def ok(obj):
        if not config_synced(obj):
            return False
        conds = conditions(obj)
        for t, (status, reason) in expected.items():
            c = conds.get(t)
            if not c or c.get("status") != status or (reason is not None and c.get("reason") != reason):
                return False
        return True
    want = ", ".join(f"{t}={s}" + (f"/{r}" if r else "") for t, (s, r) in expected.items())
    return wait_for_config(cluster, ok, timeout, f"Config conditions {want}")


def wait_for_clusteroperator(cluster: Cluster, expected: dict[str, tuple[str, str | None]], timeout: float,
                             name: str = "image-registry") -> dict:
    state = {}

    def evaluate():
        obj = state["obj"] = cluster.get_cluster_object(CLUSTEROPERATOR_GVR, name)
        conds = conditions(obj)
        for t, (status, reason) in expected.items():
            c = conds.get(t)
            if not c or c.get("status") != status or (reason is not None and c.get("reason") != reason):
                return None
        return (obj,)

    sources = [("clusteroperator", cluster.custom.list_cluster_custom_object,
                {"group": CLUSTEROPERATOR_GVR[0], "version": CLUSTEROPERATOR_GVR[1],
                 "plural": CLUSTEROPERATOR_GVR[2], "field_selector": f"metadata.name={name}"})]
    want = ", ".join(f"{t}={s}" + (f"/{r}" if r else "") for t, (s, r) in expected.items())
    return _wait_loop(sources, evaluate, timeout,
                      lambda: f"ClusterOperator conditions: {format_conditions(state.get('obj'), expected)}",
                      f"ClusterOperator {name} {want}")[0]


def wait_for_deployment_gone(cluster: Cluster, timeout: float, name: str = REGISTRY_DEPLOYMENT,
                             namespace: str = REGISTRY_NAMESPACE) -> None:
    def evaluate():
        return kube.get_or_none(cluster.apps.read_namespaced_deployment, name, namespace) is None

    sources = [("deployment", cluster.apps.list_namespaced_deployment,
                {"namespace": namespace, "field_selector": f"metadata.name={name}"})]
    _wait_loop(sources, evaluate, timeout, lambda: "the Deployment still exists",
               f"Deployment {namespace}/{name} to be deleted")


def wait_for_route_admitted(cluster: Cluster, name: str, namespace: str, timeout: float) -> dict:
    state = {}

    def evaluate():
        route = state["obj"] = kube.get_or_none(cluster.custom.get_namespaced_custom_object,
                                                *kube.ROUTE_GVR[:2], namespace, kube.ROUTE_GVR[2], name)
        for ing in ((route or {}).get("status") or {}).get("ingress") or []:
            for c in ing.get("conditions") or []:
                if c.get("type") == "Admitted" and c.get("status") == "True" and ing.get("host"):
                    return (route,)
        return None

    sources = [("route", cluster.custom.list_namespaced_custom_object,
                {"group": kube.ROUTE_GVR[0], "version": kube.ROUTE_GVR[1], "namespace": namespace,
                 "plural": kube.ROUTE_GVR[2], "field_selector": f"metadata.name={name}"})]
    return _wait_loop(sources, evaluate, timeout,
                      lambda: f"route: {state.get('obj') and state['obj'].get('status')}",
                      f"route {namespace}/{name} to be admitted")[0]


# ---------------------------------------------------------------------------------------------
# The rollout wait
# ---------------------------------------------------------------------------------------------
def _ts(value) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclasses.dataclass
class Snapshot:
    """What the rollout judge looks at; plain dicts as the API serves them."""
    config: dict | None
    deployment: dict | None
    pods: list[dict]
    pvcs: list[dict]
    events: list[dict]


PERMANENT_DEGRADED = ("StorageNotConfigured", "VerificationFailed")


class RolloutJudge:
    """Stateful (to see what persists) classification of a Snapshot: done, failed, or wait.

    Fails at once on: PVC ProvisioningFailed; pod FailedScheduling (an unbound-PVC message only after
    it persists); FailedAttachVolume (Multi-Attach); Config Degraded=True with a permanent reason;
    Deployment ProgressDeadlineExceeded. Fails when these persist: FailedMount, Progressing=True/Error
    "Unable to apply resources: ...".
    """

    def __init__(self, since: float, *, apply_error_grace: float = 5.0, mount_grace: float = 20.0,
                 unbound_grace: float = 15.0):
        self.since = since                   # ignore events last seen before this (epoch seconds)
        self.apply_error_grace = apply_error_grace
        self.mount_grace = mount_grace
        self.unbound_grace = unbound_grace
        self._first_seen: dict[tuple, float] = {}

    def _persisting(self, key: tuple, now: float, grace: float) -> bool:
        first = self._first_seen.setdefault(key, now)
        return now - first >= grace

    def _fresh(self, ev: dict) -> bool:
        t = _ts(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp"))
        # event timestamps have 1 s resolution
        return t is None or t >= int(self.since)

    def failure(self, snap: Snapshot, now: float) -> str | None:
        seen_keys = set()
        live_pods = {p["metadata"].get("uid"): p for p in snap.pods if not p["metadata"].get("deletionTimestamp")}
        pvcs = {p["metadata"].get("uid"): p for p in snap.pvcs}
        for ev in snap.events:
            inv = ev.get("involvedObject") or {}
            uid, reason, msg = inv.get("uid"), ev.get("reason"), ev.get("message") or ""
            where = f"{inv.get('kind')} {inv.get('namespace') or ''}/{inv.get('name')}".replace(" /", " ")
            quote = f"{where}: {reason}: {msg}"
            if not self._fresh(ev):
                continue
            if inv.get("kind") == "PersistentVolumeClaim" and uid in pvcs:
                pvc = pvcs[uid]
                if reason == "ProvisioningFailed" and (pvc.get("status") or {}).get("phase") != "Bound":
                    return quote
            if inv.get("kind") == "Pod" and uid in live_pods:
                pod = live_pods[uid]
                ready = _pod_ready(pod)
                if reason == "FailedScheduling" and not (pod.get("spec") or {}).get("nodeName"):
                    if "unbound" in msg.lower():
                        key = ("unbound", uid)
                        seen_keys.add(key)
                        if self._persisting(key, now, self.unbound_grace):
                            return quote
                    else:
                        return quote
                if reason == "FailedAttachVolume" and not ready:
                    return quote
                if reason == "FailedMount" and not ready:
                    key = ("mount", uid)
                    seen_keys.add(key)
                    if self._persisting(key, now, self.mount_grace):
                        return quote
        cfg = snap.config
        if cfg is not None and config_synced(cfg):
            conds = conditions(cfg)
            deg = conds.get("Degraded") or {}
            if deg.get("status") == "True" and deg.get("reason") in PERMANENT_DEGRADED:
                return (f"Config {CONFIG_NAME}: Degraded=True: {deg.get('reason')}: {deg.get('message')}")
            prog = conds.get("Progressing") or {}
            if (prog.get("status") == "True" and prog.get("reason") == "Error"
                    and (prog.get("message") or "").startswith("Unable to apply resources")):
                key = ("apply", prog.get("message"))
                seen_keys.add(key)
                if self._persisting(key, now, self.apply_error_grace):
                    return f"Config {CONFIG_NAME}: Progressing=True: Error: {prog.get('message')}"
        dep = snap.deployment
        if dep is not None:
            for c in (dep.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                    meta = dep["metadata"]
                    return (f"Deployment {meta.get('namespace')}/{meta.get('name')}: ProgressDeadlineExceeded: "
                            f"{c.get('message')}")
        for key in list(self._first_seen):
            if key not in seen_keys:
                del self._first_seen[key]
        return None

    @staticmethod
    def complete(snap: Snapshot) -> bool:
        cfg, dep = snap.config, snap.deployment
        if cfg is None or dep is None or not config_synced(cfg):
            return False
        conds = conditions(cfg)
        if (conds.get("Available") or {}).get("status") != "True" or \
                (conds.get("Available") or {}).get("reason") != "Ready":
            return False
        if (conds.get("Progressing") or {}).get("status") != "False":
            return False
        want = (cfg.get("spec") or {}).get("replicas")
        spec_replicas = (dep.get("spec") or {}).get("replicas", 1)
        st = dep.get("status") or {}
        if (st.get("observedGeneration") or 0) < (dep["metadata"].get("generation") or 0):
            return False
        counts = [spec_replicas, st.get("updatedReplicas") or 0, st.get("readyReplicas") or 0,
                  st.get("availableReplicas") or 0, st.get("replicas") or 0]
        return want is not None and all(c == want for c in counts)

    def judge(self, snap: Snapshot, now: float) -> str | None:
        """None: keep waiting; "done"; or raises RolloutFailed."""
        reason = self.failure(snap, now)
        if reason:
            raise RolloutFailed(f"registry rollout cannot succeed: {reason}")
        return "done" if self.complete(snap) else None


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def describe_snapshot(snap: Snapshot | None) -> str:
    if snap is None:
        return "no state read"
    parts = [f"Config: {format_conditions(snap.config)}"]
    if snap.config is not None:
        parts.append(f"Config spec.replicas={(snap.config.get('spec') or {}).get('replicas')}")
    if snap.deployment is None:
        parts.append("Deployment image-registry: absent")
    else:
        st = snap.deployment.get("status") or {}
        parts.append("Deployment image-registry: " + ", ".join(
            f"{k}={st.get(k) or 0}" for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")))
    for p in snap.pods:
        st = p.get("status") or {}
        parts.append(f"pod {p['metadata']['name']}: phase={st.get('phase')} ready={_pod_ready(p)} "
                     f"node={(p.get('spec') or {}).get('nodeName')}"
                     + (" terminating" if p["metadata"].get("deletionTimestamp") else ""))
    return "; ".join(parts)


def _plain(api_client, obj) -> dict:
    return api_client.sanitize_for_serialization(obj)


def read_snapshot(cluster: Cluster) -> Snapshot:
    ac = cluster.api_client
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=REGISTRY_POD_SELECTOR)
    pvcs = kube.call(cluster.core.list_namespaced_persistent_volume_claim, REGISTRY_NAMESPACE)
    events = kube.call(cluster.core.list_namespaced_event, REGISTRY_NAMESPACE)
    return Snapshot(config=cluster.registry_config(), deployment=_plain(ac, dep) if dep else None,
                    pods=_plain(ac, pods).get("items", []), pvcs=_plain(ac, pvcs).get("items", []),
                    events=_plain(ac, events).get("items", []))


def rollout_sources(cluster: Cluster) -> list:
    ns = {"namespace": REGISTRY_NAMESPACE}
    return _config_sources(cluster) + [
        ("deployment", cluster.apps.list_namespaced_deployment, ns),
        ("pods", cluster.core.list_namespaced_pod, {**ns, "label_selector": REGISTRY_POD_SELECTOR}),
        ("pvcs", cluster.core.list_namespaced_persistent_volume_claim, ns),
        ("events", cluster.core.list_namespaced_event, ns),
    ]


def wait_for_rollout(cluster: Cluster, timeout: float, since: float | None = None,
                     judge: RolloutJudge | None = None) -> Snapshot:
    """Wait until the registry is rolled out; raise RolloutFailed as soon as it cannot be."""
    judge = judge or RolloutJudge(since if since is not None else time.time() - 1)
    state: dict[str, Snapshot] = {}

    def evaluate():
        snap = state["snap"] = read_snapshot(cluster)
        return (snap,) if judge.judge(snap, time.monotonic()) == "done" else None

    return _wait_loop(rollout_sources(cluster), evaluate, timeout,
                      lambda: describe_snapshot(state.get("snap")), "registry rollout")[0]


def wait_for_pods_replaced(cluster: Cluster, old_uids: set[str], timeout: float) -> Snapshot:
    """After deleting registry pods: wait until none of `old_uids` remains and the rollout is complete."""
    judge = RolloutJudge(time.time() - 1)
    state: dict[str, Snapshot] = {}

    def evaluate():
        snap = state["snap"] = read_snapshot(cluster)
        done = judge.judge(snap, time.monotonic()) == "done"
        remaining = [p for p in snap.pods if p["metadata"]["uid"] in old_uids]
        return (snap,) if done and not remaining else None

    return _wait_loop(rollout_sources(cluster), evaluate, timeout,
                      lambda: describe_snapshot(state.get("snap")), "registry pods to be replaced")[0]


# ---------------------------------------------------------------------------------------------
# Storage set-ups (issue 3)
# ---------------------------------------------------------------------------------------------
class SetupFailed(AssertionError):
    """The cluster says why a set-up step (a claim, a bucket claim) cannot succeed."""


def wait_until_gone(read: Callable[[], Any], what: str, timeout: float) -> None:
    """Poll `read()` (None when the object is gone) with a short back-off until it returns None."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        obj = read()
        if obj is None:
            return
        if time.monotonic() >= deadline:
            meta = obj.get("metadata") if isinstance(obj, dict) else getattr(obj, "metadata", None)
            fin = (meta.get("finalizers") if isinstance(meta, dict) else getattr(meta, "finalizers", None)) or []
            raise WaitTimeout(f"{what}: still there after {timeout:.0f}s (finalizers: {fin})")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


OBC_GVR = ("objectbucket.io", "v1alpha1", "objectbucketclaims")


def wait_for_obc_bound(cluster: Cluster, namespace: str, name: str, timeout: float) -> dict:
    """Wait until the ObjectBucketClaim is Bound with a bucket name; fail at once on a ProvisioningFailed
    event about it, with the provisioner's message."""
    since = int(time.time()) - 1
    state: dict = {}

    def evaluate():
        obc = state["obj"] = kube.get_or_none(cluster.custom.get_namespaced_custom_object, *OBC_GVR[:2],
                                              namespace, OBC_GVR[2], name)
        if obc and (obc.get("status") or {}).get("phase") == "Bound" and (obc.get("spec") or {}).get("bucketName"):
            return (obc,)
        events = cluster.api_client.sanitize_for_serialization(
            kube.call(cluster.core.list_namespaced_event, namespace)).get("items", [])
        for ev in events:
            inv = ev.get("involvedObject") or {}
            t = _ts(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp"))
            if (inv.get("kind") == "ObjectBucketClaim" and inv.get("name") == name
                    and ev.get("reason") == "ProvisioningFailed" and (t is None or t >= since)):
                raise SetupFailed(f"ObjectBucketClaim {namespace}/{name} cannot be provisioned: "
                                  f"ProvisioningFailed: {ev.get('message')}")
        return None

    sources = [("obc", cluster.custom.list_namespaced_custom_object,
                {"group": OBC_GVR[0], "version": OBC_GVR[1], "namespace": namespace, "plural": OBC_GVR[2],
                 "field_selector": f"metadata.name={name}"}),
               ("events", cluster.core.list_namespaced_event, {"namespace": namespace})]
    return _wait_loop(sources, evaluate, timeout,
                      lambda: f"ObjectBucketClaim status: {(state.get('obj') or {}).get('status')}",
                      f"ObjectBucketClaim {namespace}/{name} to be Bound")[0]


def storage_conditions_text(obj: dict | None) -> str:
    return format_conditions(obj, ("Available", "Progressing", "Degraded", "StorageExists"))


def wait_for_progressing_error(cluster: Cluster, expected: str, timeout: float) -> dict:
    """Wait for the operator's verdict on the current spec and return the Config when Progressing=True
    carries `expected` in its message (the operator refused). Fails AT ONCE, quoting the operator, when
    the verdict is something else: a permanent Degraded=True, or Progressing without `expected` once the
    operator has observed the spec (it accepted, or refused for another reason)."""
    state: dict = {}

    def evaluate():
        obj = state["obj"] = cluster.registry_config()
        if not config_synced(obj):
            return None
        conds = conditions(obj)
        prog, deg = conds.get("Progressing") or {}, conds.get("Degraded") or {}
        if prog.get("status") == "True" and expected in (prog.get("message") or ""):
            return (obj,)
        if deg.get("status") == "True" and deg.get("reason") in PERMANENT_DEGRADED:
            raise RolloutFailed(f"the operator reports a permanent error: Degraded=True: {deg.get('reason')}: "
                                f"{deg.get('message')}")
        raise RolloutFailed(f"the operator did not report {expected!r} for generation "
                            f"{obj['metadata'].get('generation')}: {storage_conditions_text(obj)}")

    return _wait_loop(_config_sources(cluster), evaluate, timeout,
                      lambda: f"Config conditions: {storage_conditions_text(state.get('obj'))}",
                      f"the operator to refuse the storage ({expected})")[0]


_VOLATILE = __import__("re").compile(r"(request id|host id|RequestId|HostId): ?[^,;\s]*")


class StorageRolloutJudge(RolloutJudge):
    """RolloutJudge for storage set-ups: an "Unable to apply resources" error whose text changes on every
    sync only by its volatile parts (S3 request and host ids) counts as the same, persisting error."""

    def failure(self, snap: Snapshot, now: float) -> str | None:
        cfg = snap.config
        if cfg is not None:
            cfg = __import__("copy").deepcopy(cfg)
            for c in (cfg.get("status") or {}).get("conditions") or []:
                if c.get("message"):
                    c["message"] = _VOLATILE.sub(lambda m: f"{m.group(1)}: …", c["message"])
            snap = dataclasses.replace(snap, config=cfg)
        return super().failure(snap, now)
