"""Core v1 Events, written the way Kubernetes components write them.

An event with the same object, reason and message as a recent one is counted again (count + 1,
lastTimestamp) instead of written anew, as the client-go event recorder does.
"""
from __future__ import annotations

import datetime
import secrets

from localcluster.client import ApiError, path


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# (namespace, uid, reason, message) -> event name; a small per-process cache, like the recorder's.
_seen: dict[tuple, str] = {}


async def record(client, obj: dict, type_: str, reason: str, message: str, component: str) -> None:
    """Write (or count again) an Event about `obj`. Never raises: events are best effort."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    key = (namespace, meta.get("uid"), reason, message)
    now = _now()
    try:
        name = _seen.get(key)
        if name:
            try:
                ev = await client.get(path("v1", "events", namespace, name))
                await client.patch(
                    path("v1", "events", namespace, name),
                    {"count": int(ev.get("count", 1)) + 1, "lastTimestamp": now},
                )
                return
            except ApiError as e:
                if e.status != 404:
                    raise
        name = f"{meta.get('name', 'unknown')}.{secrets.token_hex(8)}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await client.create(path("v1", "events", namespace), body)
        _seen[key] = name
    except Exception:  # noqa: BLE001 - an event must never break a controller
        return
