"""One run per cluster: a Lease (coordination.k8s.io/v1) in the registry namespace.

`ClusterLock(cluster, run_id).acquire()` creates (or takes over, when stale and asked to) the Lease
`registry-conformance-lock` in `openshift-image-registry`: holderIdentity `user@host:pid`, the run id
and pid in annotations, leaseDurationSeconds, acquireTime, renewTime. A background thread renews it
every duration/3 while the run goes on; `release()` deletes it (only if still ours). A second run gets
`LockHeld` naming the holder; a stale lock (renewTime + leaseDurationSeconds in the past) is broken
only when asked (`break_stale=True`, `--break-lock`, or `python -m utilities unlock`).
"""
from __future__ import annotations

import datetime
import getpass
import logging
import os
import socket
import threading

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from utilities import kube
from utilities.kube import REGISTRY_NAMESPACE, Cluster
from utilities.labels import RUN_LABEL, SUITE_LABEL, SUITE_LABEL_VALUE, _label_value

log = logging.getLogger(__name__)

LOCK_NAME = "registry-conformance-lock"
LOCK_NAMESPACE = REGISTRY_NAMESPACE
DEFAULT_DURATION = 60
RUN_ID_ANNOTATION = "registry-conformance.openshift.io/run-id"
PID_ANNOTATION = "registry-conformance.openshift.io/pid"
HOST_ANNOTATION = "registry-conformance.openshift.io/host"
RUN_DIR_ANNOTATION = "registry-conformance.openshift.io/run-dir"


def holder_identity(pid: int | None = None) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{pid or os.getpid()}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class LockHeld(Exception):
    """Another run holds the lock."""

    def __init__(self, info: "LockInfo"):
        self.info = info
        super().__init__(info.describe())


class LockLost(Exception):
    pass


class LockInfo:
    """What a Lease says about its holder."""

    def __init__(self, lease: k8s.V1Lease):
        self.lease = lease
        spec = lease.spec or k8s.V1LeaseSpec()
        ann = lease.metadata.annotations or {}
        self.holder = spec.holder_identity or ""
        self.run_id = ann.get(RUN_ID_ANNOTATION, "")
        self.run_dir = ann.get(RUN_DIR_ANNOTATION, "")
        self.pid = int(ann.get(PID_ANNOTATION) or 0) or None
        self.host = ann.get(HOST_ANNOTATION, "")
        self.duration = spec.lease_duration_seconds or DEFAULT_DURATION
        self.renew_time = spec.renew_time or spec.acquire_time or lease.metadata.creation_timestamp

    @property
    def expires_at(self) -> datetime.datetime | None:
        if self.renew_time is None:
            return None
        rt = self.renew_time
        if rt.tzinfo is None:
            rt = rt.replace(tzinfo=datetime.timezone.utc)
        return rt + datetime.timedelta(seconds=self.duration)

    @property
    def expired(self) -> bool:
        exp = self.expires_at
        return not self.holder or exp is None or exp < _now()

    @property
    def holder_dead(self) -> bool:
        """The holder ran on this host and its process is gone (killed)."""
        if not self.pid or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    @property
    def stale(self) -> bool:
        """Expired, or its holder is a dead process of this host: may be broken when asked."""
        return self.expired or self.holder_dead

    def describe(self) -> str:
        exp = self.expires_at
        left = (exp - _now()).total_seconds() if exp else 0
        when = f"expires in {left:.0f}s" if left > 0 else f"expired {-left:.0f}s ago (stale)"
        if left > 0 and self.holder_dead:
            when += f", but its process {self.pid} is gone (stale)"
        where = f" ({self.run_dir})" if self.run_dir else ""
        return f"held by {self.holder or '?'}, run {self.run_id or '?'}{where}, {when}"


def read_lock(cluster: Cluster) -> LockInfo | None:
    lease = kube.get_or_none(k8s.CoordinationV1Api(cluster.api_client).read_namespaced_lease,
                             LOCK_NAME, LOCK_NAMESPACE)
    return LockInfo(lease) if lease is not None else None


class ClusterLock:
    def __init__(self, cluster: Cluster, run_id: str, *, duration: int = DEFAULT_DURATION,
                 run_dir: str | os.PathLike | None = None, pid: int | None = None):
        self.cluster = cluster
        self.run_id = run_id
        self.duration = int(duration)
        self.run_dir = str(run_dir or "")
        self.identity = holder_identity(pid)
        self.pid = pid or os.getpid()
        self.api = k8s.CoordinationV1Api(cluster.api_client)
        self._lease: k8s.V1Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None        # why the lock was lost while renewing, if it was

    # --- the Lease ---------------------------------------------------------------------------
    def _body(self, existing: k8s.V1Lease | None = None) -> k8s.V1Lease:
        now = _now()
        meta = k8s.V1ObjectMeta(
            name=LOCK_NAME, namespace=LOCK_NAMESPACE,
            labels={SUITE_LABEL: SUITE_LABEL_VALUE, RUN_LABEL: _label_value(self.run_id)},
            annotations={RUN_ID_ANNOTATION: self.run_id, PID_ANNOTATION: str(self.pid),
                         HOST_ANNOTATION: socket.gethostname(), RUN_DIR_ANNOTATION: self.run_dir})
        transitions = 0
        if existing is not None:
            meta.resource_version = existing.metadata.resource_version
            transitions = ((existing.spec.lease_transitions or 0) + 1) if existing.spec else 1
        spec = k8s.V1LeaseSpec(holder_identity=self.identity, lease_duration_seconds=self.duration,
                               acquire_time=now, renew_time=now, lease_transitions=transitions)
        return k8s.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec)

    def _mine(self, lease: k8s.V1Lease | None) -> bool:
        if lease is None or lease.spec is None:
            return False
        ann = lease.metadata.annotations or {}
        return lease.spec.holder_identity == self.identity and ann.get(RUN_ID_ANNOTATION) == self.run_id

    def acquire(self, *, break_stale: bool = False, take_over_run: bool = False, renew: bool = True) -> "ClusterLock":
        """Take the lock or raise LockHeld. `break_stale`: take over a stale lock (expired, or its
        holder's process on this host is gone). `take_over_run`: take over a stale lock of the same
        run id without being asked (the restore of a run that died)."""
        for _ in range(10):
            current = kube.get_or_none(self.api.read_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE)
            try:
                if current is None:
                    self._lease = kube.call(self.api.create_namespaced_lease, LOCK_NAMESPACE, self._body())
                else:
                    info = LockInfo(current)
                    ours = self._mine(current)
                    same_run = take_over_run and info.run_id == self.run_id
                    if not ours and not ((break_stale or same_run) and info.stale):
                        raise LockHeld(info)
                    if not ours:
                        (log.info if same_run else log.warning)(
                            "taking over the stale lock %s/%s: %s", LOCK_NAMESPACE, LOCK_NAME, info.describe())
                    self._lease = kube.call(self.api.replace_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE,
                                            self._body(current))
            except ApiException as e:
                if e.status in (409,):      # someone else created or changed it meanwhile: re-read
                    continue
                raise
            log.info("lock %s/%s taken by %s for run %s", LOCK_NAMESPACE, LOCK_NAME, self.identity, self.run_id)
            if renew:
                self._start_renewing()
            return self
        raise LockHeld(read_lock(self.cluster) or LockInfo(self._body()))

    def renew_once(self) -> None:
        for _ in range(5):
            current = kube.get_or_none(self.api.read_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE)
            if not self._mine(current):
                raise LockLost("the lock was deleted" if current is None else
                               f"the lock was taken over: {LockInfo(current).describe()}")
            current.spec.renew_time = _now()
            current.spec.lease_duration_seconds = self.duration
            try:
                self._lease = kube.call(self.api.replace_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE, current)
                return
            except ApiException as e:
                if e.status != 409:
                    raise

    def start_renewing(self) -> None:
        """Renew in the background until `stop_renewing()` (acquire does this unless renew=False)."""
        self._start_renewing()

    def _start_renewing(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="lock-renewer", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        period = max(self.duration / 3.0, 1.0)
        while not self._stop.wait(period):
            try:
                self.renew_once()
            except LockLost as e:
                self.lost = str(e)
                log.error("lost the cluster lock: %s", e)
                return
            except Exception as e:  # noqa: BLE001 - try again next period; the lease still has time
                log.warning("could not renew the cluster lock: %s", kube._short(e))

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def release(self) -> bool:
        """Delete the Lease if it is still ours; True when deleted."""
        self.stop_renewing()
        for _ in range(5):
            current = kube.get_or_none(self.api.read_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE)
            if not self._mine(current):
                return False
            try:
                kube.call(self.api.delete_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE,
                          body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(
                              uid=current.metadata.uid, resource_version=current.metadata.resource_version)))
                log.info("lock %s/%s released", LOCK_NAMESPACE, LOCK_NAME)
                return True
            except ApiException as e:
                if e.status == 404:
                    return False
                if e.status != 409:
                    raise
        return False


def break_lock(cluster: Cluster, *, force: bool = False) -> LockInfo | None:
    """Delete the lock if stale (or whatever its state with `force`); returns what it said, None
    when there was no lock; raises LockHeld for a live lock without `force`."""
    api = k8s.CoordinationV1Api(cluster.api_client)
    current = kube.get_or_none(api.read_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE)
    if current is None:
        return None
    info = LockInfo(current)
    if not info.stale and not force:
        raise LockHeld(info)
    try:
        kube.call(api.delete_namespaced_lease, LOCK_NAME, LOCK_NAMESPACE,
                  body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(
                      uid=current.metadata.uid, resource_version=current.metadata.resource_version)))
    except ApiException as e:
        if e.status != 404:
            raise
    return info
