"""The durable snapshot of a run and its journal; the exact restore.

Files in `reports/<run>/` (written before the first change, flushed and fsynced as they go, so they
survive `kill -9`):
- `config-snapshot.json`: the original Config: `spec`, `metadata` (uid, resourceVersion, generation),
  `server`, `context`, `run_id`, `taken`.
- `journal.jsonl`: one JSON object a line: `{"event": "config-intent", "spec": ...}` before the run
  writes the Config, `{"event": "config-seen", "spec": ..., "resourceVersion": ...}` when it reads or
  writes a spec different from the last one recorded, `{"event": "created", "apiVersion", "kind",
  "namespace", "name", "uid"}` for each object it created, `{"event": "deleted", ...}`,
  `{"event": "restored", ...}`.

`restore(cluster, run_dir)` PUTs the snapshot's spec onto the current object (stale storage members
vanish), deletes what the journal says the run created (and what carries the run's label), waits until
the registry is back. It refuses (`RestoreRefused`, with the differences) when the current spec is
neither the original nor one this run last wrote or saw: someone else changed it since. `force=True`
restores anyway. Restoring twice is harmless.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from utilities import kube, redact
from utilities.kube import CONFIG_GVR, CONFIG_NAME, Cluster
from utilities.registry_steps import spec_diff  # noqa: F401  (also used as snapshots.spec_diff)

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "config-snapshot.json"
JOURNAL_FILE = "journal.jsonl"
FINAL_FILE = "config-final.json"


class SnapshotMissing(Exception):
    pass


class RestoreRefused(Exception):
    """The Config changed since this run last knew it (someone else's change)."""

    def __init__(self, message: str, differences: list[str]):
        super().__init__(message)
        self.differences = differences


class RestoreIncomplete(Exception):
    """The spec was put back but the registry did not come back, or the spec still differs."""


# --- files -----------------------------------------------------------------------------------------
def _write_durable(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # the spec holds httpSecret
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def take_snapshot(cluster: Cluster, run_dir, run_id: str, config: dict | None = None,
                  run_namespace: str | None = None) -> dict:
    """Write `config-snapshot.json` (the original spec) durably, unless this run already has one
    (a snapshot is taken once: the original is what was there before the run's first change)."""
    run_dir = Path(run_dir)
    path = run_dir / SNAPSHOT_FILE
    if path.exists():
        return load_snapshot(run_dir)
    obj = config if config is not None else cluster.registry_config()
    if obj is None:
        raise LookupError(f"configs.imageregistry.operator.openshift.io/{CONFIG_NAME} not found")
    snap = {
        "run_id": run_id,
        "run_namespace": run_namespace,     # --run-namespace: leftovers are looked for where it puts objects
        "server": cluster.server,
        "context": cluster.context,
        "kubeconfig": str(cluster.kubeconfig),
        "taken": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metadata": {k: obj["metadata"].get(k) for k in ("name", "uid", "resourceVersion", "generation")},
        "spec": copy.deepcopy(obj.get("spec") or {}),
        "deployment": deployment_summary(cluster),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_durable(path, json.dumps(snap, indent=2, sort_keys=True))
    return snap


def deployment_summary(cluster: Cluster) -> dict | None:
    """What of the registry Deployment the Config decides (None: no Deployment): replicas, strategy, the
    storage volume and the storage driver. Restored, an operator-managed registry must match it again."""
    dep = kube.get_or_none(cluster.apps.read_namespaced_deployment, kube.REGISTRY_DEPLOYMENT,
                           kube.REGISTRY_NAMESPACE)
    if dep is None:
        return None
    d = cluster.api_client.sanitize_for_serialization(dep)
    spec = d.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    vol = next((v for v in pod.get("volumes") or [] if v.get("name") == "registry-storage"), None)
    env = {e.get("name"): e.get("value") for c in pod.get("containers") or [] for e in c.get("env") or []
           if e.get("name") in ("REGISTRY_STORAGE", "REGISTRY_STORAGE_S3_BUCKET")}
    return {"replicas": spec.get("replicas"), "strategy": (spec.get("strategy") or {}).get("type"),
            "storageVolume": {k: v for k, v in (vol or {}).items() if k != "name"} or None, "env": env}


def deployment_differences(snapshot: dict, cluster: Cluster) -> list[str]:
    """How the registry Deployment differs from the one the snapshot saw (empty: the same, or the
    snapshot predates this record)."""
    if "deployment" not in snapshot:
        return []
    want, have = snapshot.get("deployment"), deployment_summary(cluster)
    if want is None or have is None:
        if (want is None) == (have is None):
            return []
        return ["the registry Deployment " + ("exists, the original had none" if want is None
                                              else "is gone, the original had one")]
    return spec_diff(want, have, "Deployment", labels=("originally", "now"))


def load_snapshot(run_dir) -> dict:
    path = Path(run_dir) / SNAPSHOT_FILE
    try:
        snap = json.loads(path.read_text())
    except FileNotFoundError:
        raise SnapshotMissing(f"no snapshot {path}") from None
    except ValueError as e:
        raise SnapshotMissing(f"snapshot {path} is not JSON: {e}") from None
    if not isinstance(snap, dict) or not isinstance(snap.get("spec"), dict):
        raise SnapshotMissing(f"snapshot {path} has no spec")
    return snap


EXACT_MEMBERS = ("spec", "patch")


def _redacted(value):
    """A JSON value without credentials (a string where redaction broke its JSON)."""
    text = json.dumps(value)
    out = redact.redact(text)
    if out == text:
        return value
    try:
        return json.loads(out)
    except ValueError:
        return out


class Journal:
    """Append-only, fsynced JSON lines."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / JOURNAL_FILE
        self._lock = threading.Lock()
        self._last_spec_json: str | None = None

    def append(self, entry: dict) -> None:
        entry = dict(entry, time=round(time.time(), 3))
        # The Config's spec (and patches of it) stay exact, as in the snapshot: the restore compares and
        # writes them, httpSecret included (both files are 0600). All else recorded is redacted.
        entry = {k: v if k in EXACT_MEMBERS else _redacted(v) for k, v in entry.items()}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def config_seen(self, obj: dict) -> None:
        spec = obj.get("spec") or {}
        key = json.dumps(spec, sort_keys=True)
        if key == self._last_spec_json:
            return
        self._last_spec_json = key
        self.append({"event": "config-seen", "spec": spec,
                     "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion")})

    def config_intent(self, spec) -> None:
        self._last_spec_json = None       # what is seen next is recorded
        self.append({"event": "config-intent", "spec": spec})

    def entries(self) -> list[dict]:
        return read_journal(self.path.parent)


def read_journal(run_dir) -> list[dict]:
    path = Path(run_dir) / JOURNAL_FILE
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass            # a line cut by kill -9
    return out


def _to_dict(cluster: Cluster, obj) -> dict:
    if isinstance(obj, dict):
        return obj
    return cluster.api_client.sanitize_for_serialization(obj)


class JournalObserver:
    """A `kube.add_observer` observer: records the run's Config writes and reads, creations and
    deletions in the journal."""

    _CONFIG_WRITES = ("replace_cluster_custom_object", "patch_cluster_custom_object")

    def __init__(self, cluster: Cluster, journal: Journal):
        self.cluster = cluster
        self.journal = journal

    @staticmethod
    def _is_config(args) -> bool:
        return tuple(args[:3]) == CONFIG_GVR and len(args) > 3 and args[3] == CONFIG_NAME

    def before(self, name, args, kwargs):
        if name in self._CONFIG_WRITES and self._is_config(args):
            body = args[4] if len(args) > 4 else kwargs.get("body")
            if name == "replace_cluster_custom_object" and isinstance(body, dict):
                self.journal.config_intent(body.get("spec") or {})
            else:
                self.journal.append({"event": "config-patch-intent", "patch": body})

    def after(self, name, args, kwargs, result):
        if self._is_config(args) and isinstance(result, dict) and result.get("spec") is not None:
            self.journal.config_seen(result)
            return
        if name.startswith("create_") and result is not None and not name.startswith("create_self_subject"):
            d = _to_dict(self.cluster, result)
            meta = d.get("metadata") or {}
            if meta.get("name"):
                self.journal.append({"event": "created", "apiVersion": d.get("apiVersion"), "kind": d.get("kind"),
                                     "namespace": meta.get("namespace"), "name": meta.get("name"),
                                     "uid": meta.get("uid"), "call": name})
        elif name.startswith("delete_"):
            self.journal.append({"event": "deleted", "call": name, "args": [a for a in args if isinstance(a, str)]})


# --- what the run last knew -----------------------------------------------------------------------
def known_specs(snapshot: dict, journal: list[dict]) -> list[dict]:
    """Specs the Config may have without anyone else's change: the original, the last spec the run
    saw, and every spec it intended to write after that (a write may have happened just before the
    run died)."""
    out = [snapshot["spec"]]
    last_seen = None
    intents: list[dict] = []
    for e in journal:
        if e.get("event") in ("config-seen", "restored"):
            last_seen, intents = e.get("spec"), []
        elif e.get("event") == "config-intent":
            intents.append(e.get("spec"))
    if last_seen is not None:
        out.append(last_seen)
    out += intents
    return [s for s in out if isinstance(s, dict)]


def _storage_equivalent(known: dict, current: dict) -> bool:
    """The operator fills in storage: `managementState`, an empty PVC claim name, bucket names...
    Equivalent when every non-empty field the run set is unchanged and the same backends are set."""
    known = {k: v for k, v in (known or {}).items() if k != "managementState"}
    current = {k: v for k, v in (current or {}).items() if k != "managementState"}
    if set(known) != set(current):
        return False
    for backend, conf in known.items():
        cur = current[backend]
        if not isinstance(conf, dict) or not isinstance(cur, dict):
            if conf != cur:
                return False
            continue
        for k, v in conf.items():
            if v in ("", None, {}):
                continue
            if cur.get(k) != v:
                return False
    return True


# Top-level spec fields the operator fills in when they are absent (httpSecret: a random secret shared
# by the registry replicas, written on the first sync while Managed).
OPERATOR_FILLED = ("httpSecret",)


def equivalent(known: dict, current: dict) -> bool:
    """`current` is `known`, give or take what the operator writes back into the spec."""
    if known == current:
        return True
    keys = (set(known) | set(current)) - {"storage"}
    keys -= {k for k in OPERATOR_FILLED if k not in known}
    if any(known.get(k) != current.get(k) for k in keys):
        return False
    return _storage_equivalent(known.get("storage") or {}, current.get("storage") or {})




# --- restore ----------------------------------------------------------------------------------------
class RestoreResult:
    def __init__(self):
        self.wrote = False
        self.deleted: list[str] = []
        self.final_spec: dict | None = None
        self.problems: list[str] = []

    def __repr__(self):
        return f"RestoreResult(wrote={self.wrote}, deleted={self.deleted}, problems={self.problems})"


def put_back_spec(cluster: Cluster, snapshot: dict, journal: list[dict], *, force: bool = False,
                  journal_writer: Journal | None = None, attempts: int = 20) -> bool:
    """PUT the snapshot's spec onto the current object (its resourceVersion: a concurrent change
    makes it 409 and we look again). Returns True when it wrote, False when already there."""
    want = snapshot["spec"]
    for _ in range(attempts):
        obj = cluster.registry_config()
        if obj is None:
            raise RestoreRefused(f"configs.imageregistry.operator.openshift.io/{CONFIG_NAME} does not exist "
                                 "any more; nothing to restore onto", [])
        current = obj.get("spec") or {}
        if current == want:
            return False
        uid = (snapshot.get("metadata") or {}).get("uid")
        if not force and uid and obj["metadata"].get("uid") != uid:
            raise RestoreRefused(f"the Config was deleted and recreated since the snapshot (uid {uid} -> "
                                 f"{obj['metadata'].get('uid')})", [])
        known = known_specs(snapshot, journal)
        if not force and not any(equivalent(k, current) for k in known):
            last = known[-1]
            diff = spec_diff(last, current, labels=("this run last knew", "now"))
            raise RestoreRefused("the Config was changed by someone else since this run last knew it: "
                                 + "; ".join(diff), diff)
        body = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                "metadata": obj["metadata"], "spec": copy.deepcopy(want)}
        if journal_writer is not None:
            journal_writer.config_intent(want)
        try:
            written = kube.call(cluster.custom.replace_cluster_custom_object, *CONFIG_GVR, CONFIG_NAME, body)
        except ApiException as e:
            if e.status == 409:
                time.sleep(0.1)
                continue
            raise
        if journal_writer is not None:
            journal_writer.append({"event": "restored", "spec": written.get("spec") or {}})
        return True
    raise RestoreIncomplete(f"could not write the Config after {attempts} conflicts")


_DELETERS = {
    # kind -> (api attribute, namespaced delete, cluster delete)
    "Namespace": ("core", None, "delete_namespace"),
    "PersistentVolumeClaim": ("core", "delete_namespaced_persistent_volume_claim", None),
    "Secret": ("core", "delete_namespaced_secret", None),
    "ConfigMap": ("core", "delete_namespaced_config_map", None),
    "Pod": ("core", "delete_namespaced_pod", None),
    "Service": ("core", "delete_namespaced_service", None),
    "ServiceAccount": ("core", "delete_namespaced_service_account", None),   # the run's registry identities
    "PersistentVolume": ("core", None, "delete_persistent_volume"),
}


def delete_object(cluster: Cluster, api_version: str | None, kind: str, namespace: str | None, name: str,
                  uid: str | None = None) -> bool:
    """Delete one object (404 is fine); True when a delete was sent. With `uid`, only that object
    (a delete precondition: a later object of the same name, e.g. the operator's own claim, answers 409
    and is left alone)."""
    from kubernetes import client as k8s
    opts = {"body": k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid))} if uid else {}
    copts = {"body": {"preconditions": {"uid": uid}}} if uid else {}
    try:
        if kind in _DELETERS:
            attr, ns_fn, cl_fn = _DELETERS[kind]
            api = getattr(cluster, attr)
            if namespace and ns_fn:
                kube.call(getattr(api, ns_fn), name, namespace, **opts)
            else:
                kube.call(getattr(api, cl_fn), name, **opts)
        elif kind == "StorageClass":
            kube.call(k8s.StorageV1Api(cluster.api_client).delete_storage_class, name, **opts)
        elif api_version and "/" in api_version:
            group, version = api_version.split("/", 1)
            plural = kind.lower() + ("es" if kind.lower().endswith("s") else "s")
            if namespace:
                kube.call(cluster.custom.delete_namespaced_custom_object, group, version, namespace, plural, name,
                          **copts)
            else:
                kube.call(cluster.custom.delete_cluster_custom_object, group, version, plural, name, **copts)
        else:
            log.warning("do not know how to delete %s %s/%s", kind, namespace or "", name)
            return False
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        if e.status == 409:      # already being deleted (a terminating namespace)
            return False
        raise


def delete_created(cluster: Cluster, journal: list[dict]) -> list[str]:
    """Delete what the journal says the run created (newest first), skipping what it deleted."""
    deleted = []
    seen = set()
    for e in reversed(journal):
        if e.get("event") != "created" or not e.get("kind") or not e.get("name"):
            continue
        key = (e.get("kind"), e.get("namespace"), e.get("name"))
        if key in seen or e.get("kind") == "Lease":
            continue
        seen.add(key)
        if delete_object(cluster, e.get("apiVersion"), e["kind"], e.get("namespace"), e["name"], uid=e.get("uid")):
            deleted.append(f"{e['kind']} {(e.get('namespace') + '/') if e.get('namespace') else ''}{e['name']}")
    return deleted


IMAGE_GVR = ("image.openshift.io", "v1", "images")


IMAGESTREAM_GVR = ("image.openshift.io", "v1", "imagestreams")


def run_namespaces(journal: list[dict]) -> set[str]:
    """The namespaces the run pushed to: those it created, and the --run-namespace it was given."""
    return {e["name"] for e in journal if e.get("name") and (
        (e.get("event") == "created" and e.get("kind") == "Namespace") or e.get("event") == "run-namespace")}


def image_stream_names(cluster: Cluster, namespace: str) -> list[str]:
    lst = kube.call(cluster.custom.list_namespaced_custom_object, *IMAGESTREAM_GVR[:2], namespace,
                    IMAGESTREAM_GVR[2])
    return sorted((i.get("metadata") or {}).get("name") for i in lst.get("items") or [])


def run_namespace_entry(cluster: Cluster, namespace: str) -> dict:
    """The journal entry of a --run-namespace: the image streams in it before the run pushed there
    (those the run's pushes add are its own to delete; the namespace itself is never deleted)."""
    return {"event": "run-namespace", "name": namespace, "streams": image_stream_names(cluster, namespace)}


def delete_pushed_streams(cluster: Cluster, entries: list[dict]) -> list[str]:
    """Delete the image streams that appeared in a --run-namespace after its journal entry was written
    (the run's pushes made them: the registry creates a stream on the first push to it)."""
    out = []
    for e in entries:
        if e.get("event") != "run-namespace":
            continue
        ns, before = e["name"], set(e.get("streams") or ())
        for name in image_stream_names(cluster, ns):
            if name not in before and delete_object(cluster, "image.openshift.io/v1", "ImageStream", ns, name):
                out.append(f"ImageStream {ns}/{name}")
    return out


def streams_before(journal: list[dict]) -> set[tuple[str, str]]:
    """(namespace, stream) of the image streams a --run-namespace held before the run: not the run's."""
    return {(e["name"], s) for e in journal if e.get("event") == "run-namespace" for s in e.get("streams") or ()}


def delete_pushed_images(cluster: Cluster, namespaces, keep=()) -> list[str]:
    """Images (image.openshift.io, cluster-scoped) of what the run pushed: deleting its namespaces
    deletes the image streams, not the Images; those whose dockerImageReference is in one of
    `namespaces` are deleted here (by uid), except those of the (namespace, stream) pairs in `keep`
    (streams of a --run-namespace that were there before the run)."""
    namespaces = set(namespaces or ())
    keep = set(keep)
    if not namespaces:
        return []
    try:
        lst = kube.call(cluster.custom.list_cluster_custom_object, *IMAGE_GVR)
    except ApiException as e:
        if e.status in (403, 404):      # no image API; or not allowed: the pruner will
            log.warning("could not list the Images the run pushed: %s", e.reason)
            return []
        raise
    out = []
    for img in lst.get("items") or []:
        ref = str(img.get("dockerImageReference") or "")
        path = ref.split("@", 1)[0].split("/")
        if len(path) >= 3 and path[-2] in namespaces and (path[-2], path[-1]) not in keep:
            meta = img.get("metadata") or {}
            if delete_object(cluster, "image.openshift.io/v1", "Image", None, meta.get("name"), uid=meta.get("uid")):
                out.append(f"Image {meta.get('name')} ({ref.split('@')[0]})")
    return out


def restore(cluster: Cluster, run_dir, *, force: bool = False, timeout: float = 300.0, wait: bool = True,
            delete: bool = True) -> RestoreResult:
    """Restore from `run_dir` (see the module docstring). Raises SnapshotMissing, RestoreRefused;
    problems that remain afterwards are in `result.problems`."""
    from utilities import registry_steps as steps
    from utilities.leftovers import delete_leftovers, find_leftovers

    run_dir = Path(run_dir)
    snapshot = load_snapshot(run_dir)
    journal = read_journal(run_dir)
    if not force and snapshot.get("server") and snapshot["server"].rstrip("/") != cluster.server.rstrip("/"):
        raise RestoreRefused(f"the snapshot is of the cluster {snapshot['server']}, the kubeconfig points at "
                             f"{cluster.server}", [])
    writer = Journal(run_dir)
    result = RestoreResult()
    result.wrote = put_back_spec(cluster, snapshot, journal, force=force, journal_writer=writer)
    if result.wrote:
        log.info("restored the original Config spec from %s", run_dir / SNAPSHOT_FILE)
    if delete:
        result.deleted = delete_pushed_images(cluster, run_namespaces(journal), streams_before(journal))
        result.deleted += delete_pushed_streams(cluster, journal)
        result.deleted += delete_created(cluster, journal)
        run_id = snapshot.get("run_id")
        if run_id:
            result.deleted += delete_leftovers(cluster, find_leftovers(
                cluster, run_id=run_id, run_namespace=snapshot.get("run_namespace")))
    if wait:
        try:
            steps.wait_settled(cluster, timeout)
        except AssertionError as e:
            result.problems.append(f"the registry did not come back to its original state: {e}")
    after = (cluster.registry_config() or {}).get("spec") or {}
    result.final_spec = after
    _write_durable(run_dir / FINAL_FILE, json.dumps({"spec": after}, indent=2, sort_keys=True))
    diff = spec_diff(snapshot["spec"], after)
    if diff:
        result.problems.insert(0, "configuration left changed: " + "; ".join(diff))
    if wait:
        dep = deployment_differences(snapshot, cluster)
        if dep:
            state = (snapshot.get("spec") or {}).get("managementState")
            why = (" (the original Config is Unmanaged: the operator ignores it, operator-facts.md §12.6)"
                   if state == "Unmanaged" else "")
            result.problems.append("the registry Deployment is not as it was" + why + ": " + "; ".join(dep))
    return result
