"""A must-gather served read-only (issue 10): `python -m localcluster serve --must-gather DIR`.

DIR is what `oc adm must-gather` writes: one or more image directories (or DIR itself), each with
`cluster-scoped-resources/<group>/<plural>/<name>.yaml` (one object) and
`namespaces/<ns>/<group>/<plural>.yaml` (a List), `namespaces/<ns>/<ns>.yaml` (the Namespace) and
`namespaces/<ns>/pods/<pod>/<pod>.yaml`; the core group's directory is `core`. The objects are put
into the API server's store as they are (Secrets keep must-gather's "N bytes long" values), no
controller runs, and the server answers writes 405 MethodNotAllowed.

What the must-gather did not collect is answered 404 with a Status cause `MustGatherFileMissing`
naming the file (`namespaces/openshift-config/core/configmaps.yaml`), so a client can tell "not
gathered" from "does not exist": a namespaced collection counts as gathered when its List file is
there, a cluster-scoped resource when its directory is there.
"""
from __future__ import annotations

import datetime
import logging
import re
from pathlib import Path

import yaml

log = logging.getLogger("localcluster.mustgather")


class MustGatherError(ValueError):
    pass


def image_dirs(root: Path) -> list[Path]:
    """The directories holding `cluster-scoped-resources/` or `namespaces/` (DIR itself, its image
    directories, or one level further down for an archive's top directory)."""
    root = Path(root)
    if root.is_file():
        raise MustGatherError(f"must-gather {root} is a file, not a directory: give the directory `oc adm "
                              f"must-gather` wrote, or an archive of it named .tar.gz, .tgz, .tar.xz or .tar")
    if not root.is_dir():
        raise MustGatherError(f"must-gather directory {root} does not exist: give the directory "
                              f"`oc adm must-gather` wrote (unpack an archive first)")
    found = []
    for cand in [root] + sorted(p for p in root.iterdir() if p.is_dir()) + sorted(
            q for p in root.iterdir() if p.is_dir() for q in p.iterdir() if q.is_dir()):
        if (cand / "cluster-scoped-resources").is_dir() or (cand / "namespaces").is_dir():
            if not any(cand.is_relative_to(f) for f in found):
                found.append(cand)
    if not found:
        raise MustGatherError(f"{root} is not a must-gather: no cluster-scoped-resources/ or namespaces/ "
                              f"directory in it or in its image directories")
    return found


def _docs(path: Path) -> list[dict]:
    try:
        out = []
        for d in yaml.safe_load_all(path.read_text(errors="replace")):
            if not isinstance(d, dict):
                continue
            out += [i for i in d.get("items") or [] if isinstance(i, dict)] if "items" in d else [d]
        return out
    except yaml.YAMLError as e:
        log.warning("skipping %s: not YAML (%s)", path, str(e).splitlines()[0])
        return []


_TS = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)")


def captured_at(dirs: list[Path]) -> str | None:
    """When the must-gather was taken (its `timestamp` file, the last line), ISO 8601 UTC."""
    best = None
    for d in dirs:
        for f in (d / "timestamp", d.parent / "timestamp"):
            if f.is_file():
                for m in _TS.finditer(f.read_text(errors="replace")):
                    t = f"{m.group(1)}T{m.group(2)}Z"
                    best = max(best or t, t)
    return best


def _times(obj: dict):
    """The times an object records: creation, managed fields, conditions, an event's last sighting."""
    md = obj.get("metadata") or {}
    yield md.get("creationTimestamp")
    for f in md.get("managedFields") or []:
        yield (f or {}).get("time")
    for c in ((obj.get("status") or {}).get("conditions") or []):
        yield (c or {}).get("lastTransitionTime") if isinstance(c, dict) else None
    yield obj.get("lastTimestamp")
    yield obj.get("eventTime")
    yield (obj.get("series") or {}).get("lastObservedTime")


def newest_object_time(objects) -> str | None:
    """The newest time any gathered object records (ISO 8601 UTC, to the second): when the must-gather
    was taken at the latest, for one without a `timestamp` file."""
    best = None
    for _, obj in objects:
        for t in _times(obj):
            m = _TS.match(str(t or ""))
            if m:
                best = max(best or "", f"{m.group(1)}T{m.group(2)}Z")
    return best


class MustGather:
    """The objects of a must-gather, by resource type, and what it gathered."""

    def __init__(self, root: Path, registry):
        self.root = Path(root)
        self.dirs = image_dirs(self.root)
        self.registry = registry
        self.objects: list[tuple] = []            # (rt, obj)
        self.namespaced: set[tuple] = set()       # (rt.key, ns) whose List file was gathered
        self.cluster_scoped: set[tuple] = set()   # rt.key whose directory was gathered
        self.namespaces: set[str] = set()
        self.unknown: set[str] = set()
        self.captured_at = captured_at(self.dirs)
        self._load()
        self.newest_object_at = newest_object_time(self.objects)

    def _rt(self, group_dir: str, plural: str):
        group = "" if group_dir == "core" else group_dir
        for r in self.registry.resources:
            if r.group == group and r.plural == plural:
                return r
        self.unknown.add(f"{plural}.{group}" if group else plural)
        return None

    def _add(self, rt, obj, ns=""):
        if not isinstance(obj.get("metadata"), dict) or not obj["metadata"].get("name"):
            return
        if rt.namespaced:
            obj["metadata"].setdefault("namespace", ns)
        else:
            obj["metadata"].pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        self.objects.append((rt, obj))

    def _load(self):
        ns_rt = self.registry.get("", "v1", "namespaces")
        for d in self.dirs:
            csr = d / "cluster-scoped-resources"
            if csr.is_dir():
                for gdir in sorted(p for p in csr.iterdir() if p.is_dir()):
                    for pdir in sorted(p for p in gdir.iterdir() if p.is_dir()):
                        rt = self._rt(gdir.name, pdir.name)
                        if rt is None or rt.namespaced:
                            continue
                        self.cluster_scoped.add(rt.key)
                        for f in sorted(pdir.glob("*.yaml")):
                            for obj in _docs(f):
                                self._add(rt, obj)
            nsdir = d / "namespaces"
            if not nsdir.is_dir():
                continue
            for n in sorted(p for p in nsdir.iterdir() if p.is_dir()):
                ns = n.name
                if (n / f"{ns}.yaml").is_file():
                    for obj in _docs(n / f"{ns}.yaml"):
                        self.namespaces.add(ns)
                        self._add(ns_rt, obj)
                for gdir in sorted(p for p in n.iterdir() if p.is_dir() and p.name != "pods"):
                    for f in sorted(gdir.glob("*.yaml")):
                        rt = self._rt(gdir.name, f.stem)
                        if rt is None or not rt.namespaced:
                            continue
                        self.namespaced.add((rt.key, ns))
                        for obj in _docs(f):
                            self._add(rt, obj, ns)
                pods_rt = self.registry.get("", "v1", "pods")
                if (n / "pods").is_dir() and (pods_rt.key, ns) not in self.namespaced:
                    self.namespaced.add((pods_rt.key, ns))
                    for f in sorted((n / "pods").glob("*/*.yaml")):
                        for obj in _docs(f):
                            self._add(pods_rt, obj, ns)
        if self.unknown:
            log.info("must-gather resources not served (unknown to the API server): %s",
                     ", ".join(sorted(self.unknown)))

    def missing(self, rt, namespace: str, name: str) -> str | None:
        """The must-gather file a read of (rt, namespace, name) needs and does not have, or None."""
        group_dir = rt.group or "core"
        if rt.key == ("", "v1", "namespaces"):
            if name and name not in self.namespaces:
                return f"namespaces/{name}/{name}.yaml"
            return None
        if rt.namespaced:
            if not namespace:       # all namespaces: whatever was gathered
                return None
            if (rt.key, namespace) not in self.namespaced:
                return f"namespaces/{namespace}/{group_dir}/{rt.plural}.yaml"
            return None
        if rt.key not in self.cluster_scoped:
            return f"cluster-scoped-resources/{group_dir}/{rt.plural}/{name + '.yaml' if name else ''}"
        return None


def serve_into(server, root: Path) -> MustGather:
    """Load the must-gather at `root` into `server`'s store and make the server read-only."""
    mg = MustGather(root, server.registry)
    store = server.store
    for rtkey in list(store.objects):      # the server's bootstrap namespaces: not the must-gather's
        for obj in list(store.objects[rtkey].values()):
            store.remove(rtkey, obj)
    seen = set()
    for rt, obj in mg.objects:
        key = (rt.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in seen:
            continue
        seen.add(key)
        obj["metadata"].setdefault("uid", f"must-gather-{len(seen)}")
        obj["metadata"].setdefault("creationTimestamp",
                                   datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        store.put(rt.key, obj)
    server.read_only = True
    server.not_gathered = mg.missing
    log.info("serving must-gather %s read-only: %d objects from %s (captured %s)", root, len(seen),
             ", ".join(str(d) for d in mg.dirs), mg.captured_at or "at an unknown time")
    return mg
