"""The in-memory store: objects per resource type, one global resourceVersion counter, a bounded event
history per resource type, indexes (namespace, owner uid) and the live watchers.

Stored objects are never mutated in place: every write stores a new dict, so watchers and responses
can hold references safely. Everything runs on the server's event loop (no locks).
"""
from __future__ import annotations

import asyncio
from collections import deque


class Watcher:
    def __init__(self, namespace, label_selector, field_selector):
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.queue: asyncio.Queue = asyncio.Queue()

    def match(self, obj) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        if self.label_selector and not self.label_selector.matches(meta.get("labels")):
            return False
        if self.field_selector and not self.field_selector.matches(obj):
            return False
        return True

    def translate(self, etype, obj, old):
        """The event this watcher sees (selectors turn MODIFIED into ADDED/DELETED), or None."""
        new_m = self.match(obj)
        if etype == "ADDED":
            return "ADDED" if new_m else None
        if etype == "DELETED":
            return "DELETED" if new_m else None
        old_m = self.match(old)
        if new_m and old_m:
            return "MODIFIED"
        if new_m:
            return "ADDED"
        if old_m:
            return "DELETED"
        return None

    def offer(self, etype, obj, old):
        t = self.translate(etype, obj, old)
        if t:
            self.queue.put_nowait((t, obj))


class Store:
    def __init__(self, history_size: int = 10000):
        self.rv = 0
        self.history_size = history_size
        self.objects: dict[tuple, dict[tuple, dict]] = {}
        self.history: dict[tuple, deque] = {}
        self.compacted: dict[tuple, int] = {}
        self.watchers: dict[tuple, set[Watcher]] = {}
        self.by_namespace: dict[str, set[tuple]] = {}      # ns -> {(rtkey, name)}
        self.by_owner: dict[str, set[tuple]] = {}          # owner uid -> {(rtkey, ns, name)}
        self.by_uid: dict[str, tuple] = {}                 # uid -> (rtkey, ns, name)

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def table(self, rtkey) -> dict:
        return self.objects.setdefault(rtkey, {})

    def get(self, rtkey, ns, name):
        return self.objects.get(rtkey, {}).get((ns or "", name))

    def items(self, rtkey, ns=None):
        tbl = self.objects.get(rtkey, {})
        if ns:
            members = self.by_namespace.get(ns, ())
            if len(members) < len(tbl):
                keys = [(ns, name) for rk, name in members if rk == rtkey and (ns, name) in tbl]
            else:
                keys = [k for k in tbl if k[0] == ns]
        else:
            keys = list(tbl)
        keys.sort()
        return [tbl[k] for k in keys]

    def namespace_members(self, ns) -> list[tuple]:
        return list(self.by_namespace.get(ns, ()))

    def dependents(self, uid) -> list[tuple]:
        return list(self.by_owner.get(uid, ()))

    def by_uid_get(self, uid):
        where = self.by_uid.get(uid)
        return None if where is None else self.get(*where)

    # --- writes ---
    def _index(self, rtkey, obj, add: bool):
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if meta.get("uid"):
            if add:
                self.by_uid[meta["uid"]] = (rtkey, ns, name)
            else:
                self.by_uid.pop(meta["uid"], None)
        if ns:
            s = self.by_namespace.setdefault(ns, set())
            (s.add if add else s.discard)((rtkey, name))
            if not s:
                self.by_namespace.pop(ns, None)
        for ref in meta.get("ownerReferences") or ():
            uid = ref.get("uid")
            if not uid:
                continue
            s = self.by_owner.setdefault(uid, set())
            (s.add if add else s.discard)((rtkey, ns, name))
            if not s:
                self.by_owner.pop(uid, None)

    def put(self, rtkey, obj, old=None) -> dict:
        """Store `obj` (a fresh dict) with a new resourceVersion; emits ADDED or MODIFIED."""
        obj["metadata"]["resourceVersion"] = self.next_rv()
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if old is not None:
            self._index(rtkey, old, False)
        self.table(rtkey)[key] = obj
        self._index(rtkey, obj, True)
        self._emit(rtkey, "MODIFIED" if old is not None else "ADDED", obj, old)
        return obj

    def remove(self, rtkey, old) -> dict:
        meta = old["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        self.objects.get(rtkey, {}).pop(key, None)
        self._index(rtkey, old, False)
        final = dict(old)
        final["metadata"] = dict(meta, resourceVersion=self.next_rv())
        self._emit(rtkey, "DELETED", final, old)
        return final

    def _emit(self, rtkey, etype, obj, old):
        h = self.history.get(rtkey)
        if h is None:
            h = self.history[rtkey] = deque()
        if len(h) >= self.history_size:
            dropped = h.popleft()
            self.compacted[rtkey] = dropped[0]
        h.append((int(obj["metadata"]["resourceVersion"]), etype, obj, old))
        for w in list(self.watchers.get(rtkey, ())):
            w.offer(etype, obj, old)

    # --- watch ---
    def add_watcher(self, rtkey, w: Watcher):
        self.watchers.setdefault(rtkey, set()).add(w)

    def remove_watcher(self, rtkey, w: Watcher):
        s = self.watchers.get(rtkey)
        if s is not None:
            s.discard(w)

    def events_since(self, rtkey, rv: int):
        """History events of this type after `rv`, or None if `rv` is too old (compacted)."""
        if rv < self.compacted.get(rtkey, 0):
            return None
        out = []
        for ev in reversed(self.history.get(rtkey, ())):
            if ev[0] <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    def watcher_count(self) -> int:
        return sum(len(s) for s in self.watchers.values())
