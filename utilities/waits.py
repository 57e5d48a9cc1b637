"""Waits driven by `watch`, with bounded watch timeouts and a periodic resync (never tight polling).

`wait_for_rollout` succeeds when the Deployment `image-registry` is complete and the Config says
Available=True/Ready, Progressing=False; it fails, before the timeout, when the cluster says why it
cannot succeed (see `RolloutJudge`: at once for what waiting cannot change, after a grace window for
what real clusters retry), quoting the object, the field or reason and the message.
"""
from __future__ import annotations

import dataclasses
import datetime
import queue
import threading
import time
from typing import Any, Callable

from kubernetes import watch

from utilities import deadline, kube, progress
from utilities.condition_causes import ConditionJudge, TargetUnreachable, node_ca_reader
from utilities.conditions import condition_matches, conditions, pod_unschedulable
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
    value to finish or raises to fail. The timeout is cut to what is left of the test's deadline
    (`utilities/deadline.py`)."""
    timeout, cut = deadline.bounded(timeout)
    end = time.monotonic() + timeout
    with ChangeFeed(feed_sources) as feed, progress.task(what) as task:
        while True:
            result = evaluate()
            if result:
                return result
            left = end - time.monotonic()
            if left <= 0:
                raise (deadline.Exhausted if cut else WaitTimeout)(
                    f"{what}: not reached within {timeout:.0f}s{cut}; {describe()}")
            task.update(describe())
            feed.wait(min(left, RESYNC_SECONDS))


# ---------------------------------------------------------------------------------------------
# Simple waits
# ---------------------------------------------------------------------------------------------
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
                    what: str, judge: ConditionJudge | None = None) -> dict | None:
    """Wait until predicate(Config or None) holds; with a `judge`, fail (TargetUnreachable) once the
    synced Config states a cause that keeps the target away (`utilities/condition_causes.py`)."""
    state = {}

    def evaluate():
        obj = state["obj"] = cluster.registry_config()
        if predicate(obj):
            return (obj,)
        cause = judge.failure(obj, time.monotonic()) if judge is not None and config_synced(obj) else None
        if cause:
            raise TargetUnreachable(f"{what} will not be reached: {cause}; Config conditions: "
                                    f"{format_conditions(obj)}")
        return None

    def describe():
        obj = state.get("obj")
        return ("the Config does not exist" if obj is None else f"Config conditions: {format_conditions(obj)}"
                + (judge.describe_pending() if judge is not None else ""))

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
    return wait_for_config(cluster, ok, timeout, f"Config conditions {want}",
                           judge=condition_judge(f"Config {CONFIG_NAME}", expected))


def condition_judge(where: str, expected: dict[str, tuple[str, str | None]],
                    node_ca: Callable[[], str | None] | None = None) -> ConditionJudge:
    """The judge of a condition wait, with the graces of `--grace` (degraded, scheduling)."""
    return ConditionJudge(where, expected, degraded_grace=DEFAULT_GRACES.degraded,
                          scheduling_grace=DEFAULT_GRACES.scheduling, node_ca=node_ca)


def wait_for_clusteroperator(cluster: Cluster, expected: dict[str, tuple[str, str | None]], timeout: float,
                             name: str = "image-registry") -> dict:
    """expected: {type: (status, reason or None)}; a reason matches one component of the union. Fails
    (TargetUnreachable) once the ClusterOperator states a cause that keeps the target away
    (`utilities/condition_causes.py`)."""
    state = {}
    judge = condition_judge(f"ClusterOperator {name}", expected,
                            node_ca=node_ca_reader(cluster) if name == "image-registry" else None)

    def evaluate():
        obj = state["obj"] = cluster.get_cluster_object(CLUSTEROPERATOR_GVR, name)
        conds = conditions(obj)
        if all(condition_matches(conds.get(t), status, reason) for t, (status, reason) in expected.items()):
            return (obj,)
        cause = judge.failure(obj, time.monotonic())
        if cause:
            raise TargetUnreachable(f"ClusterOperator {name} {want} will not be reached: {cause}; "
                                    f"ClusterOperator conditions: {format_conditions(obj, expected)}")
        return None

    sources = [("clusteroperator", cluster.custom.list_cluster_custom_object,
                {"group": CLUSTEROPERATOR_GVR[0], "version": CLUSTEROPERATOR_GVR[1],
                 "plural": CLUSTEROPERATOR_GVR[2], "field_selector": f"metadata.name={name}"})]
    want = ", ".join(f"{t}={s}" + (f"/{r}" if r else "") for t, (s, r) in expected.items())
    return _wait_loop(sources, evaluate, timeout,
                      lambda: (f"ClusterOperator conditions: {format_conditions(state.get('obj'), expected)}"
                               + judge.describe_pending()),
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
def timestamp(value) -> float | None:
    """A Kubernetes timestamp (an RFC 3339 string, or the client's datetime) in epoch seconds; None when unset."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _pod_volumes(pod_spec: dict | None) -> dict[str, dict]:
    """name -> volume of a pod spec (or a pod template's), without the name key."""
    return {v.get("name"): {k: x for k, x in v.items() if k != "name"} for v in (pod_spec or {}).get("volumes") or []}


@dataclasses.dataclass
class Snapshot:
    """What the rollout judge looks at; plain dicts as the API serves them."""
    config: dict | None
    deployment: dict | None
    pods: list[dict]
    pvcs: list[dict]
    events: list[dict]


PERMANENT_DEGRADED = ("StorageNotConfigured", "VerificationFailed")
OPERATOR_CLAIM_ANNOTATION = "imageregistry.openshift.io"   # on the claim the operator creates itself
REGISTRY_STORAGE_VOLUME = "registry-storage"               # the Deployment's storage volume (CIRO)


@dataclasses.dataclass(frozen=True)
class Graces:
    """How long (seconds) a cause may last before it fails the rollout wait. On a real cluster these
    are transient for a while: CSI provisioners retry with back-off (ceph-csi while the cluster heals),
    vSphere attaches and re-attaches volumes in minutes (the reason CIRO raised its deadline,
    OCPBUGS-66225), Multi-Attach lasts until the old pod's volume is detached during a Recreate,
    FailedScheduling lasts while old pods terminate. A cause fails the wait only once it has PERSISTED
    for its grace (an event recurring over the window), never at first sight. `--grace NAME=SECONDS`."""
    provisioning: float = 120.0   # PVC ProvisioningFailed while the claim is not Bound
    scheduling: float = 120.0     # pod FailedScheduling while it has no node
    attach: float = 240.0         # FailedAttachVolume (Multi-Attach included) while the pod is not ready
    mount: float = 120.0          # FailedMount while the pod is not ready
    not_ready: float = 120.0      # a pod Running but not Ready (readiness probe failing), or a container
    #                               waiting in CrashLoopBackOff / ImagePullBackOff / ...
    apply_error: float = 30.0     # Config Progressing=True/Error "Unable to apply resources: ..."
    create: float = 60.0          # ReplicaSet FailedCreate (quota, admission) while replicas are missing
    settle: float = 10.0          # the Deployment settled with fewer replicas than it asks for
    degraded: float = 30.0        # a condition wait: a Degraded condition naming a cause, where the wait's
    #                               target wants it otherwise (utilities/condition_causes.py)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in dataclasses.fields(cls)]

    def with_items(self, items) -> "Graces":
        """`items`: "NAME=SECONDS" strings (`all=SECONDS` sets every grace); ValueError naming the valid
        names on a bad one."""
        values = dataclasses.asdict(self)
        for item in items:
            name, sep, raw = str(item).partition("=")
            key = name.strip().replace("-", "_")
            try:
                seconds = float(raw)
            except ValueError:
                seconds = -1.0
            if not sep or seconds < 0 or (key not in values and key != "all"):
                raise ValueError(f"--grace {item!r}: expected NAME=SECONDS (SECONDS >= 0), NAME one of "
                                 f"all, {', '.join(self.names())}")
            for k in (values if key == "all" else [key]):
                values[k] = seconds
        return dataclasses.replace(self, **values)


DEFAULT_GRACES = Graces()


def set_default_graces(graces: Graces) -> None:
    """The graces every RolloutJudge made without its own uses (conftest: `--grace`)."""
    global DEFAULT_GRACES
    DEFAULT_GRACES = graces


def _event_count(ev: dict) -> int:
    series = ev.get("series") or {}
    return max(int(ev.get("count") or 0), int(series.get("count") or 0), 1)


def _event_last(ev: dict) -> float | None:
    return timestamp((ev.get("series") or {}).get("lastObservedTime") or ev.get("lastTimestamp")
               or ev.get("eventTime") or ev.get("firstTimestamp"))


def _event_first(ev: dict) -> float | None:
    return timestamp(ev.get("firstTimestamp") or ev.get("eventTime") or ev.get("lastTimestamp"))


@dataclasses.dataclass
class _Cause:
    """One cause (an object's event reason, or a pod state) as the judge follows it."""
    text: str                 # what the cluster says, quoted
    count: int = 1            # events: times the cluster reported it (count / series.count)
    first: float | None = None  # events: firstTimestamp (epoch)
    last: float | None = None   # events: lastTimestamp / series.lastObservedTime (epoch)


@dataclasses.dataclass
class _Seen:
    since: float              # judge clock when first seen
    count: int
    last: float | None
    recurred: bool = False


def _where(kind: str | None, namespace: str | None, name: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _env(container: dict) -> dict:
    return {e.get("name"): e.get("value") for e in container.get("env") or []}


def deployment_differences(cfg: dict, dep: dict) -> list[str]:
    """Where the Deployment does something else than the Config asks for (replicas, rollout strategy,
    the storage volume), each as "<where>: expected ..., found ...". The operator derives the
    Deployment from the Config (CIRO pkg/resource/deployment.go, podtemplatespec.go)."""
    spec = cfg.get("spec") or {}
    dspec = dep.get("spec") or {}
    meta = dep.get("metadata") or {}
    name = f"Deployment {meta.get('namespace')}/{meta.get('name')}"
    out = []
    want = spec.get("replicas")
    got = dspec.get("replicas", 1)
    if want is not None and got != want:
        out.append(f"{name} spec.replicas: expected {want} (Config {CONFIG_NAME} spec.replicas), found {got}")
    want_strategy = spec.get("rolloutStrategy") or "RollingUpdate"
    got_strategy = (dspec.get("strategy") or {}).get("type") or "RollingUpdate"
    if got_strategy != want_strategy:
        out.append(f"{name} spec.strategy.type: expected {want_strategy} (Config {CONFIG_NAME} "
                   f"spec.rolloutStrategy), found {got_strategy}")
    pod_spec = (dspec.get("template") or {}).get("spec") or {}
    volumes = {v.get("name"): v for v in pod_spec.get("volumes") or []}
    vol = volumes.get(REGISTRY_STORAGE_VOLUME)
    containers = pod_spec.get("containers") or []
    env = _env(containers[0]) if containers else {}
    storage = spec.get("storage") or {}
    where = f"{name} spec.template.spec.volumes[{REGISTRY_STORAGE_VOLUME}]"
    if "emptyDir" in storage and "pvc" not in storage and "s3" not in storage:
        if not vol or "emptyDir" not in vol:
            out.append(f"{where}: expected emptyDir (Config spec.storage.emptyDir), found {_volume_kind(vol)}")
    elif "pvc" in storage and "emptyDir" not in storage and "s3" not in storage:
        claim = (storage.get("pvc") or {}).get("claim") or ""
        got_claim = ((vol or {}).get("persistentVolumeClaim") or {}).get("claimName")
        if not got_claim or (claim and got_claim != claim):
            out.append(f"{where}: expected persistentVolumeClaim {claim or '(the operator’s claim)'} "
                       f"(Config spec.storage.pvc.claim), found {_volume_kind(vol)}")
    elif "s3" in storage and "emptyDir" not in storage and "pvc" not in storage:
        if vol and ("emptyDir" in vol or "persistentVolumeClaim" in vol):
            out.append(f"{where}: expected no storage volume (Config spec.storage.s3), found {_volume_kind(vol)}")
        bucket = (storage.get("s3") or {}).get("bucket")
        if env.get("REGISTRY_STORAGE") != "s3":
            out.append(f"{name} container {containers[0].get('name') if containers else '?'} env "
                       f"REGISTRY_STORAGE: expected 's3' (Config spec.storage.s3), found "
                       f"{env.get('REGISTRY_STORAGE')!r}")
        elif bucket and env.get("REGISTRY_STORAGE_S3_BUCKET") != bucket:
            out.append(f"{name} container env REGISTRY_STORAGE_S3_BUCKET: expected {bucket!r} (Config "
                       f"spec.storage.s3.bucket), found {env.get('REGISTRY_STORAGE_S3_BUCKET')!r}")
    return out


def _volume_kind(vol: dict | None) -> str:
    if not vol:
        return "no such volume"
    if "persistentVolumeClaim" in vol:
        return f"persistentVolumeClaim {vol['persistentVolumeClaim'].get('claimName')}"
    kinds = [k for k in vol if k != "name"]
    return ", ".join(kinds) or "an empty volume"


WAITING_FAILURES = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                    "CreateContainerError", "InvalidImageName", "RunContainerError")


class RolloutJudge:
    """Stateful (to see what persists) classification of a Snapshot: done, failed, or wait.

    Fails AT ONCE on what cannot change by waiting: Config Degraded=True with a permanent reason, and a
    settled wrong state (the operator has observed the Config's generation and the Deployment does
    something else than the Config asks: replicas, strategy, storage volume).
    Fails when a cause PERSISTS for its grace (`Graces`): PVC ProvisioningFailed, pod FailedScheduling,
    FailedAttachVolume (Multi-Attach), FailedMount, pods Running but not Ready (readiness probe) or
    containers crash-looping, ReplicaSet FailedCreate, Progressing=True/Error "Unable to apply
    resources: ...", a Deployment settled with fewer replicas than it asks for. An event persists when
    it recurs over the grace (its count / series and lastTimestamp), not at first sight.
    A Deployment's ProgressDeadlineExceeded is NOT a failure: it is 60 s on 4.12-4.21 and a rollout
    that passed it can still complete (operator-facts §12.1); it is named in the timeout's message.
    """

    def __init__(self, since: float, *, apply_error_grace: float | None = None, mount_grace: float | None = None,
                 unbound_grace: float | None = None, graces: Graces | None = None):
        self.since = since                   # ignore events last seen before this (epoch seconds)
        g = graces or DEFAULT_GRACES
        overrides = {k: v for k, v in (("apply_error", apply_error_grace), ("mount", mount_grace),
                                       ("scheduling", unbound_grace)) if v is not None}
        self.graces = dataclasses.replace(g, **overrides)
        self._first_seen: dict[tuple, float] = {}
        self._seen_events: dict[tuple, _Seen] = {}
        self.pending: dict[tuple, str] = {}  # causes seen this round that do not (yet) fail the wait

    # kept for StorageRolloutJudge and callers of the earlier API
    @property
    def apply_error_grace(self) -> float:
        return self.graces.apply_error

    @property
    def mount_grace(self) -> float:
        return self.graces.mount

    def _persisting(self, key: tuple, now: float, grace: float) -> bool:
        first = self._first_seen.setdefault(key, now)
        return now - first >= grace

    def _event_persists(self, key: tuple, cause: _Cause, now: float, grace: float) -> bool:
        """The cluster reported the cause again and again over `grace`: by the event's own count and
        timestamps, or by its recurring (count / lastTimestamp growing) while the judge watched."""
        seen = self._seen_events.get(key)
        if seen is None:
            seen = self._seen_events[key] = _Seen(now, cause.count, cause.last)
        elif cause.count > seen.count or (cause.last is not None and seen.last is not None
                                          and cause.last > seen.last):
            seen.recurred = True
        if grace <= 0:
            return True
        span = (cause.last - cause.first) if cause.last is not None and cause.first is not None else 0.0
        return (cause.count >= 2 and span >= grace) or (seen.recurred and now - seen.since >= grace)

    def _fresh(self, ev: dict) -> bool:
        t = _event_last(ev)
        # event timestamps have 1 s resolution
        return t is None or t >= int(self.since)

    def _events_by_cause(self, snap: Snapshot) -> dict[tuple, _Cause]:
        """(kind, uid, reason) -> the cause, aggregated over the events about it (messages change:
        the newest one is quoted)."""
        out: dict[tuple, _Cause] = {}
        newest: dict[tuple, float] = {}
        for ev in snap.events:
            if not self._fresh(ev):
                continue
            inv = ev.get("involvedObject") or {}
            key = (inv.get("kind"), inv.get("uid"), ev.get("reason"))
            where = _where(inv.get("kind"), inv.get("namespace"), inv.get("name"))
            text = f"{where}: {ev.get('reason')}: {ev.get('message') or ''}"
            count, first, last = _event_count(ev), _event_first(ev), _event_last(ev)
            cur = out.get(key)
            if cur is None:
                out[key] = _Cause(text, count, first, last)
                newest[key] = last or 0.0
                continue
            cur.count += count
            if first is not None:
                cur.first = first if cur.first is None else min(cur.first, first)
            if last is not None:
                cur.last = last if cur.last is None else max(cur.last, last)
            if (last or 0.0) >= newest[key]:
                newest[key] = last or 0.0
                cur.text = text
        return out

    def _persisted_text(self, key: tuple, cause: _Cause, state: str, grace: float, now: float) -> str:
        span = (cause.last - cause.first) if cause.last is not None and cause.first is not None else 0.0
        seen = self._seen_events.get(key)
        if seen is not None:
            span = max(span, now - seen.since)
        return (f"{cause.text} (reported {cause.count} time(s) over {span:.0f} s, grace {grace:.0f} s; "
                f"{state})")

    def failure(self, snap: Snapshot, now: float) -> str | None:
        seen_keys: set = set()
        self.pending = {}
        try:
            return self._failure(snap, now, seen_keys)
        finally:
            for key in list(self._first_seen):
                if key not in seen_keys:
                    del self._first_seen[key]
            for key in list(self._seen_events):
                if key not in seen_keys:
                    del self._seen_events[key]

    def _failure(self, snap: Snapshot, now: float, seen_keys: set) -> str | None:
        g = self.graces
        live_pods = {p["metadata"].get("uid"): p for p in snap.pods if not p["metadata"].get("deletionTimestamp")}
        pvcs = {p["metadata"].get("uid"): p for p in snap.pvcs}
        if snap.deployment is not None:
            # Causes of the storage the Deployment left behind (a claim its template no longer mounts, a
            # pod of an older template on other storage) are not this rollout's: the old pods go once the
            # new ones are ready (a switch away from a backend that failed).
            tmpl_vols = _pod_volumes(((snap.deployment.get("spec") or {}).get("template") or {}).get("spec"))
            claims = {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in tmpl_vols.values()} - {None}
            storage = tmpl_vols.get(REGISTRY_STORAGE_VOLUME)
            if storage is not None:
                pvcs = {u: c for u, c in pvcs.items() if c["metadata"].get("name") in claims}
                live_pods = {u: p for u, p in live_pods.items()
                             if _pod_volumes(p.get("spec")).get(REGISTRY_STORAGE_VOLUME, storage) == storage}
        causes = self._events_by_cause(snap)
        dep = snap.deployment
        dep_incomplete = dep is not None and not _deployment_complete(dep)

        # --- permanent: fail at once -----------------------------------------------------------
        cfg = snap.config
        synced = cfg is not None and config_synced(cfg)
        conds = conditions(cfg) if cfg is not None else {}
        if synced:
            deg = conds.get("Degraded") or {}
            if deg.get("status") == "True" and deg.get("reason") in PERMANENT_DEGRADED:
                return (f"Config {CONFIG_NAME}: Degraded=True: {deg.get('reason')}: {deg.get('message')}")
        prog = conds.get("Progressing") or {}
        apply_error = (prog.get("status") == "True" and prog.get("reason") == "Error"
                       and (prog.get("message") or "").startswith("Unable to apply resources"))
        if (synced and not apply_error and dep is not None and not dep["metadata"].get("deletionTimestamp")
                and (cfg.get("spec") or {}).get("managementState") == "Managed"):
            diffs = deployment_differences(cfg, dep)
            if diffs:
                return (f"the operator has observed generation {cfg['metadata'].get('generation')} of Config "
                        f"{CONFIG_NAME}, and the Deployment it made does not do what the Config asks: "
                        + "; ".join(diffs))

        # --- transient until they persist -------------------------------------------------------
        if not synced:
            return None     # the operator has not acted on this spec yet: what the pods say is the old spec's
        # Claims first: an unprovisioned claim is the root of its pod's FailedScheduling / FailedMount.
        order = {"PersistentVolumeClaim": 0, "ReplicaSet": 1, "Pod": 2}
        due: list[str] = []
        for (kind, uid, reason), cause in sorted(causes.items(), key=lambda kv: order.get(kv[0][0], 3)):
            key = ("event", kind, uid, reason)
            grace, state, by_state = None, None, False
            if kind == "PersistentVolumeClaim" and uid in pvcs and reason == "ProvisioningFailed":
                phase = (pvcs[uid].get("status") or {}).get("phase")
                if phase != "Bound":
                    grace, state = g.provisioning, f"the claim is still {phase or 'Pending'}, expected Bound"
            elif kind == "Pod" and uid in live_pods:
                pod = live_pods[uid]
                node = (pod.get("spec") or {}).get("nodeName")
                if reason == "FailedScheduling" and not node:
                    grace, state = g.scheduling, "the pod is still not scheduled to a node"
                    # kube-scheduler does not report again while nothing changes: a pod it found
                    # unschedulable waits in its unschedulable queue (up to 5 minutes) for a cluster
                    # event. The pod staying unscheduled is the persisting state.
                    by_state = pod_unschedulable(pod)
                elif reason == "FailedAttachVolume" and not _pod_ready(pod):
                    grace, state = g.attach, f"the pod on node {node} is still not ready"
                elif reason == "FailedMount" and not _pod_ready(pod):
                    grace, state = g.mount, f"the pod on node {node} is still not ready"
            elif kind == "ReplicaSet" and reason == "FailedCreate" and dep_incomplete:
                st = dep.get("status") or {}
                grace, state = g.create, (f"Deployment status.replicas {st.get('replicas') or 0}, expected "
                                          f"spec.replicas {(dep.get('spec') or {}).get('replicas', 1)}")
            if grace is None:
                continue
            seen_keys.add(key)
            if by_state:
                seen_keys.add(("state",) + key)
            persists = self._event_persists(key, cause, now, grace)
            if by_state and self._persisting(("state",) + key, now, grace):
                persists = True
            if persists:
                due.append(self._persisted_text(key, cause, state, grace, now))
            else:
                self.pending[key] = f"{cause.text} ({cause.count} time(s) so far; {state})"
        if due:
            context = [t for k, t in self.pending.items() if k[1] == "PersistentVolumeClaim"]
            return "; ".join(due[:1] + context + due[1:])

        for uid, pod in live_pods.items():
            bad = _pod_trouble(pod)
            if bad is None:
                continue
            key = ("pod", uid)
            seen_keys.add(key)
            name = pod["metadata"].get("name")
            evidence = [c.text for (kind, u, reason), c in causes.items()
                        if kind == "Pod" and u == uid and reason in ("Unhealthy", "BackOff", "Failed")]
            text = f"Pod {REGISTRY_NAMESPACE}/{name}: {bad}" + (f"; {'; '.join(evidence)}" if evidence else "")
            if self._persisting(key, now, g.not_ready):
                return f"{text} (for {now - self._first_seen[key]:.0f} s, grace {g.not_ready:.0f} s)"
            self.pending[key] = text

        if synced and apply_error:
            key = ("apply", prog.get("message"))
            seen_keys.add(key)
            if self._persisting(key, now, g.apply_error):
                return (f"Config {CONFIG_NAME}: Progressing=True: Error: {prog.get('message')}"
                        + self._claim_note(snap, prog.get("message") or ""))
            self.pending[key] = f"Config {CONFIG_NAME}: Progressing=True: Error: {prog.get('message')}"

        short = _replica_shortfall(dep, list(live_pods.values()))
        if short:
            key = ("short",)
            seen_keys.add(key)
            creates = [c.text for (kind, _u, reason), c in causes.items()
                       if kind == "ReplicaSet" and reason == "FailedCreate"]
            text = short + (f"; {'; '.join(creates)}" if creates else "")
            if self._persisting(key, now, g.settle):
                return f"{text} (unchanged for {now - self._first_seen[key]:.0f} s)"
            self.pending[key] = text
        return None

    @staticmethod
    def _claim_note(snap: Snapshot, message: str) -> str:
        """An operator that refuses the claim it created itself is no user's RWO claim: say so."""
        if "ReadWriteOnce" not in message and "access mode" not in message:
            return ""
        claim = ((((snap.config or {}).get("spec") or {}).get("storage") or {}).get("pvc") or {}).get("claim") or ""
        for pvc in snap.pvcs:
            meta = pvc.get("metadata") or {}
            own = (meta.get("annotations") or {}).get(OPERATOR_CLAIM_ANNOTATION) == "true"
            if own and (not claim or meta.get("name") == claim):
                modes = (pvc.get("spec") or {}).get("accessModes")
                return (f" — the claim is the operator's own: PVC {REGISTRY_NAMESPACE}/{meta.get('name')} "
                        f"(annotation {OPERATOR_CLAIM_ANNOTATION}=true, created by the operator for "
                        f"spec.storage.pvc.claim left empty) has spec.accessModes {modes}; the operator "
                        "refuses the claim it created itself (expected ReadWriteMany), the user asked for "
                        "no ReadWriteOnce claim")
        return ""

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

    def describe(self, snap: Snapshot | None) -> str:
        """The state for a timeout message: the snapshot, the causes seen so far (not yet persisting
        for their grace) and a passed progress deadline."""
        want = ((snap.config or {}).get("spec") or {}).get("replicas") if snap else None
        parts = [f"expected Deployment {REGISTRY_NAMESPACE}/{REGISTRY_DEPLOYMENT} spec.replicas = status.replicas "
                 f"= updatedReplicas = readyReplicas = availableReplicas = Config {CONFIG_NAME} spec.replicas "
                 f"({want}) and Config Available=True/Ready, Progressing=False; found: {describe_snapshot(snap)}"]
        if self.pending:
            parts.append("seen, not yet failing: " + "; ".join(self.pending.values()))
        dep = snap.deployment if snap else None
        for c in ((dep or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                parts.append(f"the Deployment passed its progressDeadlineSeconds "
                             f"({(dep.get('spec') or {}).get('progressDeadlineSeconds')}): {c.get('message')} "
                             "(not a failure by itself: the rollout may still complete)")
        return "; ".join(parts)


def _deployment_complete(dep: dict) -> bool:
    st = dep.get("status") or {}
    want = (dep.get("spec") or {}).get("replicas", 1)
    return ((st.get("observedGeneration") or 0) >= (dep["metadata"].get("generation") or 0)
            and all((st.get(k) or 0) == want for k in ("replicas", "updatedReplicas", "availableReplicas")))


def _pod_trouble(pod: dict) -> str | None:
    """What is wrong with a pod that runs (or should), or None: Running but not Ready, or a container
    waiting for a failure reason (CrashLoopBackOff, ImagePullBackOff, ...)."""
    st = pod.get("status") or {}
    if not (pod.get("spec") or {}).get("nodeName"):
        return None
    for cs in st.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_FAILURES:
            last = ((cs.get("lastState") or {}).get("terminated") or {})
            return (f"container {cs.get('name')} is {waiting.get('reason')}, expected running and ready "
                    f"(restartCount {cs.get('restartCount') or 0}"
                    + (f", last exit code {last.get('exitCode')}" if last else "") + ")"
                    + (f": {waiting.get('message')}" if waiting.get("message") else ""))
    if st.get("phase") == "Running" and not _pod_ready(pod):
        ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
        return (f"Running on node {(pod.get('spec') or {}).get('nodeName')} but not Ready "
                f"(status.conditions[Ready]={ready.get('status')}/{ready.get('reason') or ''}"
                + (f": {ready.get('message')}" if ready.get("message") else "") + "), expected Ready")
    return None


def _replica_shortfall(dep: dict | None, live_pods: list[dict]) -> str | None:
    """The Deployment has observed its spec and settled (every pod it has is ready, none pending or
    terminating) with fewer replicas than spec.replicas."""
    if dep is None or dep["metadata"].get("deletionTimestamp"):
        return None
    st = dep.get("status") or {}
    want = (dep.get("spec") or {}).get("replicas", 1)
    if (st.get("observedGeneration") or 0) < (dep["metadata"].get("generation") or 0):
        return None
    have = st.get("replicas") or 0
    if have == 0 or have >= want or len(live_pods) != have or not all(_pod_ready(p) for p in live_pods):
        return None
    if (st.get("availableReplicas") or 0) != have:
        return None
    meta = dep["metadata"]
    return (f"Deployment {meta.get('namespace')}/{meta.get('name')}: status.replicas {have}, expected "
            f"spec.replicas {want}: the Deployment settled with fewer pods than it asks for "
            f"(ready pods: {sorted(p['metadata'].get('name') for p in live_pods)})")


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
    """The Config is read FIRST: when it says the operator observed its generation, the Deployment read
    after it is at least what the operator applied for that generation."""
    ac = cluster.api_client
    config = cluster.registry_config()
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, REGISTRY_DEPLOYMENT, REGISTRY_NAMESPACE)
    pods = kube.call(cluster.core.list_namespaced_pod, REGISTRY_NAMESPACE, label_selector=REGISTRY_POD_SELECTOR)
    pvcs = kube.call(cluster.core.list_namespaced_persistent_volume_claim, REGISTRY_NAMESPACE)
    events = kube.call(cluster.core.list_namespaced_event, REGISTRY_NAMESPACE)
    return Snapshot(config=config, deployment=_plain(ac, dep) if dep else None,
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
                      lambda: judge.describe(state.get("snap")), "registry rollout")[0]


def wait_for_pods_replaced(cluster: Cluster, old_uids: set[str], timeout: float,
                           judge: RolloutJudge | None = None) -> Snapshot:
    """After deleting registry pods: wait until none of `old_uids` remains and the rollout is complete."""
    judge = judge or RolloutJudge(time.time() - 1)
    state: dict[str, Snapshot] = {}

    def evaluate():
        snap = state["snap"] = read_snapshot(cluster)
        done = judge.judge(snap, time.monotonic()) == "done"
        remaining = [p for p in snap.pods if p["metadata"]["uid"] in old_uids]
        return (snap,) if done and not remaining else None

    return _wait_loop(rollout_sources(cluster), evaluate, timeout,
                      lambda: judge.describe(state.get("snap")), "registry pods to be replaced")[0]


# ---------------------------------------------------------------------------------------------
# Storage set-ups (issue 3)
# ---------------------------------------------------------------------------------------------
class SetupFailed(AssertionError):
    """The cluster says why a set-up step (a claim, a bucket claim) cannot succeed."""


def wait_until_gone(read: Callable[[], Any], what: str, timeout: float) -> None:
    """Poll `read()` (None when the object is gone) with a short back-off until it returns None; the
    timeout is cut to what is left of the test's deadline (`utilities/deadline.py`)."""
    timeout, cut = deadline.bounded(timeout)
    end = time.monotonic() + timeout
    delay = 0.05
    while True:
        obj = read()
        if obj is None:
            return
        if time.monotonic() >= end:
            meta = obj.get("metadata") if isinstance(obj, dict) else getattr(obj, "metadata", None)
            fin = (meta.get("finalizers") if isinstance(meta, dict) else getattr(meta, "finalizers", None)) or []
            raise (deadline.Exhausted if cut else WaitTimeout)(
                f"{what}: still there after {timeout:.0f}s{cut} (finalizers: {fin})")
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
            t = timestamp(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp"))
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
