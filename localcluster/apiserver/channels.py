"""The WebSocket channel framing kube-apiserver uses for pods/portforward and pods/exec.

Every WebSocket message is one byte of channel number followed by the data (sub-protocol
`v4.channel.k8s.io` and the older names each connection accepts). `open_channels` upgrades the request
(400 `Upgrade request required` when it is not a WebSocket upgrade) and gives a `send(channel, data)`
that keeps messages whole when several tasks write at once; `finish` closes the socket and forgets it.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from . import errors


async def open_channels(request: web.Request, protocols: tuple[str, ...], sockets: set):
    """(ws, send): the upgraded WebSocket, tracked in `sockets` (closed on server stop), and its sender."""
    ws = web.WebSocketResponse(protocols=protocols, autoping=True, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        raise errors.bad_request("Upgrade request required")
    await ws.prepare(request)
    sockets.add(ws)
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            await ws.send_bytes(bytes([channel]) + data)

    return ws, send


async def finish(ws: web.WebSocketResponse, sockets: set) -> None:
    """Close `ws` (if the peer has not) and stop tracking it."""
    if not ws.closed:
        try:
            await ws.close()
        except Exception:  # noqa: BLE001 - the peer is gone
            pass
    sockets.discard(ws)
