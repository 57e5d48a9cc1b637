"""Workload controllers: Deployment -> ReplicaSets -> Pods, and DaemonSets.

They follow the Kubernetes controllers in the essentials (pkg/controller/deployment, replicaset,
daemon): a ReplicaSet per pod template named `<deployment>-<pod-template-hash>`, RollingUpdate with
maxSurge/maxUnavailable, Recreate, status and the `Available`/`Progressing` conditions with the
Kubernetes reasons and messages, `progressDeadlineSeconds`.

This module also holds the small pieces the other workload controllers (scheduler, provisioner,
service CA) share: the work queue, the fault-knob watcher, label selectors and time stamps.
"""
from __future__ import annotations

import asyncio
import copy
import datetime
import json
import logging
import secrets
from typing import Awaitable, Callable

from localcluster.client import ApiError, Informer, path
from localcluster.controllers.events import record
from localcluster.settings import FAULTS_CONFIGMAP, FAULTS_NAMESPACE

log = logging.getLogger("localcluster.workloads")

# The alphabet Kubernetes uses for generated names and for pod-template-hash (no vowels, no 0/1/3).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
TEMPLATE_HASH = "pod-template-hash"


# ---------------------------------------------------------------------------------------- helpers
def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def timestamp(t: datetime.datetime | None = None) -> str:
    """RFC 3339 with seconds, as metav1.Time is serialized."""
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(n))


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A metav1.LabelSelector against labels. An empty selector matches everything; None nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def match_labels_string(selector: dict | None) -> str | None:
    """The matchLabels part as a label-selector query string (expressions are filtered locally)."""
    ml = (selector or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(ml.items())) or None


def controller_ref(obj: dict) -> dict | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj: dict, owner: dict) -> bool:
    ref = controller_ref(obj)
    return bool(ref) and ref.get("uid") == owner["metadata"].get("uid")


def owner_reference(owner: dict) -> dict:
    return {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_terminating(obj: dict) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def pod_is_active(pod: dict) -> bool:
    """Counts for a controller: not being deleted, not finished (controller.FilterActivePods)."""
    return not is_terminating(pod) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def pod_condition(pod: dict, type_: str) -> dict | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def pod_is_ready(pod: dict) -> bool:
    c = pod_condition(pod, "Ready")
    return bool(c) and c.get("status") == "True"


def pod_is_available(pod: dict, min_ready_seconds: int = 0) -> bool:
    if not pod_is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time(pod_condition(pod, "Ready").get("lastTransitionTime"))
    return since is None or now() - since >= datetime.timedelta(seconds=min_ready_seconds)


def tolerates(tolerations: list | None, taint: dict) -> bool:
    """v1.Toleration.ToleratesTaint."""
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(tolerations: list | None, node: dict) -> dict | None:
    """The first NoSchedule/NoExecute taint of the node the pod does not tolerate."""
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, taint):
            return taint
    return None


def node_selector_matches(pod_spec: dict, node: dict) -> bool:
    """spec.nodeSelector and required node affinity (In/NotIn/Exists/DoesNotExist on labels)."""
    labels = node.get("metadata", {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms") or []
    if terms:
        return any(selector_matches({"matchExpressions": t.get("matchExpressions") or []}, labels)
                   for t in terms)
    return True


def int_or_percent(value, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if s.endswith("%"):
        pct = int(s[:-1])
        num = pct * total
        return -(-num // 100) if round_up else num // 100
    return int(s)


def resolve_fenceposts(max_surge, max_unavailable, replicas: int) -> tuple[int, int]:
    """deploymentutil.ResolveFenceposts: surge rounds up, unavailable down; never both 0."""
    surge = int_or_percent(max_surge, replicas, True)
    unavailable = int_or_percent(max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def rolling_params(deployment: dict) -> tuple[int, int]:
    spec = deployment.get("spec", {})
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"),
                              int(spec.get("replicas", 1)))


def is_recreate(deployment: dict) -> bool:
    return (deployment.get("spec", {}).get("strategy") or {}).get("type") == "Recreate"


def max_unavailable(deployment: dict) -> int:
    """deploymentutil.MaxUnavailable: 0 for Recreate, capped at replicas."""
    replicas = int(deployment.get("spec", {}).get("replicas", 1))
    if is_recreate(deployment) or replicas == 0:
        return 0
    _, unavailable = rolling_params(deployment)
    return min(unavailable, replicas)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_without_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    labels = t.setdefault("metadata", {}).get("labels")
    if labels:
        labels.pop(TEMPLATE_HASH, None)
    return t


def pod_template_hash(template: dict, collision_count: int = 0) -> str:
    """A stable short hash of the pod template (FNV-32a, encoded like rand.SafeEncodeString)."""
    data = json.dumps(template_without_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = _fnv32a(data)
    out = ""
    for ch in str(h):
        out += NAME_ALPHABET[ord(ch) % len(NAME_ALPHABET)]
    return out[:10]


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def same_template(a: dict, b: dict) -> bool:
    return _canonical(template_without_hash(a)) == _canonical(template_without_hash(b))


def set_condition(conditions: list, new: dict) -> list:
    """deploymentutil.SetDeploymentCondition: same status+reason -> unchanged; same status keeps
    lastTransitionTime."""
    out = [c for c in conditions if c.get("type") != new["type"]]
    for c in conditions:
        if c.get("type") == new["type"]:
            if c.get("status") == new["status"] and c.get("reason") == new["reason"]:
                return list(conditions)
            if c.get("status") == new["status"]:
                new = dict(new, lastTransitionTime=c.get("lastTransitionTime", new["lastTransitionTime"]))
    out.append(new)
    return out


def get_condition(conditions: list | None, type_: str) -> dict | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def new_condition(type_: str, status: str, reason: str, message: str) -> dict:
    t = timestamp()
    return {"type": type_, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


# ---------------------------------------------------------------------------------------- machinery
class WorkQueue:
    """Keys to sync, deduplicated; a key being processed is re-queued if added meanwhile."""

    def __init__(self):
        self._queue: asyncio.Queue = asyncio.Queue()
        self._pending: set = set()
        self._active: set = set()
        self._dirty: set = set()
        self._timers: dict = {}
        self.failures: dict = {}

    def add(self, key) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._queue.put_nowait(key)

    def add_after(self, key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        when = loop.time() + delay
        if old is not None and not old.cancelled() and old.when() <= when:
            return
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self):
        key = await self._queue.get()
        self._pending.discard(key)
        self._active.add(key)
        return key

    def done(self, key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()


class Faults:
    """The fault knobs: configmap localcluster-system/localcluster-faults, watched."""

    def __init__(self, client, on_change: Callable[[], None] | None = None, resync: float = 30.0):
        self._on_change = on_change
        self.informer = Informer(client, path("v1", "configmaps", FAULTS_NAMESPACE), self._changed,
                                 resync=resync)

    def _changed(self, _type, obj) -> None:
        if obj.get("metadata", {}).get("name") == FAULTS_CONFIGMAP and self._on_change:
            self._on_change()

    def get(self, key: str, default: str = "") -> str:
        cm = self.informer.get(FAULTS_NAMESPACE, FAULTS_CONFIGMAP)
        return ((cm or {}).get("data") or {}).get(key, default)

    def enabled(self, key: str) -> bool:
        return self.get(key).strip().lower() == "true"


class Controller:
    """Informers + a work queue + workers. Subclasses set up informers and implement sync(key)."""

    component = "controller"
    workers = 1

    def __init__(self, client, settings, **extra):
        self.client = client
        self.settings = settings
        self.extra = extra
        self.queue = WorkQueue()
        self.informers: list[Informer] = []
        self.faults = Faults(client, self.on_faults_changed, resync=settings.resync_seconds)

    def informer(self, p: str, on_change: Callable[[str, dict], Awaitable | None]) -> Informer:
        inf = Informer(self.client, p, on_change, resync=self.settings.resync_seconds)
        self.informers.append(inf)
        return inf

    def on_faults_changed(self) -> None:
        self.enqueue_all()

    def enqueue_all(self) -> None:  # pragma: no cover - overridden
        pass

    async def sync(self, key) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def run(self) -> None:
        tasks = [asyncio.create_task(inf.run()) for inf in self.informers + [self.faults.informer]]
        try:
            for inf in self.informers + [self.faults.informer]:
                waiter = asyncio.ensure_future(inf.synced.wait())
                done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    for t in tasks:
                        if t.done() and t.exception():
                            raise t.exception()
                    await inf.synced.wait()
            self.enqueue_all()
            workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
            await asyncio.gather(*workers, *tasks)
        finally:
            self.queue.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.queue.failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                n = self.queue.failures[key] = self.queue.failures.get(key, 0) + 1
                if e.status != 409 and n > 3:
                    log.warning("%s: sync %s failed: %s", self.component, key, e)
                self.queue.add_after(key, 0.05 if e.status == 409 else min(5.0, 0.1 * 2 ** n))
            except Exception:  # noqa: BLE001
                n = self.queue.failures[key] = self.queue.failures.get(key, 0) + 1
                log.exception("%s: sync %s failed", self.component, key)
                self.queue.add_after(key, min(5.0, 0.1 * 2 ** n))
            finally:
                self.queue.done(key)
            # A sync that does not await (nothing to write) must still let the loop run.
            await asyncio.sleep(0)

    async def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        await record(self.client, obj, type_, reason, message, self.component)


def _key(obj: dict) -> tuple[str, str]:
    m = obj.get("metadata", {})
    return (m.get("namespace"), m.get("name"))


async def delete_pod(client, pod: dict) -> None:
    """DELETE with the pod's grace period; the kubelet finishes the deletion."""
    m = pod["metadata"]
    grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
    try:
        await client.delete(path("v1", "pods", m["namespace"], m["name"]),
                            grace_period_seconds=grace)
    except ApiError as e:
        if e.status != 404:
            raise


def pod_from_template(owner: dict, template: dict, name: str) -> dict:
    tmeta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": dict(tmeta.get("annotations") or {}),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


# ---------------------------------------------------------------------------------------- ReplicaSet
class ReplicaSetController(Controller):
    """Keeps `spec.replicas` active pods per ReplicaSet; writes its status."""

    component = "replicaset-controller"

    def __init__(self, client, settings, **extra):
        super().__init__(client, settings, **extra)
        self.rs = self.informer(path("apps/v1", "replicasets"), self._on_rs)
        self.pods = self.informer(path("v1", "pods"), self._on_pod)
        self.deployments = self.informer(path("apps/v1", "deployments"), self._on_deployment)

    def _on_rs(self, _type, obj):
        self.queue.add(("rs",) + _key(obj))

    def _on_deployment(self, _type, obj):
        ns = obj["metadata"].get("namespace")
        for rs in self.rs.items():
            if rs["metadata"].get("namespace") == ns and owned_by(rs, obj):
                self.queue.add(("rs",) + _key(rs))

    def _on_pod(self, _type, obj):
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "ReplicaSet":
            ns = obj["metadata"].get("namespace")
            self.queue.add(("rs", ns, ref.get("name")))
            rs = self.rs.get(ns, ref.get("name"))
            if (rs is None or rs["metadata"].get("uid") != ref.get("uid")) and not is_terminating(obj):
                self.queue.add_after(("gc",) + _key(obj), 0.2)

    def enqueue_all(self):
        for rs in self.rs.items():
            self.queue.add(("rs",) + _key(rs))

    async def sync(self, key):
        if key[0] == "gc":
            await self._gc_pod(key[1], key[2])
        else:
            await self._sync_rs(key[1], key[2])

    async def _gc_pod(self, ns, name):
        """Pods whose controlling ReplicaSet no longer exists are deleted (garbage collection)."""
        pod = self.pods.get(ns, name)
        if pod is None or is_terminating(pod):
            return
        ref = controller_ref(pod)
        try:
            rs = await self.client.get(path("apps/v1", "replicasets", ns, ref["name"]))
            if rs["metadata"].get("uid") == ref.get("uid"):
                return
        except ApiError as e:
            if e.status != 404:
                raise
        await delete_pod(self.client, pod)

    def _pod_quota(self) -> int | None:
        raw = self.faults.get("deployment.maxPodsPerReplicaSet").strip()
        try:
            return max(0, int(raw)) if raw else None
        except ValueError:
            return None

    def _stalled(self, rs: dict) -> bool:
        """deployment.stallRollout: no pods for the newest ReplicaSet of a Deployment."""
        if not self.faults.enabled("deployment.stallRollout"):
            return False
        ref = controller_ref(rs)
        if not ref or ref.get("kind") != "Deployment":
            return False
        ns = rs["metadata"]["namespace"]
        mine = int(rs["metadata"].get("annotations", {}).get(REVISION, "0") or 0)
        for other in self.rs.items():
            if other["metadata"].get("namespace") != ns:
                continue
            oref = controller_ref(other)
            if oref and oref.get("uid") == ref.get("uid"):
                if int(other["metadata"].get("annotations", {}).get(REVISION, "0") or 0) > mine:
                    return False
        return True

    async def _sync_rs(self, ns, name):
        rs = self.rs.get(ns, name)
        if rs is None or is_terminating(rs):
            return
        selector = rs["spec"].get("selector") or {}
        listed = await self.client.list(path("v1", "pods", ns), label_selector=match_labels_string(selector))
        pods = [p for p in listed.get("items", [])
                if owned_by(p, rs) and selector_matches(selector, p["metadata"].get("labels"))]
        active = [p for p in pods if pod_is_active(p)]
        want = int(rs["spec"].get("replicas", 1))
        diff = len(active) - want
        quota = self._pod_quota()
        if diff < 0 and not self._stalled(rs) and quota is not None and len(active) - diff > quota:
            # Fault knob deployment.maxPodsPerReplicaSet: creations past N are refused as a ResourceQuota
            # refuses them (the Deployment settles with fewer pods than it asks for); retried.
            diff = min(0, len(active) - quota)
            if diff == 0:
                await self.event(rs, "Warning", "FailedCreate",
                                 f'Error creating: pods "{name}-{random_suffix()}" is forbidden: exceeded quota: '
                                 f"localcluster-pods, requested: pods=1, used: pods={len(active)}, "
                                 f"limited: pods={quota}")
            self.queue.add_after(("rs", ns, name), 2.0)
        if diff < 0 and not self._stalled(rs):
            template = rs["spec"].get("template") or {}
            for _ in range(-diff):
                for _attempt in range(5):
                    pod = pod_from_template(rs, template, f"{name}-{random_suffix()}")
                    try:
                        created = await self.client.create(path("v1", "pods", ns), pod)
                    except ApiError as e:
                        if e.status == 409:
                            continue
                        await self.event(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
                        raise
                    active.append(created)
                    await self.event(rs, "Normal", "SuccessfulCreate",
                                     f"Created pod: {created['metadata']['name']}")
                    break
        elif diff > 0:
            for pod in sorted(active, key=_deletion_rank)[:diff]:
                await delete_pod(self.client, pod)
                active.remove(pod)
                await self.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        await self._write_status(rs, active)

    async def _write_status(self, rs: dict, active: list) -> None:
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(rs["spec"].get("minReadySeconds", 0) or 0)
        status = dict(rs.get("status") or {})
        new = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active
                if all(p["metadata"].get("labels", {}).get(k) == v for k, v in template_labels.items())),
            "readyReplicas": sum(1 for p in active if pod_is_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_is_available(p, min_ready)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if all(status.get(k, 0) == v for k, v in new.items()):
            return
        ns, name = _key(rs)
        await self.client.patch(path("apps/v1", "replicasets", ns, name, "status"), {"status": new})
        if min_ready and new["readyReplicas"] != new["availableReplicas"]:
            self.queue.add_after(("rs", ns, name), min_ready)


def _deletion_rank(pod: dict):
    """controller.ActivePods ordering: unscheduled, pending, not ready, newest first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod.get("status", {}).get("phase"), 0)
    created = pod["metadata"].get("creationTimestamp") or ""
    return (
        1 if pod.get("spec", {}).get("nodeName") else 0,
        phase_rank,
        1 if pod_is_ready(pod) else 0,
        # newer pods first: invert the timestamp order
        "".join(chr(0x10FFFF - ord(c)) for c in created),
    )


# ---------------------------------------------------------------------------------------- Deployment
class DeploymentController(Controller):
    component = "deployment-controller"

    def __init__(self, client, settings, **extra):
        super().__init__(client, settings, **extra)
        self.deployments = self.informer(path("apps/v1", "deployments"), self._on_deployment)
        self.rs = self.informer(path("apps/v1", "replicasets"), self._on_rs)
        self.pods = self.informer(path("v1", "pods"), self._on_pod)

    def _on_deployment(self, _type, obj):
        self.queue.add(_key(obj))

    def _on_rs(self, _type, obj):
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "Deployment":
            self.queue.add((obj["metadata"].get("namespace"), ref.get("name")))

    def _on_pod(self, type_, obj):
        # Recreate waits for old pods to be gone: a deleted pod may unblock it.
        if type_ != "DELETED":
            return
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.rs.get(obj["metadata"].get("namespace"), ref.get("name"))
            if rs is not None:
                self._on_rs("MODIFIED", rs)

    def enqueue_all(self):
        for d in self.deployments.items():
            self.queue.add(_key(d))

    def _replica_sets(self, d: dict) -> list[dict]:
        ns = d["metadata"]["namespace"]
        return [rs for rs in self.rs.items()
                if rs["metadata"].get("namespace") == ns and owned_by(rs, d) and not is_terminating(rs)]

    async def sync(self, key):
        ns, name = key
        d = self.deployments.get(ns, name)
        if d is None or is_terminating(d):
            return
        d = copy.deepcopy(d)
        d.setdefault("status", {})
        rss = self._replica_sets(d)
        template = d["spec"].get("template") or {}
        new_rs = next((rs for rs in sorted(rss, key=_created) if same_template(rs["spec"]["template"], template)),
                      None)
        old_rss = [rs for rs in rss if rs is not new_rs]
        conditions = list(d["status"].get("conditions") or [])

        if d["spec"].get("paused"):
            await self._write_status(d, new_rs, rss, conditions)
            return

        if new_rs is not None:
            new_rs, conditions = await self._sync_revision(d, new_rs, old_rss, conditions)

        if is_recreate(d):
            new_rs, conditions = await self._recreate(d, new_rs, old_rss, conditions)
        else:
            new_rs, conditions = await self._rolling(d, new_rs, old_rss, conditions)
        rss = [rs for rs in old_rss] + ([new_rs] if new_rs is not None else [])
        await self._write_status(d, new_rs, rss, conditions)

    # -- revisions and new ReplicaSet
    def _next_revision(self, old_rss: list) -> int:
        return max([int(rs["metadata"].get("annotations", {}).get(REVISION, "0") or 0) for rs in old_rss] + [0]) + 1

    async def _sync_revision(self, d, new_rs, old_rss, conditions):
        """An existing new ReplicaSet: keep it the newest revision; 'Found new replica set'."""
        ann = new_rs["metadata"].get("annotations") or {}
        revision = int(ann.get(REVISION, "0") or 0)
        max_old = max([int(rs["metadata"].get("annotations", {}).get(REVISION, "0") or 0) for rs in old_rss] + [0])
        if revision <= max_old:
            new_rs = await self._patch_rs(new_rs, {"metadata": {"annotations": {REVISION: str(max_old + 1)}}})
        if d["spec"].get("progressDeadlineSeconds") is not None and get_condition(conditions, "Progressing") is None:
            conditions = set_condition(conditions, new_condition(
                "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{new_rs["metadata"]["name"]}"'))
        return new_rs, conditions

    async def _create_new_rs(self, d, old_rss, replicas: int, conditions):
        ns = d["metadata"]["namespace"]
        template = copy.deepcopy(d["spec"].get("template") or {})
        h = pod_template_hash(template, int(d["status"].get("collisionCount", 0) or 0))
        template.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH] = h
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = h
        name = f"{d['metadata']['name']}-{h}"
        surge = rolling_params(d)[0] if not is_recreate(d) else 0
        spec_replicas = int(d["spec"].get("replicas", 1))
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION: str(self._next_revision(old_rss)),
                    DESIRED_REPLICAS: str(spec_replicas),
                    MAX_REPLICAS: str(spec_replicas + surge),
                },
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(d["spec"].get("minReadySeconds", 0) or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            rs = await self.client.create(path("apps/v1", "replicasets", ns), body)
        except ApiError as e:
            if e.status != 409:
                raise
            rs = await self.client.get(path("apps/v1", "replicasets", ns, name))
            if not owned_by(rs, d) or not same_template(rs["spec"]["template"], d["spec"]["template"]):
                # A hash collision: bump collisionCount and try again on the next sync.
                await self.client.patch(
                    path("apps/v1", "deployments", ns, d["metadata"]["name"], "status"),
                    {"status": {"collisionCount": int(d["status"].get("collisionCount", 0) or 0) + 1}})
                raise
            return rs, conditions
        if replicas > 0:
            await self.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}")
        if d["spec"].get("progressDeadlineSeconds") is not None:
            conditions = set_condition(conditions, new_condition(
                "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"'))
        return rs, conditions

    async def _patch_rs(self, rs: dict, body: dict) -> dict:
        ns, name = _key(rs)
        return await self.client.patch(path("apps/v1", "replicasets", ns, name), body)

    async def _scale(self, d, rs: dict, replicas: int) -> dict:
        current = int(rs["spec"].get("replicas", 0))
        spec_replicas = int(d["spec"].get("replicas", 1))
        surge = rolling_params(d)[0] if not is_recreate(d) else 0
        ann = rs["metadata"].get("annotations") or {}
        want_ann = {DESIRED_REPLICAS: str(spec_replicas), MAX_REPLICAS: str(spec_replicas + surge)}
        if current == replicas and all(ann.get(k) == v for k, v in want_ann.items()):
            return rs
        rs = await self._patch_rs(rs, {"metadata": {"annotations": want_ann}, "spec": {"replicas": replicas}})
        if current != replicas:
            word = "up" if replicas > current else "down"
            await self.event(d, "Normal", "ScalingReplicaSet",
                             f"Scaled {word} replica set {rs['metadata']['name']} to {replicas}")
        return rs

    # -- Recreate
    async def _recreate(self, d, new_rs, old_rss, conditions):
        active_old = [rs for rs in old_rss if int(rs["spec"].get("replicas", 0)) > 0]
        for i, rs in enumerate(old_rss):
            if int(rs["spec"].get("replicas", 0)) > 0:
                old_rss[i] = await self._scale(d, rs, 0)
        if active_old:
            return new_rs, conditions
        # Wait until every pod of the old ReplicaSets is gone (terminating ones included).
        ns = d["metadata"]["namespace"]
        if old_rss:
            listed = await self.client.list(path("v1", "pods", ns),
                                            label_selector=match_labels_string(d["spec"].get("selector")))
            old_uids = {rs["metadata"]["uid"] for rs in old_rss}
            for p in listed.get("items", []):
                ref = controller_ref(p)
                if ref and ref.get("uid") in old_uids and p.get("status", {}).get("phase") not in (
                        "Succeeded", "Failed"):
                    return new_rs, conditions
        spec_replicas = int(d["spec"].get("replicas", 1))
        if new_rs is None:
            new_rs, conditions = await self._create_new_rs(d, old_rss, spec_replicas, conditions)
        else:
            new_rs = await self._scale(d, new_rs, spec_replicas)
        return new_rs, conditions

    # -- RollingUpdate
    async def _rolling(self, d, new_rs, old_rss, conditions):
        spec_replicas = int(d["spec"].get("replicas", 1))
        surge, _ = rolling_params(d)
        if new_rs is None:
            current = sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
            max_total = spec_replicas + surge
            want = 0 if current >= max_total else min(max_total - current, spec_replicas)
            new_rs, conditions = await self._create_new_rs(d, old_rss, want, conditions)
        else:
            new_replicas = int(new_rs["spec"].get("replicas", 0))
            if new_replicas > spec_replicas:
                new_rs = await self._scale(d, new_rs, spec_replicas)
            elif new_replicas < spec_replicas:
                current = new_replicas + sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
                max_total = spec_replicas + surge
                if current < max_total:
                    want = min(new_replicas + max_total - current, spec_replicas)
                    new_rs = await self._scale(d, new_rs, want)
        await self._reconcile_old(d, new_rs, old_rss)
        return new_rs, conditions

    async def _reconcile_old(self, d, new_rs, old_rss):
        old_count = sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
        if old_count == 0:
            return
        spec_replicas = int(d["spec"].get("replicas", 1))
        all_count = old_count + int(new_rs["spec"].get("replicas", 0))
        min_available = spec_replicas - max_unavailable(d)
        new_unavailable = int(new_rs["spec"].get("replicas", 0)) - int(
            (new_rs.get("status") or {}).get("availableReplicas", 0))
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # First, old replicas that are not available (cleanupUnhealthyReplicas).
        old_sorted = sorted(old_rss, key=_created)
        total_scaled = 0
        for i, rs in enumerate(old_sorted):
            if total_scaled >= max_scaled_down:
                break
            replicas = int(rs["spec"].get("replicas", 0))
            available = int((rs.get("status") or {}).get("availableReplicas", 0))
            unhealthy = replicas - available
            if replicas == 0 or unhealthy <= 0:
                continue
            down = min(unhealthy, max_scaled_down - total_scaled)
            old_sorted[i] = await self._scale(d, rs, replicas - down)
            total_scaled += down
        max_scaled_down -= total_scaled
        # Then, available ones down to minAvailable (scaleDownOldReplicaSetsForRollingUpdate).
        available_all = sum(int((rs.get("status") or {}).get("availableReplicas", 0))
                            for rs in old_sorted + [new_rs])
        total_down = min(available_all - min_available, max_scaled_down)
        if total_down <= 0:
            return
        for rs in old_sorted:
            if total_down <= 0:
                break
            replicas = int(rs["spec"].get("replicas", 0))
            if replicas == 0:
                continue
            down = min(replicas, total_down)
            await self._scale(d, rs, replicas - down)
            total_down -= down

    # -- status
    async def _write_status(self, d, new_rs, rss, conditions):
        ns, name = _key(d)
        spec_replicas = int(d["spec"].get("replicas", 1))
        old = d.get("status") or {}

        def s(rs, k):
            return int((rs.get("status") or {}).get(k, 0))

        available = sum(s(rs, "availableReplicas") for rs in rss)
        new = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(s(rs, "replicas") for rs in rss),
            "updatedReplicas": s(new_rs, "replicas") if new_rs else 0,
            "readyReplicas": sum(s(rs, "readyReplicas") for rs in rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, spec_replicas - available),
        }
        if available >= spec_replicas - max_unavailable(d):
            conditions = set_condition(conditions, new_condition(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."))
        else:
            conditions = set_condition(conditions, new_condition(
                "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."))

        deadline = d["spec"].get("progressDeadlineSeconds")
        requeue = None
        if deadline is None:
            conditions = [c for c in conditions if c.get("type") != "Progressing"]
        else:
            current = get_condition(conditions, "Progressing")
            rs_name = new_rs["metadata"]["name"] if new_rs else None
            complete_now = (new["replicas"] == new["updatedReplicas"] and current is not None
                            and current.get("reason") == "NewReplicaSetAvailable")
            if not complete_now:
                if (new["updatedReplicas"] == spec_replicas and new["replicas"] == spec_replicas
                        and new["availableReplicas"] == spec_replicas
                        and new["observedGeneration"] >= d["metadata"].get("generation", 1)):
                    msg = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                           else f'Deployment "{name}" has successfully progressed.')
                    conditions = set_condition(conditions, new_condition(
                        "Progressing", "True", "NewReplicaSetAvailable", msg))
                elif _progressing(old, new):
                    msg = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                           else f'Deployment "{name}" is progressing.')
                    cond = new_condition("Progressing", "True", "ReplicaSetUpdated", msg)
                    if current is not None and current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                    conditions = [c for c in conditions if c.get("type") != "Progressing"] + [cond]
                    requeue = float(deadline) + 1
                elif current is not None and current.get("reason") != "NewReplicaSetAvailable":
                    if current.get("reason") != "ProgressDeadlineExceeded":
                        since = parse_time(current.get("lastUpdateTime")) or now()
                        left = (since + datetime.timedelta(seconds=int(deadline)) - now()).total_seconds()
                        if left < 0:
                            msg = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                                   else f'Deployment "{name}" has timed out progressing.')
                            conditions = set_condition(conditions, new_condition(
                                "Progressing", "False", "ProgressDeadlineExceeded", msg))
                        else:
                            requeue = left + 1
        if requeue is not None:
            self.queue.add_after((ns, name), max(requeue, 0.1))

        new["conditions"] = conditions
        if old.get("collisionCount") is not None:
            new["collisionCount"] = old["collisionCount"]
        changed = any(old.get(k, 0 if k != "conditions" else []) != v for k, v in new.items())
        if changed:
            await self.client.patch(path("apps/v1", "deployments", ns, name, "status"), {"status": new})
        # The Deployment carries the revision of its newest ReplicaSet.
        if new_rs is not None:
            rev = (new_rs["metadata"].get("annotations") or {}).get(REVISION)
            if rev and (d["metadata"].get("annotations") or {}).get(REVISION) != rev:
                await self.client.patch(path("apps/v1", "deployments", ns, name),
                                        {"metadata": {"annotations": {REVISION: rev}}})


def _progressing(old: dict, new: dict) -> bool:
    """deploymentutil.DeploymentProgressing."""
    old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_old = new["replicas"] - new["updatedReplicas"]
    return (new["updatedReplicas"] > int(old.get("updatedReplicas", 0))
            or new_old < old_old
            or new["readyReplicas"] > int(old.get("readyReplicas", 0))
            or new["availableReplicas"] > int(old.get("availableReplicas", 0)))


def _created(obj: dict):
    return (obj["metadata"].get("creationTimestamp") or "", obj["metadata"].get("name"))


# ---------------------------------------------------------------------------------------- DaemonSet
class DaemonSetController(Controller):
    """One pod per node that matches the nodeSelector and whose taints are tolerated."""

    component = "daemonset-controller"
    GENERATION_LABEL = "pod-template-generation"

    def __init__(self, client, settings, **extra):
        super().__init__(client, settings, **extra)
        self.ds = self.informer(path("apps/v1", "daemonsets"), self._on_ds)
        self.pods = self.informer(path("v1", "pods"), self._on_pod)
        self.nodes = self.informer(path("v1", "nodes"), self._on_node)

    def _on_ds(self, _type, obj):
        self.queue.add(_key(obj))

    def _on_pod(self, _type, obj):
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "DaemonSet":
            self.queue.add((obj["metadata"].get("namespace"), ref.get("name")))

    def _on_node(self, _type, _obj):
        self.enqueue_all()

    def enqueue_all(self):
        for ds in self.ds.items():
            self.queue.add(_key(ds))

    def _fits_no_node(self, ds: dict) -> bool:
        """Fault `daemonset.fitNoNode` (comma-separated namespace/name): the DaemonSet fits no node, as
        one whose nodeSelector no node's labels match (desiredNumberScheduled 0, its pods deleted)."""
        named = {n.strip() for n in self.faults.get("daemonset.fitNoNode").split(",") if n.strip()}
        return f"{ds['metadata'].get('namespace')}/{ds['metadata'].get('name')}" in named

    def _eligible(self, ds: dict, node: dict) -> bool:
        spec = (ds["spec"].get("template") or {}).get("spec") or {}
        if not node_selector_matches(spec, node) or self._fits_no_node(ds):
            return False
        # The DaemonSet controller adds tolerations for node conditions and unschedulable itself.
        tolerations = list(spec.get("tolerations") or []) + [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
        ]
        return untolerated_taint(tolerations, node) is None

    async def sync(self, key):
        ns, name = key
        ds = self.ds.get(ns, name)
        if ds is None or is_terminating(ds):
            return
        generation = str(ds["metadata"].get("generation", 1))
        pods = [p for p in self.pods.items()
                if p["metadata"].get("namespace") == ns and owned_by(p, ds)]
        active = [p for p in pods if pod_is_active(p)]
        by_node: dict[str, list] = {}
        for p in active:
            by_node.setdefault(p.get("spec", {}).get("nodeName"), []).append(p)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.items()}
        eligible = sorted(n for n, node in nodes.items() if self._eligible(ds, node))
        template = copy.deepcopy(ds["spec"].get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[self.GENERATION_LABEL] = generation
        # Pods on nodes that no longer qualify, and extra pods on a node.
        for node_name, node_pods in by_node.items():
            extra = node_pods if node_name not in eligible else sorted(node_pods, key=_created)[1:]
            for p in extra:
                await delete_pod(self.client, p)
                await self.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")
        for node_name in eligible:
            if by_node.get(node_name):
                continue
            if any(p.get("spec", {}).get("nodeName") == node_name for p in pods):
                continue  # the old pod is still terminating
            pod = pod_from_template(ds, template, f"{name}-{random_suffix()}")
            pod["spec"]["nodeName"] = node_name
            created = await self.client.create(path("v1", "pods", ns), pod)
            await self.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        # RollingUpdate: replace outdated pods, one unavailable at a time.
        current = [p for n in eligible for p in by_node.get(n, [])[:1]]
        outdated = [p for p in current
                    if p["metadata"].get("labels", {}).get(self.GENERATION_LABEL) != generation]
        strategy = (ds["spec"].get("updateStrategy") or {}).get("type", "RollingUpdate")
        unavailable = len(eligible) - sum(1 for p in current if pod_is_ready(p))
        if strategy == "RollingUpdate" and outdated and unavailable < 1:
            p = outdated[0]
            await delete_pod(self.client, p)
            await self.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")
        new = {
            "desiredNumberScheduled": len(eligible),
            "currentNumberScheduled": sum(1 for n in eligible if by_node.get(n)),
            "numberMisscheduled": sum(len(v) for n, v in by_node.items() if n not in eligible),
            "numberReady": sum(1 for p in current if pod_is_ready(p)),
            "numberAvailable": sum(1 for p in current if pod_is_available(p)),
            "numberUnavailable": max(0, len(eligible) - sum(1 for p in current if pod_is_available(p))),
            "updatedNumberScheduled": sum(
                1 for p in current if p["metadata"].get("labels", {}).get(self.GENERATION_LABEL) == generation),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        old = ds.get("status") or {}
        if any(old.get(k, 0) != v for k, v in new.items()):
            await self.client.patch(path("apps/v1", "daemonsets", ns, name, "status"), {"status": new})
