"""The async Kubernetes client the local cluster's controllers use (aiohttp, CA pinned).

    path(api_version, plural, namespace=None, name=None, subresource=None) -> str
    ApiError(status, reason, message, body)
    KubeClient(server, token, ca_pem): get, list, create, replace, patch, delete, watch, close
    Informer(client, p, on_change, resync=30.0): list + watch + resync with a cache
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import ssl
from typing import Awaitable, Callable
from urllib.parse import urlencode

import aiohttp

log = logging.getLogger("localcluster.client")

_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


def path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None,
         subresource: str | None = None) -> str:
    """`path("v1", "pods", "ns", "p") == "/api/v1/namespaces/ns/pods/p"`."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, body: dict | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


# Sent on every request: the API server exempts the local cluster's own components from the fault
# injection meant for the suite (localcluster/apiserver/chaos.py).
COMPONENT_HEADER = "X-Localcluster-Component"


class KubeClient:
    def __init__(self, server: str, token: str, ca_pem: bytes, component: str = "localcluster"):
        self.server = server.rstrip("/")
        self.token = token
        self.component = component
        if isinstance(ca_pem, bytes):
            ca_pem = ca_pem.decode()
        self.ca_pem = ca_pem.encode()   # the API server's CA, for components that make their own clients
        self._ssl = ssl.create_default_context(cadata=ca_pem)   # only this CA: the environment is ignored
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                         COMPONENT_HEADER: self.component},
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def _request(self, method, p, body=None, params=None, content_type="application/json"):
        url = self.server + p
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        async with self._sess().request(method, url, data=data, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=60)) as resp:
            raw = await resp.read()
            return self._decode(resp.status, raw)

    @staticmethod
    def _decode(status, raw):
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if status >= 400:
            if isinstance(doc, dict) and doc.get("kind") == "Status":
                raise ApiError(status, doc.get("reason", ""), doc.get("message", ""), doc)
            raise ApiError(status, "", raw.decode(errors="replace")[:500], {})
        return doc

    async def get(self, p) -> dict:
        return await self._request("GET", p)

    async def get_or_none(self, p) -> dict | None:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.get(p)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, p, label_selector=None, field_selector=None) -> dict:
        return await self._request("GET", p, params={"labelSelector": label_selector,
                                                     "fieldSelector": field_selector})

    async def create(self, p, body) -> dict:
        return await self._request("POST", p, body)

    async def replace(self, p, body) -> dict:
        return await self._request("PUT", p, body)

    async def patch(self, p, body, patch_type="merge") -> dict:
        return await self._request("PATCH", p, body, content_type=_PATCH_TYPES[patch_type])

    async def delete(self, p, grace_period_seconds=None, propagation_policy=None) -> dict | None:
        opts = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            opts["propagationPolicy"] = propagation_policy
        return await self._request("DELETE", p, opts)

    async def delete_if_exists(self, p, grace_period_seconds=None, propagation_policy=None) -> dict | None:
        """Delete; an object already gone (404) is not an error."""
        try:
            return await self.delete(p, grace_period_seconds, propagation_policy)
        except ApiError as e:
            if e.status != 404:
                raise
            return None

    async def watch(self, p, resource_version=None, label_selector=None, timeout_seconds=None,
                    field_selector=None):
        """Async iterator of (event_type, obj). An ERROR event raises ApiError (410 when expired).
        Ends when the server closes the stream (e.g. after timeout_seconds)."""
        params = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true"}
        url = self.server + p + "?" + urlencode({k: v for k, v in params.items() if v is not None})
        async with self._sess().get(url, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as resp:
            if resp.status >= 400:
                self._decode(resp.status, await resp.read())
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    etype, obj = ev.get("type"), ev.get("object") or {}
                    if etype == "ERROR":
                        raise ApiError(int(obj.get("code", 500)), obj.get("reason", ""), obj.get("message", ""),
                                       obj)
                    yield etype, obj

    async def close(self):
        if self._session is not None:
            await self._session.close()
            self._session = None


def _key(obj):
    m = obj.get("metadata") or {}
    return (m.get("namespace") or "", m.get("name"))


class Informer:
    """List, then watch from the list's resourceVersion; re-list on 410 (reporting the differences),
    re-watch from the last seen resourceVersion when the server closes the stream; every `resync`
    seconds calls on_change("SYNC", obj) for each cached object. Keeps {(namespace, name): obj}."""

    def __init__(self, client: KubeClient, p: str, on_change: Callable[[str, dict], Awaitable | None] | None = None,
                 resync: float = 30.0, label_selector: str | None = None, field_selector: str | None = None,
                 watch_timeout: float = 300.0):
        self.client = client
        self.path = p
        self.on_change = on_change
        self.resync = resync
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.cache: dict[tuple, dict] = {}
        self.synced = asyncio.Event()
        self.resource_version: str | None = None

    def get(self, namespace, name):
        return self.cache.get((namespace or "", name))

    def items(self) -> list[dict]:
        return list(self.cache.values())

    async def _notify(self, etype, obj):
        if self.on_change is None:
            return
        try:
            r = self.on_change(etype, obj)
            if inspect.isawaitable(r):
                await r
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a handler error must not stop the informer
            log.exception("informer handler failed for %s %s", etype, _key(obj))

    async def _relist(self):
        doc = await self.client.list(self.path, self.label_selector, self.field_selector)
        items = doc.get("items") or []
        kind = doc.get("kind", "")[:-4] if doc.get("kind", "").endswith("List") else None
        fresh = {}
        for it in items:
            if kind and "kind" not in it:
                it = dict(it, kind=kind, apiVersion=doc.get("apiVersion"))
            fresh[_key(it)] = it
        old = self.cache
        self.cache = fresh
        self.resource_version = doc["metadata"]["resourceVersion"]
        for k, obj in old.items():
            if k not in fresh:
                await self._notify("DELETED", obj)
        for k, obj in fresh.items():
            prev = old.get(k)
            if prev is None:
                await self._notify("ADDED", obj)
            elif prev.get("metadata", {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self._notify("MODIFIED", obj)
        self.synced.set()

    async def _resync_loop(self):
        while True:
            await asyncio.sleep(self.resync)
            for obj in list(self.cache.values()):
                await self._notify("SYNC", obj)

    async def run(self):
        resync_task = asyncio.create_task(self._resync_loop()) if self.resync else None
        try:
            # A restarted informer continues from its last resourceVersion (re-listing on 410).
            need_list = self.resource_version is None
            backoff = 0.05
            while True:
                try:
                    if need_list:
                        await self._relist()
                        need_list = False
                    timeout = max(1, int(self.watch_timeout * (1 + random.random())))
                    async for etype, obj in self.client.watch(self.path, self.resource_version,
                                                              self.label_selector, timeout,
                                                              field_selector=self.field_selector):
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if rv:
                            self.resource_version = rv
                        if etype == "BOOKMARK":
                            continue
                        if etype == "DELETED":
                            self.cache.pop(_key(obj), None)
                        else:
                            self.cache[_key(obj)] = obj
                        await self._notify(etype, obj)
                    backoff = 0.05
                except ApiError as e:
                    if e.status == 410:
                        need_list = True
                        continue
                    log.warning("informer %s: %s", self.path, e)
                    need_list = True
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, ValueError) as e:
                    log.debug("informer %s: watch ended: %s", self.path, e)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
        finally:
            if resync_task is not None:
                resync_task.cancel()
